"""The documentation site, the quickstart, and the CI contract.

- The site builds with ``mkdocs build --strict`` (any warning fails), and the
  API reference, opened in headless Chromium, shows every name in ``__all__``
  of every public module as a rendered API object (a ``doc-heading`` element
  whose id is the object's path). Public modules are discovered: every
  non-underscore module of the package. A module without a reference page
  fails with a message that says what to add. Chromium is required (CI
  installs it); without one the test fails rather than skips.
- The ```` ```python ```` blocks of the guide pages run (```` ```py ```` is for
  fragments that are shown, not run).
- ``examples/quickstart.py`` runs.
- ``.ci/run`` runs exactly README.md's second command, after its own venv set-up.
"""

from __future__ import annotations

import concurrent.futures
import functools
import html.parser
import http.server
import importlib
import importlib.util
import os
import pkgutil
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import jaxinit

ROOT = Path(__file__).resolve().parent.parent
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def _env() -> dict[str, str]:
    """The environment for subprocesses: this checkout's jaxinit comes first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["NO_MKDOCS_2_WARNING"] = "1"  # mkdocs-material's banner about MkDocs 2.0
    return env


# ----------------------------------------------------------------------------
# The site


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built once per session with ``mkdocs build --strict``."""
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        pytest.fail(f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}", pytrace=False)
    return out


