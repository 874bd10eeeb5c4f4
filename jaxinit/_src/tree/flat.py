"""Flat draws: the leaves of an elementwise family share one program per element count.

jax's threefry gives entry ``i`` of a draw of any shape the counter ``i``, its
row-major index, so a draw of shape ``(768, 3072)`` is the draw of
``(2359296,)`` reshaped, bit for bit, and so is one of ``(3072, 768)``. With
the partitionable threefry (jax's default since 0.5) a counter does not
depend on the size either, so the first ``n`` entries of a longer draw are
the draw of ``n`` (for ``n >= 2``: see :func:`size_buckets`). The families
whose value at an entry depends only on that entry's random bits and the
scalar parameters (``Family.elementwise``: uniform, normal, trunc_normal and
the fills, and a user's :func:`jaxinit.scheme` on them) are therefore drawn
here as one flat (1-D) program per (family, element count, dtype), reshaped
afterwards:

* fewer programs: every weight of a transformer block with the same number
  of elements shares one, and the small leaves (biases, norms: at most
  :data:`SMALL` elements) share one per family, drawn at the largest small
  size (rounded up to a power of two) and cut to length;
* cheaper programs: a flat draw has a 1-D counter where an N-D one computes
  each entry's row-major index from N iotas in 64-bit arithmetic, which
  XLA:CPU compiles 1.5-2.5x slower; and the leaf's key is folded in on the
  host (:mod:`jaxinit._src.tree.keys`), not by one more Threefry in every program.

The reshape is a program of its own, a few milliseconds to compile, that
reuses the flat buffer (donated, so nothing is copied); cutting a small leaf
out of its bucket copies it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from jaxinit._src.core.family import Kernel

__all__ = ["Program", "fit", "size_buckets"]

# Leaves of at most this many elements (256 KiB of float32: biases, norms,
# per-channel parameters) are pooled into one program per family and dtype.
SMALL = 2**16
# The most values pooling may add to one call's sampling: 2^22 values is
# ~45 ms at the ~90 Mvalues/s jax.random draws on a 2-core CPU, a fraction of
# the ~0.2 s one more sampling program takes to compile.
WASTE = 2**22


@dataclasses.dataclass(frozen=True)
class Program:
    """One flat sampling program: ``fn`` drawing ``size`` values of ``dtype``.

    ``impl`` is the PRNG implementation the key words are wrapped in (``None``:
    a legacy raw key; unused by the fills).
    """

    fn: Kernel
    size: int
    dtype: np.dtype
    impl: str | None
    random: bool

    def lower(self, key_words: Any, params: Sequence[Any]) -> Any:
        return _draw.lower(
            key_words if self.random else None,
            *params,
            fn=self.fn,
            size=self.size,
            dtype=self.dtype,
            impl=self.impl,
        )

    def __call__(self, key_words: Any, params: Sequence[Any]) -> jax.Array:
        return _draw(
            key_words if self.random else None,
            *params,
            fn=self.fn,
            size=self.size,
            dtype=self.dtype,
            impl=self.impl,
        )


@functools.partial(jax.jit, static_argnames=("fn", "size", "dtype", "impl"))
def _draw(key_words, *params, fn, size, dtype, impl):
    """``fn``'s draw of ``(size,)`` values, keyed by the leaf key's words."""
    key = key_words
    if key_words is not None and impl is not None:
        key = jax.random.wrap_key_data(key_words, impl=impl)
    return fn(key, *params, shape=(size,), dtype=dtype, layout=None, out_sharding=None)


@functools.partial(jax.jit, static_argnames=("shape",), donate_argnums=0)
def _reshape(flat: jax.Array, *, shape: tuple[int, ...]) -> jax.Array:
    return flat.reshape(shape)


@functools.partial(jax.jit, static_argnames=("shape",))
def _cut(flat: jax.Array, *, shape: tuple[int, ...]) -> jax.Array:
    return flat[: math.prod(shape)].reshape(shape)


def fit(
    flat: jax.Array | jax.ShapeDtypeStruct, shape: tuple[int, ...], *, lower: bool = False
) -> Any:
    """The leaf of ``shape`` from its flat draw (the first ``prod(shape)`` values).

    ``lower=True`` returns the lowered program instead (``None`` if no program
    is needed), to compile it ahead of time.
    """
    if flat.shape == shape:
        return None if lower else flat
    fn = _reshape if flat.shape[0] == math.prod(shape) else _cut
    return fn.lower(flat, shape=shape) if lower else fn(flat, shape=shape)


def size_buckets(sizes: Sequence[int], pool: bool) -> dict[int, int]:
    """The flat draw size for each leaf size (one entry per leaf) of one (family, dtype).

    A large leaf (over :data:`SMALL` elements) is drawn at its own size. With
    ``pool`` (a random family under the partitionable threefry), the small
    ones are drawn from few programs: largest first, a size opens a bucket at
    its size rounded up to a power of two, and the smaller sizes join it while
    the values drawn beyond what their leaves need stay under :data:`WASTE`.

    A one-element leaf is drawn at size one: XLA folds the broadcasts of a
    one-element program into constants and compiles its float math
    differently (normal's ``erf_inv`` came out 1 ulp apart in a quarter of
    the keys), so only a one-element draw gives its bits.
    """
    counts: dict[int, int] = {}
    for n in sizes:
        counts[n] = counts.get(n, 0) + 1
    out = {n: n for n in counts if n > SMALL or n == 1 or not pool}
    bucket, waste = 0, 0
    for n in sorted((n for n in counts if n not in out), reverse=True):
        extra = counts[n] * (bucket - n)
        if not bucket or waste + extra > WASTE:
            bucket = 1 << (n - 1).bit_length()
            waste, extra = 0, counts[n] * (bucket - n)
        out[n] = bucket
        waste += extra
    return out
