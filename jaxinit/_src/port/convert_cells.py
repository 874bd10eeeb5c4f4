"""Conversions of torch's composite layers: MultiheadAttention and the recurrent cells.

- ``MultiheadAttention``: ``in_proj_weight`` ``(3E, E)`` (or
  ``q/k/v_proj_weight``) -> ``query``/``key``/``value`` kernels
  ``(E_in, heads, head_dim)`` (rows ``h*head_dim + d`` are head ``h``, as in
  torch's reshape), ``in_proj_bias`` -> biases ``(heads, head_dim)``,
  ``out_proj.weight`` ``(E, E)`` -> ``out`` kernel ``(heads, head_dim, E)``.
  Equinox keeps torch's layout.
- Recurrent cells, torch's gate order (LSTM ``i, f, g, o``; GRU ``r, z, n``).
  Where Flax has one bias for torch's ``b_ih + b_hh`` it gets the sum; the
  GRU's ``n`` gate keeps ``b_in`` (input side) and ``b_hn`` (inside
  ``r * (W_hn h + b_hn)``) apart, as Linen's ``GRUCell`` (``in``/``hn``
  biases) and Equinox's (``bias_n``) do. Back to torch, a summed bias goes
  into ``b_ih`` and ``b_hh`` is zero: the same function.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from jaxinit._src.port import groups as G
from jaxinit._src.port import target as T
from jaxinit._src.port import torch as P
from jaxinit._src.port.groups import Group, PortError, Rel

__all__ = ["cell", "mha"]


Move = Callable[[np.ndarray], np.ndarray]


def _identity(x: np.ndarray) -> np.ndarray:
    return x


@dataclasses.dataclass
class _AttentionLayout:
    """Where an attention layer keeps its projections, and how torch's rows move there."""

    kernels: list[Rel]  # query, key, value
    biases: list[Rel]
    out_kernel: Rel
    out_bias: Rel
    to_kernel: list[Move]  # per projection: torch (E, E_in) rows -> the kernel
    from_kernel: list[Move]
    to_bias: list[Move]
    out_fwd: Move
    out_bwd: Move


def _attention_layout(fs: Mapping[Rel, tuple[int, ...]], eqx: bool) -> _AttentionLayout:
    names = ("query_proj", "key_proj", "value_proj") if eqx else ("query", "key", "value")
    kernels: list[Rel] = [(n, "weight" if eqx else "kernel") for n in names]
    biases: list[Rel] = [(n, "bias") for n in names]
    missing = [n for n, k in zip(names, kernels) if k not in fs]
    if missing:
        raise PortError(f"the attention layer has no {', '.join(missing)} kernel")
    if eqx:  # Equinox keeps torch's (out, in) layout
        same: list[Move] = [_identity] * 3
        out = ("output_proj", "weight"), ("output_proj", "bias")
        return _AttentionLayout(kernels, biases, *out, same, same, same, _identity, _identity)

    def reshaped(shape: Any, transpose: bool) -> Move:
        return (lambda w: w.T.reshape(shape)) if transpose else (lambda b: b.reshape(shape))

    oshape = fs.get(("out", "kernel"))
    return _AttentionLayout(
        kernels,
        biases,
        ("out", "kernel"),
        ("out", "bias"),
        [reshaped(fs[k], True) for k in kernels],  # (E_in, heads, head_dim)
        [lambda k: k.reshape(k.shape[0], -1).T] * 3,
        [reshaped(fs.get(b), False) for b in biases],  # (heads, head_dim)
        lambda w: w.T.reshape(oshape),  # (heads, head_dim, E)
        lambda k: k.reshape(-1, k.shape[-1]).T,
    )


