"""Layer conversions between torch's layouts and Flax's (or Equinox's), both ways, in numpy.

A conversion is a list of :class:`Group` s: torch tensors ``src`` (local names)
become target leaves ``dst`` (paths relative to the layer) by ``fwd``, and
back by ``bwd``. Every ``fwd``/``bwd`` is a numpy view (transpose, slice,
reshape) where it can be; only sums and concatenations allocate.

Layouts (torch -> Flax; Equinox keeps torch's layout except where noted):

- ``Linear`` weight ``(out, in)`` -> ``Dense`` kernel ``(in, out)``; to a
  ``DenseGeneral`` kernel ``(*in_axes, *out_axes)`` by reshaping that.
  transformers' ``Conv1D`` weight is already ``(in, out)``.
- ``ConvNd`` weight ``(out, in/g, *k)`` -> kernel ``(*k, in/g, out)``.
- ``ConvTransposeNd`` weight ``(in, out/g, *k)``. torch's transposed conv is
  the gradient of the forward conv whose ``OIHW`` weight this is, which is
  what ``lax.conv_transpose(..., transpose_kernel=True)`` computes from that
  forward conv's ``HWIO`` kernel: so for ``transpose_kernel=True`` the Flax
  kernel ``(*k, out, in)`` is the weight moved like a conv's,
  ``w.transpose(*k_axes, 1, 0)``. With ``transpose_kernel=False`` (Flax's
  default) the kernel is applied as a plain correlation over the dilated
  input, so it is the same kernel with in/out swapped back and the spatial
  axes flipped: ``flip(w.transpose(*k_axes, 0, 1), k_axes)``, ``(*k, in, out)``.
  Flax has no grouped transposed conv: a grouped torch weight becomes the
  block-diagonal full kernel (and back, which requires the off-diagonal
  blocks to be zero). Equinox's ``ConvTranspose`` weight ``(out, in/g, *k)``
  is applied as a correlation too: per group, in/out swapped and flipped.
- Norms: ``weight`` -> ``scale``, ``running_mean``/``running_var`` ->
  ``batch_stats`` ``mean``/``var``; ``num_batches_tracked`` is dropped.

Attention and recurrent cells are in :mod:`jaxinit._src.port.convert_cells`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from jaxinit._src.layers.registry import KINDS
from jaxinit._src.port import convert_cells as cells
from jaxinit._src.port import groups as G
from jaxinit._src.port import target as T
from jaxinit._src.port import torch as P
from jaxinit._src.port.groups import Group, PortError, Rel

__all__ = ["Group", "PortError", "plan", "single"]


# ----------------------------------------------------------------------------
# Kinds


_DEFAULT_TARGET = {
    P.LINEAR: T.DENSE,
    P.HF_CONV1D: T.DENSE,
    P.CONV: T.CONV,
    P.CONV_TRANSPOSE: T.CONV_TRANSPOSE,
    P.EMBEDDING: T.EMBED,
    P.NORM: T.NORM,
    P.MHA: T.ATTENTION,
    P.LSTM: T.LSTM_CELL,
    P.GRU: T.GRU_CELL,
    P.RNN: T.SIMPLE_CELL,
}
# A target layer's torch counterpart, from the registry of layer kinds.
_DEFAULT_TORCH = {row.kind: row.torch for row in KINDS if row.torch is not None}


def infer_target_kind(rels: Mapping[Rel, Any]) -> str | None:
    """A Flax layer's kind from its leaf names (for a Linen dict without ``model=``)."""
    names = set(rels)
    if ("query", "kernel") in names and ("out", "kernel") in names:
        return T.ATTENTION
    if ("hi", "kernel") in names and ("ii", "kernel") in names:
        return T.LSTM_CELL
    if ("hr", "kernel") in names and ("ir", "kernel") in names:
        return T.GRU_CELL
    if ("h", "kernel") in names and ("i", "kernel") in names:
        return T.SIMPLE_CELL
    return None


# ----------------------------------------------------------------------------
# Linear, conv, embedding, norms


def _dense(tk: str, fs: Mapping[Rel, tuple[int, ...]]) -> list[Group]:
    groups = []
    if ("kernel",) in fs:
        if tk == P.HF_CONV1D:
            groups.append(G.same("weight", ("kernel",)))
        else:
            groups.append(G.one("weight", ("kernel",), G.transpose2))
    return groups