def public_modules() -> list[str]:
    """``jaxinit`` and every module of it with no underscore in its path."""
    found = ["jaxinit"]
    for info in pkgutil.walk_packages(jaxinit.__path__, "jaxinit."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            found.append(info.name)
    return sorted(found)


def find_browser() -> str:
    for name in (os.environ.get("CHROMIUM"), *BROWSERS):
        if name and (path := shutil.which(name)):
            return path
    pytest.fail(
        "no Chromium found (looked for $CHROMIUM, " + ", ".join(BROWSERS) + "): the docs "
        "test needs one; README.md's test command installs it (apt-get install chromium)",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def served(site: Path) -> Iterator[str]:
    """The site on http://127.0.0.1:<port>/, served from a thread."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def dump_dom(browser: str, url: str, profile: Path) -> str:
    """The DOM of ``url`` after it loaded in headless Chromium (scripts run)."""
    proc = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            # Only the local server: CDN assets (KaTeX) fail at once instead of timing out.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0 or "</html>" not in proc.stdout:
        pytest.fail(f"{browser} could not load {url}:\n{proc.stderr[-3000:]}", pytrace=False)
    return proc.stdout


class _ObjectHeadings(html.parser.HTMLParser):
    """Collects the ids of mkdocstrings' rendered API objects (``.doc-heading``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id") and "doc-heading" in (a.get("class") or "").split():
            self.ids.add(a["id"])  # type: ignore[arg-type]


def test_api_reference_shows_every_public_name(site, served, tmp_path):
    browser = find_browser()
    pages = sorted(p.relative_to(site).as_posix() for p in (site / "api").rglob("*.html"))
    assert pages, f"no API reference pages under {site / 'api'}"
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        doms = dict(
            zip(
                pages,
                pool.map(
                    lambda i_page: dump_dom(browser, served + i_page[1], tmp_path / str(i_page[0])),
                    enumerate(pages),
                ),
            )
        )
    headings = {}
    for page, dom in doms.items():
        parser = _ObjectHeadings()
        parser.feed(dom)
        headings[page] = parser.ids

    problems = []
    for name in public_modules():
        module = importlib.import_module(name)
        exported = getattr(module, "__all__", None)
        if exported is None:
            problems.append(f"{name}: a public module needs an __all__")
            continue
        page = next((p for p, ids in headings.items() if name in ids), None)
        if page is None:
            short = name.removeprefix("jaxinit.") if name != "jaxinit" else "jaxinit"
            problems.append(
                f"{name}: no API reference page documents this public module; add "
                f"docs/api/{short}.md containing '::: {name}' and list it under "
                f"'API reference' in mkdocs.yml's nav"
            )
            continue
        missing = [n for n in exported if f"{name}.{n}" not in headings[page]]
        if missing:
            problems.append(
                f"{name}: {page} does not show {missing} as documented API objects "
                f"(mkdocstrings leaves out objects without a docstring)"
            )
    assert not problems, "\n".join(problems)


def test_site_has_every_page_and_the_benchmark_figures(site):
    assert (site / "index.html").is_file()
    for page in ("torch", "layouts", "tree", "porting", "benchmarks"):
        assert (site / page / "index.html").is_file(), page
    bench = (site / "benchmarks" / "index.html").read_text(encoding="utf-8")
    for figure in ("ratios.svg", "whole_model.svg"):
        assert figure in bench
        svg = (site / "benchmarks" / figure).read_text(encoding="utf-8")
        assert svg.startswith("<svg") and "<rect" in svg, figure
    assert "Whole-model init" in bench  # benchmarks/README.md is included


# ----------------------------------------------------------------------------
# docs/griffe_jaxinit.py: Sphinx markup in docstrings -> Markdown


@pytest.fixture(scope="module")
def ext():
    spec = importlib.util.spec_from_file_location(
        "griffe_jaxinit", ROOT / "docs" / "griffe_jaxinit.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sphinx_roles_become_math_links_and_code(ext):
    refs = ext._Refs({"jaxinit": ["Layout", "zeros"], "jaxinit.flax": ["init"]})
    text = (
        "Draws :math:`\\mathcal{N}(0, 1)`; see :func:`~jaxinit.zeros`, :class:`Layout`, "
        ":func:`jaxinit.flax.init`, :mod:`jaxinit._src.sampling`, :class:`jax.Array`, "
        ":func:`the fill <jaxinit.zeros>`."
    )
    assert ext.sphinx_to_markdown(text, refs) == (
        "Draws $\\mathcal{N}(0, 1)$; see [`zeros`][jaxinit.zeros], [`Layout`][jaxinit.Layout], "
        "[`jaxinit.flax.init`][jaxinit.flax.init], `jaxinit._src.sampling`, `jax.Array`, "
        "[`the fill`][jaxinit.zeros]."
    )


def test_math_directive_doctests_and_literal_blocks(ext):
    refs = ext._Refs({})
    text = (
        "Fans:\n\n.. math::\n   a = b\n\nExample::\n\n    code\n\n"
        ">>> x = f()  # doctest: +SKIP\n>>> print(x)\n1\n<BLANKLINE>\n2\n\nAfter."
    )
    assert ext.sphinx_to_markdown(text, refs).splitlines() == [
        "Fans:",
        "",
        "",
        "$$",
        "a = b",
        "$$",
        "",
        "",
        "Example:",
        "",
        "    code",
        "",
        "```pycon",
        ">>> x = f()",
        ">>> print(x)",
        "1",
        "",
        "2",
        "```",
        "",
        "After.",
    ]


def test_grouped_google_params_are_split(ext):
    text = "Summary.\n\nArgs:\n  key: a key.\n  model, args: the model\n    and its inputs.\n\nReturns:\n  x, y: not params."
    assert ext.split_grouped_params(text).splitlines() == [
        "Summary.",
        "",
        "Args:",
        "  key: a key.",
        "  model: the model",
        "    and its inputs.",
        "  args: the model",
        "    and its inputs.",
        "",
        "Returns:",
        "  x, y: not params.",
    ]


# ----------------------------------------------------------------------------
# Code in the guide pages and the quickstart

_PYTHON_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
GUIDE_PAGES = sorted(p.name for p in (ROOT / "docs").glob("*.md"))


@pytest.mark.parametrize("page", GUIDE_PAGES)
def test_guide_code_runs(page):
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    blocks = [b for b in _PYTHON_BLOCK.findall(text) if not b.lstrip().startswith("--8<--")]
    namespace: dict[str, object] = {"__name__": f"docs_{page}"}
    for i, block in enumerate(blocks):
        exec(compile(block, f"docs/{page} (python block {i + 1})", "exec"), namespace)


def test_quickstart_runs():
    proc = subprocess.run(
        [sys.executable, "examples/quickstart.py"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("kaiming_normal_ (64, 8, 3, 3): std ")
    assert lines[1].startswith("Conv kernel_init (3, 3, 8, 64): std ")
    # both lines print our std and torch's: 4608 values put 5 standard errors of
    # the std at 5 * sqrt(2 / (4 * 4608)) = 5.2% of it; the printed 3 decimals add 1%
    for line in lines[:2]:
        ours, theirs = map(float, re.search(r"std ([\d.]+) \(torch: ([\d.]+)\)", line).groups())
        assert abs(ours / theirs - 1) < 0.065, line
    leaves = sorted(line.split()[0] for line in lines[2:])
    assert leaves == [
        "params/conv/bias",
        "params/conv/kernel",
        "params/head/bias",
        "params/head/kernel",
        "params/norm/bias",
        "params/norm/scale",
    ]


# ----------------------------------------------------------------------------
# The CI contract: .ci/run = a throwaway venv + README.md's command 2


def _logical_lines(text: str) -> list[str]:
    """Shell lines with backslash continuations joined and whitespace collapsed."""
    joined = re.sub(r"\\\n", " ", text)
    return [" ".join(line.split()) for line in joined.splitlines()]


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", readme, re.DOTALL)
    assert block, "README.md must open with a ```bash block of the two commands"
    return [line for line in _logical_lines(block.group(1)) if line and not line.startswith("#")]


def test_ci_runs_exactly_the_readme_test_command():
    commands = readme_commands()
    assert len(commands) == 2, commands
    venv = "python -m venv .venv && . .venv/bin/activate && "
    assert commands[1].startswith(venv), commands[1]
    rest = commands[1].removeprefix(venv)
    ci = [
        line
        for line in _logical_lines((ROOT / ".ci" / "run").read_text(encoding="utf-8"))
        if line and not line.startswith("#")
    ]
    assert ci[-1] == rest, (
        ".ci/run must end with README.md's second command after its venv set-up:\n"
        f"README: {rest}\n.ci/run: {ci[-1]}"
    )


def test_ci_workflow_runs_ci_run():
    workflow = (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    assert re.search(r"^\s*run: bash \.ci/run\s*$", workflow, re.MULTILINE)


def test_readme_explain_table_is_what_explain_prints():
    """The README's ``explain`` table is the real output for the model it describes."""
    import flax.linen as nn
    import jax.numpy as jnp

    class Net(nn.Module):  # "a Conv-BatchNorm-Dense net"
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(8, (3, 3), name="conv")(x)
            x = nn.BatchNorm(use_running_average=True, name="bn")(x)
            return nn.Dense(10, name="head")(x.mean((1, 2)))

    rules = [
        ("*conv*/kernel", jaxinit.kaiming_normal(mode="fan_out")),
        ("*bn*/scale", jaxinit.ones()),
        ("*/bias", jaxinit.zeros()),
    ]
    printed = str(jaxinit.flax.explain(Net(), rules, jnp.ones((1, 16, 16, 3))))
    readme = (ROOT / "README.md").read_text()
    block = readme.split(">>> print(jaxinit.flax.explain(model, rules, x))")[1]
    block = block.split("\n", 1)[1].split("```")[0].rstrip("\n")
    assert block == printed
    # kaiming_normal(mode="fan_out") on a 3x3 conv with 8 outputs: std sqrt(2 / (8 * 9))
    assert jaxinit.flax.explain(Net(), rules, jnp.ones((1, 16, 16, 3))).row(
        "params/conv/kernel"
    ).distribution.std == pytest.approx((2 / 72) ** 0.5)
