"""The iid families uniform and normal (and the padded normal), and their builders.

Each family is an object carrying its kernel and its maths
(:class:`~jaxinit._src.core.family.Family`); the builders validate their
hyperparameters when called (with torch's words where torch has them) and
return an :class:`~jaxinit.Initializer`. Shape arithmetic (fans, bounds)
happens in Python, sampling in the family's kernel with the parameters traced.

Hyperparameters may be traced (a ``std`` inside ``jit`` or ``vmap``): the
checks that need a concrete value (``std >= 0``, ``a <= b``) are skipped
for traced values.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxinit._src.core.builders import builder
from jaxinit._src.core.distribution import Distribution, fmt
from jaxinit._src.core.dtypes import sample_dtype
from jaxinit._src.core.family import Checks, Family, kernel, param, round_to
from jaxinit._src.core.hyper import IntLike, RealLike, concrete, integer, real
from jaxinit._src.core.initializer import Initializer
from jaxinit._src.core.layout import Layout, LayoutLike
from jaxinit._src.core.special import ndtr
from jaxinit._src.schemes.fill import constant as constant
from jaxinit._src.schemes.fill import ones as ones
from jaxinit._src.schemes.fill import zeros as zeros
from jaxinit._src.schemes.sampling import (
    MAX_RANK,
    combine,
    make,
    matrix_view,
    normal_draw,
    parts,
    rank_check,
    real_dtype,
    to_layout,
    uniform_bits,
)

# constant, ones and zeros are re-exported from fill.py for the modules that
# imported them from here.
__all__ = ["NORMAL", "PADDED_NORMAL", "UNIFORM", "normal", "padded_normal", "uniform"]


# ----------------------------------------------------------------------------
# uniform


def _half_open(x: jax.Array, low: Any, high: Any) -> jax.Array:
    """Keeps ``x`` (already in its final dtype) inside ``[low, high)``, as torch does.

    Sampling in float32 and rounding to a 16-bit float (or float32 arithmetic
    itself) can land exactly on ``high``. torch maps such values to ``low``
    (its CUDA kernels say so; its CPU bfloat16/float16 draws show it: every
    representable level of ``[low, high)`` gets the same mass), and so do we:
    the top half-step of rounding then lands on ``low``, whose own rounding
    interval is only a half-step wide.
    """
    hi = jnp.asarray(high, x.dtype)
    return jnp.where(x >= hi, jnp.asarray(low, x.dtype), x)


@kernel
def _uniform_kernel(key, low, high, *, shape, dtype, layout):
    """U[low, high); complex: real and imaginary parts each U[low, high)."""
    x = uniform_bits(key, parts(shape, dtype), sample_dtype(dtype), low, high)
    return combine(_half_open(x.astype(real_dtype(dtype)), low, high), dtype)


class UniformFamily(Family):
    """:math:`\\mathcal{U}[low, high)`, half-open in every dtype (as torch)."""

    def is_random(self, d: Distribution) -> bool:
        return bool(d.params["low"] != d.params["high"])

    def mean(self, d: Distribution) -> float:
        return (param(d, "low") + param(d, "high")) / 2

    def std(self, d: Distribution) -> float:
        return (param(d, "high") - param(d, "low")) / math.sqrt(12.0)

    def support(self, d: Distribution) -> tuple[float, float]:
        return param(d, "low"), param(d, "high")

    def rounded_support(self, d: Distribution) -> tuple[float, float]:
        """``[low, high)`` rounded: the largest entry is the value just below ``high``."""
        low, high = self.support(d)
        if d.dtype is None:
            return low, high
        low, high = round_to(low, d.dtype), round_to(high, d.dtype)
        if high <= low:
            return low, low
        return low, float(np.nextafter(np.asarray(high, real_dtype(d.dtype)), -np.inf))

    def cdf(self, d: Distribution, x: np.ndarray) -> np.ndarray:
        low, high = self.support(d)
        if high == low:
            return (x >= low).astype(np.float64)
        return np.clip((x - low) / (high - low), 0.0, 1.0)

    def moments(self, d: Distribution, centered: np.ndarray) -> tuple[float, float]:
        return 9.0 / 5.0, 27.0 / 7.0  # E[u^4]/E[u^2]^2 and E[u^6]/E[u^2]^3 of U(-1, 1)

    def rounded_cdf(self, d: Distribution, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """16-bit values rounding to the upper bound are moved to the lower one, as torch does."""
        if x.dtype.itemsize >= 4:
            return super().rounded_cdf(d, x)
        xf = x.astype(np.float64)
        inf = np.asarray(np.inf, x.dtype)
        hi = (xf + np.nextafter(x, inf).astype(np.float64)) / 2
        lo = (xf + np.nextafter(x, -inf).astype(np.float64)) / 2
        top = np.asarray(d.params["high"], x.dtype)
        cut = (float(top) + float(np.nextafter(top, -inf))) / 2
        wrap = 1.0 - float(self.cdf(d, np.asarray(cut)))
        low = float(np.asarray(d.params["low"], x.dtype))
        f_lo = self.cdf(d, np.minimum(lo, cut)) + wrap * (xf > low)
        f_hi = self.cdf(d, np.minimum(hi, cut)) + wrap * (xf >= low)
        return f_lo, f_hi

    def format(self, d: Distribution) -> str:
        return f"U({fmt(d.params['low'])}, {fmt(d.params['high'])})"


UNIFORM = UniformFamily(
    "uniform",
    _uniform_kernel,
    ("low", "high"),
    elementwise=True,
    torch_kernel="check_uniform_bounds",
)


def uniform_bounds(low: Any, high: Any, dt: np.dtype) -> tuple[Any, Any]:
    """torch's ``check_uniform_bounds``, where breaking it would give inf or nan.

    Bounds beyond the dtype's range are rejected, with torch's words. (torch
    also rejects ``high - low`` beyond the dtype's range; 16-bit floats are
    sampled in float32 here, so only the sampling dtype's range matters.)
    """
    if not concrete(low, high):
        return low, high
    for arg, value in (("from", low), ("to", high)):
        if abs(value) > float(jnp.finfo(dt).max):
            raise ValueError(f"uniform_: {arg} is out of bounds for {dt} (got {value})")
    sampled = sample_dtype(dt)
    if high - low > float(jnp.finfo(sampled).max):
        raise ValueError(
            f"uniform_ expects to-from <= the largest {sampled}, but found to={high} and "
            f"from={low} which result in to-from to exceed the limit"
        )
    return low, high


@builder
def uniform(
    a: RealLike = 0.0,
    b: RealLike = 1.0,
    *,
    layout: LayoutLike | None = None,
    dtype: DTypeLike | None = None,
) -> Initializer:
    r"""Fills with values drawn from :math:`\mathcal{U}[a, b)`.

    Args:
      a: the lower bound.
      b: the upper bound (``a == b`` gives the constant ``a``, as torch).
      layout: accepted for uniformity; it does not affect this scheme.
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      ValueError: if ``a > b`` or a bound is not finite; at call time, if a
        bound is beyond the dtype's range (as torch).

    The interval is half-open in every dtype: a float32 sample that a 16-bit
    dtype would round up to ``b`` becomes the largest value below ``b``.
    PyTorch equivalent: ``torch.nn.init.uniform_(w, a, b)``. Unlike
    ``jax.nn.initializers.uniform(scale)``, which draws from ``[0, scale)``,
    this takes torch's two bounds. Complex dtypes draw both parts from
    :math:`\mathcal{U}[a, b)`.

    >>> import jax, jaxinit
    >>> x = jaxinit.uniform(-1.0, 1.0)(jax.random.key(0), (2, 3))
    >>> bool(x.min() >= -1.0), bool(x.max() < 1.0)
    (True, True)
    """
    a = real("uniform", "a", a)
    b = real("uniform", "b", b)
    if concrete(a, b) and a > b:
        raise ValueError(
            f"uniform_ expects to return a [from, to) range, but found from={a} > to={b}"
        )
    return make(
        "uniform",
        {"a": a, "b": b},
        UNIFORM,
        lambda shape, lay, dt: uniform_bounds(a, b, dt),
        layout=layout,
        dtype=dtype,
    )


def symmetric_uniform(
    name: str,
    hyperparams: dict[str, Any],
    bound: Any,
    *,
    layout: LayoutLike | None,
    dtype: DTypeLike | None,
    check: Any = None,
) -> Initializer:
    """``U[-bound(shape, layout), bound(shape, layout))``: xavier, kaiming and torch's defaults."""

    def params(shape: tuple[int, ...], lay: Layout, dt: np.dtype) -> tuple[Any, Any]:
        b = bound(shape, lay)
        return uniform_bounds(-b, b, dt)

    return make(name, hyperparams, UNIFORM, params, layout=layout, dtype=dtype, check=check)


# ----------------------------------------------------------------------------
# normal


@kernel
def _normal_kernel(key, mean, std, *, shape, dtype, layout):
    """N(mean, std^2); complex: each part N(mean, std^2 / 2), as torch's normal_."""
    return normal_draw(key, mean, std, shape, dtype)


class NormalFamily(Family):
    """:math:`\\mathcal{N}(mean, std^2)`; complex: each part :math:`\\mathcal{N}(mean, std^2/2)`."""

    def mean(self, d: Distribution) -> float:
        return param(d, "mean")

    def std(self, d: Distribution) -> float:
        return param(d, "std")

    def finite(self, d: Distribution) -> bool:
        return math.isfinite(param(d, "mean")) and math.isfinite(param(d, "std"))

    def cdf(self, d: Distribution, x: np.ndarray) -> np.ndarray:
        mean, std = param(d, "mean"), param(d, "std")
        if std == 0:
            return (x >= mean).astype(np.float64)
        return ndtr((x - mean) / std)

    def moments(self, d: Distribution, centered: np.ndarray) -> tuple[float, float]:
        return 3.0, 15.0  # E[z^4] and E[z^6] of a standard normal

    def part(self, d: Distribution) -> Distribution:
        return d.replace(std=d.params["std"] / math.sqrt(2.0))

    def format(self, d: Distribution) -> str:
        return f"N(mean={fmt(d.params['mean'])}, std={fmt(d.params['std'])})"


NORMAL = NormalFamily(
    "normal",
    _normal_kernel,
    ("mean", "std"),
    elementwise=True,
    torch_kernel="normal_kernel_cpu",
)


# ----------------------------------------------------------------------------
# The padded normal: torch's Embedding with padding_idx


@kernel
def _padded_normal_kernel(key, mean, std, row, *, shape, dtype, layout):
    """N(mean, std^2), with entry ``row`` of the out axis (an embedding's index axis) zeroed."""
    batch, rows, cols = matrix_view(shape, layout)
    values = normal_draw(key, mean, std, (batch, rows, cols), dtype)
    index = jax.lax.broadcasted_iota(jnp.int32, (batch, rows, cols), 1)
    return to_layout(jnp.where(index == row, jnp.zeros((), values.dtype), values), shape, layout)


class PaddedNormalFamily(NormalFamily):
    """N(mean, std^2) with row ``zero_row`` of the torch view exactly 0: not iid."""

    iid = False

    def check(self, x: np.ndarray, d: Distribution, checks: Checks) -> list[str]:
        view = checks.matrices(x, d)
        row = int(d.params["zero_row"])
        zero = np.zeros((), x.dtype)
        found = [f"padding row {row}: {f}" for f in checks.exact(view[:, row], zero, "0")]
        rest = np.delete(view, row, axis=1)
        normal = NORMAL.describe((d.params["mean"], d.params["std"]), rest.shape, None, d.dtype)
        return found + checks.iid(rest, normal)

    def format(self, d: Distribution) -> str:
        return f"{super().format(d)}, row {d.params['zero_row']} zero"


PADDED_NORMAL = PaddedNormalFamily(
    "padded_normal",
    _padded_normal_kernel,
    ("mean", "std", "zero_row"),
    structured=True,
    torch_kernel="normal_kernel_cpu",
)


def padded_normal(
    name: str,
    hyperparams: dict[str, Any],
    mean: Any,
    std: Any,
    padding_idx: Any,
    *,
    layout: LayoutLike | None,
    dtype: DTypeLike | None,
) -> Initializer:
    """``N(mean, std^2)`` with row ``padding_idx`` of the out axis zeroed (checked as torch)."""
    index = integer(name, "padding_idx", padding_idx, minimum=-(2**31))

    def params(shape: tuple[int, ...], lay: Layout, dt: np.dtype) -> tuple[Any, ...]:
        rows = matrix_view(shape, lay)[1]
        if concrete(index) and not -rows <= index < rows:
            raise ValueError(
                f"{name}: Padding_idx must be within num_embeddings "
                f"(padding_idx={index}, num_embeddings={rows})"
            )
        row = np.int32(index % rows) if concrete(index) else (index % rows).astype(jnp.int32)
        return mean, std, row

    return make(
        name,
        {**hyperparams, "padding_idx": index},
        PADDED_NORMAL,
        params,
        layout=layout,
        dtype=dtype,
        check=rank_check(name, tuple(range(2, MAX_RANK)), "2 or more"),
    )


def normal_std(
    name: str,
    hyperparams: dict[str, Any],
    std: Any,
    *,
    layout: LayoutLike | None,
    dtype: DTypeLike | None,
    check: Any = None,
) -> Initializer:
    """``N(0, std(shape, layout)^2)``: xavier_normal and kaiming_normal."""
    return make(
        name,
        hyperparams,
        NORMAL,
        lambda shape, lay, dt: (0.0, std(shape, lay)),
        layout=layout,
        dtype=dtype,
        check=check,
    )


@builder
def normal(
    mean: RealLike = 0.0,
    std: RealLike = 1.0,
    *,
    padding_idx: IntLike | None = None,
    layout: LayoutLike | None = None,
    dtype: DTypeLike | None = None,
) -> Initializer:
    r"""Fills with values drawn from :math:`\mathcal{N}(\text{mean}, \text{std}^2)`.

    Args:
      mean: the mean.
      std: the standard deviation (``>= 0``; ``inf`` gives infinities, as torch).
      padding_idx: a jaxinit extension: this row of the out axis (negative
        counts from the end) is zeroed, as ``nn.Embedding(padding_idx=...)``
        zeroes it; a table of 2 or more dimensions is then required and the
        layout says which axis the rows are on.
      layout: which axis holds the rows for ``padding_idx``; otherwise it
        does not affect this scheme.
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      ValueError: if ``std < 0`` (``normal expects std >= 0.0, ...``) or
        ``nan``; at call time, if ``padding_idx`` is outside the table.

    PyTorch equivalent: ``torch.nn.init.normal_(w, mean, std)``. Complex dtypes
    draw each part from :math:`\mathcal{N}(\text{mean}, \text{std}^2/2)`, as
    torch. ``jax.nn.initializers.normal(stddev)`` has no mean and defaults to
    std 0.01.

    >>> import jax, jaxinit
    >>> x = jaxinit.normal(std=0.02)(jax.random.key(0), (768, 768))
    >>> x.shape, x.dtype
    ((768, 768), dtype('float32'))
    """
    mean = real("normal", "mean", mean, finite=False)
    std = real("normal", "std", std, finite=False)
    if concrete(std) and std < 0:
        raise ValueError(f"normal expects std >= 0.0, but found std {std}")
    if padding_idx is None:
        return make(
            "normal",
            {"mean": mean, "std": std},
            NORMAL,
            lambda shape, lay, dt: (mean, std),
            layout=layout,
            dtype=dtype,
        )
    return padded_normal(
        "normal", {"mean": mean, "std": std}, mean, std, padding_idx, layout=layout, dtype=dtype
    )
