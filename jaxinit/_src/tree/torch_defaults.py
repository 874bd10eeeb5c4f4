"""``TORCH_DEFAULTS``: the rule set that makes Flax and Equinox layers start as torch's.

The rules select layers by their kind in the registry
(:mod:`jaxinit._src.layers.registry`), so one rule covers the Linen, NNX and
Equinox layers of a kind, and their fans come from the registry's kernel
layouts (layers stacked by ``nn.scan`` get per-layer torch fans):

| layers (Linen / NNX / Equinox) | torch counterpart and what the rules draw |
|---|---|
| MultiHeadDotProductAttention / MultiHeadAttention / MultiheadAttention | `nn.MultiheadAttention`: query/key/value kernels U(±sqrt(6/(E_in + 3E))) (xavier on the packed (3E, E) weight; per projection U(±sqrt(6/(E_in + E))) when the input widths differ, as torch with kdim/vdim), out kernel as Linear, every bias 0 |
| LSTMCell, OptimizedLSTMCell, GRUCell, SimpleCell, MGUCell | `nn.LSTMCell`/`GRUCell`/`RNNCell`: every parameter U(±1/sqrt(hidden)); a bias that stands for torch's `b_ih + b_hh` is drawn as that sum (the registry's `bias_terms`) |
| Dense / Linear, DenseGeneral / LinearGeneral, Conv, LoRALinear; Equinox Linear, Conv | `nn.Linear`/`nn.ConvNd`: kernel and bias U(±1/sqrt(fan_in)), fan_in from the kernel |
| ConvTranspose (all three) | `nn.ConvTransposeNd`: U(±1/sqrt(out/g * prod(k))) (torch's fan_in of its (in, out/g, *k) weight) |
| Embed / Embedding | `nn.Embedding`: N(0, 1) |
| LayerNorm, RMSNorm, GroupNorm, BatchNorm, InstanceNorm | scale 1, bias 0, running mean 0, var 1 |

Composite layers come before their parts: the attention and recurrent-cell
rules must win over the Linear rules that would otherwise match their inner
layers. Every rule is optional, so the set applies to any model under
``strict=True``.
"""

from __future__ import annotations

from typing import Any

from jaxinit._src.core.layout import Layout, calculate_fan_in_and_fan_out
from jaxinit._src.layers import registry as R
from jaxinit._src.layers.leaf import Contextual, Leaf, Owner
from jaxinit._src.schemes.iid import ones, zeros
from jaxinit._src.schemes.torch_defaults import (
    torch_embedding,
    torch_linear_bias,
    torch_linear_weight,
    torch_mha_in_proj,
    torch_rnn,
)
from jaxinit._src.tree.rules import Layers, Rule

__all__ = ["TORCH_DEFAULTS"]

ATTENTION = (R.ATTENTION,)
CELLS = (R.LSTM_CELL, R.LSTM_FUSED, R.GRU_CELL, R.GRU_FUSED, R.SIMPLE_CELL, R.MGU_CELL)
EQX_CELLS = (R.EQX_LSTM, R.EQX_GRU)
LINEAR = (
    R.DENSE,
    R.DENSE_GENERAL,
    R.CONV,
    R.CONV_TRANSPOSE,
    R.EQX_LINEAR,
    R.EQX_CONV,
    R.EQX_CONV_TRANSPOSE,
)
EMBED = (R.EMBED, R.EQX_EMBED)
NORMS = (R.NORM, R.EQX_NORM)


def _owner(leaf: Leaf, kinds: tuple[str, ...]) -> tuple[Owner, R.LayerKind] | None:
    """The innermost layer enclosing ``leaf`` whose kind is one of ``kinds``."""
    for owner in reversed(leaf.owners):
        row = owner.kind
        if row is not None and row.kind in kinds:
            return owner, row
    return None


def torch_fan_in(leaf: Leaf) -> int:
    """torch's ``fan_in`` of the weight of the linear-like layer owning ``leaf``."""
    found = _owner(leaf, LINEAR)
    if found is None:
        raise ValueError(f"the layer owning {leaf.path_str!r} is unknown")
    owner, row = found
    name = row.kernel or "kernel"
    kernel = leaf.shape if leaf.name == name else leaf.siblings.get(name)
    if kernel is None:
        raise ValueError(f"{leaf.path_str!r} has no sibling {name!r} to take fan_in from")
    kernel = tuple(getattr(kernel, "shape", kernel))
    layout = R.layer_layout(owner.module, kernel, owner.local)
    if layout is None:
        raise ValueError(
            f"cannot read the {name} {kernel} of {owner.cls.__name__} at "
            f"{'/'.join(owner.path)!r} as torch reads its weight (its layout is unknown)"
        )
    return calculate_fan_in_and_fan_out(kernel, layout)[0]


