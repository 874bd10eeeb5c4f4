"""Leaf keys, ``fold_in(key, stable_hash(path))``, computed on the host for threefry keys.

For jax's default PRNG, threefry2x32, ``jax.random.fold_in(key, data)`` is one
Threefry-2x32 block: the key's two words encrypt the counter pair
``(0, data)`` (a 32-bit ``data`` seeded as ``(data >> 32, data & 0xFFFFFFFF)``),
and the two output words are the new key. Computing that in numpy for every
leaf at once takes microseconds and compiles nothing, where
``jax.random.fold_in`` compiles an XLA program the first time (about 0.15 s
of CPU on a 2-core machine: Threefry's 20 rounds) and is one more dispatch per
leaf. The words are the same (integer arithmetic, no rounding):
``tests/test_draw_perf_invariants.py`` checks them against
``jax.random.fold_in``. Other PRNG implementations are left to jax.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

__all__ = ["THREEFRY", "fold_in_words", "key_impl"]

THREEFRY = "threefry2x32"

# Threefry-2x32's rotation distances, alternating by groups of four rounds
# (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011;
# jax/_src/random/threefry2x32.py).
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = 0x1BD11BDA  # Threefry's key-schedule parity constant
_INJECTIONS = 5  # key injections after the first: 5 groups of 4 rounds = 20 rounds


def threefry2x32(
    key: tuple[int, int], x0: np.ndarray, x1: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Threefry-2x32 (20 rounds) of the counter pairs ``(x0, x1)`` (uint32 arrays) under ``key``."""
    schedule = (np.uint32(key[0]), np.uint32(key[1]), np.uint32(key[0] ^ key[1] ^ _PARITY))
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


def key_impl(key: jax.Array) -> str | None:
    """The PRNG implementation's name of a typed key, or ``None`` for a legacy raw key."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return str(jax.random.key_impl(key))
    return None


def fold_in_words(key: jax.Array, data: Sequence[int]) -> np.ndarray | None:
    """``jax.random.key_data(jax.random.fold_in(key, d))`` for every ``d``, as a ``(n, 2)`` uint32 array.

    ``None`` unless ``key`` is a concrete threefry2x32 key (a typed one, or a
    legacy ``uint32[2]`` key under the default threefry2x32 implementation).
    """
    impl = key_impl(key)
    default = str(jax.config.jax_default_prng_impl)  # type: ignore[attr-defined]
    if isinstance(key, jax.core.Tracer) or (impl or default) != THREEFRY:
        return None
    words: Any = np.asarray(jax.random.key_data(key) if impl is not None else key)
    if words.shape != (2,):
        return None
    counters = np.asarray(data, np.uint32)
    y0, y1 = threefry2x32((int(words[0]), int(words[1])), np.zeros_like(counters), counters)
    return np.stack([y0, y1], axis=-1)
