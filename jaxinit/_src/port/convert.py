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
- ``MultiheadAttention``: ``in_proj_weight`` ``(3E, E)`` (or
  ``q/k/v_proj_weight``) -> ``query``/``key``/``value`` kernels
  ``(E_in, heads, head_dim)`` (rows ``h*head_dim + d`` are head ``h``, as in
  torch's reshape), ``in_proj_bias`` -> biases ``(heads, head_dim)``,
  ``out_proj.weight`` ``(E, E)`` -> ``out`` kernel ``(heads, head_dim, E)``.
- Recurrent cells, torch's gate order (LSTM ``i, f, g, o``; GRU ``r, z, n``).
  Where Flax has one bias for torch's ``b_ih + b_hh`` it gets the sum; the
  GRU's ``n`` gate keeps ``b_in`` (input side) and ``b_hn`` (inside
  ``r * (W_hn h + b_hn)``) apart, as Linen's ``GRUCell`` (``in``/``hn``
  biases) and Equinox's (``bias_n``) do. Back to torch, a summed bias goes
  into ``b_ih`` and ``b_hh`` is zero: the same function.
- Norms: ``weight`` -> ``scale``, ``running_mean``/``running_var`` ->
  ``batch_stats`` ``mean``/``var``; ``num_batches_tracked`` is dropped.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from jaxinit._src.layers.registry import KINDS
from jaxinit._src.port import target as T
from jaxinit._src.port import torch as P

__all__ = ["Group", "PortError", "plan"]

Rel = tuple[str, ...]


class PortError(ValueError):
    """A layer that cannot be converted (the message names the layer)."""


@dataclasses.dataclass
class Group:
    """torch tensors ``src`` <-> target leaves ``dst``; ``fwd``: torch -> target, ``bwd``: back."""

    src: tuple[str, ...]
    dst: tuple[Rel, ...]
    fwd: Callable[..., tuple[np.ndarray, ...]]
    bwd: Callable[..., tuple[np.ndarray, ...]]


# ----------------------------------------------------------------------------
# Array moves


def _t(w: np.ndarray) -> np.ndarray:
    return w.T


def _conv_perm(n: int) -> tuple[int, ...]:
    """``(out, in, *k)`` -> ``(*k, in, out)``."""
    return (*range(2, n), 1, 0)


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(perm))


def _sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a + b``, exactly ``a`` where ``b`` is zero (so a ``-0.0`` survives a round trip)."""
    return np.where(b == 0, a, a + b)


def _one(src: str, dst: Rel, fwd: Callable[[np.ndarray], np.ndarray], bwd: Any = None) -> Group:
    back = bwd or fwd
    return Group((src,), (dst,), lambda a: (fwd(a),), lambda a: (back(a),))


def _same(src: str, dst: Rel) -> Group:
    return _one(src, dst, lambda a: a)


def _dropped(src: str, template: Mapping[str, Any]) -> Group:
    """A torch tensor with no Flax counterpart (``num_batches_tracked``): kept as it is."""
    return Group((src,), (), lambda a: (), lambda: (template[src],))


def _split(w: np.ndarray, n: int) -> list[np.ndarray]:
    if w.shape[0] % n:
        raise PortError(f"cannot split {w.shape} into {n} gates along axis 0")
    size = w.shape[0] // n
    return [w[i * size : (i + 1) * size] for i in range(n)]


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


def infer_torch_kind(names: Mapping[str, Any]) -> str | None:
    """A torch layer's kind from its tensor names and shapes (for a bare state_dict)."""
    if "in_proj_weight" in names or "q_proj_weight" in names:
        return P.MHA
    if "weight_ih" in names and "weight_hh" in names:
        hh = tuple(names["weight_hh"])
        gates = hh[0] // hh[1] if len(hh) == 2 and hh[1] else 0
        return {4: P.LSTM, 3: P.GRU, 1: P.RNN}.get(gates)
    return None


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
            groups.append(_same("weight", ("kernel",)))
        else:
            groups.append(_one("weight", ("kernel",), _t))
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
        _one(
            "weight",
            ("kernel",),
            lambda w: w.T.reshape(kshape),
            lambda k: k.reshape(n_in, n_out).T,
        )
    ]
    bshape = fs.get(("bias",))
    if bshape is not None:
        groups.append(_one("bias", ("bias",), lambda b: b.reshape(bshape), lambda b: b.reshape(-1)))
    return groups


