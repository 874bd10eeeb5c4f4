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
MGUCell (Linen); LSTMCell, OptimizedLSTMCell,      parameter U(±1/sqrt(hidden)). Flax keeps one
GRUCell, SimpleCell (NNX)                          bias where torch has ``b_ih`` and ``b_hh``; it
                                                   is drawn like one of them
Dense / Linear                                     ``nn.Linear``: kernel and bias U(±1/sqrt(in))
DenseGeneral / LinearGeneral                       ``nn.Linear`` on the flattened in/out axes
Conv (1-D/2-D/3-D, grouped)                        ``nn.ConvNd``: U(±1/sqrt(in/groups * prod(k)))
ConvTranspose                                      ``nn.ConvTransposeNd``: U(±1/sqrt(out * prod(k)))
                                                   (torch's fan_in of its (in, out, *k) weight)
Embed                                              ``nn.Embedding``: N(0, 1)
LayerNorm, RMSNorm, GroupNorm, BatchNorm,          scale 1, bias 0, running mean 0, var 1
InstanceNorm
=================================================  =============================================

Composite layers come before their parts: the attention and recurrent-cell
rules must win over the Dense rules that would otherwise match their inner
layers. Every rule is optional, so the set applies to any model under
``strict=True``.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
from flax import nnx

from jaxinit._src.layout import Layout
from jaxinit._src.schemes import normal, ones, uniform, zeros
from jaxinit._src.torch_defaults import linear_bound, linear_weight_bound, torch_rnn
from jaxinit._src.tree import Contextual, Leaf, Rule

__all__ = ["TORCH_DEFAULTS"]


def _classes(*names: str, modules: tuple[Any, ...] = (nn, nnx)) -> tuple[type, ...]:
    found = []
    for mod in modules:
        for name in names:
            cls = getattr(mod, name, None)
            if isinstance(cls, type) and cls not in found:
                found.append(cls)
    return tuple(found)


ATTENTION = _classes("MultiHeadDotProductAttention", "MultiHeadAttention")
CELLS = _classes("LSTMCell", "OptimizedLSTMCell", "GRUCell", "SimpleCell", "MGUCell")
DENSE_GENERAL = _classes("DenseGeneral", "LinearGeneral")
CONV_TRANSPOSE = _classes("ConvTranspose")
LINEAR = _classes("Dense", "Linear", "Conv", "LoRALinear") + DENSE_GENERAL + CONV_TRANSPOSE
EMBED = _classes("Embed")
NORMS = _classes("LayerNorm", "RMSNorm", "GroupNorm", "BatchNorm", "InstanceNorm")


def _kernel_shape(leaf: Leaf) -> tuple[int, ...]:
    if leaf.name == "kernel":
        return leaf.shape
    kernel = leaf.siblings.get("kernel")
    if kernel is None:
        raise ValueError(f"{leaf.path_str!r} has no sibling 'kernel' to take fan_in from")
    return tuple(kernel.shape)


def _count(x: Any) -> int:
    """How many axes an ``int | Sequence[int]`` attribute names."""
    return 1 if isinstance(x, int) else len(x)


def torch_fan_in(leaf: Leaf) -> int:
    """torch's ``fan_in`` of the weight of the linear-like layer owning ``leaf``.

    Read from the trailing axes of the kernel, so a kernel stacked by
    ``nn.scan``/``nn.vmap`` (``(layers, *kernel)``) gets each layer's fan,
    as the torch model's separate layers have.
    """
    owner = leaf.owner_of(LINEAR)
    shape = _kernel_shape(leaf)
    module = owner.module if owner is not None else None
    cls = owner.cls if owner is not None else None
    if cls is None or module is None:
        bias = leaf.siblings.get("bias")
        n_out = len(bias.shape) if bias is not None else 1
        return math.prod(shape[: len(shape) - n_out])
    if issubclass(cls, DENSE_GENERAL):
        in_features = getattr(module, "in_features", None)
        if isinstance(in_features, tuple | list) and hasattr(module, "out_features"):  # NNX
            return math.prod(in_features)
        n_in = _count(getattr(module, "axis", -1))
        n_feat = _count(getattr(module, "features", 1))
        return math.prod(shape[len(shape) - n_feat - n_in : len(shape) - n_feat])
    kernel_size = getattr(module, "kernel_size", None)
    n_k = _count(kernel_size) if kernel_size is not None else 0
    field = math.prod(shape[len(shape) - 2 - n_k : len(shape) - 2])
    if issubclass(cls, CONV_TRANSPOSE):
        # torch's weight is (in, out/groups, *k) and fan_in reads dim 1.
        swapped = bool(getattr(module, "transpose_kernel", False))
        return field * shape[-2 if swapped else -1]
    return field * shape[-2]  # Dense (no kernel axes) and Conv: in/groups * prod(k)


def _linear(leaf: Leaf, layout: Layout) -> Any:
    fan_in = torch_fan_in(leaf)
    bound = linear_weight_bound(fan_in) if leaf.name == "kernel" else linear_bound(fan_in)
    return uniform(-bound, bound)


def _rnn(leaf: Leaf, layout: Layout) -> Any:
    owner = leaf.owner_of(CELLS)
    module = owner.module if owner is not None else None
    hidden = getattr(module, "hidden_features", None) or getattr(module, "features", None)
    if not isinstance(hidden, int):
        raise ValueError(
            f"cannot tell the hidden size of the cell owning {leaf.path_str!r}: its module "
            "is unknown (use jaxinit.flax.init, or reinit with model=)"
        )
    return torch_rnn(hidden)


def _in_proj(leaf: Leaf, layout: Layout) -> Any:
    owner = leaf.owner_of(ATTENTION)
    assert owner is not None
    base = owner.path
    widths = []
    for name in ("query", "key", "value"):
        kernel = leaf.lookup.get((*base, name, "kernel"))
        if kernel is not None:
            widths.append(kernel.shape[-3])
    # A projection kernel is (..., in, heads, head_dim); leading axes are
    # layers stacked by nn.scan / nn.vmap.
    embed = leaf.shape[-2] * leaf.shape[-1]
    fan_in = leaf.shape[-3]
    packed = len(widths) == 3 and all(w == embed for w in widths)
    bound = math.sqrt(6.0 / float(fan_in + (3 if packed else 1) * embed))
    return uniform(-bound, bound)


_linear_default = Contextual(_linear, "torch Linear default (fan_in from the weight)")
_rnn_default = Contextual(_rnn, "torch RNN default U(±1/sqrt(hidden))")
_in_proj_default = Contextual(_in_proj, "torch MultiheadAttention in_proj (packed xavier_uniform)")


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
    _optional((EMBED, "embedding"), normal(0.0, 1.0)),
    _optional((NORMS, "scale"), ones()),
    _optional((NORMS, "bias"), zeros()),
    _optional((NORMS, "mean"), zeros()),
    _optional((NORMS, "var"), ones()),
)
"""Rules making every known Flax layer start as its torch counterpart (all optional)."""
