"""The checks :mod:`jaxinit.testing` lends each family (its ``Family.check`` picks).

- :meth:`Tests.iid`: every value finite (where the family's are), inside the
  family's exact support rounded to the dtype, then a one-sample
  Kolmogorov-Smirnov test against the family's CDF and a test of the variance
  about the known mean, sharing ``alpha``.
- :meth:`Tests.exact`: bit-for-bit equality (constant, eye, dirac, padding rows).
- :meth:`Tests.matrices`: the torch ``(out, in * receptive)`` view of every
  batch entry, for the structured families' own checks.

**Variance.** ``v = mean((x - mu)^2)`` with the distribution's mean ``mu``
has mean ``sigma^2``, relative standard error ``sqrt((kappa - 1) / n)`` and
skewness ``gamma / sqrt(n)``, where ``kappa = mu_4 / sigma^4`` and ``gamma =
(mu_6/sigma^6 - 3 kappa + 2) / (kappa - 1)^(3/2)`` (the kurtosis and the
skewness of ``(x - mu)^2``, from the family's ``moments``). ``v / sigma^2``
must lie within ``1 + SE (±z + gamma (z^2 - 1) / (6 sqrt(n)))``, the
Cornish-Fisher quantiles, ``z = Phi^-1(1 - alpha/2)``, widened by what
rounding to the array's dtype can do (each value moves by at most half its
ulp). It runs for ``n >= 1000``, where the expansion is accurate at these levels.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxinit._src.core.distribution import Distribution
from jaxinit._src.core.layout import torch_order
from jaxinit._src.testing.ks import ks_pvalue, ks_statistic

__all__ = ["MOMENT_MIN", "Tests", "failures"]

MOMENT_MIN = 1000  # the variance test runs from this many values on
_WHERE = 3  # positions named in a failure message


def _z(alpha: float) -> float:
    return statistics.NormalDist().inv_cdf(1.0 - alpha / 2.0)


def _positions(mask: np.ndarray) -> str:
    where = [tuple(int(i) for i in p) for p in np.argwhere(mask)[:_WHERE]]
    text = ", ".join(str(p[0]) if len(p) == 1 else str(p) for p in where)
    return text + (", ..." if int(mask.sum()) > _WHERE else "")


class Tests:
    """The checks of one array, sharing the false-failure probability ``alpha``."""

    def __init__(self, alpha: float):
        self.alpha = alpha

    def exact(self, x: np.ndarray, expected: Any, what: str) -> list[str]:
        """``x`` equals ``expected`` (broadcast, in ``x``'s dtype) bit for bit."""
        expected = np.broadcast_to(np.asarray(expected).astype(x.dtype), x.shape)
        if np.array_equal(x, expected, equal_nan=bool(jnp.issubdtype(x.dtype, jnp.inexact))):
            return []
        wrong = x != expected
        first = tuple(np.argwhere(wrong)[0])
        return [
            f"{int(wrong.sum())} of {x.size} entries differ from {what}; e.g. at "
            f"{tuple(int(i) for i in first)}: {x[first]!r}, expected {expected[first]!r}"
        ]

    def matrices(self, x: np.ndarray, dist: Distribution) -> np.ndarray:
        """``x`` as ``(batch, rows, cols)``: each batch entry's torch ``(out, in * receptive)`` view."""
        assert dist.layout is not None
        moved = np.transpose(x, torch_order(x.ndim, dist.layout))
        _, out_axes, _, batch = dist.layout.all_axes(x.ndim)
        b = math.prod(x.shape[a] for a in batch)
        rows = math.prod(x.shape[a] for a in out_axes)
        return moved.reshape(b, rows, -1)

    def domain(self, x: np.ndarray, dist: Distribution) -> list[str]:
        """Every value finite (if the family's are) and inside the family's rounded support."""
        family = dist.family
        if family.finite(dist):
            bad = ~np.isfinite(x)
            if bad.any():
                return [
                    f"{int(bad.sum())} of {x.size} entries are not finite (inf or nan), at "
                    f"{_positions(bad)}; every entry of {dist!r} is finite"
                ]
        if not family.exact_support:
            return []
        lo, hi = dist.support
        found = []
        for name, part in (
            (("", x),)
            if not np.iscomplexobj(x)
            else (
                (" (real part)", x.real),
                (" (imaginary part)", x.imag),
            )
        ):
            v = part.astype(np.float64)
            out = (v < lo) | (v > hi)
            if out.any():
                first = tuple(np.argwhere(out)[0])
                found.append(
                    f"{int(out.sum())} of {x.size} entries{name} lie outside the support "
                    f"[{lo:.9g}, {hi:.9g}] of {dist!r} in {x.dtype}, at {_positions(out)}; "
                    f"e.g. {float(v[first]):.9g}"
                )
        return found

    def iid(self, values: np.ndarray, dist: Distribution, alpha: float | None = None) -> list[str]:
        """KS and variance tests of iid values; complex values as their real and imaginary parts."""
        alpha = self.alpha if alpha is None else alpha
        x = np.asarray(values)
        found = self.domain(x, dist)
        if found:
            return found
        part = dist.family.part(dist) if np.iscomplexobj(x) else dist
        flat = np.concatenate([x.real.ravel(), x.imag.ravel()]) if np.iscomplexobj(x) else x.ravel()
        if part.std == 0.0:
            return self.exact(flat, np.asarray(part.mean), f"the constant {part.mean:g}")
        tests = 2 if flat.size >= MOMENT_MIN else 1
        d, n = ks_statistic(flat, part)
        p = ks_pvalue(d, n)
        if p < alpha / tests:
            found.append(
                f"KS test rejects: D = {d:.4g}, p = {p:.3g} < alpha = {alpha / tests:.2g} (n = {n})"
            )
        if tests == 2:
            found += _variance(flat, part, alpha / tests)
        return found


def _variance(values: np.ndarray, dist: Distribution, alpha: float) -> list[str]:
    v = values.astype(np.float64)
    mu, sigma = float(dist.mean), float(dist.std)
    centered = v - mu
    n = v.size
    kappa, eta = dist.family.moments(dist, centered)
    if kappa <= 1.0:
        return []
    ratio = float(np.mean(centered**2)) / sigma**2
    se = math.sqrt((kappa - 1.0) / n)
    gamma = (eta - 3.0 * kappa + 2.0) / (kappa - 1.0) ** 1.5 / math.sqrt(n)
    z = _z(alpha)
    shift = gamma * (z * z - 1.0) / 6.0
    # Rounding each value to the dtype moves it by e, |e| <= max(|x| eps/2, tiny): that moves
    # mean((x - mu)^2) by at most 2 sqrt(ratio * E) + E (Cauchy-Schwarz), E = mean(e^2) / sigma^2.
    info = jnp.finfo(values.dtype)
    bound = np.maximum(np.abs(v) * (float(info.eps) / 2), float(info.smallest_normal))
    rounding = float(np.mean(bound**2)) / sigma**2
    slack = 2.0 * math.sqrt(ratio * rounding) + rounding
    low, high = 1.0 + se * (-z + shift) - slack, 1.0 + se * (z + shift) + slack
    if low <= ratio <= high:
        return []
    return [
        f"std {math.sqrt(ratio) * sigma:.6g} is {math.sqrt(ratio):.4f}x the expected "
        f"{sigma:.6g}; for n = {n} at alpha = {alpha:.2g} it must be within "
        f"[{math.sqrt(max(low, 0.0)):.4f}, {math.sqrt(high):.4f}]x"
    ]


def failures(x: np.ndarray, dist: Distribution, alpha: float) -> list[str]:
    """Why ``x`` does not follow ``dist`` (empty if it does); random checks share ``alpha``."""
    if tuple(x.shape) != tuple(dist.shape):
        return [f"shape {tuple(x.shape)} is not the distribution's {tuple(dist.shape)}"]
    if x.size == 0:
        return []
    return dist.family.check(x, dist, Tests(alpha))
