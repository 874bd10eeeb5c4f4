"""``TORCH_DEFAULTS``: the rule set that makes Flax layers start as their torch counterparts.

=================================================  =============================================
Flax layer (Linen / NNX)                           torch counterpart and what the rules draw
=================================================  =============================================
MultiHeadDotProductAttention / MultiHeadAttention  ``nn.MultiheadAttention``: query/key/value
                                                   kernels U(±sqrt(6/(E_in + 3E))) (xavier on the
                                                   packed (3E, E) weight; per projection
                                                   U(±sqrt(6/(E_in + E))) when the input widths
                                                   differ, as torch with kdim/vdim), out kernel
                                                   as Linear, every bias 0
LSTMCell, OptimizedLSTMCell, GRUCell, SimpleCell,  ``nn.LSTMCell``/``GRUCell``/``RNNCell``: every
MGUCell (Linen); LSTMCell, OptimizedLSTMCell,      parameter U(±1/sqrt(hidden)); a Flax bias that
GRUCell, SimpleCell (NNX)                          stands for torch's ``b_ih + b_hh`` is drawn as
                                                   that sum (see ``SUMMED_BIASES``)
Dense / Linear, DenseGeneral / LinearGeneral,      ``nn.Linear``/``nn.ConvNd``: kernel and bias
Conv (grouped too), LoRALinear                     U(±1/sqrt(fan_in)), fan_in from the kernel
ConvTranspose                                      ``nn.ConvTransposeNd``: U(±1/sqrt(out/g * prod(k)))
                                                   (torch's fan_in of its (in, out/g, *k) weight)
Embed                                              ``nn.Embedding``: N(0, 1)
LayerNorm, RMSNorm, GroupNorm, BatchNorm,          scale 1, bias 0, running mean 0, var 1
InstanceNorm
=================================================  =============================================

Fans come from each layer's kernel layout (:mod:`jaxinit._src.layers.flax_layouts`),
so layers stacked by ``nn.scan`` get per-layer torch fans. Composite layers
come before their parts: the attention and recurrent-cell rules must win over
the Dense rules that would otherwise match their inner layers. Every rule is
optional, so the set applies to any model under ``strict=True``.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
from flax import nnx

from jaxinit._src.core.layout import Layout, calculate_fan_in_and_fan_out
from jaxinit._src.layers.flax_layouts import layer_layout
from jaxinit._src.schemes.iid import ones, zeros
from jaxinit._src.schemes.torch_defaults import (
    torch_embedding,
    torch_linear_bias,
    torch_linear_weight,
    torch_mha_in_proj,
    torch_rnn,
)
from jaxinit._src.tree.rules import Contextual, Leaf, Rule

__all__ = ["SUMMED_BIASES", "TORCH_DEFAULTS"]


def _classes(*names: str) -> tuple[type, ...]:
    found = []
    for mod in (nn, nnx):
        for name in names:
            cls = getattr(mod, name, None)
            if isinstance(cls, type) and cls not in found:
                found.append(cls)
    return tuple(found)


ATTENTION = _classes("MultiHeadDotProductAttention", "MultiHeadAttention")
CELLS = _classes("LSTMCell", "OptimizedLSTMCell", "GRUCell", "SimpleCell", "MGUCell")
LINEAR = _classes(
    "Dense", "Linear", "Conv", "LoRALinear", "DenseGeneral", "LinearGeneral", "ConvTranspose"
)
EMBED = _classes("Embed")
NORMS = _classes("LayerNorm", "RMSNorm", "GroupNorm", "BatchNorm", "InstanceNorm")


def _kernel_of(leaf: Leaf) -> tuple[int, ...]:
    if leaf.name == "kernel":
        return leaf.shape
    kernel = leaf.siblings.get("kernel")
    if kernel is None:
        raise ValueError(f"{leaf.path_str!r} has no sibling 'kernel' to take fan_in from")
    return tuple(kernel.shape)


def torch_fan_in(leaf: Leaf) -> int:
    """torch's ``fan_in`` of the weight of the linear-like layer owning ``leaf``."""
    owner = leaf.owner_of(LINEAR)
    if owner is None:
        raise ValueError(f"the layer owning {leaf.path_str!r} is unknown")
    kernel = _kernel_of(leaf)
    layout = layer_layout(owner.module, kernel)
    if layout is None:
        raise ValueError(f"cannot read the kernel {kernel} of {owner.cls.__name__}")
    return calculate_fan_in_and_fan_out(kernel, layout)[0]


def _linear(leaf: Leaf, layout: Layout) -> Any:
    if leaf.name == "kernel":
        return torch_linear_weight()  # its fans come from the layer's layout
    return torch_linear_bias(torch_fan_in(leaf))