def _dense_general(ts: Mapping[str, Any], fs: Mapping[Rel, tuple[int, ...]]) -> list[Group]:
    kshape = fs.get(("kernel",))
    wshape = ts.get("weight")
    if kshape is None or wshape is None:
        return []
    n_out, n_in = wshape
    split = next(
        (
            s
            for s in range(len(kshape) + 1)
            if math.prod(kshape[:s]) == n_in and math.prod(kshape[s:]) == n_out
        ),
        None,
    )
    if split is None:
        raise PortError(
            f"a Linear weight {tuple(wshape)} cannot fill a DenseGeneral kernel {kshape}: "
            f"expected in = {n_in} and out = {n_out} elements"
        )
    groups = [
        G.one(
            "weight",
            ("kernel",),
            lambda w: w.T.reshape(kshape),
            lambda k: k.reshape(n_in, n_out).T,
        )
    ]
    bshape = fs.get(("bias",))
    if bshape is not None:
        groups.append(
            G.one("bias", ("bias",), lambda b: b.reshape(bshape), lambda b: b.reshape(-1))
        )
    return groups


def _conv(n: int) -> Group:
    perm = G.conv_perm(n)
    inv = G.inverse(perm)
    return G.one("weight", ("kernel",), lambda w: w.transpose(perm), lambda k: k.transpose(inv))


def _expand_groups(w: np.ndarray, g: int) -> np.ndarray:
    """torch ``(in, out/g, *k)`` -> the block-diagonal ``(in, out, *k)`` it stands for."""
    if g == 1:
        return w
    n_in, out_g = w.shape[:2]
    in_g = n_in // g
    full = np.zeros((n_in, out_g * g, *w.shape[2:]), w.dtype)
    for i in range(g):
        full[i * in_g : (i + 1) * in_g, i * out_g : (i + 1) * out_g] = w[i * in_g : (i + 1) * in_g]
    return full


def _collapse_groups(full: np.ndarray, g: int) -> np.ndarray:
    """The inverse of :func:`_expand_groups`; the off-diagonal blocks must be zero."""
    if g == 1:
        return full
    n_in, n_out = full.shape[:2]
    in_g, out_g = n_in // g, n_out // g
    w = np.empty((n_in, out_g, *full.shape[2:]), full.dtype)
    mask = np.ones((n_in, n_out), bool)
    for i in range(g):
        w[i * in_g : (i + 1) * in_g] = full[i * in_g : (i + 1) * in_g, i * out_g : (i + 1) * out_g]
        mask[i * in_g : (i + 1) * in_g, i * out_g : (i + 1) * out_g] = False
    if np.any(full[mask]):
        raise PortError(
            f"the kernel is not block-diagonal in {g} groups: it cannot become a grouped "
            "torch ConvTranspose weight"
        )
    return w


def _conv_transpose(
    ts: Mapping[str, Any], fs: Mapping[Rel, tuple[int, ...]], module: Any
) -> list[Group]:
    kshape, wshape = fs.get(("kernel",)), ts.get("weight")
    if kshape is None or wshape is None:
        return []
    n = len(wshape)
    spatial = tuple(range(n - 2))
    swapped = bool(getattr(module, "transpose_kernel", False))
    n_out = kshape[-2] if swapped else kshape[-1]
    if wshape[1] == 0 or n_out % wshape[1]:
        raise PortError(
            f"ConvTranspose weight {tuple(wshape)} (in, out/groups, *k) cannot fill a kernel "
            f"{kshape} with {n_out} output features"
        )
    g = n_out // wshape[1]
    if swapped:  # (*k, out, in): the forward conv's HWIO kernel
        perm = G.conv_perm(n)
    else:  # (*k, in, out), spatially flipped
        perm = (*range(2, n), 0, 1)
    inv = G.inverse(perm)

    def fwd(w: np.ndarray) -> np.ndarray:
        k = _expand_groups(w, g).transpose(perm)
        return k if swapped else np.flip(k, spatial)

    def bwd(k: np.ndarray) -> np.ndarray:
        if not swapped:
            k = np.flip(k, spatial)
        return _collapse_groups(k.transpose(inv), g)

    return [G.one("weight", ("kernel",), fwd, bwd)]


