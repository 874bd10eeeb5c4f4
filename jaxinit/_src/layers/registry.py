"""The one registry of layer kinds: Linen, NNX and Equinox layers, as jaxinit knows them.

Every door that needs to know a layer asks this table and nothing else: the
``kernel_init`` context lookup (:mod:`jaxinit._src.layers.context`), the tree
tools (``reinit``/``init``/``explain``, through the leaf layouts of
:mod:`jaxinit._src.layers.leaf`), ``TORCH_DEFAULTS``
(:mod:`jaxinit._src.tree.torch_defaults`) and the port (``from_torch``,
``to_torch``, ``compare_init``, through :mod:`jaxinit._src.port.target`). So
the same builder reached through any door reads the same fans.

Each :class:`LayerKind` row says, for a set of classes of one framework:

- ``kind``: the kind's id, shared by the frameworks' equivalent layers (the
  port pairs torch layers with it);
- ``torch``: the torch counterpart (a kind of :mod:`jaxinit._src.port.torch`);
- ``kernel``: the name of the parameter whose layout the fans are read from;
- ``layout``: ``(module, shape, local) -> (Layout, kernel rank) | None``, the
  kernel's layout (the axes the equivalent torch weight reads as in and out);
- ``composite``: whether the layer is built of inner layers whose leaves it
  claims (attention, recurrent cells);
- ``bias_terms``: for a recurrent cell, the biases (path below the cell)
  that stand for a sum of torch biases, and how many each sums (torch's
  function starts with that sum: ``TORCH_DEFAULTS`` draws it).

Kernel layouts (the equivalent torch weight in brackets):

| layer | kernel layout |
|---|---|
| Dense, Linear, DenseParams, LoRA | `(in, out)`: flax (torch `Linear` `(out, in)`) |
| DenseGeneral, LinearGeneral | contracted axes in, feature axes out; flattened `(in, out)` as their `kernel_init` sees it |
| Conv | `(*k, in/g, out)`: flax (torch `(out, in/g, *k)`) |
| ConvLocal | `(*positions, k*in, out)`: flax, positions are batch axes |
| ConvTranspose | `(*k, in, out)` read as torch reads `(in, out/g, *k)`: `Layout(-1, -2)`; `transpose_kernel=True`: flax |
| Embed | `(num, features)`, as torch's `Embedding`: `Layout(-1, -2)` |
| Einsum | from the equation: contracted kernel axes in, kept axes out, axes in all three operands batch |
| Equinox Linear, Conv, Embedding, cells | torch's own layout |
| Equinox ConvTranspose | `(out, in/g, *k)`, read as torch reads `(in, out/g, *k)`: `Layout(0, 1)` (groups 1) |

Extra leading axes (a kernel stacked by ``nn.scan``/``nn.vmap``) become
batch axes: each layer gets its own fans and structure.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable, Mapping
from typing import Any

from jaxinit._src.core.layout import FLAX, TORCH, Layout

__all__ = [
    "KINDS",
    "LayerKind",
    "kind_of",
    "layer_layout",
]

# Kind ids (shared with the port's pairing and conversions).
DENSE = "dense"
DENSE_GENERAL = "dense_general"
CONV = "conv"
CONV_LOCAL = "conv_local"
CONV_TRANSPOSE = "conv_transpose"
EINSUM = "einsum"
EMBED = "embed"
NORM = "norm"
ATTENTION = "attention"
LSTM_CELL = "lstm_cell"  # Linen LSTMCell/OptimizedLSTMCell, NNX LSTMCell: ii..io, hi..ho
LSTM_FUSED = "lstm_fused"  # NNX OptimizedLSTMCell: dense_i (in, 4H), dense_h (H, 4H)
GRU_CELL = "gru_cell"  # Linen GRUCell: ir, iz, in, hr, hz, hn
GRU_FUSED = "gru_fused"  # NNX GRUCell: dense_i (in, 3H) with bias, dense_h (H, 3H) without
SIMPLE_CELL = "simple_cell"  # Linen SimpleCell (i, h), NNX SimpleCell (dense_i, dense_h)
MGU_CELL = "mgu_cell"  # Linen MGUCell (no torch counterpart)
EQX_LINEAR = "eqx_linear"
EQX_CONV = "eqx_conv"
EQX_CONV_TRANSPOSE = "eqx_conv_transpose"
EQX_EMBED = "eqx_embed"
EQX_NORM = "eqx_norm"
EQX_MHA = "eqx_mha"
EQX_LSTM = "eqx_lstm"
EQX_GRU = "eqx_gru"

# torch counterparts (the kinds of jaxinit._src.port.torch)
T_LINEAR, T_CONV, T_CONV_TRANSPOSE, T_EMBEDDING, T_NORM = (
    "linear",
    "conv",
    "conv_transpose",
    "embedding",
    "norm",
)
T_MHA, T_LSTM, T_GRU, T_RNN = "mha", "lstm", "gru", "rnn"

_MODULES = {"linen": "flax.linen", "nnx": "flax.nnx", "equinox": "equinox.nn"}

LayoutFn = Callable[[Any, tuple[int, ...], Mapping[str, Any]], "tuple[Layout, int] | None"]


@dataclasses.dataclass(frozen=True)
class LayerKind:
    """One row of the registry: a kind of layer of one framework (see the module doc)."""

    kind: str
    framework: str
    classes: tuple[str, ...]
    torch: str | None
    kernel: str | None = None
    layout: LayoutFn | None = None
    composite: bool = False
    bias_terms: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def resolve(self) -> tuple[type, ...]:
        """The classes of this row that are loaded (nothing is imported)."""
        module = sys.modules.get(_MODULES[self.framework])
        return _resolve(module, self.classes)

    @property
    def label(self) -> str:
        return f"{self.framework}.{'/'.join(self.classes)}"


@functools.lru_cache(maxsize=256)
def _resolve(module: Any, names: tuple[str, ...]) -> tuple[type, ...]:
    if module is None:
        return ()
    return tuple(c for n in names if isinstance(c := getattr(module, n, None), type))


def _count(x: Any) -> int:
    """How many axes an ``int | Sequence[int]`` attribute names."""
    return 1 if isinstance(x, int) else len(x)


def _attr(module: Any, local: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """A layer's setting: the attribute, else the constructor/call argument of that name."""
    value = getattr(module, name, None)
    return local.get(name, default) if value is None else value