def _linear(leaf: Leaf, layout: Layout) -> Any:
    found = _owner(leaf, LINEAR)
    kernel = found[1].kernel if found is not None else "kernel"
    if leaf.name == kernel:
        return torch_linear_weight()  # its fans come from the layer's layout
    return torch_linear_bias(torch_fan_in(leaf))


_PROJECTIONS = {  # attention kind: (q, k, v) kernel paths below the layer, input-width axis
    R.ATTENTION: ((("query", "kernel"), ("key", "kernel"), ("value", "kernel")), -3),
    R.EQX_MHA: ((("query_proj", "weight"), ("key_proj", "weight"), ("value_proj", "weight")), 1),
}


def _in_proj(leaf: Leaf, layout: Layout) -> Any:
    found = _owner(leaf, (R.ATTENTION, R.EQX_MHA))
    assert found is not None
    owner, row = found
    # torch packs q, k, v into one (3E, E) weight when all three read E
    # features: a Flax projection kernel is (..., in, heads, head_dim), an
    # Equinox one (heads * head_dim, in).
    paths, in_axis = _PROJECTIONS[row.kind]
    embed = leaf.shape[-2] * leaf.shape[-1] if row.kind == R.ATTENTION else leaf.shape[0]
    widths = [
        kernel.shape[in_axis]
        for rel in paths
        if (kernel := leaf.lookup.get((*owner.path, *rel))) is not None
    ]
    packed = len(widths) == 3 and all(w == embed for w in widths)
    return torch_mha_in_proj(3 if packed else 1)


def _terms(leaf: Leaf, owner: Owner, row: R.LayerKind) -> Any:
    below = "/".join(leaf.path[len(owner.path) :])
    terms = row.bias_terms.get(below, 1)
    return terms(owner.module) if callable(terms) else terms


def _rnn(leaf: Leaf, layout: Layout) -> Any:
    found = _owner(leaf, CELLS + EQX_CELLS)
    module = found[0].module if found is not None else None
    hidden = next(
        (
            h
            for name in ("hidden_features", "hidden_size", "features")
            if isinstance(h := getattr(module, name, None), int)
        ),
        None,
    )
    if found is None or hidden is None:
        raise ValueError(
            f"cannot tell the hidden size of the cell owning {leaf.path_str!r}: its module "
            "is unknown (use jaxinit.flax.init, or reinit with model=)"
        )
    return torch_rnn(hidden, _terms(leaf, *found))


_linear_default = Contextual(
    _linear, "torch_linear_weight() | torch_linear_bias(fan_in=<the kernel's torch fan_in>)"
)
_rnn_default = Contextual(
    _rnn, "torch_rnn(hidden_size=<the cell's>, terms=<torch biases a bias stands for>)"
)
_in_proj_default = Contextual(
    _in_proj, "torch_mha_in_proj(num_packed=<3 if query, key, value read E features, else 1>)"
)


def _optional(kinds: tuple[str, ...], pattern: str, init: Any) -> Rule:
    return Rule(Layers(kinds, pattern), init, optional=True)


TORCH_DEFAULTS: tuple[Rule, ...] = (
    _optional(ATTENTION, "query/kernel", _in_proj_default),
    _optional(ATTENTION, "key/kernel", _in_proj_default),
    _optional(ATTENTION, "value/kernel", _in_proj_default),
    _optional(ATTENTION, "out/kernel", _linear_default),
    _optional(ATTENTION, "*/bias", zeros()),
    _optional((R.EQX_MHA,), "query_proj/weight", _in_proj_default),
    _optional((R.EQX_MHA,), "key_proj/weight", _in_proj_default),
    _optional((R.EQX_MHA,), "value_proj/weight", _in_proj_default),
    _optional((R.EQX_MHA,), "output_proj/weight", _linear_default),
    _optional((R.EQX_MHA,), "*/bias", zeros()),
    _optional(CELLS + EQX_CELLS, "*", _rnn_default),
    _optional(LINEAR, "kernel", _linear_default),
    _optional(LINEAR, "weight", _linear_default),
    _optional(LINEAR, "bias", _linear_default),
    _optional(EMBED, "embedding", torch_embedding()),
    _optional(EMBED, "weight", torch_embedding()),
    _optional(NORMS, "scale", ones()),
    _optional(NORMS, "weight", ones()),
    _optional(NORMS, "bias", zeros()),
    _optional(NORMS, "mean", zeros()),
    _optional(NORMS, "var", ones()),
)
"""Rules making every known Flax and Equinox layer start as its torch counterpart (all optional)."""