def _conv(n: int) -> Group:
    perm = _conv_perm(n)
    inv = _inverse(perm)
    return _one("weight", ("kernel",), lambda w: w.transpose(perm), lambda k: k.transpose(inv))


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
        perm = _conv_perm(n)
    else:  # (*k, in, out), spatially flipped
        perm = (*range(2, n), 0, 1)
    inv = _inverse(perm)

    def fwd(w: np.ndarray) -> np.ndarray:
        k = _expand_groups(w, g).transpose(perm)
        return k if swapped else np.flip(k, spatial)

    def bwd(k: np.ndarray) -> np.ndarray:
        if not swapped:
            k = np.flip(k, spatial)
        return _collapse_groups(k.transpose(inv), g)

    return [_one("weight", ("kernel",), fwd, bwd)]


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

    return [_one("weight", ("weight",), fwd, bwd)]


def _bias(fs: Mapping[Rel, tuple[int, ...]], dst: Rel = ("bias",)) -> list[Group]:
    shape = fs.get(dst)
    if shape is None:
        return []
    if len(shape) > 1:  # Equinox conv bias (out, 1, ..., 1)
        return [_one("bias", dst, lambda b: b.reshape(shape), lambda b: b.reshape(-1))]
    return [_same("bias", dst)]


def _norm(ts: Mapping[str, Any], fs: Mapping[Rel, Any], eqx: bool) -> list[Group]:
    groups = []
    scale = ("weight",) if eqx else ("scale",)
    if "weight" in ts:
        groups.append(_same("weight", scale))
    groups += [_same(s, d) for s, d in (("running_mean", ("mean",)), ("running_var", ("var",)))]
    return groups


# ----------------------------------------------------------------------------
# Attention


def _mha(ts: Mapping[str, Any], fs: Mapping[Rel, tuple[int, ...]], eqx: bool) -> list[Group]:
    if "bias_k" in ts or "bias_v" in ts:
        raise PortError(
            "MultiheadAttention(add_bias_kv=True) has no Flax or Equinox counterpart "
            "(bias_k, bias_v)"
        )
    names = ("query_proj", "key_proj", "value_proj") if eqx else ("query", "key", "value")
    wname = "weight" if eqx else "kernel"
    kernels = [(n, wname) for n in names]
    biases = [(n, "bias") for n in names]
    out_k = ("output_proj", "weight") if eqx else ("out", "kernel")
    out_b = ("output_proj", "bias") if eqx else ("out", "bias")
    if eqx:
        shapes = [fs.get(k) for k in kernels]

        def to_k(i: int) -> Callable[[np.ndarray], np.ndarray]:
            return lambda w: w

        def from_k(i: int) -> Callable[[np.ndarray], np.ndarray]:
            return lambda k: k

        def to_b(i: int) -> Callable[[np.ndarray], np.ndarray]:
            return lambda b: b

        out_fwd = out_bwd = None
    else:
        shapes = [fs.get(k) for k in kernels]

        def to_k(i: int) -> Callable[[np.ndarray], np.ndarray]:
            shape = shapes[i]
            return lambda w: w.T.reshape(shape)

        def from_k(i: int) -> Callable[[np.ndarray], np.ndarray]:
            return lambda k: k.reshape(k.shape[0], -1).T

        def to_b(i: int) -> Callable[[np.ndarray], np.ndarray]:
            shape = fs.get(biases[i])
            return lambda b: b.reshape(shape)

        oshape = fs.get(out_k)

        def out_fwd(w: np.ndarray) -> np.ndarray:
            return w.T.reshape(oshape)

        def out_bwd(k: np.ndarray) -> np.ndarray:
            return k.reshape(-1, k.shape[-1]).T

    if any(s is None for s in shapes):
        missing = [n for n, s in zip(names, shapes) if s is None]
        raise PortError(f"the attention layer has no {', '.join(missing)} kernel")
    groups = []
    if "in_proj_weight" in ts:
        fwds = [to_k(i) for i in range(3)]
        bwds = [from_k(i) for i in range(3)]
        groups.append(
            Group(
                ("in_proj_weight",),
                tuple(kernels),
                lambda w: tuple(f(p) for f, p in zip(fwds, _split(w, 3))),
                lambda q, k, v: (np.concatenate([b(x) for b, x in zip(bwds, (q, k, v))]),),
            )
        )
    else:
        for i, src in enumerate(("q_proj_weight", "k_proj_weight", "v_proj_weight")):
            groups.append(_one(src, kernels[i], to_k(i), from_k(i)))
    if "in_proj_bias" in ts:
        bf = [to_b(i) for i in range(3)]
        groups.append(
            Group(
                ("in_proj_bias",),
                tuple(biases),
                lambda b: tuple(f(p) for f, p in zip(bf, _split(b, 3))),
                lambda q, k, v: (np.concatenate([x.reshape(-1) for x in (q, k, v)]),),
            )
        )
    if out_fwd is None:
        groups.append(_same("out_proj.weight", out_k))
    else:
        groups.append(_one("out_proj.weight", out_k, out_fwd, out_bwd))
    if "out_proj.bias" in ts:
        groups.append(_same("out_proj.bias", out_b))
    return groups