# ----------------------------------------------------------------------------
# Kernel layouts


def _fixed(layout: Layout, rank: int) -> LayoutFn:
    return lambda module, shape, local: (layout, rank)


def _conv_rank(module: Any, local: Mapping[str, Any]) -> int:
    return _count(_attr(module, local, "kernel_size", ())) + 2


def _conv(module: Any, shape: tuple[int, ...], local: Mapping[str, Any]) -> tuple[Layout, int]:
    return FLAX, _conv_rank(module, local)


def _conv_local(module: Any, shape: tuple[int, ...], local: Mapping[str, Any]):
    n = _count(_attr(module, local, "kernel_size", ()))
    return Layout(in_axis=-2, out_axis=-1, batch_axis=tuple(range(-n - 2, -2))), n + 2


CONV_TRANSPOSE_FLAX = Layout(
    in_axis=-1, out_axis=-2
)  # (*k, in, out) read as torch's (in, out/g, *k)
EMBED_FLAX = Layout(in_axis=-1, out_axis=-2)  # (num, features) read as torch's Embedding weight


def _conv_transpose(module: Any, shape: tuple[int, ...], local: Mapping[str, Any]):
    swapped = bool(_attr(module, local, "transpose_kernel", False))
    return (FLAX if swapped else CONV_TRANSPOSE_FLAX), _conv_rank(module, local)


