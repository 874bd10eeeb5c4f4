"""Leaf keys: ``fold_in(fold_in(key, hi), lo)`` of a 64-bit path hash, on the host for threefry.

Every re-initialized leaf gets a key derived from the base key and its path
alone: ``(hi, lo)`` are the two 32-bit halves of :func:`stable_hash` (the
first 8 bytes of the path's sha256), folded in one after the other
(:func:`leaf_key`). 64 bits make two paths of one model sharing a key
vanishingly unlikely (about ``n**2 / 2**65`` for ``n`` leaves: 3e-12 for
10^4 leaves, where a 31-bit hash gave 2%), and :func:`path_words` refuses
the remaining case outright.

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

import hashlib
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from jaxinit._src.core.threefry import THREEFRY, block, key_words

__all__ = [
    "THREEFRY",
    "fold_in_words",
    "key_impl",
    "leaf_key",
    "path_words",
    "stable_hash",
    "words_key",
]


def stable_hash(path: str) -> int:
    """A process-independent 64-bit hash of a ``/``-joined path.

    The first eight bytes of ``sha256(path.encode("utf-8"))``, big-endian.
    Unlike Python's ``hash``, it does not change between processes. A leaf at
    ``path`` is drawn with ``fold_in(fold_in(key, h >> 32), h & 0xFFFFFFFF)``.

    >>> import hashlib, jaxinit
    >>> digest = hashlib.sha256(b"params/Dense_0/kernel").digest()
    >>> jaxinit.stable_hash("params/Dense_0/kernel") == int.from_bytes(digest[:8], "big")
    True
    """
    digest = hashlib.sha256(path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def path_words(paths: Sequence[str]) -> np.ndarray:
    """The ``(hi, lo)`` words of each path's hash, a ``(n, 2)`` uint32 array; distinct or an error."""
    hashes = [stable_hash(p) for p in paths]
    if len(set(hashes)) != len(hashes):
        seen: dict[int, str] = {}
        for p, h in zip(paths, hashes):
            if h in seen and seen[h] != p:
                raise ValueError(
                    f"the paths {seen[h]!r} and {p!r} have the same 64-bit hash, so they would "
                    "be drawn with the same key; rename one of them"
                )
            seen[h] = p
    words = np.array([(h >> 32, h & 0xFFFFFFFF) for h in hashes], np.uint32)
    return words.reshape(len(hashes), 2)


def words_key(key: jax.Array, words: Any) -> jax.Array:
    """The key of the leaf whose path hash has the words ``(hi, lo)``."""
    return jax.random.fold_in(jax.random.fold_in(key, words[0]), words[1])


def leaf_key(key: jax.Array, path: str) -> jax.Array:
    """The key the tree tools draw the leaf at ``path`` with, from the base ``key``.

    ``fold_in(fold_in(key, h >> 32), h & 0xFFFFFFFF)`` with ``h =
    stable_hash(path)``: a leaf's values depend on the base key and its own
    path only, so adding a layer or changing a rule never changes another leaf.

    Args:
      key: the base key given to ``reinit``/``init`` (for a dict of keys, its
        ``"params"`` entry).
      path: the leaf's ``/``-joined path, as ``explain`` shows it.

    Returns:
      The leaf's key.

    >>> import jax, jaxinit
    >>> w = jaxinit.reinit({"w": jax.numpy.zeros(3)}, [("w", jaxinit.normal())],
    ...                    key=jax.random.key(0))["w"]
    >>> bool((w == jaxinit.normal()(jaxinit.leaf_key(jax.random.key(0), "w"), (3,))).all())
    True
    """
    h = stable_hash(path)
    return words_key(key, np.array([h >> 32, h & 0xFFFFFFFF], np.uint32))


def key_impl(key: jax.Array) -> str | None:
    """The PRNG implementation's name of a typed key, or ``None`` for a legacy raw key."""
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        return str(jax.random.key_impl(key))
    return None


def fold_in_words(key: jax.Array, data: np.ndarray) -> np.ndarray | None:
    """``key_data(leaf_key(key, d))`` for every row ``d`` of ``data`` (``(n, 2)`` uint32), as ``(n, 2)``.

    ``None`` unless ``key`` is a concrete threefry2x32 key (a typed one, or a
    legacy ``uint32[2]`` key under the default threefry2x32 implementation).
    """
    words = None if isinstance(key, jax.core.Tracer) else key_words(key)
    if words is None:
        return None
    data = np.asarray(data, np.uint32).reshape(-1, 2)
    zeros = np.zeros(len(data), np.uint32)
    w0, w1 = np.asarray(words, np.uint32)  # on the host: no jax op on the concrete key
    k0, k1 = block(w0, w1, zeros, data[:, 0])  # fold_in(key, hi)
    y0, y1 = block(k0, k1, zeros, data[:, 1])  # fold_in(that, lo)
    return np.stack([y0, y1], axis=-1)