def _in_proj(leaf: Leaf, layout: Layout) -> Any:
    owner = leaf.owner_of(ATTENTION)
    assert owner is not None
    # torch packs q, k, v into one (3E, E) weight when all three read E
    # features; a Flax projection kernel is (..., in, heads, head_dim).
    embed = leaf.shape[-2] * leaf.shape[-1]
    widths = [
        kernel.shape[-3]
        for name in ("query", "key", "value")
        if (kernel := leaf.lookup.get((*owner.path, name, "kernel"))) is not None
    ]
    packed = len(widths) == 3 and all(w == embed for w in widths)
    return torch_mha_in_proj(3 if packed else 1)


# Where a Flax cell holds one bias for torch's b_ih + b_hh (its input and
# hidden projections are added before the gate), the bias is drawn as that sum.
# Derived from each cell's equations (flax linen/recurrent.py, nnx/nn/recurrent.py):
#   LSTM   i, f, g, o = act(W_i x + W_h h + b): Flax's b sits in the hidden projections
#   GRU    r, z = sigma(W_i x + W_h h + b) (summed); n = tanh(W_in x + b_in + r (W_hn h + b_hn))
#          keeps b_in and b_hn apart, as Linen does; NNX's GRUCell has no b_hn.
#   RNN    h = tanh(W_i x + b + W_h h): one Flax bias for two torch ones.
#   MGU    (no torch cell) f = sigma(W_if x + W_hf h + b): summed, like GRU's z; its n gate
#          is GRU's when reset_gate is set, else its input bias stands for two.
def _mgu_in(module: Any) -> int:
    return 1 if getattr(module, "reset_gate", True) else 2


SUMMED_BIASES: tuple[tuple[tuple[type, ...], dict[str, Any]], ...] = (
    (
        _classes("LSTMCell", "OptimizedLSTMCell"),
        {"hi/bias": 2, "hf/bias": 2, "hg/bias": 2, "ho/bias": 2, "dense_h/bias": 2},
    ),
    (_classes("SimpleCell"), {"i/bias": 2, "dense_i/bias": 2}),
    (
        (nn.GRUCell,),
        {"ir/bias": 2, "iz/bias": 2, "in/bias": 1, "hn/bias": 1},
    ),
    ((nnx.GRUCell,), {"dense_i/bias": (2, 2, 1)}),
    ((nn.MGUCell,), {"if/bias": 2, "in/bias": _mgu_in, "hn/bias": 1}),
)
"""Per cell class: the bias paths below the cell and how many torch biases each sums."""


def _terms(leaf: Leaf, owner_path: tuple[str, ...], module: Any) -> Any:
    below = "/".join(leaf.path[len(owner_path) :])
    for classes, table in SUMMED_BIASES:
        if isinstance(module, classes) and below in table:
            terms = table[below]
            return terms(module) if callable(terms) else terms
    return 1


def _rnn(leaf: Leaf, layout: Layout) -> Any:
    owner = leaf.owner_of(CELLS)
    module = owner.module if owner is not None else None
    hidden = getattr(module, "hidden_features", None) or getattr(module, "features", None)
    if owner is None or not isinstance(hidden, int):
        raise ValueError(
            f"cannot tell the hidden size of the cell owning {leaf.path_str!r}: its module "
            "is unknown (use jaxinit.flax.init, or reinit with model=)"
        )
    return torch_rnn(hidden, _terms(leaf, owner.path, module))


_linear_default = Contextual(_linear, "torch Linear default (fan_in from the weight)")
_rnn_default = Contextual(_rnn, "torch RNN default U(±1/sqrt(hidden)), summed biases")
_in_proj_default = Contextual(_in_proj, "torch MultiheadAttention in_proj (packed xavier)")


def _optional(selector: Any, init: Any) -> Rule:
    return Rule(selector, init, optional=True)


TORCH_DEFAULTS: tuple[Rule, ...] = (
    _optional((ATTENTION, "query/kernel"), _in_proj_default),
    _optional((ATTENTION, "key/kernel"), _in_proj_default),
    _optional((ATTENTION, "value/kernel"), _in_proj_default),
    _optional((ATTENTION, "out/kernel"), _linear_default),
    _optional((ATTENTION, "query/bias"), zeros()),
    _optional((ATTENTION, "key/bias"), zeros()),
    _optional((ATTENTION, "value/bias"), zeros()),
    _optional((ATTENTION, "out/bias"), zeros()),
    _optional(CELLS, _rnn_default),
    _optional((LINEAR, "kernel"), _linear_default),
    _optional((LINEAR, "bias"), _linear_default),
    _optional((EMBED, "embedding"), torch_embedding()),
    _optional((NORMS, "scale"), ones()),
    _optional((NORMS, "bias"), zeros()),
    _optional((NORMS, "mean"), zeros()),
    _optional((NORMS, "var"), ones()),
)
"""Rules making every known Flax layer start as its torch counterpart (all optional)."""
