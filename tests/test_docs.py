"""The documentation site, the quickstart, and the CI contract.

- The site builds with ``mkdocs build --strict`` (any warning fails). No page
  shows unrendered markup (reStructuredText tables, Sphinx roles and
  directives, raw LaTeX delimiters) outside code, and no page loads anything
  from another host (KaTeX ships with the site).
- ``docs/api/*.md`` list every public name exactly once, schemes first.
- In headless Chromium, with every host but the local server unreachable,
  KaTeX typesets every formula, and the API reference shows every name in
  ``__all__`` of every public module as a rendered API object (a
  ``doc-heading`` element whose id is the object's path). Public modules are
  discovered: every non-underscore module of the package. A module without a
  reference page fails with a message that says what to add.
- The ```` ```python ```` blocks of the guide pages run (```` ```py ```` is for
  fragments that are shown, not run).
- ``examples/quickstart.py`` runs.
- ``.ci/run`` runs exactly README.md's second command, after its own venv set-up.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import difflib
import doctest
import functools
import html.parser
import http.server
import importlib
import importlib.util
import io
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


def in_ci() -> bool:
    """CI sets ``CI=true`` (GitHub Actions, and .ci/run exports it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def find_browser() -> str:
    """Chromium or Chrome; without one, the browser tests skip, or fail under CI."""
    for name in (os.environ.get("CHROMIUM"), *BROWSERS):
        if name and (path := shutil.which(name)):
            return path
    looked = "looked for $CHROMIUM, " + ", ".join(BROWSERS)
    if in_ci():
        pytest.fail(
            f"no Chromium found ({looked}): under CI=true the browser tests must run; "
            ".ci/run installs Debian's chromium when none is found",
            pytrace=False,
        )
    pytest.skip(
        f"no Chromium found ({looked}): install one (e.g. apt-get install chromium) or set "
        "CHROMIUM=/path/to/chrome to run the browser tests"
    )


def test_no_browser_skips_outside_ci_and_fails_in_ci(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no browser on it
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium found"):
        find_browser()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="under CI=true the browser tests must run"):
        find_browser()
    fake = tmp_path / "chromium"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert find_browser() == str(fake)


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
            # Only the local server: anything the site loaded from elsewhere (a CDN)
            # fails at once, as offline, instead of timing out.
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


# What a reader sees of a page, parsed from its HTML (as built, or as the browser left it).

_VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "wbr",
}
_CODE = {"pre", "code", "kbd", "samp", "script", "style", "textarea", "svg", "annotation"}
# Elements through which a page loads something (a link's rel says whether it does).
_LOADS = {"script": "src", "img": "src", "source": "src", "iframe": "src", "embed": "src"}
_LOADING_RELS = {"stylesheet", "preload", "modulepreload", "icon", "manifest", "prefetch"}
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)  # a scheme, or //host


class _Page(html.parser.HTMLParser):
    """A page's prose (text outside code and formulas), formulas, API headings and assets."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, str | None]] = []  # (tag, "code" | "math" | None)
        self.prose: list[str] = []
        self.formulas: list[list] = []  # [text outside KaTeX's TeX annotation, typeset?]
        self.katex_errors = 0
        self.headings: list[str] = []  # ids of mkdocstrings' API objects, in page order
        self.assets: list[str] = []  # URLs the page loads (scripts, stylesheets, images)

    def _inside(self, kind: str) -> bool:
        return any(k == kind for _, k in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if a.get("id") and "doc-heading" in classes:
            self.headings.append(a["id"])
        if "katex-error" in classes:
            self.katex_errors += 1
        if "katex" in classes and self.formulas and self._inside("math"):
            self.formulas[-1][1] = True
        if tag in _LOADS and a.get(_LOADS[tag]):
            self.assets.append(a[_LOADS[tag]])
        if tag == "link" and _LOADING_RELS & set(a.get("rel", "").split()):
            self.assets.append(a.get("href", ""))
        if tag in _VOID:
            return
        kind = "code" if tag in _CODE else "math" if "arithmatex" in classes else None
        if kind == "math" and not self._inside("code"):
            self.formulas.append(["", False])
        self.stack.append((tag, kind))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        if self._inside("code"):
            return
        if self._inside("math"):
            self.formulas[-1][0] += data
        else:
            self.prose.append(data)


def parse_page(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


# Markup that reached a page unrendered: reStructuredText and Sphinx in a docstring,
# or maths that arithmatex and KaTeX did not typeset.
_UNRENDERED = {
    "a reStructuredText table rule (====)": re.compile(r"={4,}"),
    "a Sphinx role": re.compile(
        r":(?:py:)?(?:func|class|meth|mod|attr|data|obj|exc|const|math|ref):`"
    ),
    "a reStructuredText directive": re.compile(r"(?m)^\s*\.\. [a-z-]+::"),
    "a raw LaTeX delimiter": re.compile(r"\\[()\[\]]|\$\$"),
    "raw $...$ maths": re.compile(r"\$[^$\n]*\\[A-Za-z]+[^$\n]*\$"),
}


def unrendered_markup(page: _Page) -> list[str]:
    """``"what: 'context'"`` for each piece of unrendered markup in the page's prose."""
    prose = "".join(page.prose)
    found = []
    for what, pattern in _UNRENDERED.items():
        for m in pattern.finditer(prose):
            context = " ".join(prose[max(0, m.start() - 40) : m.end() + 40].split())
            found.append(f"{what}: {context!r}")
    return found


