"""Every ``torch.nn.init`` scheme, jaxinit against torch, on the same weight.

For each of the 14 schemes this draws one weight with ``jaxinit.X(...)`` and
one with ``torch.nn.init.X_(...)`` (same hyperparameters, same torch-shaped
weight) and prints their std, min and max side by side. A second block draws
the layout-aware schemes in the flax layout (``jaxinit.X(..., layout="flax")``
on a ``(3, 3, 32, 64)`` kernel) against torch on the equivalent
``(64, 32, 3, 3)`` weight.

The script is a real check and exits 1 if any row fails:

* random schemes: the std ratio jaxinit/torch must be within a tolerance
  derived from the sample size. The sample std of ``n`` iid values has
  relative standard error ``sqrt((kurtosis - 1) / (4 n))``; the kurtosis is
  estimated from torch's sample (so it adapts to uniform, normal, truncated
  and sparse alike). The tolerance is ``Z`` standard errors of the ratio of
  two independent estimates, with ``Z`` set so each row fails by chance with
  probability about 1e-6 (seeds are fixed, so a run is reproducible anyway);
* bounded schemes: every jaxinit value lies in the scheme's support;
* structured schemes: ``orthogonal`` has orthonormal rows/columns along
  torch's axes and ``sparse`` exactly ``ceil(sparsity * out)`` zeros per
  input unit, for both libraries;
* deterministic schemes (constant, ones, zeros, eye, dirac): bit for bit
  equal to torch, the flax rows after moving torch's weight to the flax
  layout.

Run: ``python examples/compare_with_torch.py`` (a few seconds on a CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from collections.abc import Callable

import jax
import numpy as np
import torch

import jaxinit

FALSE_FAILURE = 1e-6  # per row: chance that a correct implementation fails the std check
Z = statistics.NormalDist().inv_cdf(1 - FALSE_FAILURE / 2)  # two-sided, about 4.9

# torch (out, in, kh, kw) -> flax (kh, kw, in, out), and 2-D (out, in) -> (in, out).
TORCH_TO_FLAX = {4: (2, 3, 1, 0), 2: (1, 0)}


@dataclasses.dataclass(frozen=True)
class Case:
    """One row: a jaxinit initializer and the torch call it must match."""

    label: str
    jax_init: jaxinit.Initializer
    torch_fn: Callable[[torch.Tensor], object]
    torch_shape: tuple[int, ...]
    layout: str = "torch"
    exact: bool = False  # deterministic: compare bit for bit
    support: tuple[float, float] | None = None  # closed interval every value must lie in
    structure: Callable[[np.ndarray], str | None] | None = None  # torch-ordered check

    @property
    def jax_shape(self) -> tuple[int, ...]:
        if self.layout == "torch":
            return self.torch_shape
        return tuple(self.torch_shape[a] for a in TORCH_TO_FLAX[len(self.torch_shape)])


def to_torch_order(x: np.ndarray, layout: str) -> np.ndarray:
    """A jaxinit array moved to torch's (out, in, *k) order."""
    if layout == "torch":
        return x
    return np.transpose(x, np.argsort(TORCH_TO_FLAX[x.ndim]))


def orthonormal(gain: float) -> Callable[[np.ndarray], str | None]:
    """Checks torch's orthogonal_ property on a torch-ordered weight."""

    def check(w: np.ndarray) -> str | None:
        flat = w.reshape(w.shape[0], -1) / gain
        small = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
        err = float(np.abs(small - np.eye(small.shape[0])).max())
        return None if err < 1e-4 else f"not orthonormal (max |Q^T Q - I| = {err:.2e})"

    return check


def zeros_per_column(sparsity: float) -> Callable[[np.ndarray], str | None]:
    """Checks torch's sparse_ property: ceil(sparsity * out) zeros per input unit."""

    def check(w: np.ndarray) -> str | None:
        want = math.ceil(sparsity * w.shape[0])
        got = (w == 0).sum(axis=0)
        return (
            None
            if (got == want).all()
            else f"zeros per column {sorted(set(got.tolist()))} != {want}"
        )

    return check