def mha(ts: Mapping[str, Any], fs: Mapping[Rel, tuple[int, ...]], eqx: bool) -> list[Group]:
    """torch ``MultiheadAttention`` (packed or separate in-projections) -> Flax or Equinox attention."""
    if "bias_k" in ts or "bias_v" in ts:
        raise PortError(
            "MultiheadAttention(add_bias_kv=True) has no Flax or Equinox counterpart "
            "(bias_k, bias_v)"
        )
    lay = _attention_layout(fs, eqx)
    groups = []
    if "in_proj_weight" in ts:
        fwds, bwds = lay.to_kernel, lay.from_kernel
        groups.append(
            Group(
                ("in_proj_weight",),
                tuple(lay.kernels),
                lambda w: tuple(f(p) for f, p in zip(fwds, G.split(w, 3))),
                lambda q, k, v: (np.concatenate([b(x) for b, x in zip(bwds, (q, k, v))]),),
            )
        )
    else:
        for i, src in enumerate(("q_proj_weight", "k_proj_weight", "v_proj_weight")):
            groups.append(G.one(src, lay.kernels[i], lay.to_kernel[i], lay.from_kernel[i]))
    if "in_proj_bias" in ts:
        bf = lay.to_bias
        groups.append(
            Group(
                ("in_proj_bias",),
                tuple(lay.biases),
                lambda b: tuple(f(p) for f, p in zip(bf, G.split(b, 3))),
                lambda q, k, v: (np.concatenate([x.reshape(-1) for x in (q, k, v)]),),
            )
        )
    groups.append(G.one("out_proj.weight", lay.out_kernel, lay.out_fwd, lay.out_bwd))
    if "out_proj.bias" in ts:
        groups.append(G.same("out_proj.bias", lay.out_bias))
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


def cell(tk: str, fk: str, ts: Mapping[str, Any], fs: Mapping[Rel, tuple[int, ...]]) -> list[Group]:
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
            lambda bi, bh: tuple(G.split(G.sum_exact(bi, bh), 4)),
            lambda *bs: (np.concatenate(bs), np.zeros(sum(b.size for b in bs), bs[0].dtype)),
            bias_shapes,
        )
    elif fk == T.GRU_CELL and tk == P.GRU:
        i_names, h_names = ["ir", "iz", "in"], ["hr", "hz", "hn"]
        dst = (("ir", "bias"), ("iz", "bias"), ("in", "bias"), ("hn", "bias"))

        def gru_fwd(bi: np.ndarray, bh: np.ndarray) -> tuple[np.ndarray, ...]:
            (ir, iz, in_), (hr, hz, hn) = G.split(bi, 3), G.split(bh, 3)
            return G.sum_exact(ir, hr), G.sum_exact(iz, hz), in_, hn

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
            lambda bi, bh: (G.sum_exact(bi, bh),),
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
        lambda w: tuple(p.T for p in G.split(w, n)),
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
        kernels = [G.same("weight_ih", wi), G.same("weight_hh", wh)]
    else:
        wi, wh = ("dense_i", "kernel"), ("dense_h", "kernel")
        kernels = [G.one("weight_ih", wi, G.transpose2), G.one("weight_hh", wh, G.transpose2)]
    if tk == P.GRU and fk in (T.GRU_FUSED, T.EQX_GRU):
        H = ts["weight_hh"][1] if "weight_hh" in ts else 0

        if eqx:

            def fwd(bi: np.ndarray, bh: np.ndarray) -> tuple[np.ndarray, ...]:
                (ir, iz, in_), (hr, hz, hn) = G.split(bi, 3), G.split(bh, 3)
                return np.concatenate([G.sum_exact(ir, hr), G.sum_exact(iz, hz), in_]), hn

            def bwd(b: np.ndarray, bn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                return b, np.concatenate([np.zeros_like(b[: 2 * H]), bn])

            dst: tuple[Rel, ...] = (("bias",), ("bias_n",))
        else:

            def fwd(bi: np.ndarray, bh: np.ndarray) -> tuple[np.ndarray, ...]:
                (ir, iz, in_), (hr, hz, hn) = G.split(bi, 3), G.split(bh, 3)
                if np.any(hn):
                    raise PortError(
                        "nnx.GRUCell has no bias inside r * (W_hn h + b_hn), but this torch "
                        "GRU's b_hn (bias_hh[2H:]) is not 0; use flax.linen.GRUCell (its 'hn' "
                        "bias) or equinox.nn.GRUCell (bias_n) for an exact port"
                    )
                return (np.concatenate([G.sum_exact(ir, hr), G.sum_exact(iz, hz), in_]),)

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
            lambda bi, bh: (G.sum_exact(bi, bh),),
            lambda b: (b, np.zeros_like(b)),
            (fs.get(b_dst, (0,)),),
        ),
    ]