def einsum_layout(equation: Any, ndim: int) -> Layout | None:
    """The kernel layout an ``"lhs,kernel->out"`` equation implies (None if it cannot tell).

    A ``...`` broadcast on the input and output (``"...i,io->...o"``) leaves
    the kernel's axes as they are; an ellipsis in the kernel cannot be read.
    """
    if not isinstance(equation, str):
        return None
    equation = equation.replace(" ", "")
    try:
        inputs, output = equation.split("->")
        lhs, rhs = inputs.split(",")
    except ValueError:
        return None
    if "..." in rhs or len(rhs) != ndim:
        return None
    lhs, output = lhs.replace("...", ""), output.replace("...", "")
    ins = tuple(i - ndim for i, c in enumerate(rhs) if c in lhs and c not in output)
    outs = tuple(i - ndim for i, c in enumerate(rhs) if c in output and c not in lhs)
    batch = tuple(i - ndim for i, c in enumerate(rhs) if c in lhs and c in output)
    if not ins or not outs:
        return None
    return Layout(in_axis=ins, out_axis=outs, batch_axis=batch)


def _einsum(module: Any, shape: tuple[int, ...], local: Mapping[str, Any]):
    kernel_shape = _attr(module, local, "shape") or _attr(module, local, "kernel_shape")
    n = len(kernel_shape) if kernel_shape is not None else len(shape)
    layout = einsum_layout(_attr(module, local, "einsum_str"), n)
    return None if layout is None else (layout, n)


def _dense_general(module: Any, shape: tuple[int, ...], local: Mapping[str, Any]):
    if len(shape) == 2:  # as their kernel_init sees it: flattened
        return FLAX, 2
    if hasattr(module, "out_features"):  # NNX LinearGeneral
        n_in = len(module.in_features) + len(getattr(module, "batch_axis", {}))
        n_out = len(module.out_features)
    else:  # Linen DenseGeneral: batch dims count as in, as Flax's own flattening does
        n_in = _count(module.axis) + _count(getattr(module, "batch_dims", ()))
        n_out = _count(module.features)
    layout = Layout(in_axis=tuple(range(-n_out - n_in, -n_out)), out_axis=tuple(range(-n_out, 0)))
    return layout, n_in + n_out


def _eqx_conv(module: Any, shape: tuple[int, ...], local: Mapping[str, Any]):
    return TORCH, _count(getattr(module, "kernel_size", ())) + 2


# An Equinox ConvTranspose weight (out, in/g, *k) read as torch reads its (in, out/g, *k).
EQX_CONV_TRANSPOSE_LAYOUT = Layout(in_axis=0, out_axis=1)


def _eqx_conv_transpose(module: Any, shape: tuple[int, ...], local: Mapping[str, Any]):
    if getattr(module, "groups", 1) != 1:
        # torch's fans of the (in, out/g, *k) weight are out/g and in, which no
        # choice of axes of (out, in/g, *k) gives: unknown (the tree tools say so).
        return None
    return EQX_CONV_TRANSPOSE_LAYOUT, _count(getattr(module, "kernel_size", ())) + 2


# ----------------------------------------------------------------------------
# Recurrent cells: a Flax/Equinox bias standing for torch's b_ih + b_hh
#
# Derived from each cell's equations (flax linen/recurrent.py, nnx/nn/recurrent.py,
# equinox nn/_rnn.py):
#   LSTM   i, f, g, o = act(W_i x + W_h h + b): one bias for two torch ones.
#   GRU    r, z = sigma(W_i x + W_h h + b) (summed); n = tanh(W_in x + b_in + r (W_hn h + b_hn))
#          keeps b_in and b_hn apart (Linen: in/hn biases; Equinox: bias rows n and
#          bias_n); NNX's GRUCell has no b_hn.
#   RNN    h = tanh(W_i x + b + W_h h): one bias for two.
#   MGU    (no torch cell) f = sigma(W_if x + W_hf h + b): summed, like GRU's z; its n gate
#          is GRU's when reset_gate is set, else its input bias stands for two.


def _mgu_in(module: Any) -> int:
    return 1 if getattr(module, "reset_gate", True) else 2