def test_unrendered_markup_is_detected():
    """The detector itself: each kind of leftover markup is found; code and formulas are not."""
    page = parse_page(
        "<p>family ==== ====</p><p>see :class:`Layout`</p><p>\n.. math::</p>"
        r"<p>draws \(\mathcal{N}\)</p><p>and $\sigma^2$</p>"
        r'<pre><code>==== :func:`x` \(b\)</code></pre><span class="arithmatex">\(a\)</span>'
    )
    found = unrendered_markup(page)
    for what in _UNRENDERED:
        assert any(f.startswith(what) for f in found), (what, found)
    assert not any("(b" in f or "(a" in f for f in found), found
    assert page.formulas == [["\\(a\\)", False]]


@pytest.fixture(scope="session")
def built(site: Path) -> dict[str, _Page]:
    """Every page of the site as built (before any script runs), by its path in the site."""
    return {
        p.relative_to(site).as_posix(): parse_page(p.read_text(encoding="utf-8"))
        for p in sorted(site.rglob("*.html"))
    }


def test_no_page_shows_unrendered_markup(built):
    problems = [
        f"{name}: {found}" for name, page in built.items() for found in unrendered_markup(page)
    ]
    assert not problems, "unrendered markup in the built site:\n" + "\n".join(problems)


def test_the_site_loads_nothing_from_other_hosts(site, built):
    """Offline, every page works: scripts, styles, fonts and images are in the site itself."""
    problems = [
        f"{name} loads {url}"
        for name, page in built.items()
        for url in page.assets
        if _REMOTE.match(url) and not url.startswith("data:")
    ]
    for css in sorted(site.rglob("*.css")):
        for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", css.read_text(encoding="utf-8")):
            if url.startswith("data:"):
                continue
            target = css.parent / url.split("#")[0].split("?")[0]
            if _REMOTE.match(url) or not target.is_file():
                problems.append(f"{css.relative_to(site)}: url({url}) is not a file of the site")
    katex = site / "assets" / "katex"
    for name in ("katex.min.js", "katex.min.css", "contrib/auto-render.min.js", "LICENSE"):
        if not (katex / name).is_file():
            problems.append(f"KaTeX's {name} is not shipped under {katex} (docs/vendor_katex.py)")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="session")
def rendered(
    built: dict[str, _Page], served: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, _Page]:
    """The API pages and every page with a formula, as headless Chromium leaves them."""
    browser = find_browser()
    pages = sorted(name for name, page in built.items() if name.startswith("api/") or page.formulas)
    profiles = tmp_path_factory.mktemp("chromium")
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        doms = list(
            pool.map(
                lambda i_page: dump_dom(browser, served + i_page[1], profiles / str(i_page[0])),
                enumerate(pages),
            )
        )
    return {page: parse_page(dom) for page, dom in zip(pages, doms)}


def test_formulas_render_offline(rendered):
    """KaTeX, shipped with the site, typesets every formula with no network."""
    with_math = {name: page for name, page in rendered.items() if page.formulas}
    assert "api/jaxinit/index.html" in with_math, (
        "expected formulas on the jaxinit API page (its docstrings have :math:), got them on "
        f"{sorted(with_math)}"
    )
    problems = []
    for name, page in with_math.items():
        raw = [text for text, typeset in page.formulas if not typeset]
        if raw:
            problems.append(
                f"{name}: {len(raw)} of {len(page.formulas)} formulas not typeset by KaTeX, "
                f"e.g. {raw[0]!r}"
            )
        if page.katex_errors:
            problems.append(f"{name}: {page.katex_errors} KaTeX errors (.katex-error)")
        left = [text for text, _ in page.formulas if re.search(r"\\[()\[\]]", text)]
        if left:
            problems.append(f"{name}: TeX delimiters left in the page's text, e.g. {left[0]!r}")
        problems += [f"{name} (in the browser): {f}" for f in unrendered_markup(page)]
    assert not problems, "\n".join(problems)