def cases() -> list[Case]:
    init = torch.nn.init
    mat, conv = (256, 128), (64, 32, 3, 3)
    tanh = jaxinit.calculate_gain("tanh")
    kaiming_u_bound = math.sqrt(2.0) * math.sqrt(3.0 / 128)  # relu gain * sqrt(3 / fan_in)
    xavier_u_bound = tanh * math.sqrt(6.0 / (128 + 256))
    conv_xavier_bound = math.sqrt(6.0 / (32 * 9 + 64 * 9))
    conv_kaiming_bound = math.sqrt(2.0) * math.sqrt(3.0 / (32 * 9))
    rows = [
        Case(
            "uniform(-0.5, 2.0)",
            jaxinit.uniform(-0.5, 2.0),
            lambda w: init.uniform_(w, -0.5, 2.0),
            mat,
            support=(-0.5, 2.0),
        ),
        Case(
            "normal(0.5, 2.0)", jaxinit.normal(0.5, 2.0), lambda w: init.normal_(w, 0.5, 2.0), mat
        ),
        Case(
            "trunc_normal(0, 1, -1, 2)",
            jaxinit.trunc_normal(0.0, 1.0, -1.0, 2.0),
            lambda w: init.trunc_normal_(w, 0.0, 1.0, -1.0, 2.0),
            mat,
            support=(-1.0, 2.0),
        ),
        Case(
            "constant(0.3)",
            jaxinit.constant(0.3),
            lambda w: init.constant_(w, 0.3),
            mat,
            exact=True,
        ),
        Case("ones()", jaxinit.ones(), init.ones_, mat, exact=True),
        Case("zeros()", jaxinit.zeros(), init.zeros_, mat, exact=True),
        Case("eye()", jaxinit.eye(), init.eye_, mat, exact=True),
        Case(
            "dirac(groups=2)",
            jaxinit.dirac(groups=2),
            lambda w: init.dirac_(w, 2),
            conv,
            exact=True,
        ),
        Case(
            "xavier_uniform(gain=5/3)",
            jaxinit.xavier_uniform(tanh),
            lambda w: init.xavier_uniform_(w, tanh),
            mat,
            support=(-xavier_u_bound, xavier_u_bound),
        ),
        Case("xavier_normal()", jaxinit.xavier_normal(), init.xavier_normal_, mat),
        Case(
            "kaiming_uniform(relu)",
            jaxinit.kaiming_uniform(nonlinearity="relu"),
            lambda w: init.kaiming_uniform_(w, nonlinearity="relu"),
            mat,
            support=(-kaiming_u_bound, kaiming_u_bound),
        ),
        Case(
            "kaiming_normal(fan_out, relu)",
            jaxinit.kaiming_normal(mode="fan_out", nonlinearity="relu"),
            lambda w: init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"),
            mat,
        ),
        Case(
            "orthogonal(gain=2)",
            jaxinit.orthogonal(2.0),
            lambda w: init.orthogonal_(w, 2.0),
            mat,
            structure=orthonormal(2.0),
        ),
        Case(
            "sparse(0.1, std=0.01)",
            jaxinit.sparse(0.1, std=0.01),
            lambda w: init.sparse_(w, 0.1, 0.01),
            mat,
            structure=zeros_per_column(0.1),
        ),
        # The flax layout: the same distribution on the (3, 3, in, out) kernel.
        Case(
            "xavier_uniform()",
            jaxinit.xavier_uniform(layout="flax"),
            init.xavier_uniform_,
            conv,
            layout="flax",
            support=(-conv_xavier_bound, conv_xavier_bound),
        ),
        Case(
            "xavier_normal()",
            jaxinit.xavier_normal(layout="flax"),
            init.xavier_normal_,
            conv,
            layout="flax",
        ),
        Case(
            "kaiming_uniform()",
            jaxinit.kaiming_uniform(layout="flax"),
            init.kaiming_uniform_,
            conv,
            layout="flax",
            support=(-conv_kaiming_bound, conv_kaiming_bound),
        ),
        Case(
            "kaiming_normal(fan_out)",
            jaxinit.kaiming_normal(mode="fan_out", layout="flax"),
            lambda w: init.kaiming_normal_(w, mode="fan_out"),
            conv,
            layout="flax",
        ),
        Case(
            "orthogonal()",
            jaxinit.orthogonal(layout="flax"),
            init.orthogonal_,
            conv,
            layout="flax",
            structure=orthonormal(1.0),
        ),
        Case(
            "sparse(0.1)",
            jaxinit.sparse(0.1, layout="flax"),
            lambda w: init.sparse_(w, 0.1),
            mat,
            layout="flax",
            structure=zeros_per_column(0.1),
        ),
        Case("eye()", jaxinit.eye(layout="flax"), init.eye_, mat, layout="flax", exact=True),
        Case("dirac()", jaxinit.dirac(layout="flax"), init.dirac_, conv, layout="flax", exact=True),
    ]
    return rows


