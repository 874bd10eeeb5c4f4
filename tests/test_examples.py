"""The examples: a real ``--help`` that runs nothing, and a demo that fits the terminal.

``examples/port_resnext.py`` is what README.md's first command runs; its
output must fit 100 columns when it goes to a pipe or file (no terminal), and
the terminal's width otherwise.
"""

from __future__ import annotations

import ast
import concurrent.futures
import importlib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import jaxinit.port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py"))
HELP_SECONDS = 60  # imports (jax, flax, torch) on a loaded 2-core machine; a run takes longer


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return {**env, **extra}


def _help(name: str, cwd: Path) -> tuple[str, subprocess.CompletedProcess[str]]:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), "--help"],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=HELP_SECONDS,
    )
    return name, proc


def test_every_example_has_a_help_that_runs_nothing(tmp_path):
    """``--help`` exits 0 with argparse's help, whose epilog says what the script writes."""
    assert len(EXAMPLES) >= 4, EXAMPLES
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda name: _help(name, tmp_path), EXAMPLES))
    problems = []
    for name, proc in results:
        out = proc.stdout
        if proc.returncode != 0 or not out.startswith("usage: ") or "options:" not in out:
            problems.append(f"{name} --help: exit {proc.returncode}, printed {out[:300]!r}")
            continue
        # argparse exits right after the epilog: anything the script ran would follow it
        epilog = out.rstrip().split("\n\n")[-1]
        if "options:" in epilog or not re.search(r"\bwrites\b", epilog.lower()):
            problems.append(f"{name} --help: expected an epilog saying what it writes, got:\n{out}")
        if proc.stderr.strip():
            problems.append(f"{name} --help wrote to stderr:\n{proc.stderr[-1000:]}")
    assert not problems, "\n".join(problems)
    assert not list(tmp_path.iterdir()), f"--help wrote files: {list(tmp_path.iterdir())}"


def test_the_demo_fits_100_columns(tmp_path):
    """README.md's first command: every line within 100 columns when not on a terminal."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "port_resnext.py")],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    wide = [f"{len(line)}: {line}" for line in lines if len(line) > 100]
    assert not wide, "lines over 100 columns:\n" + "\n".join(wide)
    assert lines[-1] == "every layer starts as in torch", lines[-5:]
    assert sum(line.endswith("  ok") for line in lines) >= 20, proc.stdout  # the tables are there
    assert not list(tmp_path.iterdir()), "the demo wrote files without --plot"


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location(
        "port_resnext", ROOT / "examples" / "port_resnext.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses (Flax modules) look themselves up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


def _leaf(
    path: str, shape: tuple[int, ...], deterministic: bool = False
) -> jaxinit.port.LeafReport:
    values = np.zeros((2, *shape))
    return jaxinit.port.LeafReport(
        path=path,
        torch_name=path.replace("/", "."),
        shape=shape,
        deterministic=deterministic,
        torch_std=0.1,
        jax_std=0.1004,
        torch_max=0.17,
        jax_max=0.17,
        std_tol=0.02,
        detectable=0.04,
        max_range=None if deterministic else (0.999, 1.001),
        family=None if deterministic else "uniform",
        kurtosis=1.8,
        ks_pvalue=None if deterministic else 0.5,
        failures=[],
        torch_values=values,
        jax_values=values,
    )


def test_compact_table_fits_narrow_terminals(demo):
    rows = [
        _leaf("params/conv_1_3x3/kernel", (3, 3, 3, 64)),
        _leaf("params/stage_1/stage_1_bottleneck_0/shortcut/shortcut_conv/kernel", (1, 1, 64, 128)),
        _leaf("params/stage_1/stage_1_bottleneck_0/conv_reduce/kernel", (1, 1, 64, 32)),
        _leaf("params/bn_1/scale", (64,), deterministic=True),
    ]
    report = jaxinit.port.InitReport(rows, seeds=2, false_failure=1e-6)
    assert max(map(len, report.table().splitlines())) > 100  # the full table does not fit
    for width in (80, 100):
        table = demo.fitted(report, width, wide=False)
        assert max(map(len, table.splitlines())) <= width, table
        assert table.count("1.0040±0.020") == 3 and "bit-exact" in table, table
        assert table.count("kernel ") == 3, table  # every leaf, the long ones split
    # at 100 columns the long paths share their parent, printed once, with their full tail
    lines = demo.fitted(report, 100, wide=False).splitlines()
    assert lines.count("stage_1/stage_1_bottleneck_0/") == 1, lines
    assert any(line.startswith("  shortcut/shortcut_conv/kernel ") for line in lines), lines
    assert any(line.startswith("  conv_reduce/kernel ") for line in lines), lines
    assert demo.fitted(report, 300, wide=False) == report.table()
    assert demo.fitted(report, 80, wide=True) == report.table()
    assert demo.plot_path("out/hist.png", "a") == "out/hist.png"
    assert demo.plot_path("out/hist.png", "b") == "out/hist_b.png"


def test_the_benchmarks_import_modules_and_names_that_exist():
    """The benchmarks reach into ``jaxinit._src`` for timing a phase; a move must not break them.

    Every ``from jaxinit... import name`` in ``benchmarks/*.py`` (at any
    depth: most sit inside the function timing that phase) names a module and
    an attribute that exist.
    """
    missing = []
    for script in sorted((ROOT / "benchmarks").glob("*.py")):
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jaxinit"):
                try:
                    module = importlib.import_module(node.module)
                except ImportError as e:
                    missing.append(f"{script.name}:{node.lineno}: {node.module} ({e})")
                    continue
                missing += [
                    f"{script.name}:{node.lineno}: {node.module}.{alias.name}"
                    for alias in node.names
                    if not hasattr(module, alias.name)
                    and importlib.util.find_spec(f"{node.module}.{alias.name}") is None
                ]
    assert not missing, missing
