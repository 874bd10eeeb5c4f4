"""Floyd's sampling of a random k-subset per column, vectorized: ``sparse``'s zero mask."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxinit._src.schemes.sampling import random_bits

__all__ = ["sparse_mask"]

_FLOYD_CHUNK = 64  # Floyd steps whose random words are drawn in one batch


def _mulhi(a: jax.Array, b: jax.Array) -> jax.Array:
    """The high 32 bits of the 64-bit product of uint32 ``a`` and ``b``.

    Computed from 16-bit halves in uint32 arithmetic (no x64 needed), so
    ``_mulhi(u, n)`` with ``u`` uniform on ``[0, 2**32)`` is an integer on
    ``[0, n)`` whose probabilities differ from ``1/n`` by at most ``n / 2**32``.
    """
    lo16, s16 = jnp.uint32(0xFFFF), jnp.uint32(16)
    a0, a1 = a & lo16, a >> s16
    b0, b1 = b & lo16, b >> s16
    a0b1, a1b0 = a0 * b1, a1 * b0
    mid = ((a0 * b0) >> s16) + (a0b1 & lo16) + (a1b0 & lo16)
    return a1 * b1 + (a0b1 >> s16) + (a1b0 >> s16) + (mid >> s16)


def sparse_mask(key: jax.Array, rows: int, cols: int, k: jax.Array) -> jax.Array:
    """A (rows, cols) bool mask with exactly ``k`` True entries per column.

    Each column's set is a uniformly random ``k``-subset of its rows, drawn by
    Floyd's algorithm (vectorized over columns): for ``j = rows - m, ...,
    rows - 1`` draw ``t`` uniform on ``[0, j]`` and add ``t``, or ``j`` if ``t``
    is already in. That is ``m`` steps of one gather and one scatter of
    ``cols`` elements; ``m = min(k, rows - k)`` (for ``k > rows / 2`` the
    complement is drawn), so it reads no ``(rows, cols)`` array of keys and
    needs no sort and no selection passes. The counts are exact by
    construction; each ``t`` comes from one 32-bit word (``_mulhi``), so the
    subset probabilities are uniform to within a relative ``rows / 2**32``.

    ``k`` is traced (an int32 scalar in ``[0, rows]``): changing it does not
    recompile.
    """
    k = jnp.asarray(k, jnp.int32)
    flip = k > rows - k
    m = jnp.where(flip, rows - k, k)
    col = jnp.arange(cols, dtype=jnp.int32)

    def chunk(c, mask):
        first = c * _FLOYD_CHUNK
        words = random_bits(jax.random.fold_in(key, c), (_FLOYD_CHUNK, cols), jnp.uint32)

        def step(i, mask):
            j = rows - m + first + i  # draw t uniform on [0, j]
            t = _mulhi(words[i], (j + 1).astype(jnp.uint32)).astype(jnp.int32)
            t = jnp.where(mask[t, col], j, t)
            return mask.at[t, col].set(True, unique_indices=True, mode="promise_in_bounds")

        return jax.lax.fori_loop(0, jnp.minimum(_FLOYD_CHUNK, m - first), step, mask)

    n_chunks = (m + _FLOYD_CHUNK - 1) // _FLOYD_CHUNK
    mask = jax.lax.fori_loop(0, n_chunks, chunk, jnp.zeros((rows, cols), jnp.bool_))
    return mask ^ flip
