"""MkDocs hook: draws the benchmark figures from the committed results, as SVG.

``benchmarks/results_cpu.json`` (``benchmarks/run.py --json``) and
``benchmarks/results_whole_model.json`` (``benchmarks/whole_model.py --json``)
become ``benchmarks/ratios.svg`` and ``benchmarks/whole_model.svg`` in the site,
so the figures always show the numbers the tables show. Plain SVG, no
plotting library.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

_ROOT = Path(__file__).resolve().parent.parent
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="12"'
_COLORS = {"raw": "#5c6bc0", "jaxnn": "#26a69a", "torch": "#ef6c00"}
_LABELS = {"raw": "raw jax.random", "jaxnn": "jax.nn.initializers", "torch": "torch.nn.init"}


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" {_FONT}>',
            f"<title>{escape(title)}</title>",
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
            *body,
            "</svg>",
        ]
    )


def ratios_svg(results: dict[str, Any]) -> str:
    """jaxinit's time over each contender's, per case (below 1: jaxinit is faster)."""
    rows = results["rows"]
    left, bar, gap, top = 220, 7, 10, 48
    scale = 160  # pixels per 1.0 of ratio
    width = left + int(2.5 * scale) + 40
    height = top + len(rows) * (3 * bar + gap) + 30
    x1 = left + scale
    body = [
        f'<text x="{left}" y="18" font-weight="bold">jaxinit time / contender time '
        "(left of 1: jaxinit is faster)</text>",
    ]
    for i, key in enumerate(_COLORS):
        x = left + i * 150
        body.append(f'<rect x="{x}" y="28" width="10" height="10" fill="{_COLORS[key]}"/>')
        body.append(f'<text x="{x + 14}" y="37">{_LABELS[key]}</text>')
    for tick in (0.5, 1.0, 1.5, 2.0, 2.5):
        x = left + tick * scale
        dash = "" if tick == 1.0 else ' stroke-dasharray="2,3"'
        color = "#444" if tick == 1.0 else "#bbb"
        body.append(
            f'<line x1="{x}" y1="{top - 4}" x2="{x}" y2="{height - 24}" stroke="{color}"{dash}/>'
        )
        body.append(f'<text x="{x}" y="{height - 10}" text-anchor="middle">{tick:g}x</text>')
    for r, row in enumerate(rows):
        y = top + r * (3 * bar + gap)
        body.append(
            f'<text x="{left - 8}" y="{y + 2 * bar}" text-anchor="end">{escape(row["case"])}</text>'
        )
        for j, key in enumerate(_COLORS):
            other = row.get(f"{key}_s")
            if not other or not row.get("jaxinit_s"):
                continue  # no equivalent, or it raised
            ratio = row["jaxinit_s"] / other
            w = min(ratio, 2.5) * scale
            body.append(
                f'<rect x="{left}" y="{y + j * bar}" width="{w:.1f}" height="{bar - 1}" '
                f'fill="{_COLORS[key]}"><title>{escape(row["case"])} vs {_LABELS[key]}: '
                f"{ratio:.2f}x</title></rect>"
            )
    body.append(f'<line x1="{x1}" y1="{top - 4}" x2="{x1}" y2="{height - 24}" stroke="#444"/>')
    return _svg(width, height, body, "jaxinit time relative to jax.random, jax.nn and torch")


def whole_model_svg(results: dict[str, Any]) -> str:
    """Whole-model init seconds, cold processes, compile time shaded."""
    cases = [
        ("torch, default init", results["torch"]["seconds"], 0.0),
        ("jaxinit.flax.init, cold", results["jaxinit"]["seconds"], results["jaxinit"].get("compile_seconds", 0.0)),
        ("jaxinit.flax.init, warm", results["jaxinit"]["warm_seconds"], 0.0),
        ("jax.jit(model.init), cold", results["flax-jit"]["seconds"], results["flax-jit"].get("compile_seconds", 0.0)),
        ("model.init, eager, cold", results["flax-eager"]["seconds"], 0.0),
        ("raw jax.random, cold", results["raw"]["seconds"], 0.0),
        ("raw jax.random, warm", results["raw"]["warm_seconds"], 0.0),
    ]  # fmt: skip
    left, bar, top = 200, 20, 40
    most = max(s for _, s, _ in cases)
    scale = 420 / most
    width, height = left + 420 + 70, top + len(cases) * (bar + 8) + 10
    body = [
        f'<text x="{left}" y="18" font-weight="bold">GPT-2-small-shaped model, 134M parameters: '
        "seconds to initialize</text>",
        f'<rect x="{left}" y="25" width="10" height="10" fill="#90a4ae"/>'
        f'<text x="{left + 14}" y="34">of which XLA compile</text>',
    ]
    for i, (label, seconds, compile_s) in enumerate(cases):
        y = top + i * (bar + 8)
        color = "#ef6c00" if label.startswith("torch") else "#3f51b5"
        body += [
            f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">{escape(label)}</text>',
            f'<rect x="{left}" y="{y}" width="{seconds * scale:.1f}" height="{bar}" fill="{color}"/>',
            f'<text x="{left + seconds * scale + 6:.1f}" y="{y + 14}">{seconds:.2f} s</text>',
        ]
        if compile_s:
            body.append(
                f'<rect x="{left}" y="{y}" width="{compile_s * scale:.1f}" height="{bar}" '
                f'fill="#90a4ae"/>'
            )
    return _svg(width, height, body, "Whole-model initialization time")


def on_files(files: Files, config: Any) -> Files:
    bench = _ROOT / "benchmarks"
    per_scheme = json.loads((bench / "results_cpu.json").read_text())
    whole = json.loads((bench / "results_whole_model.json").read_text())
    for name, content in (
        ("benchmarks/ratios.svg", ratios_svg(per_scheme)),
        ("benchmarks/whole_model.svg", whole_model_svg(whole)),
    ):
        files.append(File.generated(config, name, content=content))
    return files