_LSTM_BIASES = {"hi/bias": 2, "hf/bias": 2, "hg/bias": 2, "ho/bias": 2}


# ----------------------------------------------------------------------------
# The table: per framework, subclasses before their bases


def _row(kind: str, framework: str, names: str, torch: str | None, **kw: Any) -> LayerKind:
    return LayerKind(kind, framework, tuple(names.split()), torch, **kw)


_DENSE = {"kernel": "kernel", "layout": _fixed(FLAX, 2)}
_NORMS = "LayerNorm RMSNorm GroupNorm BatchNorm InstanceNorm"

KINDS: tuple[LayerKind, ...] = (
    # Linen
    _row(ATTENTION, "linen", "MultiHeadDotProductAttention", T_MHA, composite=True),
    _row(
        LSTM_CELL,
        "linen",
        "LSTMCell OptimizedLSTMCell",
        T_LSTM,
        composite=True,
        bias_terms=_LSTM_BIASES,
    ),  # fmt: skip
    _row(
        GRU_CELL,
        "linen",
        "GRUCell",
        T_GRU,
        composite=True,
        bias_terms={"ir/bias": 2, "iz/bias": 2, "in/bias": 1, "hn/bias": 1},
    ),  # fmt: skip
    _row(SIMPLE_CELL, "linen", "SimpleCell", T_RNN, composite=True, bias_terms={"i/bias": 2}),
    _row(
        MGU_CELL,
        "linen",
        "MGUCell",
        None,
        composite=True,
        bias_terms={"if/bias": 2, "in/bias": _mgu_in, "hn/bias": 1},
    ),  # fmt: skip
    _row(EMBED, "linen", "Embed", T_EMBEDDING, kernel="embedding", layout=_fixed(EMBED_FLAX, 2)),
    _row(
        CONV_TRANSPOSE,
        "linen",
        "ConvTranspose",
        T_CONV_TRANSPOSE,
        kernel="kernel",
        layout=_conv_transpose,
    ),  # fmt: skip
    _row(CONV_LOCAL, "linen", "ConvLocal", None, kernel="kernel", layout=_conv_local),
    _row(CONV, "linen", "Conv", T_CONV, kernel="kernel", layout=_conv),
    _row(EINSUM, "linen", "Einsum", None, kernel="kernel", layout=_einsum),
    _row(DENSE_GENERAL, "linen", "DenseGeneral", T_LINEAR, kernel="kernel", layout=_dense_general),
    _row(DENSE, "linen", "Dense", T_LINEAR, **_DENSE),
    _row(NORM, "linen", _NORMS, T_NORM),
    # NNX
    _row(ATTENTION, "nnx", "MultiHeadAttention", T_MHA, composite=True),
    _row(
        LSTM_FUSED,
        "nnx",
        "OptimizedLSTMCell",
        T_LSTM,
        composite=True,
        bias_terms={"dense_h/bias": 2},
    ),  # fmt: skip
    _row(LSTM_CELL, "nnx", "LSTMCell", T_LSTM, composite=True, bias_terms=_LSTM_BIASES),
    _row(
        GRU_FUSED, "nnx", "GRUCell", T_GRU, composite=True, bias_terms={"dense_i/bias": (2, 2, 1)}
    ),  # fmt: skip
    _row(
        SIMPLE_CELL, "nnx", "SimpleCell", T_RNN, composite=True, bias_terms={"dense_i/bias": 2}
    ),  # fmt: skip
    _row(EMBED, "nnx", "Embed", T_EMBEDDING, kernel="embedding", layout=_fixed(EMBED_FLAX, 2)),
    _row(
        CONV_TRANSPOSE,
        "nnx",
        "ConvTranspose",
        T_CONV_TRANSPOSE,
        kernel="kernel",
        layout=_conv_transpose,
    ),  # fmt: skip
    _row(CONV, "nnx", "Conv", T_CONV, kernel="kernel", layout=_conv),
    _row(EINSUM, "nnx", "Einsum", None, kernel="kernel", layout=_einsum),
    _row(DENSE_GENERAL, "nnx", "LinearGeneral", T_LINEAR, kernel="kernel", layout=_dense_general),
    _row(DENSE, "nnx", "LoRALinear Linear LoRA", T_LINEAR, **_DENSE),
    _row(NORM, "nnx", _NORMS, T_NORM),
    # Linen's DenseParams (the parameters of a Dense without the layer)
    _row(DENSE, "linen", "DenseParams LoRA", T_LINEAR, **_DENSE),
    # Equinox: weights in torch's own layout
    _row(EQX_MHA, "equinox", "MultiheadAttention", T_MHA, composite=True),
    _row(
        EQX_LSTM,
        "equinox",
        "LSTMCell",
        T_LSTM,
        kernel="weight_ih",
        layout=_fixed(TORCH, 2),
        bias_terms={"bias": 2},
    ),  # fmt: skip
    _row(
        EQX_GRU,
        "equinox",
        "GRUCell",
        T_GRU,
        kernel="weight_ih",
        layout=_fixed(TORCH, 2),
        bias_terms={"bias": (2, 2, 1), "bias_n": 1},
    ),  # fmt: skip
    _row(EQX_LINEAR, "equinox", "Linear", T_LINEAR, kernel="weight", layout=_fixed(TORCH, 2)),
    _row(
        EQX_CONV_TRANSPOSE,
        "equinox",
        "ConvTranspose",
        T_CONV_TRANSPOSE,
        kernel="weight",
        layout=_eqx_conv_transpose,
    ),  # fmt: skip
    _row(EQX_CONV, "equinox", "Conv", T_CONV, kernel="weight", layout=_eqx_conv),
    _row(EQX_EMBED, "equinox", "Embedding", T_EMBEDDING, kernel="weight", layout=_fixed(TORCH, 2)),
    _row(EQX_NORM, "equinox", "LayerNorm GroupNorm RMSNorm BatchNorm", T_NORM),
)
"""Every layer kind jaxinit knows, most specific first within a framework."""


