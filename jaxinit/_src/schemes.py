"""The torch.nn.init schemes as builders of jit-compiled JAX initializers.

Each builder validates its hyperparameters when called (with torch's words
where torch has them) and returns an :class:`~jaxinit.Initializer`. Shape
arithmetic (fans, bounds) happens in Python; sampling happens in the shared
kernels of :mod:`jaxinit._src.sampling`, with the hyperparameters traced.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxinit._src import sampling
from jaxinit._src.core import Initializer, builder, real, sample_dtype
from jaxinit._src.gain import calculate_gain
from jaxinit._src.layout import (
    Layout,
    LayoutLike,
    as_layout,
    calculate_fan_in_and_fan_out,
    check_mode,
)

__all__ = [
    "constant",
    "dirac",
    "eye",
    "kaiming_normal",
    "kaiming_uniform",
    "normal",
    "ones",
    "orthogonal",
    "sparse",
    "trunc_normal",
    "uniform",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]


def _layout(layout: LayoutLike | None) -> Layout | None:
    return None if layout is None else as_layout(layout)


def _make(
    name: str,
    hyperparams: dict[str, Any],
    prepare,
    kern,
    *,
    layout,
    dtype,
    check_shape=None,
    random=True,
    complex_ok=True,
    structured=False,
) -> Initializer:
    return Initializer(
        name=name,
        hyperparams=hyperparams,
        _prepare=prepare,
        _kernel=kern,
        _check_shape=check_shape,
        _random=random,
        _complex_ok=complex_ok,
        _structured=structured,
        layout=_layout(layout),
        dtype=dtype,
    )


def _needs_2d_or_more(name: str):
    def check(shape: tuple[int, ...], layout: Layout) -> None:
        if len(shape) < 2:
            raise ValueError(
                f"{name}: Fan in and fan out can not be computed for tensor with fewer "
                f"than 2 dimensions (got shape {shape})"
            )
        layout.axes(len(shape))

    return check


# ----------------------------------------------------------------------------
# Plain distributions


@builder
def uniform(
    a: float = 0.0, b: float = 1.0, *, layout: LayoutLike | None = None, dtype: Any = None
) -> Initializer:
    r"""Fills with values drawn from :math:`\mathcal{U}(a, b)`.

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

    PyTorch equivalent: ``torch.nn.init.uniform_(w, a, b)``. Unlike
    ``jax.nn.initializers.uniform(scale)``, which draws from ``[0, scale)``,
    this takes torch's two bounds. Complex dtypes draw both parts from
    :math:`\mathcal{U}(a, b)`.

    >>> import jax, jaxinit
    >>> jaxinit.uniform(-1.0, 1.0)(jax.random.key(0), (2, 3))  # doctest: +SKIP
    """
    a = real("uniform", "a", a)
    b = real("uniform", "b", b)
    if a > b:
        raise ValueError(
            f"uniform_ expects to return a [from, to) range, but found from={a} > to={b}"
        )
    return _make(
        "uniform",
        {"a": a, "b": b},
        lambda shape, lay, dt: _uniform_bounds(a, b, dt),
        sampling.uniform_kernel,
        layout=layout,
        dtype=dtype,
    )


def _uniform_bounds(low: float, high: float, dt: np.dtype) -> tuple[float, float]:
    """torch's ``check_uniform_bounds``, where breaking it would give inf or nan.

    Bounds beyond the dtype's range are rejected, with torch's words. (torch
    also rejects ``high - low`` beyond the dtype's range; 16-bit floats are
    sampled in float32 here, so only the sampling dtype's range matters.)
    """
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
def normal(
    mean: float = 0.0, std: float = 1.0, *, layout: LayoutLike | None = None, dtype: Any = None
) -> Initializer:
    r"""Fills with values drawn from :math:`\mathcal{N}(\text{mean}, \text{std}^2)`.

    Args:
      mean: the mean.
      std: the standard deviation (``>= 0``).
      layout: accepted for uniformity; it does not affect this scheme.
      dtype: the default dtype of the result.

    Raises:
      ValueError: if ``std < 0`` (``normal expects std >= 0.0, ...``).

    PyTorch equivalent: ``torch.nn.init.normal_(w, mean, std)``. Complex dtypes
    draw each part from :math:`\mathcal{N}(\text{mean}, \text{std}^2/2)`, as torch.

    >>> import jax, jaxinit
    >>> x = jaxinit.normal(std=0.02)(jax.random.key(0), (768, 768))
    >>> x.shape, x.dtype
    ((768, 768), dtype('float32'))
    """
    mean = real("normal", "mean", mean)
    std = real("normal", "std", std)
    if std < 0:
        raise ValueError(f"normal expects std >= 0.0, but found std {std}")
    return _make(
        "normal",
        {"mean": mean, "std": std},
        lambda shape, lay, dt: (mean, std),
        sampling.normal_kernel,
        layout=layout,
        dtype=dtype,
    )


_TRUNC_CDF_TAIL = 2.0  # torch warns when the mean is more than 2 std outside [a, b]


@builder
def trunc_normal(
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    *,
    layout: LayoutLike | None = None,
    dtype: Any = None,
) -> Initializer:
    r"""Fills with :math:`\mathcal{N}(\text{mean}, \text{std}^2)` truncated to :math:`[a, b]`.

    The bounds are **absolute** values, as in torch: ``trunc_normal(std=0.02)``
    cuts at :math:`\pm 2`, i.e. :math:`\pm 100` std, so nothing is cut. This
    differs from ``jax.nn.initializers.truncated_normal``, whose bounds are in
    units of std (and which rescales nothing either). Sampling inverts the
    normal CDF, so far-tail intervals are exact too.

    Args:
      mean: the mean of the untruncated normal.
      std: its standard deviation (``> 0``).
      a: the lower bound (absolute).
      b: the upper bound (absolute, ``> a``).
      layout: accepted for uniformity; it does not affect this scheme.
      dtype: the default dtype of the result (real only, as torch).

    Raises:
      ValueError: if ``std <= 0`` or ``a >= b``.

    PyTorch equivalent: ``torch.nn.init.trunc_normal_(w, mean, std, a, b)``.

    >>> import jax, jaxinit
    >>> x = jaxinit.trunc_normal(std=1.0, a=-0.5, b=0.5)(jax.random.key(0), (1000,))
    >>> bool(x.min() >= -0.5), bool(x.max() <= 0.5)
    (True, True)
    """
    mean = real("trunc_normal", "mean", mean)
    std = real("trunc_normal", "std", std)
    a = real("trunc_normal", "a", a)
    b = real("trunc_normal", "b", b)
    if std <= 0:
        raise ValueError(f"trunc_normal: std must be > 0, got {std}")
    if a >= b:
        raise ValueError(f"trunc_normal: a must be < b, got a={a}, b={b}")
    if mean < a - _TRUNC_CDF_TAIL * std or mean > b + _TRUNC_CDF_TAIL * std:
        warnings.warn(
            "mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
            "The distribution of values may be incorrect.",
            stacklevel=2,
        )
    lower, upper = (a - mean) / std, (b - mean) / std
    # Reflect so the interval leans left, where the normal CDF is most precise.
    sign = -1.0 if lower + upper > 0 else 1.0
    lower, upper = sorted((sign * lower, sign * upper))
    args = (mean, std, lower, upper, a, b, sign)
    return _make(
        "trunc_normal",
        {"mean": mean, "std": std, "a": a, "b": b},
        lambda shape, lay, dt: args,
        sampling.trunc_normal_kernel,
        layout=layout,
        dtype=dtype,
        complex_ok=False,
    )


@builder
def constant(val: float, *, layout: LayoutLike | None = None, dtype: Any = None) -> Initializer:
    """Fills with the value ``val``.

    Args:
      val: the value, converted to the target dtype as torch converts it
        (16-bit floats through float32, so bit for bit).
      layout: accepted for uniformity; it does not affect this scheme.
      dtype: the default dtype of the result.

    Raises:
      ValueError: at call time, if ``val`` is beyond the dtype's finite range
        (torch: ``value cannot be converted to type c10::Half without overflow``).

    PyTorch equivalent: ``torch.nn.init.constant_(w, val)``; bit for bit.

    >>> import jax, jaxinit
    >>> jaxinit.constant(0.5)(None, (2, 2))
    Array([[0.5, 0.5],
           [0.5, 0.5]], dtype=float32)
    """
    val = real("constant", "val", val)
    return _constant("constant", {"val": val}, val, layout, dtype)


def _constant(name: str, hyperparams: dict[str, Any], val: float, layout, dtype) -> Initializer:
    def prepare(shape: tuple[int, ...], lay: Layout, dt: np.dtype) -> tuple[Any, ...]:
        finfo = jnp.finfo(dt)  # of the real part, for complex dtypes
        if abs(val) > float(finfo.max):
            raise ValueError(
                f"{name}: value {val} cannot be converted to type {dt} without overflow"
            )
        # As torch's fill_: 16-bit floats are converted through float32
        # (c10::Half(float(val))), which can round differently from a direct
        # float64 -> float16 conversion (1 + 2**-11 + 2**-40 -> 1.0, not 1.0009765625).
        host = np.float32(val) if np.dtype(finfo.dtype).itemsize < 4 else val
        return (np.asarray(host, dtype=dt),)

    return _make(
        name,
        hyperparams,
        prepare,
        sampling.constant_kernel,
        layout=layout,
        dtype=dtype,
        random=False,
    )


@builder
def ones(*, layout: LayoutLike | None = None, dtype: Any = None) -> Initializer:
    """Fills with ones. PyTorch equivalent: ``torch.nn.init.ones_(w)``.

    >>> import jaxinit
    >>> jaxinit.ones()(None, (3,))
    Array([1., 1., 1.], dtype=float32)
    """
    return _constant("ones", {}, 1.0, layout, dtype)


@builder
def zeros(*, layout: LayoutLike | None = None, dtype: Any = None) -> Initializer:
    """Fills with zeros. PyTorch equivalent: ``torch.nn.init.zeros_(w)``.

    >>> import jaxinit
    >>> jaxinit.zeros()(None, (3,))
    Array([0., 0., 0.], dtype=float32)
    """
    return _constant("zeros", {}, 0.0, layout, dtype)


# ----------------------------------------------------------------------------
# Structured schemes


def _check_eye(shape: tuple[int, ...], layout: Layout) -> None:
    if len(shape) != 2:
        raise ValueError(f"eye: Only tensors with 2 dimensions are supported (got shape {shape})")
    layout.axes(2)


@builder
def eye(*, layout: LayoutLike | None = None, dtype: Any = None) -> Initializer:
    """Fills a 2-D weight with the identity: ``w[o, i] = (o == i)``.

    Preserves the identity of the inputs in a linear layer, as many as
    possible. Layout-aware: in the flax layout ``(in, out)`` the result is the
    transpose of torch's ``eye_`` on ``(out, in)``.

    Raises:
      ValueError: if the shape is not 2-D.

    PyTorch equivalent: ``torch.nn.init.eye_(w)``; bit for bit.

    >>> import jaxinit
    >>> jaxinit.eye()(None, (2, 3))
    Array([[1., 0., 0.],
           [0., 1., 0.]], dtype=float32)
    """
    return _make(
        "eye",
        {},
        lambda shape, lay, dt: (),
        sampling.eye_kernel,
        layout=layout,
        dtype=dtype,
        check_shape=_check_eye,
        random=False,
        structured=True,
    )


@builder
def dirac(groups: int = 1, *, layout: LayoutLike | None = None, dtype: Any = None) -> Initializer:
    """Fills a 3-, 4- or 5-D conv weight with the Dirac delta.

    Preserves the identity of the inputs in a convolution, as many channels as
    possible, per group: ``w[g*opg + d, d, k1//2, k2//2, ...] = 1`` for each
    group ``g`` and ``d < min(opg, in)``, ``opg = out // groups``.
    Layout-aware: in the flax layout ``(*k, in, out)`` the result is torch's
    moved to that layout.

    Args:
      groups: the number of conv groups (``>= 1``, dividing the out channels).

    Raises:
      ValueError: for ``groups < 1``, a shape that is not 3-5-D, or out
        channels not divisible by ``groups``.

    PyTorch equivalent: ``torch.nn.init.dirac_(w, groups)``; bit for bit.

    >>> import jaxinit
    >>> jaxinit.dirac()(None, (2, 2, 3))
    Array([[[0., 1., 0.],
            [0., 0., 0.]],
    <BLANKLINE>
           [[0., 0., 0.],
            [0., 1., 0.]]], dtype=float32)
    """
    if isinstance(groups, bool) or not isinstance(groups, int | np.integer):
        raise TypeError(f"dirac: groups must be an int, got {groups!r}")
    groups = int(groups)
    if groups < 1:
        raise ValueError(f"dirac: groups must be >= 1, got {groups}")

    def check(shape: tuple[int, ...], lay: Layout) -> None:
        if len(shape) not in (3, 4, 5):
            raise ValueError(
                f"dirac: Only tensors with 3, 4, or 5 dimensions are supported (got shape {shape})"
            )
        out = sampling.canonical_shape(shape, lay)[0]
        if out % groups != 0:
            raise ValueError(
                f"dirac: dim 0 must be divisible by groups (out channels {out}, groups {groups})"
            )

    def prepare(shape: tuple[int, ...], lay: Layout, dt: np.dtype) -> tuple[Any, ...]:
        return (np.int32(sampling.canonical_shape(shape, lay)[0] // groups),)

    return _make(
        "dirac",
        {"groups": groups},
        prepare,
        sampling.dirac_kernel,
        layout=layout,
        dtype=dtype,
        check_shape=check,
        random=False,
        structured=True,
    )


# ----------------------------------------------------------------------------
# Fan-scaled schemes


def _xavier_std(gain: float, shape: tuple[int, ...], layout: Layout, packed: int = 1) -> float:
    """torch's xavier std; ``packed`` projections share one weight (fan_out times ``packed``)."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape, layout)
    return gain * math.sqrt(2.0 / float(fan_in + packed * fan_out))


def xavier_uniform_packed(
    name: str, hyperparams: dict[str, Any], gain: float, packed: int, layout: Any, dtype: Any
) -> Initializer:
    """``xavier_uniform`` of one of ``packed`` projections stacked along the output axis."""

    def prepare(shape: tuple[int, ...], lay: Layout, dt: np.dtype) -> tuple[Any, ...]:
        bound = math.sqrt(3.0) * _xavier_std(gain, shape, lay, packed)
        return _uniform_bounds(-bound, bound, dt)

    return _make(
        name,
        hyperparams,
        prepare,
        sampling.uniform_kernel,
        layout=layout,
        dtype=dtype,
        check_shape=_needs_2d_or_more(name),
    )


def _gain(name: str, gain: Any) -> float:
    gain = real(name, "gain", gain)
    if gain < 0:
        raise ValueError(f"{name}: gain must be >= 0, got {gain}")
    return gain


@builder
def xavier_uniform(
    gain: float = 1.0, *, layout: LayoutLike | None = None, dtype: Any = None
) -> Initializer:
    r"""Glorot uniform: :math:`\mathcal{U}(-b, b)`, :math:`b = \text{gain}\sqrt{6/(\text{fan\_in}+\text{fan\_out})}`.

    Args:
      gain: a scaling factor (``>= 0``).
      layout: which axes are in/out (default: torch's ``(out, in, *k)``).

    Raises:
      ValueError: for a negative gain or a shape with fewer than 2 dimensions.

    PyTorch equivalent: ``torch.nn.init.xavier_uniform_(w, gain)``.
    ``jax.nn.initializers.glorot_uniform`` is the same with ``gain=1`` but
    defaults to the flax layout.

    >>> import jax, jaxinit
    >>> w = jaxinit.xavier_uniform()(jax.random.key(0), (64, 32))
    >>> bool(abs(w).max() <= (6 / 96) ** 0.5)
    True
    """
    gain = _gain("xavier_uniform", gain)
    return xavier_uniform_packed("xavier_uniform", {"gain": gain}, gain, 1, layout, dtype)


@builder
def xavier_normal(
    gain: float = 1.0, *, layout: LayoutLike | None = None, dtype: Any = None
) -> Initializer:
    r"""Glorot normal: :math:`\mathcal{N}(0, \sigma^2)`, :math:`\sigma = \text{gain}\sqrt{2/(\text{fan\_in}+\text{fan\_out})}`.

    Untruncated, as torch (``jax.nn.initializers.glorot_normal`` is truncated).

    Args:
      gain: a scaling factor (``>= 0``).
      layout: which axes are in/out (default: torch's ``(out, in, *k)``).

    PyTorch equivalent: ``torch.nn.init.xavier_normal_(w, gain)``.

    >>> import jax, jaxinit
    >>> jaxinit.xavier_normal()(jax.random.key(0), (64, 32)).shape
    (64, 32)
    """
    gain = _gain("xavier_normal", gain)

    def prepare(shape: tuple[int, ...], lay: Layout, dt: np.dtype) -> tuple[Any, ...]:
        return (0.0, _xavier_std(gain, shape, lay))

    return _make(
        "xavier_normal",
        {"gain": gain},
        prepare,
        sampling.normal_kernel,
        layout=layout,
        dtype=dtype,
        check_shape=_needs_2d_or_more("xavier_normal"),
    )


def _kaiming_std(name: str, a: float, mode: str, nonlinearity: str):
    gain = calculate_gain(nonlinearity, a)

    def std(shape: tuple[int, ...], layout: Layout) -> float:
        fan_in, fan_out = calculate_fan_in_and_fan_out(shape, layout)
        return gain / math.sqrt(fan_in if mode == "fan_in" else fan_out)

    return std


def _kaiming_args(name: str, a: Any, mode: Any, nonlinearity: Any) -> tuple[float, str, str]:
    a = real(name, "a", a)
    mode = check_mode(mode)
    if not isinstance(nonlinearity, str):
        raise ValueError(f"Unsupported nonlinearity {nonlinearity}")
    calculate_gain(nonlinearity, a)  # raises for an unknown nonlinearity
    return a, mode, nonlinearity


@builder
def kaiming_uniform(
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    layout: LayoutLike | None = None,
    dtype: Any = None,
) -> Initializer:
    r"""He uniform: :math:`\mathcal{U}(-b, b)`, :math:`b = \text{gain}\sqrt{3/\text{fan\_mode}}`.

    ``gain = calculate_gain(nonlinearity, a)``; with torch's defaults
    (``a=0``, ``"leaky_relu"``) it is :math:`\sqrt 2`.

    Args:
      a: the negative slope of the rectifier after this layer (``leaky_relu``).
      mode: ``"fan_in"`` (preserves forward variance) or ``"fan_out"``
        (backward); case-insensitive.
      nonlinearity: the nonlinearity's name, as for :func:`calculate_gain`.
      layout: which axes are in/out (default: torch's ``(out, in, *k)``).

    Raises:
      ValueError: for an unknown mode (``Mode fanin not supported, please use
        one of ['fan_in', 'fan_out']``) or nonlinearity, or a 1-D shape.

    PyTorch equivalent: ``torch.nn.init.kaiming_uniform_(w, a, mode, nonlinearity)``.
    ``kaiming_uniform(a=math.sqrt(5))`` is torch's ``nn.Linear``/``ConvNd``
    default weight init.

    >>> import jax, jaxinit
    >>> jaxinit.kaiming_uniform(mode="fan_out")(jax.random.key(0), (64, 32, 3, 3)).shape
    (64, 32, 3, 3)
    """
    a, mode, nonlinearity = _kaiming_args("kaiming_uniform", a, mode, nonlinearity)
    std = _kaiming_std("kaiming_uniform", a, mode, nonlinearity)

    def prepare(shape: tuple[int, ...], lay: Layout, dt: np.dtype) -> tuple[Any, ...]:
        bound = math.sqrt(3.0) * std(shape, lay)
        return _uniform_bounds(-bound, bound, dt)

    return _make(
        "kaiming_uniform",
        {"a": a, "mode": mode, "nonlinearity": nonlinearity},
        prepare,
        sampling.uniform_kernel,
        layout=layout,
        dtype=dtype,
        check_shape=_needs_2d_or_more("kaiming_uniform"),
    )


@builder
def kaiming_normal(
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    *,
    layout: LayoutLike | None = None,
    dtype: Any = None,
) -> Initializer:
    r"""He normal: :math:`\mathcal{N}(0, \sigma^2)`, :math:`\sigma = \text{gain}/\sqrt{\text{fan\_mode}}`.

    Untruncated, as torch (``jax.nn.initializers.he_normal`` is truncated).

    Args:
      a: the negative slope of the rectifier after this layer (``leaky_relu``).
      mode: ``"fan_in"`` or ``"fan_out"``; case-insensitive.
      nonlinearity: the nonlinearity's name, as for :func:`calculate_gain`.
      layout: which axes are in/out (default: torch's ``(out, in, *k)``).

    Raises:
      ValueError: for an unknown mode or nonlinearity, or a 1-D shape.

    PyTorch equivalent: ``torch.nn.init.kaiming_normal_(w, a, mode, nonlinearity)``.

    >>> import jax, jaxinit
    >>> init = jaxinit.kaiming_normal(mode="fan_out", nonlinearity="relu")
    >>> init(jax.random.key(0), (64, 32, 3, 3)).shape
    (64, 32, 3, 3)
    """
    a, mode, nonlinearity = _kaiming_args("kaiming_normal", a, mode, nonlinearity)
    std = _kaiming_std("kaiming_normal", a, mode, nonlinearity)
    return _make(
        "kaiming_normal",
        {"a": a, "mode": mode, "nonlinearity": nonlinearity},
        lambda shape, lay, dt: (0.0, std(shape, lay)),
        sampling.normal_kernel,
        layout=layout,
        dtype=dtype,
        check_shape=_needs_2d_or_more("kaiming_normal"),
    )


@builder
def orthogonal(
    gain: float = 1.0, *, layout: LayoutLike | None = None, dtype: Any = None
) -> Initializer:
    r"""A (semi-)orthogonal matrix, times ``gain``.

    As torch: the weight is viewed as ``rows = out`` by ``cols = in * prod(k)``;
    a standard normal matrix of that shape (transposed if wide) is QR-factored
    and ``Q`` is sign-fixed by ``sign(diag(R))``, so the result is Haar
    distributed. Rows are orthonormal if ``rows <= cols``, else columns.
    Layout-aware; half precision is computed in float32 (unlike
    ``jax.nn.initializers.orthogonal``, which fails in bfloat16).

    Args:
      gain: the scaling factor.
      layout: which axes are in/out (default: torch's ``(out, in, *k)``).

    Raises:
      ValueError: for fewer than 2 dimensions.
      TypeError: for complex dtypes (torch does not support them).

    PyTorch equivalent: ``torch.nn.init.orthogonal_(w, gain)``.

    >>> import jax, jax.numpy as jnp, jaxinit
    >>> q = jaxinit.orthogonal()(jax.random.key(0), (4, 8))
    >>> bool(jnp.allclose(q @ q.T, jnp.eye(4), atol=1e-5))
    True
    """
    gain = real("orthogonal", "gain", gain)

    def check(shape: tuple[int, ...], lay: Layout) -> None:
        if len(shape) < 2:
            raise ValueError(
                f"orthogonal: Only tensors with 2 or more dimensions are supported (got shape {shape})"
            )
        lay.axes(len(shape))

    return _make(
        "orthogonal",
        {"gain": gain},
        lambda shape, lay, dt: (gain,),
        sampling.orthogonal_kernel,
        layout=layout,
        dtype=dtype,
        check_shape=check,
        complex_ok=False,
        structured=True,
    )


@builder
def sparse(
    sparsity: float, std: float = 0.01, *, layout: LayoutLike | None = None, dtype: Any = None
) -> Initializer:
    r"""A sparse matrix: :math:`\mathcal{N}(0, \text{std}^2)` with exactly
    ``ceil(sparsity * rows)`` zeros in every column.

    ``rows`` is the output axis (torch's dim 0): every *input* unit gets the
    same number of zeroed connections, at uniformly random positions. In the
    flax layout ``(in, out)`` that is ``ceil(sparsity * out)`` zeros per row.
    The positions come from Floyd's sampling algorithm, vectorized over columns (no sort).

    Args:
      sparsity: the fraction of each column to zero, in ``[0, 1]``.
      std: the standard deviation of the non-zero values (``>= 0``).
      layout: which axis is in/out (default: torch's ``(out, in)``).

    Raises:
      ValueError: for ``sparsity`` outside ``[0, 1]``, a negative ``std``, or
        a shape that is not 2-D.

    PyTorch equivalent: ``torch.nn.init.sparse_(w, sparsity, std)``.

    >>> import jax, jaxinit
    >>> w = jaxinit.sparse(0.5)(jax.random.key(0), (10, 4))
    >>> (w == 0).sum(axis=0).tolist()
    [5, 5, 5, 5]
    """
    sparsity = real("sparse", "sparsity", sparsity)
    std = real("sparse", "std", std)
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparse: sparsity must be in [0, 1], got {sparsity}")
    if std < 0:
        raise ValueError(f"sparse: std must be >= 0, got {std}")

    def check(shape: tuple[int, ...], lay: Layout) -> None:
        if len(shape) != 2:
            raise ValueError(
                f"sparse: Only tensors with 2 dimensions are supported (got shape {shape})"
            )
        lay.axes(2)

    def prepare(shape: tuple[int, ...], lay: Layout, dt: np.dtype) -> tuple[Any, ...]:
        rows = sampling.canonical_shape(shape, lay)[0]
        return (std, np.int32(math.ceil(sparsity * rows)))  # torch's exact count

    return _make(
        "sparse",
        {"sparsity": sparsity, "std": std},
        prepare,
        sampling.sparse_kernel,
        layout=layout,
        dtype=dtype,
        check_shape=check,
        structured=True,
    )
