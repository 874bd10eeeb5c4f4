"""What the schemes share: the Initializer they return, shape checks, and sampling helpers.

Complex parts, the open (0, 1) uniform, and the torch-order views that the
layout-aware schemes compute in (every batch entry as ``(out, in, *receptive)``).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxinit._src.core import threefry
from jaxinit._src.core.dtypes import sample_dtype
from jaxinit._src.core.family import Family, draws_flat
from jaxinit._src.core.initializer import CheckShape, Initializer, Params
from jaxinit._src.core.layout import Layout, LayoutLike, as_layout, canonical_shape, torch_order

__all__ = [
    "combine",
    "is_complex",
    "make",
    "matrix_view",
    "needs_fans",
    "normal_bits",
    "normal_draw",
    "open_uniform",
    "parts",
    "random_bits",
    "uniform_bits",
    "per_entry",
    "rank_check",
    "real_dtype",
    "to_layout",
]

MAX_RANK = 64  # "2 or more" dimensions, as a finite range for the rank check


def make(
    name: str,
    hyperparams: dict[str, Any],
    family: Family,
    params: Params,
    *,
    layout: LayoutLike | None,
    dtype: DTypeLike | None,
    check: CheckShape | None = None,
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


def needs_fans(name: str) -> CheckShape:
    """The shape check of the fan-scaled schemes: 2 or more dimensions, as torch."""

    def check(shape: tuple[int, ...], layout: Layout) -> None:
        if len(shape) - len(layout.batch_axis) < 2:
            raise ValueError(
                f"{name}: Fan in and fan out can not be computed for tensor with fewer "
                f"than 2 dimensions (got shape {shape})"
            )
        layout.all_axes(len(shape))

    return check


def rank_check(name: str, ranks: tuple[int, ...], what: str) -> CheckShape:
    """A shape check: the number of non-batch dimensions is one of ``ranks``."""

    def check(shape: tuple[int, ...], layout: Layout) -> None:
        if len(shape) - len(layout.batch_axis) not in ranks:
            raise ValueError(
                f"{name}: Only tensors with {what} dimensions are supported (got shape {shape}"
                + (f" with batch axes {layout.batch_axis})" if layout.batch_axis else ")")
            )
        layout.all_axes(len(shape))

    return check


# ----------------------------------------------------------------------------
# Complex parts, the open interval


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

    Under threefry2x32 the bits are :func:`random_bits`' (flat where the
    result is known to be unsharded, N-D otherwise, so that a sharded draw is
    partitioned along any axis: the same bits either way). Other PRNGs draw
    them flat, as they always have here (their N-D bits would differ).
    """
    uint = jnp.uint64 if dtype == np.float64 else jnp.uint32
    if threefry.is_threefry(key):
        bits = random_bits(key, shape, uint)
    else:
        bits = jax.random.bits(key, (math.prod(shape),), uint).reshape(shape)
    if dtype == np.float64:
        return ((bits >> 11).astype(dtype) + 0.5) * 2.0**-53
    return ((bits >> 9).astype(dtype) + 0.5) * 2.0**-23


def random_bits(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """``jax.random.bits(key, shape, dtype)``, bit for bit; drawn flat where that is safe.

    Threefry2x32 bits are computed as elementwise arithmetic that fuses with
    what follows (:func:`jaxinit._src.core.threefry.random_bits`). Entry
    ``i`` of a draw of any shape is counter ``i`` (its row-major index), so a
    flat draw reshaped gives the same bits, and it compiles faster than an
    N-D draw, which computes each counter from N iotas. A reshaped flat draw
    cannot be partitioned along an inner axis, though: only a kernel whose
    result is known to be unsharded draws flat
    (:func:`~jaxinit._src.core.family.draws_flat`; an eager call). Other
    PRNGs are left to jax.
    """
    if len(shape) > 1 and draws_flat() and threefry.is_threefry(key):
        return threefry.random_bits(key, (math.prod(shape),), dtype).reshape(shape)
    return threefry.random_bits(key, shape, dtype)


def uniform_bits(
    key: jax.Array, shape: tuple[int, ...], dtype: Any, low: Any, high: Any
) -> jax.Array:
    """``jax.random.uniform(key, shape, dtype, low, high)``, bit for bit, compiled faster.

    The bits come from :func:`random_bits` (flat under threefry2x32), and
    become floats by jax's own steps (mantissa bits under exponent 0, minus 1,
    scaled): a small 3-D weight compiles in 0.2 s instead of 0.55 s. Other
    PRNGs, and other dtypes, are left to jax.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)) or not threefry.is_threefry(key):
        return jax.random.uniform(key, shape, dtype, low, high)
    finfo = jnp.finfo(dtype)
    uint = jnp.uint32 if finfo.bits == 32 else jnp.uint64
    bits = random_bits(key, shape, uint)
    one = np.array(1.0, dtype)
    float_bits = jax.lax.bitwise_or(
        jax.lax.shift_right_logical(bits, jnp.array(finfo.bits - finfo.nmant, uint)),
        jnp.asarray(one.view(uint), dtype=uint),
    )
    floats = jax.lax.bitcast_convert_type(float_bits, dtype) - jnp.array(1.0, dtype)
    low = jax.lax.broadcast_to_rank(jax.lax.convert_element_type(low, dtype), len(shape))
    high = jax.lax.broadcast_to_rank(jax.lax.convert_element_type(high, dtype), len(shape))
    return jax.lax.max(low, floats * (high - low) + low)


def normal_bits(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """``jax.random.normal(key, shape, dtype)`` for a real dtype, bit for bit, compiled faster.

    jax's own steps: ``sqrt(2) erfinv(u)``, ``u`` uniform on ``(-1, 1)`` (see :func:`uniform_bits`).
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)) or not threefry.is_threefry(key):
        return jax.random.normal(key, shape, dtype)
    low = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype), dtype=dtype)
    u = uniform_bits(key, shape, dtype, low, np.array(1.0, dtype))
    return jax.lax.mul(np.array(np.sqrt(2), dtype), jax.lax.erf_inv(u))


def normal_draw(key: jax.Array, mean: Any, std: Any, shape: tuple[int, ...], dtype: np.dtype):
    """N(mean, std^2); complex: each part N(mean, std^2 / 2), as torch's normal_."""
    if is_complex(dtype):
        std = std / math.sqrt(2.0)
    x = normal_bits(key, parts(shape, dtype), sample_dtype(dtype)) * std + mean
    return combine(x, dtype)


# ----------------------------------------------------------------------------
# torch-order views of the layout-aware schemes


def to_layout(x: jax.Array, shape: tuple[int, ...], layout: Layout) -> jax.Array:
    """Moves a canonical ``(batch, out, in, *receptive)`` array into ``layout``'s axis order."""
    perm = torch_order(len(shape), layout)
    x = x.reshape(tuple(shape[a] for a in perm))
    if perm == tuple(range(len(shape))):
        return x
    return jnp.transpose(x, tuple(int(i) for i in np.argsort(perm)))


def per_entry(fn: Any, key: jax.Array, batch: int) -> jax.Array:
    """``fn(key)`` for one batch entry, or stacked over ``split(key, batch)`` entries."""
    if batch == 1:
        return fn(key)[None]
    return jax.vmap(fn)(jax.random.split(key, batch))


def matrix_view(shape: tuple[int, ...], layout: Layout) -> tuple[int, int, int]:
    """``(batch, rows, cols)``: each batch entry as torch's ``(out, in * receptive)`` matrix."""
    batch, rows, inp, *receptive = canonical_shape(shape, layout)
    return batch, rows, inp * math.prod(receptive)
