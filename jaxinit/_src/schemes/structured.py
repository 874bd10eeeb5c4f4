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

from jaxinit._src.core.builders import builder
from jaxinit._src.core.distribution import Distribution, fmt
from jaxinit._src.core.dtypes import sample_dtype
from jaxinit._src.core.family import Checks, Family, kernel, param
from jaxinit._src.core.hyper import IntLike, RealLike, concrete, integer, real
from jaxinit._src.core.initializer import Initializer
from jaxinit._src.core.layout import Layout, LayoutLike, canonical_shape
from jaxinit._src.schemes.floyd import sparse_mask as sparse_mask
from jaxinit._src.schemes.iid import NORMAL
from jaxinit._src.schemes.sampling import (
    MAX_RANK,
    make,
    normal_bits,
    normal_draw,
    per_entry,
    rank_check,
    to_layout,
)

__all__ = ["DIRAC", "EYE", "ORTHOGONAL", "SPARSE", "dirac", "eye", "orthogonal", "sparse"]


class _Exact(Family):
    """A deterministic structured family: the array is its kernel's, bit for bit."""

    iid = False

    def support(self, d: Distribution) -> tuple[float, float]:
        return 0.0, 1.0

    def kernel_params(self, d: Distribution) -> tuple[Any, ...]:
        return ()

    def check(self, x: np.ndarray, d: Distribution, checks: Checks) -> list[str]:
        assert d.layout is not None
        expected = self.kernel(
            None,
            *self.kernel_params(d),
            shape=tuple(x.shape),
            dtype=x.dtype,
            layout=d.layout,
            out_sharding=None,
        )
        return checks.exact(x, np.asarray(expected), repr(d))


# ----------------------------------------------------------------------------
# eye


@kernel
def _eye_kernel(key, *, shape, dtype, layout):
    """torch.eye on each (out, in) matrix, moved to ``layout``."""
    batch, rows, cols = canonical_shape(shape, layout)
    eye_ = jnp.broadcast_to(jnp.eye(rows, cols, dtype=dtype), (batch, rows, cols))
    return to_layout(eye_, shape, layout)


class EyeFamily(_Exact):
    def format(self, d: Distribution) -> str:
        return "eye"


EYE = EyeFamily("eye", _eye_kernel, random=False, dtypes="any", structured=True)


@builder(example=("", (32, 64)))
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