def _loaded() -> tuple[Any, ...]:
    return tuple(sys.modules.get(m) for m in _MODULES.values())


def kind_of(module_or_cls: Any) -> LayerKind | None:
    """The registry row of a layer (an instance or a class); ``None`` if it is none of them."""
    cls = module_or_cls if isinstance(module_or_cls, type) else type(module_or_cls)
    return _kind_of(cls, _loaded())


@functools.lru_cache(maxsize=1024)
def _kind_of(cls: type, loaded: tuple[Any, ...]) -> LayerKind | None:
    for row in KINDS:
        classes = row.resolve()
        if classes and issubclass(cls, classes):
            return row
    return None


def is_layer(module: Any) -> bool:
    """Whether ``module`` is a layer of a kind the registry knows."""
    return kind_of(module) is not None


def layer_layout(
    module: Any, shape: tuple[int, ...], local: Mapping[str, Any] | None = None
) -> Layout | None:
    """The layout of a ``shape`` kernel of the registered layer ``module``, or None.

    None too when ``shape`` has fewer dimensions than the layer's kernel (a
    bias), or when the layer's settings leave the layout undetermined (an
    Einsum whose equation is unknown). Leading axes beyond the kernel's rank
    (layers stacked by ``nn.scan``/``nn.vmap``) become batch axes. ``local``:
    settings not (yet) held as attributes, such as an NNX layer's
    ``__init__`` arguments or a Linen layer's call arguments.
    """
    row = kind_of(module)
    if row is None or row.layout is None:
        return None
    native = row.layout(module, shape, local or {})
    if native is None:
        return None
    layout, own = native
    extra = len(shape) - own
    if extra < 0:
        return None
    if extra == 0:
        return layout
    return Layout(
        in_axis=layout.in_axis,
        out_axis=layout.out_axis,
        batch_axis=(*range(extra), *layout.batch_axis),
    )