def _eqx_conv_transpose(ts: Mapping[str, Any], fs: Mapping[Rel, tuple[int, ...]]) -> list[Group]:
    eshape, wshape = fs.get(("weight",)), ts.get("weight")
    if eshape is None or wshape is None:
        return []
    n = len(wshape)
    spatial = tuple(range(2, n))
    if eshape[1] == 0 or wshape[0] % eshape[1]:
        raise PortError(f"ConvTranspose weight {tuple(wshape)} cannot fill {eshape}")
    g = wshape[0] // eshape[1]

    def fwd(w: np.ndarray) -> np.ndarray:  # (g*in_g, out_g, *k) -> (g*out_g, in_g, *k), flipped
        in_g, out_g = w.shape[0] // g, w.shape[1]
        v = w.reshape(g, in_g, out_g, *w.shape[2:]).swapaxes(1, 2)
        return np.flip(v.reshape(g * out_g, in_g, *w.shape[2:]), spatial)

    def bwd(e: np.ndarray) -> np.ndarray:
        out_g, in_g = e.shape[0] // g, e.shape[1]
        v = np.flip(e, spatial).reshape(g, out_g, in_g, *e.shape[2:]).swapaxes(1, 2)
        return v.reshape(g * in_g, out_g, *e.shape[2:])

    return [G.one("weight", ("weight",), fwd, bwd)]


def _bias(fs: Mapping[Rel, tuple[int, ...]], dst: Rel = ("bias",)) -> list[Group]:
    shape = fs.get(dst)
    if shape is None:
        return []
    if len(shape) > 1:  # Equinox conv bias (out, 1, ..., 1)
        return [G.one("bias", dst, lambda b: b.reshape(shape), lambda b: b.reshape(-1))]
    return [G.same("bias", dst)]


def _norm(ts: Mapping[str, Any], fs: Mapping[Rel, Any], eqx: bool) -> list[Group]:
    groups = []
    scale = ("weight",) if eqx else ("scale",)
    if "weight" in ts:
        groups.append(G.same("weight", scale))
    groups += [G.same(s, d) for s, d in (("running_mean", ("mean",)), ("running_var", ("var",)))]
    return groups


# ----------------------------------------------------------------------------
# Plain (unknown) layers and single renamed tensors


_NAMES = {
    "weight": (("kernel",), ("scale",), ("embedding",), ("weight",)),
    "running_mean": (("mean",),),
    "running_var": (("var",),),
}


def _layout_by_name(dst: Rel, ndim: int) -> Callable[[np.ndarray], np.ndarray]:
    """A ``kernel`` is moved like a Linear (2-D) or conv (n-D) weight; anything else kept."""
    if dst[-1] != "kernel" or ndim < 2:
        return lambda a: a
    if ndim == 2:
        return G.transpose2
    perm = G.conv_perm(ndim)
    return lambda a: a.transpose(perm)


def _layout_back(dst: Rel, ndim: int) -> Callable[[np.ndarray], np.ndarray]:
    if dst[-1] != "kernel" or ndim < 2:
        return lambda a: a
    if ndim == 2:
        return G.transpose2
    inv = G.inverse(G.conv_perm(ndim))
    return lambda a: a.transpose(inv)


def _plain(
    ts: Mapping[str, Any], fs: Mapping[Rel, Any], template: Mapping[str, Any]
) -> list[Group]:
    groups = []
    taken: set[Rel] = set()
    for name, shape in ts.items():
        if name == "num_batches_tracked":
            groups.append(G.dropped(name, template))
            continue
        rel = tuple(name.split("."))
        options = [rel] if rel in fs else []
        if not options and len(rel) == 1:
            options = [o for o in _NAMES.get(name, ()) if o in fs]
        options = [o for o in options if o not in taken]
        if not options:
            continue
        dst = options[0]
        taken.add(dst)
        ndim = len(shape)
        groups.append(G.one(name, dst, _layout_by_name(dst, ndim), _layout_back(dst, ndim)))
    return groups


def single(src: str, dst: Rel, ndim: int) -> list[Group]:
    """One renamed tensor: its layout follows the target leaf's name (``kernel``: moved)."""
    return [G.one(src, dst, _layout_by_name(dst, ndim), _layout_back(dst, ndim))]


# ----------------------------------------------------------------------------


def resolve_kinds(
    torch_kind: str | None,
    target_kind: str | None,
    ts: Mapping[str, Any],
    fs: Mapping[Rel, tuple[int, ...]],
    equinox: bool,
) -> tuple[str | None, str | None]:
    """Both layers' kinds: as known, else inferred from names, else each other's default."""
    tk = torch_kind or P.infer_kind(ts)
    fk = target_kind or infer_target_kind(fs)
    if fk is None and not equinox and tk is not None:
        fk = _DEFAULT_TARGET.get(tk)
        if tk in (P.LSTM, P.GRU) and ("dense_i", "kernel") in fs:
            fk = T.LSTM_FUSED if tk == P.LSTM else T.GRU_FUSED
    if tk is None and fk is not None:
        tk = _DEFAULT_TORCH.get(fk)
    return tk, fk


