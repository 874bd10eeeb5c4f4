"""Sampling kernels: one jitted function per distribution, hyperparameters traced.

Every kernel takes ``(key, *traced, shape, dtype, layout)`` and returns an
array of ``shape`` in (a dtype castable to) ``dtype``. 16-bit floats are
sampled in float32; complex dtypes draw the real and imaginary parts
independently, as torch does.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri

from jaxinit._src.core import kernel, sample_dtype
from jaxinit._src.layout import Layout, torch_order


def _is_complex(dtype: np.dtype) -> bool:
    return bool(jnp.issubdtype(dtype, jnp.complexfloating))


def _parts(shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, ...]:
    """Sample shape: an extra trailing axis of 2 (real, imag) for complex dtypes."""
    return (*shape, 2) if _is_complex(dtype) else shape


def _flat(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of a 1-D draw of random *bits*, reshaped after.

    The bits are the same as an N-D draw's (threefry's counters are row-major
    indices, partitionable or not), and XLA:CPU compiles a 1-D draw several
    times faster (4-D/5-D: ~0.5 s, not 2-5 s). Only integer bits may be drawn
    flat: float math before the reshape fuses differently once the result is
    sharded, and gives values 1 ulp off the unsharded ones.
    """
    return (math.prod(shape),)


def _combine(x: jax.Array, dtype: np.dtype) -> jax.Array:
    if _is_complex(dtype):
        return jax.lax.complex(x[..., 0], x[..., 1])
    return x


@kernel
def uniform_kernel(key, low, high, *, shape, dtype, layout):
    """U(low, high); complex: real and imaginary parts each U(low, high)."""
    sd = sample_dtype(dtype)
    x = jax.random.uniform(key, _parts(shape, dtype), sd, minval=low, maxval=high)
    return _combine(x, dtype)