def test_api_reference_shows_every_public_name(rendered):
    headings = {name: set(p.headings) for name, p in rendered.items() if name.startswith("api/")}
    assert headings, "no API reference pages under site/api"
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


_API_ENTRY = re.compile(r"^:::\s+(\S+)\s*$", re.MULTILINE)


def test_api_pages_list_every_public_name_once():
    """docs/api/*.md name their objects one by one, grouped: none missing, none twice."""
    listed = collections.Counter(
        target
        for md in sorted((ROOT / "docs" / "api").glob("*.md"))
        for target in _API_ENTRY.findall(md.read_text(encoding="utf-8"))
    )
    public = set()
    for module in public_modules():
        public |= {module, *(f"{module}.{n}" for n in importlib.import_module(module).__all__)}
    problems = [f"{n}: listed {c} times" for n, c in sorted(listed.items()) if c > 1]
    problems += [
        f"{n}: public, but no '::: {n}' in docs/api/*.md (add it under its group)"
        for n in sorted(public - set(listed))
    ]
    problems += [
        f"{n}: listed, but not a public module nor in its module's __all__"
        for n in sorted(set(listed) - public)
    ]
    assert not problems, "docs/api/*.md:\n" + "\n".join(problems)


def test_api_pages_lead_with_the_schemes(built):
    """Schemes first, then the tree tools, then the types (not __all__'s alphabetical order)."""
    pages = built
    groups = [
        ["uniform", "kaiming_normal", "kaiming_normal_", "sparse_", "torch_linear_weight"],
        ["reinit", "Rule", "explain"],
        ["Initializer", "Distribution", "Layout", "Contextual"],
    ]
    order = [
        h.removeprefix("jaxinit.")
        for h in pages["api/jaxinit/index.html"].headings
        if h.count(".") == 1
    ]
    assert order[0] == "uniform", order[:5]
    positions = [[order.index(name) for name in group] for group in groups]
    for before, after in zip(positions, positions[1:]):
        assert max(before) < min(after), (groups, positions)
    flax = [
        h.removeprefix("jaxinit.flax.")
        for h in pages["api/flax/index.html"].headings
        if h.count(".") == 2
    ]
    assert flax[0] == "uniform" and flax.index("kaiming_normal") < flax.index("init"), flax


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


def test_rst_simple_tables_become_markdown_tables(ext):
    refs = ext._Refs({"jaxinit": ["Layout"]})
    text = (
        "Gains:\n\n"
        "    ============ =====================\n"
        "    name         gain\n"
        "    ============ =====================\n"
        "    linear,      :math:`1`\n"
        "    conv*d\n"
        "    relu         :math:`\\sqrt{2}`, see\n"
        "                 :class:`Layout` | ``a*b``\n"
        "    ============ =====================\n\n"
        "After."
    )
    assert ext.sphinx_to_markdown(text, refs).splitlines() == [
        "Gains:",
        "",
        "",
        "    | name | gain |",
        "    |---|---|",
        "    | linear, conv\\*d | $1$ |",
        "    | relu | $\\sqrt{2}$, see [`Layout`][jaxinit.Layout] \\| ``a*b`` |",
        "",
        "",
        "After.",
    ]
    assert ext.sphinx_to_markdown("a\n\n==== ====\nnot a table\n\nb", refs).count("|") == 0


def test_rule_sets_become_tables(ext):
    import flax.linen as nn

    rule = collections.namedtuple("rule", "selector init optional")
    rules = [
        rule(((nn.Dense, nn.Conv), "kernel"), jaxinit.zeros(), True),
        rule(((nn.Dense, nn.Conv), "bias"), jaxinit.zeros(), True),
        rule(((nn.Dense, nn.Conv), "scale"), jaxinit.ones(), False),
        rule("*/head/kernel", jaxinit.normal(std=0.5), True),
    ]
    assert ext.rule_table(rules).splitlines() == [
        "| rule | layers | parameter | initializer | optional |",
        "|---|---|---|---|---|",
        "| 0–1 | `nn.Dense`, `nn.Conv` | `kernel`, `bias` | `jaxinit.zeros()` | yes |",
        "| 2 |  | `scale` | `jaxinit.ones()` | no |",
        "| 3 | any | `*/head/kernel` | `jaxinit.normal(std=0.5)` | yes |",
    ]


def test_torch_defaults_table_names_layer_classes(ext):
    """The real rule set: its kind selectors are shown as the classes of each framework."""
    table = ext.rule_table(jaxinit.TORCH_DEFAULTS)
    assert "jaxinit.Layers(" not in table and "where `" not in table, table
    for name in ("`nn.Dense`", "`nnx.Linear`", "`eqx.nn.Linear`", "`nn.LayerNorm`", "`nnx.Embed`"):
        assert name in table, (name, table)
    assert len(table.splitlines()) >= 8, table


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

_FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
GUIDE_PAGES = sorted(p.name for p in (ROOT / "docs").glob("*.md"))


def run_markdown_code(path: Path) -> int:
    """Runs a Markdown file's code, in order, in one namespace; returns how many blocks ran.

    ```` ```python ```` blocks run (```` ```py ```` is for fragments that are shown, not
    run; a ``--8<--`` snippet is run where it comes from). A ```` ```text title="Output" ````
    block right after a python block is what that block prints, exactly. A
    ```` ```pycon ```` block is a doctest: each ``>>>`` line's output must be what is shown.
    """
    text = path.read_text(encoding="utf-8")
    where = path.relative_to(ROOT).as_posix()
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem}"}
    blocks = [
        (m.group(1), m.group(2), m.group(3), text.count("\n", 0, m.start()) + 2)
        for m in _FENCE.finditer(text)
    ]
    ran = 0
    for i, (lang, _info, body, line) in enumerate(blocks):
        if lang == "python" and not body.lstrip().startswith("--8<--"):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(body, f"{where}, line {line}", "exec"), namespace)
            ran += 1
            following = blocks[i + 1] if i + 1 < len(blocks) else None
            if following and following[0] == "text" and 'title="Output"' in following[1]:
                shown, printed = following[2].rstrip("\n"), out.getvalue().rstrip("\n")
                assert printed == shown, (
                    f"{where}, line {following[3]}: the Output block is not what the python "
                    f"block above it prints:\n"
                    + "\n".join(
                        difflib.unified_diff(
                            shown.splitlines(),
                            printed.splitlines(),
                            "shown",
                            "printed",
                            lineterm="",
                        )
                    )
                )
        elif lang == "pycon":
            test = doctest.DocTestParser().get_doctest(body, namespace, where, where, line - 1)
            report = io.StringIO()
            runner = doctest.DocTestRunner(optionflags=doctest.REPORT_UDIFF)
            runner.run(test, out=report.write, clear_globs=False)
            assert not runner.failures, (
                f"{where}, line {line}: the pycon block's output is not what it prints:\n{report.getvalue()}"
            )
            ran += 1
    return ran


@pytest.mark.parametrize("page", GUIDE_PAGES)
def test_guide_code_runs(page):
    run_markdown_code(ROOT / "docs" / page)


def test_readme_code_runs_and_prints_what_it_shows():
    """Every python block of README.md runs as written; shown output is what it prints."""
    ran = run_markdown_code(ROOT / "README.md")
    assert ran >= 6, f"expected README.md's python and pycon blocks to run, ran {ran}"


def test_markdown_output_blocks_are_checked(tmp_path, monkeypatch):
    """The runner itself: a wrong Output block and a wrong pycon output both fail."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    page = tmp_path / "page.md"
    page.write_text('```python\nprint(1 + 1)\n```\n\n```text title="Output"\n2\n```\n')
    assert run_markdown_code(page) == 1
    page.write_text('```python\nprint(1 + 1)\n```\n\n```text title="Output"\n3\n```\n')
    with pytest.raises(AssertionError, match="is not what the python block above it prints"):
        run_markdown_code(page)
    page.write_text("```pycon\n>>> x = 2\n>>> x + 1\n4\n```\n")
    with pytest.raises(AssertionError, match="pycon block's output is not what it prints"):
        run_markdown_code(page)


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
    # docs/index.md shows the output: it must be what the quickstart prints
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    shown = re.search(
        r"`python examples/quickstart.py` takes.*?```text\n(.*?)```", index, re.DOTALL
    )
    assert shown, "docs/index.md: expected the quickstart's output in a ```text block"
    assert shown.group(1).splitlines() == lines, (
        "docs/index.md shows another output than examples/quickstart.py prints:\n"
        + "\n".join(difflib.unified_diff(shown.group(1).splitlines(), lines, lineterm=""))
    )
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
    # The user's command runs on any platform: no package manager, no root.
    for word in ("apt-get", "sudo", "brew", "chromium"):
        assert word not in commands[1], f"README.md's test command uses {word!r}: {commands[1]}"
    # CI installs the browser (only when missing) before the command, and runs as CI.
    install = next((i for i, line in enumerate(ci) if "apt-get install -y chromium" in line), None)
    assert install is not None and install < len(ci) - 1, ci
    assert any(line.startswith("if ! have_browser") for line in ci[:install]), ci
    assert 'export CI="${CI:-true}"' in ci, ci


def test_ci_workflow_runs_ci_run():
    workflow = (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    assert re.search(r"^\s*run: bash \.ci/run\s*$", workflow, re.MULTILINE)
