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

from jaxinit._src.core.dtypes import sample_dtype
from jaxinit._src.core.family import Family
from jaxinit._src.core.initializer import CheckShape, Initializer, Params
from jaxinit._src.core.layout import Layout, LayoutLike, as_layout, canonical_shape, torch_order

__all__ = [
    "combine",
    "is_complex",
    "make",
    "matrix_view",
    "needs_fans",
    "normal_draw",
    "open_uniform",
    "parts",
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


def normal_draw(key: jax.Array, mean: Any, std: Any, shape: tuple[int, ...], dtype: np.dtype):
    """N(mean, std^2); complex: each part N(mean, std^2 / 2), as torch's normal_."""
    if is_complex(dtype):
        std = std / math.sqrt(2.0)
    x = jax.random.normal(key, parts(shape, dtype), sample_dtype(dtype)) * std + mean
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
