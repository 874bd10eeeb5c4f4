"""The structured torch.nn.init schemes: eye, dirac, orthogonal, sparse.

Their result depends on which axis is which, so each is computed in torch's
order -- every batch entry viewed as ``(out, in, *receptive)`` -- and then
moved to the layout: ``jaxinit.flax.eye()`` on ``(in, out)`` is the
transpose of torch's ``eye_`` on ``(out, in)``. Batch axes (layers stacked by
``nn.scan``, a ``Layout(..., batch_axis=...)``) get the scheme separately per
entry: a stack of identities, of independent orthogonal matrices.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxinit._src.core.distribution import Distribution
from jaxinit._src.core.initializer import (
    Family,
    Initializer,
    IntLike,
    RealLike,
    builder,
    concrete,
    integer,
    kernel,
    real,
    sample_dtype,
)
from jaxinit._src.core.layout import Layout, LayoutLike, canonical_shape, torch_order
from jaxinit._src.schemes.iid import make, normal_draw

__all__ = ["dirac", "eye", "orthogonal", "sparse"]

_MAX_RANK = 64  # "2 or more" dimensions, as a finite range for the rank check


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


def rank_check(name: str, ranks: tuple[int, ...], what: str):
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
# eye


@kernel
def _eye_kernel(key, *, shape, dtype, layout):
    """torch.eye on each (out, in) matrix, moved to ``layout``."""
    batch, rows, cols = canonical_shape(shape, layout)
    eye_ = jnp.broadcast_to(jnp.eye(rows, cols, dtype=dtype), (batch, rows, cols))
    return to_layout(eye_, shape, layout)


EYE = Family(
    "eye",
    _eye_kernel,
    lambda p, shape, layout: Distribution("eye", {}, shape, layout),
    random=False,
    dtypes="any",
    structured=True,
)


@builder
def eye(*, layout: LayoutLike | None = None, dtype: DTypeLike | None = None) -> Initializer:
    """Fills a 2-D weight with the identity: ``w[o, i] = (o == i)``.

    Preserves the identity of the inputs in a linear layer, as many as
    possible. Layout-aware: in the flax layout ``(in, out)`` the result is the
    transpose of torch's ``eye_`` on ``(out, in)``. Any dtype, as torch
    (integers and bool included).

    Args:
      layout: which axis is in/out (default: torch's ``(out, in)``; inside a
        Flax layer, the layer's).
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      ValueError: if the shape is not 2-D (besides batch axes).

    PyTorch equivalent: ``torch.nn.init.eye_(w)``; bit for bit.

    >>> import jaxinit
    >>> jaxinit.eye()(None, (2, 3))
    Array([[1., 0., 0.],
           [0., 1., 0.]], dtype=float32)
    """
    return make(
        "eye",
        {},
        EYE,
        lambda shape, lay, dt: (),
        layout=layout,
        dtype=dtype,
        check=rank_check("eye", (2,), "2"),
    )


# ----------------------------------------------------------------------------
# dirac


@kernel
def _dirac_kernel(key, per_group, *, shape, dtype, layout):
    """1 at ``[g*opg + d, d, k1//2, ...]`` for each group g and d < min(opg, in).

    ``per_group`` (``opg``, out channels per group) is traced, so changing
    ``groups`` does not recompile.
    """
    batch, *canon = canonical_shape(shape, layout)
    out = jax.lax.broadcasted_iota(jnp.int32, canon, 0)
    inp = jax.lax.broadcasted_iota(jnp.int32, canon, 1)
    hit = inp == out % per_group
    for axis, size in enumerate(canon[2:], start=2):
        hit &= jax.lax.broadcasted_iota(jnp.int32, canon, axis) == size // 2
    return to_layout(jnp.broadcast_to(hit.astype(dtype), (batch, *canon)), shape, layout)


DIRAC = Family(
    "dirac",
    _dirac_kernel,
    lambda p, shape, layout: Distribution(
        "dirac", {"groups": canonical_shape(shape, layout)[1] // int(p[0])}, shape, layout
    ),
    random=False,
    dtypes="any",
    structured=True,
)


@builder
def dirac(
    groups: IntLike = 1, *, layout: LayoutLike | None = None, dtype: DTypeLike | None = None
) -> Initializer:
    """Fills a 3-, 4- or 5-D conv weight with the Dirac delta.

    Preserves the identity of the inputs in a convolution, as many channels as
    possible, per group: ``w[g*opg + d, d, k1//2, k2//2, ...] = 1`` for each
    group ``g`` and ``d < min(opg, in)``, ``opg = out // groups``.
    Layout-aware: in the flax layout ``(*k, in, out)`` the result is torch's
    moved to that layout. Any dtype, as torch (integers and bool included).

    Args:
      groups: the number of conv groups (``>= 1``, dividing the out channels).
      layout: which axes are in/out (default: torch's ``(out, in, *k)``;
        inside a Flax layer, the layer's).
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

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
    groups = integer("dirac", "groups", groups, minimum=1)
    rank = rank_check("dirac", (3, 4, 5), "3, 4, or 5")

    def check(shape: tuple[int, ...], lay: Layout) -> None:
        rank(shape, lay)
        out = canonical_shape(shape, lay)[1]
        if concrete(groups) and out % groups != 0:
            raise ValueError(
                f"dirac: dim 0 must be divisible by groups (out channels {out}, groups {groups})"
            )

    def params(shape: tuple[int, ...], lay: Layout, dt: np.dtype) -> tuple[Any, ...]:
        out = canonical_shape(shape, lay)[1]
        per_group: Any = out // groups
        return (np.int32(per_group) if concrete(per_group) else per_group.astype(jnp.int32),)

    return make("dirac", {"groups": groups}, DIRAC, params, layout=layout, dtype=dtype, check=check)


# ----------------------------------------------------------------------------
# orthogonal


@kernel
def _orthogonal_kernel(key, gain, *, shape, dtype, layout):
    """torch's orthogonal_ per batch entry: QR of a (rows=out, cols=rest) normal matrix, sign-fixed."""
    batch, rows, *rest = canonical_shape(shape, layout)
    cols = math.prod(rest)
    sd = sample_dtype(dtype)

    def one(k: jax.Array) -> jax.Array:
        flat = jax.random.normal(k, (rows, cols), sd)
        if rows < cols:
            flat = flat.T
        q, r = jnp.linalg.qr(flat)
        q = q * jnp.sign(jnp.diagonal(r))[None, :]  # scale column j by sign(r[j, j])
        return q.T if rows < cols else q

    return to_layout(per_entry(one, key, batch) * gain, shape, layout)


def _describe_orthogonal(p: tuple[Any, ...], shape: tuple[int, ...], layout: Layout) -> Any:
    _, rows, *rest = canonical_shape(shape, layout)
    return Distribution(
        "orthogonal", {"gain": p[0], "rows": rows, "cols": math.prod(rest)}, shape, layout
    )


ORTHOGONAL = Family(
    "orthogonal",
    _orthogonal_kernel,
    _describe_orthogonal,
    dtypes="real",
    structured=True,
    torch_kernel="normal_kernel_cpu",
)


@builder
def orthogonal(
    gain: RealLike = 1.0, *, layout: LayoutLike | None = None, dtype: DTypeLike | None = None
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
      layout: which axes are in/out (default: torch's ``(out, in, *k)``;
        inside a Flax layer, the layer's).
      dtype: the default dtype of the result (real only, as torch).

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

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
    return make(
        "orthogonal",
        {"gain": gain},
        ORTHOGONAL,
        lambda shape, lay, dt: (gain,),
        layout=layout,
        dtype=dtype,
        check=rank_check("orthogonal", tuple(range(2, _MAX_RANK)), "2 or more"),
    )


# ----------------------------------------------------------------------------
# sparse

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
def _sparse_kernel(key, std, k, *, shape, dtype, layout):
    """N(0, std^2), then ``k`` random rows zeroed in every column (torch order), per batch entry."""
    batch, rows, cols = canonical_shape(shape, layout)

    def one(entry_key: jax.Array) -> jax.Array:
        value_key, mask_key = jax.random.split(entry_key)
        values = normal_draw(value_key, 0.0, std, (rows, cols), dtype)  # torch: normal_(0, std)
        zero = sparse_mask(mask_key, rows, cols, k)
        return jnp.where(zero, jnp.zeros((), values.dtype), values)

    return to_layout(per_entry(one, key, batch), shape, layout)


def _describe_sparse(p: tuple[Any, ...], shape: tuple[int, ...], layout: Layout) -> Any:
    return Distribution("sparse", {"std": p[0], "zeros": p[1]}, shape, layout)


SPARSE = Family(
    "sparse",
    _sparse_kernel,
    _describe_sparse,
    structured=True,
    torch_kernel="normal_kernel_cpu",
)


@builder
def sparse(
    sparsity: RealLike,
    std: RealLike = 0.01,
    *,
    layout: LayoutLike | None = None,
    dtype: DTypeLike | None = None,
) -> Initializer:
    r"""A sparse matrix: :math:`\mathcal{N}(0, \text{std}^2)` with exactly
    ``ceil(sparsity * rows)`` zeros in every column.

    ``rows`` is the output axis (torch's dim 0): every *input* unit gets the
    same number of zeroed connections, at uniformly random positions. In the
    flax layout ``(in, out)`` that is ``ceil(sparsity * out)`` zeros per row.
    The positions come from Floyd's sampling algorithm, vectorized over
    columns (no sort).

    Args:
      sparsity: the fraction of each column to zero, in ``[0, 1]``.
      std: the standard deviation of the non-zero values (``>= 0``).
      layout: which axis is in/out (default: torch's ``(out, in)``; inside a
        Flax layer, the layer's).
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

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
    if concrete(sparsity) and not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparse: sparsity must be in [0, 1], got {sparsity}")
    if concrete(std) and std < 0:
        raise ValueError(f"sparse: std must be >= 0, got {std}")

    def params(shape: tuple[int, ...], lay: Layout, dt: np.dtype) -> tuple[Any, ...]:
        rows = canonical_shape(shape, lay)[1]
        if concrete(sparsity):
            return (std, np.int32(math.ceil(sparsity * rows)))  # torch's exact count
        return (std, jnp.ceil(sparsity * rows).astype(jnp.int32))

    return make(
        "sparse",
        {"sparsity": sparsity, "std": std},
        SPARSE,
        params,
        layout=layout,
        dtype=dtype,
        check=rank_check("sparse", (2,), "2"),
    )
