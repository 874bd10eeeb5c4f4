"""The iid torch.nn.init schemes: uniform, normal, trunc_normal, constant, xavier, kaiming.

Each section defines a distribution family (its jitted kernel and what it
draws) and then the builders that draw from it. A builder validates its
hyperparameters when called (with torch's words where torch has them) and
returns an :class:`~jaxinit.Initializer`; shape arithmetic (fans, bounds)
happens in Python, sampling in the family's kernel with the parameters traced.

Hyperparameters may be traced (a ``std`` inside ``jit`` or ``vmap``): the
checks that need a concrete value (``std >= 0``, ``a <= b``) are skipped
for traced values.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtri
from jax.typing import DTypeLike

from jaxinit._src.core.distribution import Distribution
from jaxinit._src.core.gain import Nonlinearity, calculate_gain, check_nonlinearity
from jaxinit._src.core.initializer import (
    Family,
    Initializer,
    RealLike,
    builder,
    concrete,
    is_traced,
    kernel,
    real,
    sample_dtype,
    warn,
)
from jaxinit._src.core.layout import (
    FanMode,
    Layout,
    LayoutLike,
    as_layout,
    calculate_fan_in_and_fan_out,
    check_mode,
    is_int,
)

__all__ = [
    "constant",
    "kaiming_normal",
    "kaiming_uniform",
    "normal",
    "ones",
    "trunc_normal",
    "uniform",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]


def make(
    name: str,
    hyperparams: dict[str, Any],
    family: Family,
    params: Any,
    *,
    layout: LayoutLike | None,
    dtype: DTypeLike | None,
    check: Any = None,
) -> Initializer:
    """The :class:`Initializer` a builder returns (``layout=None``: inherit the context's)."""
    return Initializer(
        name=name,
        hyperparams=hyperparams,
        family=family,
        params=params,
        check=check,
        layout=None if layout is None else as_layout(layout),
        dtype=dtype,
    )


def needs_fans(name: str):
    """The shape check of the fan-scaled schemes: 2 or more dimensions, as torch."""

    def check(shape: tuple[int, ...], layout: Layout) -> None:
        if len(shape) - len(layout.batch_axis) < 2:
            raise ValueError(
                f"{name}: Fan in and fan out can not be computed for tensor with fewer "
                f"than 2 dimensions (got shape {shape})"
            )
        layout.all_axes(len(shape))

    return check


# ----------------------------------------------------------------------------
# Sampling helpers: complex parts, the half-open interval, (0, 1) uniforms


def is_complex(dtype: np.dtype) -> bool:
    return bool(jnp.issubdtype(dtype, jnp.complexfloating))


def parts(shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, ...]:
    """Sample shape: an extra trailing axis of 2 (real, imag) for complex dtypes."""
    return (*shape, 2) if is_complex(dtype) else shape


def combine(x: jax.Array, dtype: np.dtype) -> jax.Array:
    """Real and imaginary parts (the trailing axis of 2) into a complex array."""
    if is_complex(dtype):
        return jax.lax.complex(x[..., 0], x[..., 1])
    return x


def real_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype of the real part (the dtype itself for real dtypes)."""
    return np.dtype(jnp.finfo(dtype).dtype)


def open_uniform(key: jax.Array, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
    """Uniform on the open interval (0, 1): midpoints of a 2^-m grid, m = mantissa bits.

    The bits are drawn flat and reshaped: the same bits as an N-D draw
    (threefry's counters are row-major indices), and XLA:CPU compiles a 1-D
    draw several times faster. Only integer bits may be drawn flat: float math
    before the reshape fuses differently once the result is sharded.
    """
    flat = (math.prod(shape),)
    if dtype == np.float64:
        bits = jax.random.bits(key, flat, jnp.uint64).reshape(shape)
        return ((bits >> 11).astype(dtype) + 0.5) * 2.0**-53
    bits = jax.random.bits(key, flat, jnp.uint32).reshape(shape)
    return ((bits >> 9).astype(dtype) + 0.5) * 2.0**-23


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
    x = jax.random.uniform(key, parts(shape, dtype), sample_dtype(dtype), low, high)
    return combine(_half_open(x.astype(real_dtype(dtype)), low, high), dtype)


UNIFORM = Family(
    "uniform",
    _uniform_kernel,
    lambda p, shape, layout: Distribution("uniform", {"low": p[0], "high": p[1]}, shape, layout),
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


def normal_draw(key: jax.Array, mean: Any, std: Any, shape: tuple[int, ...], dtype: np.dtype):
    """N(mean, std^2); complex: each part N(mean, std^2 / 2), as torch's normal_."""
    if is_complex(dtype):
        std = std / math.sqrt(2.0)
    x = jax.random.normal(key, parts(shape, dtype), sample_dtype(dtype)) * std + mean
    return combine(x, dtype)


@kernel
def _normal_kernel(key, mean, std, *, shape, dtype, layout):
    """N(mean, std^2); complex: each part N(mean, std^2 / 2), as torch's normal_."""
    return normal_draw(key, mean, std, shape, dtype)


NORMAL = Family(
    "normal",
    _normal_kernel,
    lambda p, shape, layout: Distribution("normal", {"mean": p[0], "std": p[1]}, shape, layout),
    torch_kernel="normal_kernel_cpu",
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
    layout: LayoutLike | None = None,
    dtype: DTypeLike | None = None,
) -> Initializer:
    r"""Fills with values drawn from :math:`\mathcal{N}(\text{mean}, \text{std}^2)`.

    Args:
      mean: the mean.
      std: the standard deviation (``>= 0``).
      layout: accepted for uniformity; it does not affect this scheme.
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      ValueError: if ``std < 0`` (``normal expects std >= 0.0, ...``).

    PyTorch equivalent: ``torch.nn.init.normal_(w, mean, std)``. Complex dtypes
    draw each part from :math:`\mathcal{N}(\text{mean}, \text{std}^2/2)`, as
    torch. ``jax.nn.initializers.normal(stddev)`` has no mean and defaults to
    std 0.01.

    >>> import jax, jaxinit
    >>> x = jaxinit.normal(std=0.02)(jax.random.key(0), (768, 768))
    >>> x.shape, x.dtype
    ((768, 768), dtype('float32'))
    """
    mean = real("normal", "mean", mean)
    std = real("normal", "std", std)
    if concrete(std) and std < 0:
        raise ValueError(f"normal expects std >= 0.0, but found std {std}")
    return make(
        "normal",
        {"mean": mean, "std": std},
        NORMAL,
        lambda shape, lay, dt: (mean, std),
        layout=layout,
        dtype=dtype,
    )


# ----------------------------------------------------------------------------
# trunc_normal: inverse CDF in log space, exact in the far tails

_LOG_2PI = math.log(2.0 * math.pi)
# Below this log-probability, exp() would leave the dtype's normal range (and
# XLA:CPU flushes subnormals to zero): the tail form of the inverse is used.
_TAIL_LOG_P = {np.dtype(np.float32): -80.0, np.dtype(np.float64): -700.0}


def _log_ndtr_tail(z: jax.Array) -> jax.Array:
    """log Phi(z) for z < -10: the asymptotic series of the Mills ratio (6 terms)."""
    w = 1.0 / (z * z)
    series = 1.0 + w * (-1.0 + w * (3.0 + w * (-15.0 + w * (105.0 + w * (-945.0)))))
    return -0.5 * z * z - jnp.log(-z) - 0.5 * _LOG_2PI + jnp.log(series)


def ndtri_log(log_p: jax.Array) -> jax.Array:
    """The standard normal quantile of ``exp(log_p)``, for any ``log_p <= 0``.

    Where ``exp(log_p)`` is a normal float, ``ndtri(exp(log_p))``. Below
    that (``z`` under about -12.4 in float32, -37 in float64), the tail form:
    start from the leading term of the asymptotic inverse and take Newton
    steps on ``log Phi(z) = log_p``, whose derivative ``phi(z)/Phi(z)`` is
    close to ``-z - 1/z`` there.
    """
    dtype = log_p.dtype
    tail = log_p < _TAIL_LOG_P[np.dtype(dtype)]
    central = ndtri(jnp.exp(jnp.where(tail, -1.0, log_p)))
    t = -2.0 * jnp.where(tail, log_p, -1000.0)
    z = -jnp.sqrt(t - jnp.log(t) - _LOG_2PI)
    for _ in range(3):  # Newton; the start is within 1%, each step squares the error
        z = z - (_log_ndtr_tail(z) - jnp.where(tail, log_p, -1000.0)) / (-z - 1.0 / z)
    return jnp.where(tail, z, central)


@kernel
def _trunc_normal_kernel(key, mean, std, a, b, *, shape, dtype, layout):
    r"""N(mean, std^2) restricted to [a, b], by inverting the normal CDF in log space.

    The standardized interval is reflected to lean left (``alpha + beta <= 0``),
    where ``log Phi`` keeps full relative precision. With ``u`` uniform on
    (0, 1), the quantile of

    .. math:: p = \Phi(\alpha) + u (\Phi(\beta) - \Phi(\alpha))
              = \Phi(\beta) \left(1 - (1 - u)(1 - \Phi(\alpha)/\Phi(\beta))\right)

    is computed from :math:`\log p`, so intervals 30 or 1000 std from the mean,
    where :math:`\Phi` underflows, are sampled exactly too.
    """
    sd = sample_dtype(dtype)
    mean, std, a, b = (jnp.asarray(v, sd) for v in (mean, std, a, b))
    alpha, beta = (a - mean) / std, (b - mean) / std
    flip = alpha + beta > 0  # (nan for (-inf, inf): no flip)
    lo = jnp.where(flip, -beta, alpha)
    hi = jnp.where(flip, -alpha, beta)
    log_lo, log_hi = log_ndtr(lo), log_ndtr(hi)
    u = open_uniform(key, shape, sd)
    log_p = log_hi + jnp.log1p((1.0 - u) * jnp.expm1(log_lo - log_hi))
    z = jnp.clip(ndtri_log(jnp.minimum(log_p, 0.0)), lo, hi)
    x = jnp.clip(mean + std * jnp.where(flip, -z, z), a, b)
    return jnp.where(a == b, a, x)


TRUNC_NORMAL = Family(
    "trunc_normal",
    _trunc_normal_kernel,
    lambda p, shape, layout: Distribution(
        "trunc_normal", {"mean": p[0], "std": p[1], "a": p[2], "b": p[3]}, shape, layout
    ),
    dtypes="real",
    torch_kernel="normal_kernel_cpu",
)

_TRUNC_WARN_STDS = 2.0  # torch warns when the mean is more than 2 std outside [a, b]


@builder
def trunc_normal(
    mean: RealLike = 0.0,
    std: RealLike = 1.0,
    a: RealLike = -2.0,
    b: RealLike = 2.0,
    *,
    layout: LayoutLike | None = None,
    dtype: DTypeLike | None = None,
) -> Initializer:
    r"""Fills with :math:`\mathcal{N}(\text{mean}, \text{std}^2)` truncated to :math:`[a, b]`.

    The bounds are **absolute** values, as in torch: ``trunc_normal(std=0.02)``
    cuts at :math:`\pm 2`, i.e. :math:`\pm 100` std, so nothing is cut. This
    differs from ``jax.nn.initializers.truncated_normal``, whose bounds are in
    units of std. Sampling inverts the normal CDF in log space, so intervals
    far in a tail (``a=0.5, b=1`` with ``std=0.02``: 25 to 50 std) are exact
    in every dtype, where an ``erf`` or linear-probability inverse returns the
    bound.

    Args:
      mean: the mean of the untruncated normal.
      std: its standard deviation (``> 0``).
      a: the lower bound (absolute; may be ``-inf``).
      b: the upper bound (absolute, ``>= a``; may be ``inf``: ``a=0,
        b=inf`` is a half-normal). ``a == b`` gives the constant ``a``, as torch.
      layout: accepted for uniformity; it does not affect this scheme.
      dtype: the default dtype of the result (real only, as torch).

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      ValueError: if ``std <= 0`` or ``a > b``.

    Warns:
      UserWarning: torch's "mean is more than 2 std from [a, b]" (the values
        are still exact here).

    PyTorch equivalent: ``torch.nn.init.trunc_normal_(w, mean, std, a, b)``.

    >>> import jax, jaxinit
    >>> x = jaxinit.trunc_normal(std=1.0, a=-0.5, b=0.5)(jax.random.key(0), (1000,))
    >>> bool(x.min() >= -0.5), bool(x.max() <= 0.5)
    (True, True)
    """
    mean = real("trunc_normal", "mean", mean)
    std = real("trunc_normal", "std", std)
    a = real("trunc_normal", "a", a, finite=False)
    b = real("trunc_normal", "b", b, finite=False)
    if concrete(std) and std <= 0:
        raise ValueError(f"trunc_normal: std must be > 0, got {std}")
    if concrete(a, b) and a > b:
        raise ValueError(
            f"uniform_ expects to return a [from, to) range, but found from={a} > to={b} "
            f"(trunc_normal: a must be <= b)"
        )
    if concrete(mean, std, a, b) and (
        mean < a - _TRUNC_WARN_STDS * std or mean > b + _TRUNC_WARN_STDS * std
    ):
        warn(
            "mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
            "The distribution of values may be incorrect."
        )
    return make(
        "trunc_normal",
        {"mean": mean, "std": std, "a": a, "b": b},
        TRUNC_NORMAL,
        lambda shape, lay, dt: (mean, std, a, b),
        layout=layout,
        dtype=dtype,
    )


# ----------------------------------------------------------------------------
# constant, ones, zeros: torch's fill_ conversions, any dtype


@kernel
def _constant_kernel(key, value, *, shape, dtype, layout):
    """Every element ``value`` (already converted to ``dtype``)."""
    return jnp.full(shape, value, dtype)


CONSTANT = Family(
    "constant",
    _constant_kernel,
    lambda p, shape, layout: Distribution("constant", {"value": p[0]}, shape, layout),
    random=False,
    dtypes="any",
)


def fill_value(name: str, val: Any, dt: np.dtype) -> Any:
    """``val`` converted to ``dt`` as torch's ``fill_`` converts it (``checked_convert``).

    * bool: ``val != 0`` (nan and inf included).
    * integers: a float must lie within ``[min, max]`` and is truncated toward
      zero; an int must lie within ``[min, max]``, except that a negative int
      wraps for unsigned types when ``-val <= max`` (``-1`` -> 255 in uint8).
    * floats and complex: inf and nan pass; a finite value beyond the largest
      finite value is an error; 16-bit floats are converted through float32
      (``c10::Half(float(val))``), which can round differently from a direct
      conversion (``1 + 2**-11 + 2**-40`` -> ``1.0``, not ``1.0009765625``).
    """
    if is_traced(val):
        if dt == np.bool_:
            return val != 0
        if jnp.issubdtype(dt, jnp.integer):
            return jnp.trunc(val).astype(dt)
        if real_dtype(dt).itemsize < 4:
            return val.astype(jnp.float32).astype(dt)
        return val.astype(dt)
    overflow = ValueError(f"{name}: value {val} cannot be converted to type {dt} without overflow")
    if dt == np.bool_:
        return np.asarray(val != 0)  # nan != 0 too
    if jnp.issubdtype(dt, jnp.integer):
        info = jnp.iinfo(dt)
        if isinstance(val, int):
            if val > info.max or (val < info.min and not (info.min == 0 and -val <= info.max)):
                raise overflow
            return np.asarray(val % (int(info.max) + 1) if val < 0 and info.min == 0 else val, dt)
        if math.isnan(val) or val < float(info.min) or val > float(info.max):
            raise overflow
        whole = math.trunc(val)
        if not info.min <= whole <= info.max:  # float(max) rounds up for 64-bit types
            raise overflow
        return np.asarray(whole, dt)
    finfo = jnp.finfo(dt)
    if math.isfinite(val) and abs(val) > float(finfo.max):
        raise overflow
    if np.dtype(finfo.dtype).itemsize < 4:
        return np.asarray(np.float32(val), dtype=dt)
    return np.asarray(val, dtype=dt)


def fill(name: str, hyperparams: dict[str, Any], val: Any, layout: Any, dtype: Any) -> Initializer:
    """The initializer filling with ``val`` (constant, ones, zeros)."""
    return make(
        name,
        hyperparams,
        CONSTANT,
        lambda shape, lay, dt: (fill_value(name, val, dt),),
        layout=layout,
        dtype=dtype,
    )


def _fill_number(value: Any) -> Any:
    """A fill value as torch takes it: an int stays an int (exact, and wraps for unsigned)."""
    if is_traced(value):
        return real("constant", "val", value)
    if isinstance(value, bool | np.bool_) or is_int(value):
        return int(value)
    if isinstance(value, np.ndarray | np.generic | jax.Array) and np.ndim(value) == 0:
        if jnp.issubdtype(value.dtype, jnp.integer) or value.dtype == np.bool_:
            return int(value)
        if jnp.issubdtype(value.dtype, jnp.floating):
            return float(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"constant: val must be a real number, got {value!r}")


@builder
def constant(
    val: RealLike, *, layout: LayoutLike | None = None, dtype: DTypeLike | None = None
) -> Initializer:
    """Fills with the value ``val``.

    Works for every dtype torch's ``fill_`` does: floating, complex, integer
    and bool, with torch's conversion (``fill_value``): 16-bit floats through
    float32 (bit for bit as torch), integers truncated toward zero, bool as
    ``val != 0``, and an out-of-range value is an error, as in torch.

    Args:
      val: the value (any real number; ``inf``/``nan`` for float dtypes).
      layout: accepted for uniformity; it does not affect this scheme.
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      ValueError: at call time, if ``val`` does not fit the dtype
        (torch: ``value cannot be converted to type c10::Half without overflow``).

    PyTorch equivalent: ``torch.nn.init.constant_(w, val)``; bit for bit.

    >>> import jax.numpy as jnp, jaxinit
    >>> jaxinit.constant(0.5)(None, (2, 2))
    Array([[0.5, 0.5],
           [0.5, 0.5]], dtype=float32)
    >>> jaxinit.constant(-1.7)(None, (3,), jnp.int32)
    Array([-1, -1, -1], dtype=int32)
    """
    val = _fill_number(val)
    return fill("constant", {"val": val}, val, layout, dtype)


@builder
def ones(*, layout: LayoutLike | None = None, dtype: DTypeLike | None = None) -> Initializer:
    """Fills with ones (any dtype, bool and integers included).

    Args:
      layout: accepted for uniformity; it does not affect this scheme.
      dtype: the default dtype of the result.

    PyTorch equivalent: ``torch.nn.init.ones_(w)``.

    >>> import jaxinit
    >>> jaxinit.ones()(None, (3,))
    Array([1., 1., 1.], dtype=float32)
    """
    return fill("ones", {}, 1, layout, dtype)


@builder
def zeros(*, layout: LayoutLike | None = None, dtype: DTypeLike | None = None) -> Initializer:
    """Fills with zeros (any dtype, bool and integers included).

    Args:
      layout: accepted for uniformity; it does not affect this scheme.
      dtype: the default dtype of the result.

    PyTorch equivalent: ``torch.nn.init.zeros_(w)``. Note that
    ``jax.nn.initializers.zeros`` is itself the initializer; here ``zeros()``
    builds one.

    >>> import jaxinit
    >>> jaxinit.zeros()(None, (3,))
    Array([0., 0., 0.], dtype=float32)
    """
    return fill("zeros", {}, 0, layout, dtype)


# ----------------------------------------------------------------------------
# xavier (Glorot)


def xavier_std(gain: Any, shape: tuple[int, ...], layout: Layout, packed: Any = 1) -> Any:
    """torch's xavier std; ``packed`` projections share one weight (fan_out times ``packed``)."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape, layout)
    return gain * math.sqrt(2.0 / float(fan_in + packed * fan_out))


def _gain(name: str, gain: Any) -> Any:
    gain = real(name, "gain", gain)
    if concrete(gain) and gain < 0:
        raise ValueError(f"{name}: gain must be >= 0, got {gain}")
    return gain


@builder
def xavier_uniform(
    gain: RealLike = 1.0, *, layout: LayoutLike | None = None, dtype: DTypeLike | None = None
) -> Initializer:
    r"""Glorot uniform: :math:`\mathcal{U}[-b, b)`, :math:`b = \text{gain}\sqrt{6/(\text{fan\_in}+\text{fan\_out})}`.

    Args:
      gain: a scaling factor (``>= 0``).
      layout: which axes are in/out (default: torch's ``(out, in, *k)``;
        inside a Flax layer, the layer's).
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      ValueError: for a negative gain or a shape with fewer than 2 dimensions.

    PyTorch equivalent: ``torch.nn.init.xavier_uniform_(w, gain)``.
    ``jax.nn.initializers.glorot_uniform`` is the same with ``gain=1`` but
    reads the fans in the flax layout.

    >>> import jax, jaxinit
    >>> w = jaxinit.xavier_uniform()(jax.random.key(0), (64, 32))
    >>> bool(abs(w).max() <= (6 / 96) ** 0.5)
    True
    """
    gain = _gain("xavier_uniform", gain)
    return symmetric_uniform(
        "xavier_uniform",
        {"gain": gain},
        lambda shape, lay: math.sqrt(3.0) * xavier_std(gain, shape, lay),
        layout=layout,
        dtype=dtype,
        check=needs_fans("xavier_uniform"),
    )


@builder
def xavier_normal(
    gain: RealLike = 1.0, *, layout: LayoutLike | None = None, dtype: DTypeLike | None = None
) -> Initializer:
    r"""Glorot normal: :math:`\mathcal{N}(0, \sigma^2)`, :math:`\sigma = \text{gain}\sqrt{2/(\text{fan\_in}+\text{fan\_out})}`.

    **Untruncated**, as torch (``jax.nn.initializers.glorot_normal`` is truncated).

    Args:
      gain: a scaling factor (``>= 0``).
      layout: which axes are in/out (default: torch's ``(out, in, *k)``;
        inside a Flax layer, the layer's).
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      ValueError: for a negative gain or a shape with fewer than 2 dimensions.

    PyTorch equivalent: ``torch.nn.init.xavier_normal_(w, gain)``.

    >>> import jax, jaxinit
    >>> jaxinit.xavier_normal()(jax.random.key(0), (64, 32)).shape
    (64, 32)
    """
    gain = _gain("xavier_normal", gain)
    return normal_std(
        "xavier_normal",
        {"gain": gain},
        lambda shape, lay: xavier_std(gain, shape, lay),
        layout=layout,
        dtype=dtype,
        check=needs_fans("xavier_normal"),
    )


# ----------------------------------------------------------------------------
# kaiming (He)


def kaiming_std(gain: Any, mode: FanMode, shape: tuple[int, ...], layout: Layout) -> Any:
    """torch's kaiming std, ``gain / sqrt(fan)`` (0 for an empty fan: nothing is drawn)."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape, layout)
    fan = fan_in if mode == "fan_in" else fan_out
    return gain / math.sqrt(fan) if fan > 0 else 0.0


def _kaiming_args(name: str, a: Any, mode: Any, nonlinearity: Any) -> tuple[Any, FanMode, Any]:
    a = real(name, "a", a)
    checked_mode = check_mode(mode)
    nonlinearity = check_nonlinearity(nonlinearity)
    return a, checked_mode, calculate_gain(nonlinearity, a)


@builder
def kaiming_uniform(
    a: RealLike = 0.0,
    mode: FanMode = "fan_in",
    nonlinearity: Nonlinearity = "leaky_relu",
    *,
    layout: LayoutLike | None = None,
    dtype: DTypeLike | None = None,
) -> Initializer:
    r"""He uniform: :math:`\mathcal{U}[-b, b)`, :math:`b = \text{gain}\sqrt{3/\text{fan\_mode}}`.

    ``gain = calculate_gain(nonlinearity, a)``; with torch's defaults
    (``a=0``, ``"leaky_relu"``) it is :math:`\sqrt 2`.

    Args:
      a: the negative slope of the rectifier after this layer (``leaky_relu``).
      mode: ``"fan_in"`` (preserves forward variance) or ``"fan_out"``
        (backward); case-insensitive.
      nonlinearity: the nonlinearity's name, as for :func:`calculate_gain`.
      layout: which axes are in/out (default: torch's ``(out, in, *k)``;
        inside a Flax layer, the layer's).
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      ValueError: for an unknown mode (``Mode fanin not supported, please use
        one of ['fan_in', 'fan_out']``) or nonlinearity, or a 1-D shape.

    PyTorch equivalent: ``torch.nn.init.kaiming_uniform_(w, a, mode, nonlinearity)``.
    ``kaiming_uniform(a=math.sqrt(5))`` is torch's ``nn.Linear``/``ConvNd``
    default weight init (:func:`torch_linear_weight`).

    >>> import jax, jaxinit
    >>> jaxinit.kaiming_uniform(mode="fan_out")(jax.random.key(0), (64, 32, 3, 3)).shape
    (64, 32, 3, 3)
    """
    a, mode, gain = _kaiming_args("kaiming_uniform", a, mode, nonlinearity)
    return symmetric_uniform(
        "kaiming_uniform",
        {"a": a, "mode": mode, "nonlinearity": nonlinearity},
        lambda shape, lay: math.sqrt(3.0) * kaiming_std(gain, mode, shape, lay),
        layout=layout,
        dtype=dtype,
        check=needs_fans("kaiming_uniform"),
    )


@builder
def kaiming_normal(
    a: RealLike = 0.0,
    mode: FanMode = "fan_in",
    nonlinearity: Nonlinearity = "leaky_relu",
    *,
    layout: LayoutLike | None = None,
    dtype: DTypeLike | None = None,
) -> Initializer:
    r"""He normal: :math:`\mathcal{N}(0, \sigma^2)`, :math:`\sigma = \text{gain}/\sqrt{\text{fan\_mode}}`.

    **Untruncated**, as torch (``jax.nn.initializers.he_normal`` is truncated).

    Args:
      a: the negative slope of the rectifier after this layer (``leaky_relu``).
      mode: ``"fan_in"`` or ``"fan_out"``; case-insensitive.
      nonlinearity: the nonlinearity's name, as for :func:`calculate_gain`.
      layout: which axes are in/out (default: torch's ``(out, in, *k)``;
        inside a Flax layer, the layer's).
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      ValueError: for an unknown mode or nonlinearity, or a 1-D shape.

    PyTorch equivalent: ``torch.nn.init.kaiming_normal_(w, a, mode, nonlinearity)``.

    >>> import jax, jaxinit
    >>> init = jaxinit.kaiming_normal(mode="fan_out", nonlinearity="relu")
    >>> init(jax.random.key(0), (64, 32, 3, 3)).shape
    (64, 32, 3, 3)
    """
    a, mode, gain = _kaiming_args("kaiming_normal", a, mode, nonlinearity)
    return normal_std(
        "kaiming_normal",
        {"a": a, "mode": mode, "nonlinearity": nonlinearity},
        lambda shape, lay: kaiming_std(gain, mode, shape, lay),
        layout=layout,
        dtype=dtype,
        check=needs_fans("kaiming_normal"),
    )
