"""What :func:`jaxinit.port.compare_init` returns: one :class:`LeafReport` per leaf, in an :class:`InitReport`."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

__all__ = ["InitReport", "LeafReport"]


@dataclasses.dataclass
class LeafReport:
    """One leaf's comparison (values pooled over the seeds).

    Attributes:
      path: the JAX leaf's path.
      torch_name: the torch tensor(s) it comes from.
      shape: the leaf's shape.
      deterministic: torch draws it identically for every seed.
      torch_std, jax_std, torch_max, jax_max: pooled std and max|w|.
      std_tol: the half-width ``z·SE`` for ``jax_std/torch_std - 1`` (0: exact).
      detectable: the smallest relative std error caught with probability
        ``>= 1 - false_failure/2`` (``2 z SE``).
      max_range: the interval ``jax_max/torch_max`` must lie in, or ``None``
        (not checked).
      family: ``"uniform"``, ``"normal"`` (from the kurtosis) or ``None``.
      kurtosis: the pooled torch values' kurtosis.
      ks_pvalue: the two-sample KS p-value (``None`` for deterministic leaves).
      failures: what failed; empty if the leaf passed.
      torch_values, jax_values: the pooled values, float64, ``(seeds, *shape)``.
      fixed: ``(axis, index)`` of the slices of a random leaf that torch draws
        identically every seed (an Embedding's ``padding_idx`` row); the JAX
        init must hold the same values there.
    """

    path: str
    torch_name: str
    shape: tuple[int, ...]
    deterministic: bool
    torch_std: float
    jax_std: float
    torch_max: float
    jax_max: float
    std_tol: float
    detectable: float
    max_range: tuple[float, float] | None
    family: str | None
    kurtosis: float
    ks_pvalue: float | None
    failures: list[str]
    torch_values: np.ndarray = dataclasses.field(repr=False)
    jax_values: np.ndarray = dataclasses.field(repr=False)
    fixed: list[tuple[int, int]] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def std_ratio(self) -> float:
        if self.torch_std == 0:
            return 1.0 if self.jax_std == 0 else math.inf
        return self.jax_std / self.torch_std

    @property
    def max_ratio(self) -> float:
        if self.torch_max == 0:
            return 1.0 if self.jax_max == 0 else math.inf
        return self.jax_max / self.torch_max


class InitReport:
    """The per-leaf comparison of :func:`compare_init`.

    Attributes:
      rows: one :class:`LeafReport` per leaf, in torch's ``state_dict`` order.
      seeds: how many seeds were pooled.
      false_failure: the chance that one check fails a correct port.
      notes: layer hyperparameters that differ between the two models (they
        do not change the init, but the port would compute something else:
        :func:`jaxinit.port.from_torch` refuses them).
    """

    def __init__(
        self,
        rows: list[LeafReport],
        seeds: int,
        false_failure: float,
        notes: Sequence[str] = (),
    ):
        self.rows = rows
        self.seeds = seeds
        self.false_failure = false_failure
        self.notes = list(notes)

    @property
    def ok(self) -> bool:
        """Every leaf passed."""
        return all(r.ok for r in self.rows)

    @property
    def failures(self) -> list[str]:
        """``"path: what failed"`` for every failed check."""
        return [f"{r.path}: {f}" for r in self.rows for f in r.failures]

    def table(self, all_rows: bool = False) -> str:
        """The table; deterministic leaves that match torch get one summary line unless ``all_rows``."""
        header = [
            "leaf",
            "shape",
            "torch std",
            "jax std",
            "ratio",
            "tol",
            "torch max|w|",
            "jax max|w|",
            "ratio",
            "range",
            "KS p",
            "check",
        ]
        cells = []
        exact_ok = [r for r in self.rows if r.deterministic and r.ok]
        for r in self.rows:
            if r in exact_ok and not all_rows:
                continue
            if r.deterministic:
                tol = span = "exact"
                ks = "-"
            else:
                tol = f"±{r.std_tol:.3f}"
                span = f"{r.max_range[0]:.3f}-{r.max_range[1]:.3f}" if r.max_range else "-"
                ks = f"{r.ks_pvalue:.2g}"
            check = "FAIL" if r.failures else ("exact" if r.deterministic else "ok")
            cells.append(
                [
                    r.path,
                    "x".join(map(str, r.shape)) or "()",
                    f"{r.torch_std:.5f}",
                    f"{r.jax_std:.5f}",
                    f"{r.std_ratio:.4f}",
                    tol,
                    f"{r.torch_max:.5f}",
                    f"{r.jax_max:.5f}",
                    f"{r.max_ratio:.4f}",
                    span,
                    ks,
                    check,
                ]
            )
        widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]
        left = {0, 1, len(header) - 1}

        def fmt(c: Sequence[str]) -> str:
            return "  ".join(
                x.ljust(w) if i in left else x.rjust(w) for i, (x, w) in enumerate(zip(c, widths))
            ).rstrip()

        lines = [fmt(header), "  ".join("-" * w for w in widths), *map(fmt, cells)]
        if exact_ok and not all_rows:
            lines.append(
                f"{len(exact_ok)} deterministic leaves (torch draws them identically every seed): "
                "all bit-exact with torch"
            )
        lines += [f"note: {n}" for n in self.notes]
        n_random = sum(not r.deterministic for r in self.rows)
        lines.append(
            f"{len(self.rows)} leaves ({n_random} random), {self.seeds} seeds pooled; each check "
            f"fails a correct port with probability {self.false_failure:g}; "
            + ("all passed" if self.ok else f"{len(self.failures)} FAILED")
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"InitReport({len(self.rows)} leaves, ok={self.ok})"

    def plot(self, path: str, *, max_panels: int = 48) -> None:
        """Overlaid torch/JAX histograms of the random leaves, saved to ``path``.

        Raises:
          ImportError: if matplotlib is not installed.
        """
        try:
            import matplotlib
        except ImportError:
            raise ImportError("InitReport.plot needs matplotlib: pip install matplotlib") from None
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        panels = [r for r in self.rows if not r.deterministic][:max_panels]
        cols = 4
        nrows = max(1, math.ceil(len(panels) / cols))
        fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 2.6 * nrows), squeeze=False)
        for ax, r in zip(axes.flat, panels):
            lo = min(r.torch_values.min(), r.jax_values.min())
            hi = max(r.torch_values.max(), r.jax_values.max())
            bins = np.linspace(lo, hi, int(np.clip(np.sqrt(r.torch_values.size), 10, 60)))
            ax.hist(r.torch_values.ravel(), bins=bins, density=True, alpha=0.5, label="torch")
            ax.hist(
                r.jax_values.ravel(),
                bins=bins,
                density=True,
                histtype="step",
                linewidth=1.5,
                label="jax",
            )
            ax.set_title(("FAIL " if r.failures else "") + r.path, fontsize=7)
            ax.tick_params(labelsize=6)
        for ax in list(axes.flat)[len(panels) :]:
            ax.axis("off")
        if panels:
            axes.flat[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