def _normal(key, mean, std, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
    """N(mean, std^2); complex: each part N(mean, std^2 / 2), as torch's normal_."""
    sd = sample_dtype(dtype)
    if _is_complex(dtype):
        std = std / math.sqrt(2.0)
    x = jax.random.normal(key, _parts(shape, dtype), sd) * std + mean
    return _combine(x, dtype)


@kernel
def normal_kernel(key, mean, std, *, shape, dtype, layout):
    """N(mean, std^2); complex: each part N(mean, std^2 / 2), as torch."""
    return _normal(key, mean, std, shape, dtype)


def _open_uniform(key: jax.Array, shape: tuple[int, ...], dtype: np.dtype) -> jax.Array:
    """Uniform on the open interval (0, 1): midpoints of a 2^-m grid, m = mantissa bits."""
    if dtype == np.float64:
        bits = jax.random.bits(key, _flat(shape), jnp.uint64).reshape(shape)
        return ((bits >> 11).astype(dtype) + 0.5) * 2.0**-53
    bits = jax.random.bits(key, _flat(shape), jnp.uint32).reshape(shape)
    return ((bits >> 9).astype(dtype) + 0.5) * 2.0**-23


@kernel
def trunc_normal_kernel(key, mean, std, lower, upper, low, high, sign, *, shape, dtype, layout):
    """N(mean, std^2) restricted to [low, high], by inverting the normal CDF.

    ``lower``/``upper`` are the standardized bounds, reflected (``sign = -1``)
    so that the interval leans to the left tail, where ``ndtr`` keeps full
    relative precision: this samples far-tail intervals (say [8 std, 9 std])
    correctly, where the ``erf`` form of ``jax.random.truncated_normal`` fails.
    """
    sd = sample_dtype(dtype)
    lower = jnp.asarray(lower, sd)
    upper = jnp.asarray(upper, sd)
    p_lo, p_hi = ndtr(lower), ndtr(upper)
    u = _open_uniform(key, shape, sd)
    z = jnp.clip(ndtri(p_lo + u * (p_hi - p_lo)), lower, upper)
    return jnp.clip(mean + (sign * std) * z, low, high)


@kernel
def constant_kernel(key, value, *, shape, dtype, layout):
    """Every element ``value`` (already rounded to ``dtype`` on the host)."""
    return jnp.full(shape, value, dtype)


# ----------------------------------------------------------------------------
# Structured schemes: computed in torch order (out, in, *receptive), then moved.


def canonical_shape(shape: tuple[int, ...], layout: Layout) -> tuple[int, ...]:
    """``shape`` as torch sees it: ``(prod(out), prod(in), *receptive)``."""
    perm, out_axes, in_axes = torch_order(len(shape), layout)
    receptive = perm[len(out_axes) + len(in_axes) :]
    return (
        math.prod(shape[a] for a in out_axes),
        math.prod(shape[a] for a in in_axes),
        *(shape[a] for a in receptive),
    )


def from_torch_order(x: jax.Array, shape: tuple[int, ...], layout: Layout) -> jax.Array:
    """Moves a canonical torch-order array back into ``layout``'s axis order."""
    perm, _, _ = torch_order(len(shape), layout)
    x = x.reshape(tuple(shape[a] for a in perm))
    if perm == tuple(range(len(shape))):
        return x
    return jnp.transpose(x, tuple(int(i) for i in np.argsort(perm)))


@kernel
def eye_kernel(key, *, shape, dtype, layout):
    """torch.eye on the (out, in) matrix, moved to ``layout``."""
    rows, cols = canonical_shape(shape, layout)
    return from_torch_order(jnp.eye(rows, cols, dtype=dtype), shape, layout)


@kernel
def dirac_kernel(key, per_group, *, shape, dtype, layout):
    """1 at ``[g*opg + d, d, k1//2, ...]`` for each group g and d < min(opg, in).

    ``per_group`` (``opg``, out channels per group) is traced, so changing
    ``groups`` does not recompile.
    """
    canon = canonical_shape(shape, layout)
    out = jax.lax.broadcasted_iota(jnp.int32, canon, 0)
    inp = jax.lax.broadcasted_iota(jnp.int32, canon, 1)
    hit = inp == out % per_group
    for axis, size in enumerate(canon[2:], start=2):
        hit &= jax.lax.broadcasted_iota(jnp.int32, canon, axis) == size // 2
    return from_torch_order(hit.astype(dtype), shape, layout)


@kernel
def orthogonal_kernel(key, gain, *, shape, dtype, layout):
    """torch's orthogonal_: QR of a (rows=out, cols=rest) normal matrix, sign-fixed."""
    canon = canonical_shape(shape, layout)
    rows = canon[0]
    cols = math.prod(canon) // rows
    sd = sample_dtype(dtype)
    flat = jax.random.normal(key, (rows, cols), sd)
    if rows < cols:
        flat = flat.T
    q, r = jnp.linalg.qr(flat)
    q = q * jnp.sign(jnp.diagonal(r))[None, :]  # scale column j by sign(r[j, j])
    if rows < cols:
        q = q.T
    return from_torch_order(q * gain, shape, layout)


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
        words = jax.random.bits(jax.random.fold_in(key, c), (_FLOYD_CHUNK, cols), jnp.uint32)

        def step(i, mask):
            j = rows - m + first + i  # draw t uniform on [0, j]
            t = _mulhi(words[i], (j + 1).astype(jnp.uint32)).astype(jnp.int32)
            t = jnp.where(mask[t, col], j, t)
            return mask.at[t, col].set(True, unique_indices=True, mode="promise_in_bounds")

        return jax.lax.fori_loop(0, jnp.minimum(_FLOYD_CHUNK, m - first), step, mask)

    n_chunks = (m + _FLOYD_CHUNK - 1) // _FLOYD_CHUNK
    mask = jax.lax.fori_loop(0, n_chunks, chunk, jnp.zeros((rows, cols), jnp.bool_))
    return mask ^ flip


@kernel
def sparse_kernel(key, std, k, *, shape, dtype, layout):
    """N(0, std^2), then ``k`` random rows zeroed in every column (torch order)."""
    rows, cols = canonical_shape(shape, layout)
    value_key, mask_key = jax.random.split(key)
    values = _normal(value_key, 0.0, std, (rows, cols), dtype)  # torch: tensor.normal_(0, std)
    zero = sparse_mask(mask_key, rows, cols, k)
    out = jnp.where(zero, jnp.zeros((), values.dtype), values)
    return from_torch_order(out, shape, layout)