def std_tolerance(reference: np.ndarray, n_jax: int) -> float:
    """``Z`` standard errors of std(jax)/std(torch), from n and torch's sample kurtosis."""
    x = reference.ravel() - reference.mean()
    var = float(np.mean(x**2))
    kurtosis = float(np.mean(x**4)) / var**2
    rel_var = (kurtosis - 1.0) / 4.0
    return Z * math.sqrt(rel_var / n_jax + rel_var / reference.size)


def run_case(i: int, case: Case) -> tuple[list[str], list[str]]:
    """Draws both, returns (table cells, failure messages)."""
    torch.manual_seed(i)
    ref = torch.empty(case.torch_shape, dtype=torch.float32)
    with torch.no_grad():
        case.torch_fn(ref)
    t = ref.numpy().astype(np.float64)
    j_raw = np.asarray(case.jax_init(jax.random.key(i), case.jax_shape), dtype=np.float64)
    j = to_torch_order(j_raw, case.layout)
    failures = []
    if case.exact:
        ok = np.array_equal(j, t)
        ratio = "1" if t.std() == 0 else f"{j.std() / t.std():.4f}"
        tol = "exact"
        if not ok:
            failures.append("not bit-exact with torch")
    else:
        r = j.std() / t.std()
        tol_v = std_tolerance(t, j.size)
        ratio, tol = f"{r:.4f}", f"±{tol_v:.4f}"
        if not abs(r - 1.0) <= tol_v:
            failures.append(f"std ratio {r:.4f} outside 1 ± {tol_v:.4f}")
    if case.support is not None:
        lo, hi = case.support
        if j.min() < lo or j.max() > hi:
            failures.append(f"values outside [{lo:.4g}, {hi:.4g}]")
    if case.structure is not None:
        for who, arr in (("jaxinit", j), ("torch", t)):
            msg = case.structure(arr)
            if msg:
                failures.append(f"{who}: {msg}")
    status = "ok" if not failures else "FAIL"
    if case.exact and not failures:
        status = "bit-exact"
    shape = "x".join(map(str, case.jax_shape))
    cells = [
        case.label,
        case.layout,
        shape,
        f"{j.std():.5f}",
        f"{t.std():.5f}",
        ratio,
        tol,
        f"{j.min():+.4f}",
        f"{t.min():+.4f}",
        f"{j.max():+.4f}",
        f"{t.max():+.4f}",
        status,
    ]
    return cells, failures


def print_table(header: list[str], rows: list[list[str]], split_after: int) -> None:
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    left = {0, 1, 2, len(header) - 1}

    def fmt(row: list[str]) -> str:
        return "  ".join(
            cell.ljust(w) if c in left else cell.rjust(w)
            for c, (cell, w) in enumerate(zip(row, widths))
        )

    print(fmt(header))
    print("  ".join("-" * w for w in widths))
    for k, row in enumerate(rows):
        if k == split_after:
            print("  ".join("-" * w for w in widths))
        print(fmt(row))


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Prints one row per scheme (the 14 in the torch layout, then the layout-aware "
        "ones in the flax layout). Writes no file. Exits 1 if any row fails.",
    ).parse_args(argv)
    start = time.perf_counter()
    all_cases = cases()
    header = [
        "scheme",
        "layout",
        "jax shape",
        "std jaxinit",
        "std torch",
        "ratio",
        "tol",
        "min jaxinit",
        "min torch",
        "max jaxinit",
        "max torch",
        "check",
    ]
    rows: list[list[str]] = []
    failures: list[str] = []
    for i, case in enumerate(all_cases):
        cells, fails = run_case(i, case)
        rows.append(cells)
        failures.extend(f"{case.label} [{case.layout}]: {f}" for f in fails)
    print(
        f"jaxinit {jaxinit.__version__} (jax {jax.__version__}) vs torch {torch.__version__}; "
        f"flax rows: jaxinit on the (3,3,in,out) / (in,out) kernel, torch on (out,in,3,3) / (out,in)"
    )
    print(
        f"ratio = jaxinit/torch; tol = {Z:.1f} standard errors of the ratio "
        f"(false-failure odds {FALSE_FAILURE:g} per row)\n"
    )
    print_table(header, rows, split_after=14)
    print(f"\n{len(all_cases)} rows in {time.perf_counter() - start:.1f} s")
    if failures:
        print(f"\n{len(failures)} FAILED:", *failures, sep="\n  ")
        return 1
    print("all rows agree with torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