# ----------------------------------------------------------------------------
# Recurrent cells


def _gates(kind: str) -> int:
    return {P.LSTM: 4, P.GRU: 3, P.RNN: 1}[kind]


def _bias_pair(
    ts: Mapping[str, Any],
    dst: tuple[Rel, ...],
    fwd: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, ...]],
    bwd: Callable[..., tuple[np.ndarray, np.ndarray]],
    shapes: tuple[tuple[int, ...], ...],
) -> Group:
    """``(bias_ih, bias_hh)`` -> ``dst``; a torch cell with ``bias=False`` gives zero biases."""
    if "bias_ih" in ts and "bias_hh" in ts:
        return Group(("bias_ih", "bias_hh"), dst, fwd, bwd)

    def zeros() -> tuple[np.ndarray, ...]:
        return tuple(np.zeros(s, np.float32) for s in shapes)

    def check(*xs: np.ndarray) -> tuple[np.ndarray, ...]:
        if any(np.any(x) for x in xs):
            raise PortError("the torch cell has bias=False, but the JAX cell's biases are not 0")
        return ()

    return Group((), dst, zeros, check)


def _cell(
    tk: str, fk: str, ts: Mapping[str, Any], fs: Mapping[Rel, tuple[int, ...]]
) -> list[Group]:
    if "weight_hr" in ts:
        raise PortError("LSTM(proj_size > 0) has no Flax or Equinox counterpart")
    n = _gates(tk)
    if fk in (T.LSTM_FUSED, T.GRU_FUSED, T.EQX_LSTM, T.EQX_GRU) or (
        fk == T.SIMPLE_CELL and ("dense_i", "kernel") in fs
    ):
        return _fused_cell(tk, fk, ts, fs)
    if fk == T.LSTM_CELL and tk == P.LSTM:
        f_name = "if_" if ("if_", "kernel") in fs else "if"
        i_names = ["ii", f_name, "ig", "io"]
        h_names = ["hi", "hf", "hg", "ho"]
        h_bias = [(h, "bias") for h in h_names]
        bias_shapes = tuple(fs.get(b, (0,)) for b in h_bias)
        bias = _bias_pair(
            ts,
            tuple(h_bias),
            lambda bi, bh: tuple(_split(_sum(bi, bh), 4)),
            lambda *bs: (np.concatenate(bs), np.zeros(sum(b.size for b in bs), bs[0].dtype)),
            bias_shapes,
        )
    elif fk == T.GRU_CELL and tk == P.GRU:
        i_names, h_names = ["ir", "iz", "in"], ["hr", "hz", "hn"]
        dst = (("ir", "bias"), ("iz", "bias"), ("in", "bias"), ("hn", "bias"))

        def gru_fwd(bi: np.ndarray, bh: np.ndarray) -> tuple[np.ndarray, ...]:
            (ir, iz, in_), (hr, hz, hn) = _split(bi, 3), _split(bh, 3)
            return _sum(ir, hr), _sum(iz, hz), in_, hn

        def gru_bwd(*bs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            r, z, in_, hn = bs
            zero = np.zeros_like(r)
            return np.concatenate([r, z, in_]), np.concatenate([zero, zero, hn])

        bias = _bias_pair(ts, dst, gru_fwd, gru_bwd, tuple(fs.get(d, (0,)) for d in dst))
    elif fk == T.SIMPLE_CELL and tk == P.RNN:
        i_names, h_names = ["i"], ["h"]
        bias = _bias_pair(
            ts,
            (("i", "bias"),),
            lambda bi, bh: (_sum(bi, bh),),
            lambda b: (b, np.zeros_like(b)),
            (fs.get(("i", "bias"), (0,)),),
        )
    else:
        raise PortError(f"a torch {tk.upper()} cell cannot fill this JAX cell ({fk})")
    return [_gate_kernels("weight_ih", i_names, n), _gate_kernels("weight_hh", h_names, n), bias]


def _gate_kernels(src: str, names: list[str], n: int) -> Group:
    """torch ``(n*H, in)`` -> one Dense kernel ``(in, H)`` per gate, in torch's gate order."""
    return Group(
        (src,),
        tuple((g, "kernel") for g in names),
        lambda w: tuple(p.T for p in _split(w, n)),
        lambda *ks: (np.concatenate([k.T for k in ks]),),
    )


def _fused_cell(
    tk: str, fk: str, ts: Mapping[str, Any], fs: Mapping[Rel, tuple[int, ...]]
) -> list[Group]:
    """NNX OptimizedLSTMCell / GRUCell / SimpleCell (dense_i, dense_h) and Equinox cells."""
    eqx = fk in (T.EQX_LSTM, T.EQX_GRU)
    wi: Rel
    wh: Rel
    if eqx:
        wi, wh = ("weight_ih",), ("weight_hh",)
        kernels = [_same("weight_ih", wi), _same("weight_hh", wh)]
    else:
        wi, wh = ("dense_i", "kernel"), ("dense_h", "kernel")
        kernels = [_one("weight_ih", wi, _t), _one("weight_hh", wh, _t)]
    if tk == P.GRU and fk in (T.GRU_FUSED, T.EQX_GRU):
        H = ts["weight_hh"][1] if "weight_hh" in ts else 0

        if eqx:

            def fwd(bi: np.ndarray, bh: np.ndarray) -> tuple[np.ndarray, ...]:
                (ir, iz, in_), (hr, hz, hn) = _split(bi, 3), _split(bh, 3)
                return np.concatenate([_sum(ir, hr), _sum(iz, hz), in_]), hn

            def bwd(b: np.ndarray, bn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                return b, np.concatenate([np.zeros_like(b[: 2 * H]), bn])

            dst: tuple[Rel, ...] = (("bias",), ("bias_n",))
        else:

            def fwd(bi: np.ndarray, bh: np.ndarray) -> tuple[np.ndarray, ...]:
                (ir, iz, in_), (hr, hz, hn) = _split(bi, 3), _split(bh, 3)
                if np.any(hn):
                    raise PortError(
                        "nnx.GRUCell has no bias inside r * (W_hn h + b_hn), but this torch "
                        "GRU's b_hn (bias_hh[2H:]) is not 0; use flax.linen.GRUCell (its 'hn' "
                        "bias) or equinox.nn.GRUCell (bias_n) for an exact port"
                    )
                return (np.concatenate([_sum(ir, hr), _sum(iz, hz), in_]),)

            def bwd(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[misc]
                return b, np.zeros_like(b)

            dst = (("dense_i", "bias"),)
        shapes = tuple(fs.get(d, (0,)) for d in dst)
        return [*kernels, _bias_pair(ts, dst, fwd, bwd, shapes)]
    if (tk, fk) not in ((P.LSTM, T.LSTM_FUSED), (P.LSTM, T.EQX_LSTM), (P.RNN, T.SIMPLE_CELL)):
        raise PortError(f"a torch {tk.upper()} cell cannot fill this JAX cell ({fk})")
    b_dst: Rel = ("bias",) if eqx else ("dense_i" if tk == P.RNN else "dense_h", "bias")
    return [
        *kernels,
        _bias_pair(
            ts,
            (b_dst,),
            lambda bi, bh: (_sum(bi, bh),),
            lambda b: (b, np.zeros_like(b)),
            (fs.get(b_dst, (0,)),),
        ),
    ]


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
        return _t
    perm = _conv_perm(ndim)
    return lambda a: a.transpose(perm)


def _layout_back(dst: Rel, ndim: int) -> Callable[[np.ndarray], np.ndarray]:
    if dst[-1] != "kernel" or ndim < 2:
        return lambda a: a
    if ndim == 2:
        return _t
    inv = _inverse(_conv_perm(ndim))
    return lambda a: a.transpose(inv)


def _plain(
    ts: Mapping[str, Any], fs: Mapping[Rel, Any], template: Mapping[str, Any]
) -> list[Group]:
    groups = []
    taken: set[Rel] = set()
    for name, shape in ts.items():
        if name == "num_batches_tracked":
            groups.append(_dropped(name, template))
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
        groups.append(_one(name, dst, _layout_by_name(dst, ndim), _layout_back(dst, ndim)))
    return groups


def single(src: str, dst: Rel, ndim: int) -> list[Group]:
    """One renamed tensor: its layout follows the target leaf's name (``kernel``: moved)."""
    return [_one(src, dst, _layout_by_name(dst, ndim), _layout_back(dst, ndim))]


# ----------------------------------------------------------------------------


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
    tk = torch_kind or infer_torch_kind(ts)
    fk = target_kind or infer_target_kind(fs)
    if fk is None and not equinox and tk is not None:
        fk = _DEFAULT_TARGET.get(tk)
        if tk in (P.LSTM, P.GRU) and ("dense_i", "kernel") in fs:
            fk = T.LSTM_FUSED if tk == P.LSTM else T.GRU_FUSED
    if tk is None and fk is not None:
        tk = _DEFAULT_TORCH.get(fk)
    if fk is None or tk is None:
        return _plain(ts, fs, template)
    extra: list[Group] = []
    if "num_batches_tracked" in ts:
        extra.append(_dropped("num_batches_tracked", template))
    if fk in (T.ATTENTION, T.EQX_MHA):
        if tk != P.MHA:
            raise PortError(f"a torch {tk} layer cannot fill an attention layer")
        return _mha(ts, fs, eqx=fk == T.EQX_MHA)
    if fk in (
        T.LSTM_CELL,
        T.LSTM_FUSED,
        T.GRU_CELL,
        T.GRU_FUSED,
        T.SIMPLE_CELL,
        T.EQX_LSTM,
        T.EQX_GRU,
    ):
        if tk not in (P.LSTM, P.GRU, P.RNN):
            raise PortError(f"a torch {tk} layer cannot fill a recurrent cell ({fk})")
        return _cell(tk, fk, ts, fs)
    if tk in (P.MHA, P.LSTM, P.GRU, P.RNN):
        raise PortError(f"a torch {tk} layer cannot fill a {fk} layer")
    if fk == T.DENSE and tk in (P.LINEAR, P.HF_CONV1D):
        return _dense(tk, fs) + _bias(fs)
    if fk == T.DENSE_GENERAL and tk in (P.LINEAR, P.HF_CONV1D):
        if tk == P.HF_CONV1D:
            ts = {**ts, "weight": tuple(reversed(ts["weight"]))}
            groups = _dense_general(ts, fs)
            k = groups[0]
            groups[0] = Group(
                k.src,
                k.dst,
                lambda w: k.fwd(w.T),
                lambda x: tuple(a.T for a in k.bwd(x)),
            )
            return groups
        return _dense_general(ts, fs)
    if fk == T.EQX_LINEAR and tk == P.LINEAR:
        return [_same("weight", ("weight",))] + _bias(fs)
    if fk == T.EQX_LINEAR and tk == P.HF_CONV1D:
        return [_one("weight", ("weight",), _t)] + _bias(fs)
    if fk == T.CONV and tk == P.CONV:
        return [_conv(len(ts["weight"]))] + _bias(fs) if "weight" in ts else _bias(fs)
    if fk == T.EQX_CONV and tk == P.CONV:
        return [_same("weight", ("weight",))] + _bias(fs)
    if fk == T.CONV_TRANSPOSE and tk == P.CONV_TRANSPOSE:
        return _conv_transpose(ts, fs, module) + _bias(fs)
    if fk == T.EQX_CONV_TRANSPOSE and tk == P.CONV_TRANSPOSE:
        return _eqx_conv_transpose(ts, fs) + _bias(fs)
    if fk in (T.EMBED, T.EQX_EMBED) and tk == P.EMBEDDING:
        return [_same("weight", ("embedding",) if fk == T.EMBED else ("weight",))]
    if fk in (T.NORM, T.EQX_NORM) and tk == P.NORM:
        return _norm(ts, fs, eqx=fk == T.EQX_NORM) + _bias(fs) + extra
    raise PortError(f"a torch {tk} layer cannot fill a {fk} layer")