_CELLS = (
    T.LSTM_CELL,
    T.LSTM_FUSED,
    T.GRU_CELL,
    T.GRU_FUSED,
    T.SIMPLE_CELL,
    T.EQX_LSTM,
    T.EQX_GRU,
)


def _linear(tk: str, fk: str, ts: Mapping[str, Any], fs: Mapping[Rel, Any]) -> list[Group]:
    """A torch Linear or transformers Conv1D into a Dense, DenseGeneral or Equinox Linear."""
    if fk == T.DENSE:
        return _dense(tk, fs) + _bias(fs)
    if fk == T.EQX_LINEAR:
        move = G.same if tk == P.LINEAR else (lambda s, d: G.one(s, d, G.transpose2))
        return [move("weight", ("weight",))] + _bias(fs)
    if tk == P.HF_CONV1D:  # DenseGeneral from an (in, out) weight: read it as (out, in)
        groups = _dense_general({**ts, "weight": tuple(reversed(ts["weight"]))}, fs)
        k = groups[0]
        groups[0] = Group(
            k.src, k.dst, lambda w: k.fwd(w.T), lambda x: tuple(a.T for a in k.bwd(x))
        )
        return groups
    return _dense_general(ts, fs)


def plan(
    torch_kind: str | None,
    target_kind: str | None,
    ts: Mapping[str, Any],
    fs: Mapping[Rel, tuple[int, ...]],
    module: Any,
    template: Mapping[str, Any],
    equinox: bool,
) -> list[Group]:
    """The groups converting one torch layer into one target layer.

    Args:
      torch_kind, target_kind: the layers' kinds (``None``: unknown).
      ts: torch local name -> shape.
      fs: target relative path -> shape.
      module: the target module (for ``transpose_kernel``), if known.
      template: torch local name -> array (what a dropped tensor keeps).
      equinox: the target is an Equinox module (torch's layout kept).
    """
    tk, fk = resolve_kinds(torch_kind, target_kind, ts, fs, equinox)
    if fk is None or tk is None:
        return _plain(ts, fs, template)
    if fk in (T.ATTENTION, T.EQX_MHA):
        if tk != P.MHA:
            raise PortError(f"a torch {tk} layer cannot fill an attention layer")
        return cells.mha(ts, fs, eqx=fk == T.EQX_MHA)
    if fk in _CELLS:
        if tk not in (P.LSTM, P.GRU, P.RNN):
            raise PortError(f"a torch {tk} layer cannot fill a recurrent cell ({fk})")
        return cells.cell(tk, fk, ts, fs)
    if tk in (P.MHA, P.LSTM, P.GRU, P.RNN):
        raise PortError(f"a torch {tk} layer cannot fill a {fk} layer")
    if fk in (T.DENSE, T.DENSE_GENERAL, T.EQX_LINEAR) and tk in (P.LINEAR, P.HF_CONV1D):
        return _linear(tk, fk, ts, fs)
    if fk == T.CONV and tk == P.CONV:
        return [_conv(len(ts["weight"]))] + _bias(fs) if "weight" in ts else _bias(fs)
    if fk == T.EQX_CONV and tk == P.CONV:
        return [G.same("weight", ("weight",))] + _bias(fs)
    if fk == T.CONV_TRANSPOSE and tk == P.CONV_TRANSPOSE:
        return _conv_transpose(ts, fs, module) + _bias(fs)
    if fk == T.EQX_CONV_TRANSPOSE and tk == P.CONV_TRANSPOSE:
        return _eqx_conv_transpose(ts, fs) + _bias(fs)
    if fk in (T.EMBED, T.EQX_EMBED) and tk == P.EMBEDDING:
        return [G.same("weight", ("embedding",) if fk == T.EMBED else ("weight",))]
    if fk in (T.NORM, T.EQX_NORM) and tk == P.NORM:
        extra = [G.dropped("num_batches_tracked", template)] if "num_batches_tracked" in ts else []
        return _norm(ts, fs, eqx=fk == T.EQX_NORM) + _bias(fs) + extra
    raise PortError(f"a torch {tk} layer cannot fill a {fk} layer")
