"""Threefry-2x32, jax's default PRNG, written out as elementwise integer arithmetic.

:func:`block` is the Threefry-2x32 block function (20 rounds; Salmon et al.,
"Parallel random numbers: as easy as 1, 2, 3", SC 2011, as
``jax/_src/random/threefry2x32.py`` computes it) on numpy or jax uint32
arrays alike: the tree tools fold leaf keys with it in numpy on the host
(:mod:`jaxinit._src.tree.keys`), and every scheme draws its random bits with
it (:func:`random_bits`).

Why jaxinit does not call ``jax.random.bits`` for threefry keys: on CPU, jax
lowers its threefry primitive as a rolled loop (5 iterations of 4 rounds)
over whole arrays, so each iteration writes and reads back two uint32 arrays
the size of the draw, and a large draw is bound by memory traffic. The same
20 rounds written out fuse, with the counters and the conversion to floats,
into one XLA loop that keeps its state in registers: 134M uniform float32
values take 0.29 s instead of 1.38 s on a 2-core CPU, for the same compile
time. On other platforms jax already lowers the rounds unrolled (as an
out-of-line function; on CUDA optionally as its own kernel), so there this
is the same computation, inlined where XLA can fuse it with what follows
(not timed here: no accelerator was available). The arithmetic is on
integers, so the bits are jax's exactly;
``tests/test_threefry.py`` checks them against ``jax.random.bits`` for every
bit width, flat and N-D shapes, typed and legacy keys, under ``vmap`` and
``jit``. Where jax's own algorithm is not this one (the non-partitionable
threefry of ``jax_threefry_partitionable=False``, draws of ``2**32`` values
or more, another PRNG implementation), :func:`random_bits` calls jax.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np
from jax import lax

__all__ = ["THREEFRY", "block", "is_threefry", "key_words", "random_bits"]

# Rotation distances, alternating by groups of four rounds.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA  # the key schedule's parity constant
_INJECTIONS = 5  # key injections after the first: 5 groups of 4 rounds = 20 rounds
THREEFRY = "threefry2x32"  # the name of jax's default PRNG implementation
_MAX_COUNT = 2**32  # counters whose high word is 0: a uint32 row-major index
_UINT = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}


def block(k0: Any, k1: Any, x0: Any, x1: Any) -> tuple[Any, Any]:
    """Threefry-2x32 of the counter pairs ``(x0, x1)`` under the key ``(k0, k1)``.

    All four are uint32 numpy or jax arrays that broadcast together; uint32
    arithmetic wraps in both (numpy warns when a *scalar* wraps, so pass
    numpy values as arrays).
    """
    schedule = (k0, k1, k0 ^ k1 ^ np.uint32(_PARITY))
    x0 = x0 + schedule[0]
    x1 = x1 + schedule[1]
    for i in range(_INJECTIONS):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = (x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r))
            x1 = x0 ^ x1
        x0 = x0 + schedule[(i + 1) % 3]
        x1 = x1 + schedule[(i + 2) % 3]
        x1 = x1 + np.uint32(i + 1)
    return x0, x1


def is_threefry(key: jax.Array) -> bool:
    """Whether ``key`` draws with threefry2x32 (a typed key, or a raw one under the default)."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return str(jax.random.key_impl(key)) == THREEFRY
    return str(jax.config.jax_default_prng_impl) == THREEFRY  # type: ignore[attr-defined]


def key_words(key: jax.Array) -> jax.Array | None:
    """A single threefry2x32 key's ``uint32[2]`` data, or ``None`` for another PRNG or a batch of keys."""
    if not is_threefry(key):
        return None
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    words = jax.random.key_data(key) if typed else key
    return words if words.shape == (2,) else None  # jax.random.bits rejects a batch itself


def _row_major_index(shape: tuple[int, ...]) -> jax.Array:
    """Each entry's row-major index as uint32 (the shape has fewer than 2**32 entries).

    A sum of per-axis iotas, so that a draw under ``out_sharding`` is
    partitioned along any axis, as jax's own counters are.
    """
    strides = [math.prod(shape[d + 1 :]) for d in range(len(shape))]
    index: jax.Array | None = None
    for axis, stride in enumerate(strides):
        if shape[axis] == 1:
            continue
        term = lax.broadcasted_iota(np.uint32, shape, axis)
        if stride != 1:
            term = term * np.uint32(stride)
        index = term if index is None else index + term
    return lax.full(shape, np.uint32(0)) if index is None else index


def random_bits(key: jax.Array, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """``jax.random.bits(key, shape, dtype)``, bit for bit, as one fusible computation.

    Under the partitionable threefry (jax's default), entry ``i`` of a draw
    is the Threefry-2x32 block of the counter pair ``(0, i)`` for its
    row-major index ``i``: the XOR of its two words for 8, 16 and 32 bits
    (truncated below 32), both words for 64 bits (the first one high).
    """
    dtype = np.dtype(dtype)
    words = key_words(key)
    width = dtype.itemsize * 8
    if (
        words is None
        or dtype.kind != "u"
        or width not in _UINT
        or not jax.config.jax_threefry_partitionable  # type: ignore[attr-defined]
        or math.prod(shape) >= _MAX_COUNT
    ):
        return jax.random.bits(key, shape, dtype)
    b0, b1 = block(words[0], words[1], np.uint32(0), _row_major_index(shape))
    if width == 64:
        hi = lax.convert_element_type(b0, np.uint64)
        return lax.shift_left(hi, np.uint64(32)) | lax.convert_element_type(b1, np.uint64)
    bits = b0 ^ b1
    return bits if width == 32 else lax.convert_element_type(bits, _UINT[width])