class DiracFamily(_Exact):
    """``groups`` in the distribution; the kernel takes the out channels per group."""

    def describe(
        self,
        values: tuple[Any, ...],
        shape: tuple[int, ...],
        layout: Layout | None,
        dtype: np.dtype | None,
    ) -> Distribution:
        assert layout is not None
        groups = canonical_shape(shape, layout)[1] // int(values[0])
        return Distribution(self, {"groups": groups}, shape, layout, dtype)

    def kernel_params(self, d: Distribution) -> tuple[Any, ...]:
        assert d.layout is not None
        return (np.int32(canonical_shape(d.shape, d.layout)[1] // int(d.params["groups"])),)

    def format(self, d: Distribution) -> str:
        return f"dirac(groups={d.params['groups']})"


DIRAC = DiracFamily("dirac", _dirac_kernel, random=False, dtypes="any", structured=True)


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
        flat = normal_bits(k, (rows, cols), sd)
        if rows < cols:
            flat = flat.T
        q, r = jnp.linalg.qr(flat)
        q = q * jnp.sign(jnp.diagonal(r))[None, :]  # scale column j by sign(r[j, j])
        return q.T if rows < cols else q

    return to_layout(per_entry(one, key, batch) * gain, shape, layout)


class OrthogonalFamily(Family):
    """``gain`` times a Haar-random (semi-)orthogonal ``rows x cols`` torch view per batch entry."""

    iid = False
    exact_support = False  # |entries| <= |gain| up to the QR's rounding

    def describe(
        self,
        values: tuple[Any, ...],
        shape: tuple[int, ...],
        layout: Layout | None,
        dtype: np.dtype | None,
    ) -> Distribution:
        assert layout is not None
        _, rows, *rest = canonical_shape(shape, layout)
        params = {"gain": values[0], "rows": rows, "cols": math.prod(rest)}
        return Distribution(self, params, shape, layout, dtype)

    def mean(self, d: Distribution) -> float:
        return 0.0

    def std(self, d: Distribution) -> float:
        return abs(param(d, "gain")) / math.sqrt(max(d.params["rows"], d.params["cols"]))

    def support(self, d: Distribution) -> tuple[float, float]:
        return -abs(param(d, "gain")), abs(param(d, "gain"))

    def check(self, x: np.ndarray, d: Distribution, checks: Checks) -> list[str]:
        gain = param(d, "gain")
        if gain == 0.0:
            return checks.exact(x, np.zeros((), x.dtype), "zeros (gain 0)")
        view = checks.matrices(x, d).astype(np.float64)
        rows, cols = view.shape[1:]
        q = view / gain
        gram = q @ np.swapaxes(q, 1, 2) if rows <= cols else np.swapaxes(q, 1, 2) @ q
        error = float(np.max(np.abs(gram - np.eye(gram.shape[-1]))))
        # rounding to the dtype moves each Gram entry by up to eps (Cauchy-Schwarz on unit
        # rows), the float32 QR by a few n * eps32 at most
        eps = float(jnp.finfo(x.dtype).eps)
        tol = 2.0 * eps + 10.0 * max(rows, cols) * float(jnp.finfo(np.float32).eps)
        if error <= tol:  # (False for nan)
            return []
        what = "rows" if rows <= cols else "columns"
        return [
            f"the {rows}x{cols} torch view / gain {gain:g} does not have orthonormal {what}: "
            f"max |Q Q^T - I| = {error:.3g} > {tol:.3g}"
        ]

    def format(self, d: Distribution) -> str:
        p = d.params
        return f"orthogonal(gain={fmt(p['gain'])}, {p['rows']}x{p['cols']})"


ORTHOGONAL = OrthogonalFamily(
    "orthogonal",
    _orthogonal_kernel,
    ("gain",),
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
        check=rank_check("orthogonal", tuple(range(2, MAX_RANK)), "2 or more"),
    )


# ----------------------------------------------------------------------------
# sparse


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


class SparseFamily(Family):
    """N(0, std^2) with exactly ``zeros`` zero entries in every column of the torch view."""

    iid = False

    def mean(self, d: Distribution) -> float:
        return 0.0

    def std(self, d: Distribution) -> float:
        return param(d, "std")

    def check(self, x: np.ndarray, d: Distribution, checks: Checks) -> list[str]:
        zeros = int(d.params["zeros"])
        if param(d, "std") == 0.0:
            return checks.exact(x, np.zeros((), x.dtype), "zeros (std 0)")
        view = checks.matrices(x, d)
        counts = np.sum(view == 0, axis=1)
        if not np.all(counts == zeros):
            bad = np.argwhere(counts != zeros)[0]
            return [
                f"column {int(bad[1])} (batch entry {int(bad[0])}) of the torch view has "
                f"{int(counts[tuple(bad)])} zeros, expected exactly {zeros} in every column"
            ]
        nonzero = view[view != 0]
        normal = NORMAL.describe((0.0, d.params["std"]), nonzero.shape, None, d.dtype)
        return [f"non-zero entries: {f}" for f in checks.iid(nonzero, normal)]

    def format(self, d: Distribution) -> str:
        return f"sparse({d.params['zeros']} zeros per column, std={fmt(d.params['std'])})"


SPARSE = SparseFamily(
    "sparse",
    _sparse_kernel,
    ("std", "zeros"),
    structured=True,
    torch_kernel="normal_kernel_cpu",
)


@builder(example=("0.25", (32, 64)))
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
