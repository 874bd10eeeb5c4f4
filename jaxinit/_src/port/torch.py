"""The torch side of a port: tensors as numpy arrays, grouped into layers of known kind.

torch is imported lazily (it is an optional extra). A *layer* is what one
conversion reads: the tensors of one torch module under their local names
(``weight``, ``in_proj_weight``, ``out_proj.weight``), its kind when the source
is an ``nn.Module``, and the ``state_dict`` key of each tensor. Multi-layer or
bidirectional ``nn.LSTM``/``nn.GRU``/``nn.RNN`` modules are split into one
virtual layer per cell: ``lstm.l0``, ``lstm.l0_reverse``, ``lstm.l1`` (a
single-layer, one-direction module stays ``lstm``), each holding ``weight_ih``,
``weight_hh``, ``bias_ih``, ``bias_hh``.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import re
import sys
import warnings
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np

__all__ = ["TorchLayer", "import_torch", "is_torch_module", "to_numpy", "torch_layers"]

# Kinds of torch layers (the conversions in port_convert.py know these).
LINEAR = "linear"
HF_CONV1D = "hf_conv1d"  # transformers' Conv1D: weight (in, out)
CONV = "conv"
CONV_TRANSPOSE = "conv_transpose"
EMBEDDING = "embedding"
NORM = "norm"
MHA = "mha"
LSTM = "lstm"
GRU = "gru"
RNN = "rnn"
KINDS = (LINEAR, HF_CONV1D, CONV, CONV_TRANSPOSE, EMBEDDING, NORM, MHA, LSTM, GRU, RNN)
COMPOSITE = (MHA,)  # claims the tensors of its submodules (out_proj)

_RNN_KEY = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)_l(\d+)(_reverse)?$")


def import_torch() -> Any:
    """Imports torch, with a clear message when the optional extra is missing."""
    try:
        return importlib.import_module("torch")
    except ImportError:
        raise ImportError(
            "jaxinit.port needs PyTorch for this: pip install 'jaxinit[torch]' (or pip install torch)"
        ) from None


def is_torch_module(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.nn.Module)


def is_tensor(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def to_numpy(x: Any) -> np.ndarray:
    """A torch tensor (zero-copy on CPU, bfloat16 included), numpy or jax array as numpy."""
    if is_tensor(x):
        torch = sys.modules["torch"]
        t = x.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.resolve_conj().resolve_neg()
        if t.dtype == torch.bfloat16:
            import ml_dtypes

            return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        return t.numpy()
    return np.asarray(x)


def from_numpy(a: np.ndarray, like: Any = None) -> Any:
    """A numpy array as a new, owned torch tensor (in ``like``'s dtype and device if given)."""
    torch = import_torch()
    a = np.array(a, order="C", copy=True)
    if a.dtype.name == "bfloat16":
        t = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
    else:
        t = torch.from_numpy(a)
    if like is not None:
        t = t.to(dtype=like.dtype, device=like.device)
    return t


def copy_into(tensor: Any, a: np.ndarray) -> None:
    """Copies ``a`` into an existing torch tensor, in place, without autograd."""
    torch = import_torch()
    a = np.asarray(a, order="C")  # (np.ascontiguousarray would make a scalar 1-D)
    with warnings.catch_warnings():
        # from_numpy only reads here; a read-only jax buffer is fine.
        warnings.simplefilter("ignore", UserWarning)
        src = torch.from_numpy(a.view(np.int16)) if a.dtype.name == "bfloat16" else None
        if src is not None:
            src = src.view(torch.bfloat16)
        else:
            src = torch.from_numpy(a)
    with torch.no_grad():
        tensor.copy_(src)


def torch_kind(module: Any) -> str | None:
    """The kind of a torch module, or ``None`` for a container or unknown class."""
    if module is None:
        return None
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    tnn = torch.nn
    if isinstance(module, tnn.MultiheadAttention):
        return MHA
    if isinstance(module, tnn.Linear):
        return LINEAR
    if isinstance(module, tnn.modules.conv._ConvTransposeNd):
        return CONV_TRANSPOSE
    if isinstance(module, tnn.modules.conv._ConvNd):
        return CONV
    if isinstance(module, tnn.Embedding):
        return EMBEDDING
    norms = (
        tnn.modules.batchnorm._NormBase,
        tnn.LayerNorm,
        tnn.GroupNorm,
        getattr(tnn, "RMSNorm", tnn.LayerNorm),
    )
    if isinstance(module, norms):
        return NORM
    if isinstance(module, tnn.LSTM | tnn.LSTMCell):
        return LSTM
    if isinstance(module, tnn.GRU | tnn.GRUCell):
        return GRU
    if isinstance(module, tnn.RNN | tnn.RNNCell):
        return RNN
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf"):
        return HF_CONV1D  # transformers.pytorch_utils.Conv1D (GPT-2), without importing it
    return None


def infer_kind(names: Mapping[str, Any]) -> str | None:
    """A torch layer's kind from its tensor names and shapes (for a bare state_dict)."""
    if "in_proj_weight" in names or "q_proj_weight" in names:
        return MHA
    if "weight_ih" in names and "weight_hh" in names:
        hh = tuple(names["weight_hh"])
        gates = hh[0] // hh[1] if len(hh) == 2 and hh[1] else 0
        return {4: LSTM, 3: GRU, 1: RNN}.get(gates)
    return None


@dataclasses.dataclass
class TorchLayer:
    """The tensors one conversion reads (or, for ``to_torch``, writes).

    Attributes:
      path: the pairing path (module path; ``l0``/``l0_reverse`` appended for a
        cell of a multi-layer recurrent module).
      kind: one of :data:`KINDS`, or ``None`` if unknown (a bare state_dict).
      module: the torch module, if known.
      keys: local name -> ``state_dict`` key.
      values: local name -> numpy array (for ``to_torch``: the template's).
      virtual: the layer is one cell of a multi-layer recurrent module.
    """

    path: tuple[str, ...]
    kind: str | None
    module: Any
    keys: dict[str, str]
    values: dict[str, Any]
    virtual: bool = False  # one cell of a multi-layer recurrent module

    @property
    def name(self) -> str:
        return ".".join(self.path)

    def describe(self) -> str:
        cls = type(self.module).__name__ if self.module is not None else None
        return f"{self.name or '<root>'}" + (f" ({cls})" if cls else "")


def _split_rnn(layer: TorchLayer) -> list[TorchLayer]:
    """One virtual layer per cell of a recurrent module (``weight_ih_l1_reverse`` ...)."""
    cells: dict[tuple[int, bool], dict[str, str]] = {}
    rest: dict[str, str] = {}
    for local, key in layer.keys.items():
        m = _RNN_KEY.match(local)
        if m is None:
            rest[local] = key
            continue
        cells.setdefault((int(m.group(2)), bool(m.group(3))), {})[m.group(1)] = local
    if not cells:
        return [layer]
    single = len(cells) == 1 and (0, False) in cells
    out = []
    for (k, rev), names in sorted(cells.items()):
        sub = () if single else (f"l{k}" + ("_reverse" if rev else ""),)
        out.append(
            TorchLayer(
                layer.path + sub,
                layer.kind,
                layer.module,
                {n: layer.keys[local] for n, local in names.items()},
                {n: layer.values[local] for n, local in names.items()},
                virtual=bool(sub),
            )
        )
    if rest:
        out.append(
            TorchLayer(
                layer.path,
                None,
                layer.module,
                rest,
                {n: layer.values[n] for n in rest},
            )
        )
    return out


def _storage(x: Any) -> Hashable | None:
    """Where a tensor's values live: equal for two views of the same memory, ``None`` if empty.

    Two tensors are tied when they start at the same place of the same storage
    with the same shape, strides and dtype (GPT-2's ``lm_head.weight`` is
    ``transformer.wte.weight``); a ``state_dict`` keeps such tensors as views
    of one storage.
    """
    if is_tensor(x):
        if not x.numel():
            return None
        return (
            "torch",
            x.untyped_storage().data_ptr(),
            x.storage_offset(),
            tuple(x.shape),
            tuple(x.stride()),
            str(x.dtype),
            str(x.device),
        )
    if isinstance(x, np.ndarray):
        if not x.size:
            return None
        return ("numpy", x.__array_interface__["data"][0], x.shape, x.strides, x.dtype.str)
    if hasattr(x, "shape") and math.prod(x.shape):  # a jax array: the same object twice
        return ("object", id(x))
    return None


def ties(state: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Each key whose tensor shares storage with others -> those others, in ``state`` order."""
    groups: dict[Hashable, list[str]] = {}
    for key, t in state.items():
        where = _storage(t)
        if where is not None:
            groups.setdefault(where, []).append(key)
    return {
        k: tuple(o for o in keys if o != k)
        for keys in groups.values()
        if len(keys) > 1
        for k in keys
    }


def _state(source: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state_dict, the module at every path) of a torch module or a mapping of tensors."""
    if is_torch_module(source):
        state = source.state_dict(keep_vars=False)
        return dict(state), dict(source.named_modules(remove_duplicate=False))
    if isinstance(source, Mapping):
        for key in source:
            if not isinstance(key, str):
                raise TypeError(f"from_torch: state_dict keys must be str, got {key!r}")
        return dict(source), {}
    raise TypeError(
        "expected a torch nn.Module or a state_dict (a mapping of name -> tensor or array), "
        f"got {type(source).__name__}"
    )


def _owner(key: str, modules: Mapping[str, Any]) -> tuple[str, str]:
    """(owning module path, local name) of a key; a composite module claims its submodules'."""
    prefix, _, local = key.rpartition(".")
    parts = prefix.split(".") if prefix else []
    for depth in range(len(parts) + 1):
        cand = ".".join(parts[:depth])
        if torch_kind(modules.get(cand)) in COMPOSITE:
            return cand, key[len(cand) + 1 :] if cand else key
    return prefix, local


def torch_layers(
    source: Any, *, values: bool = True
) -> tuple[list[TorchLayer], dict[str, tuple[str, ...]]]:
    """Groups a torch module's ``state_dict`` (or a mapping of arrays) into layers.

    Args:
      source: a torch ``nn.Module`` or a mapping ``name -> tensor/array``.
      values: convert the tensors to numpy (zero-copy on CPU); otherwise keep them.

    Returns:
      The layers in ``state_dict`` order, and the ties: each key whose tensor
      shares storage with other keys (tied weights) -> those keys.
    """
    state, modules = _state(source)
    groups: dict[str, TorchLayer] = {}
    for key, t in state.items():
        owner, local = _owner(key, modules)
        layer = groups.get(owner)
        if layer is None:
            module = modules.get(owner)
            path = tuple(owner.split(".")) if owner else ()
            layer = groups[owner] = TorchLayer(path, torch_kind(module), module, {}, {})
        layer.keys[local] = key
        layer.values[local] = to_numpy(t) if values else t
    if not modules:  # a bare state_dict: an attention's out_proj joins its in-projection
        for owner, layer in list(groups.items()):
            if "in_proj_weight" in layer.values or "q_proj_weight" in layer.values:
                sub = groups.pop(f"{owner}.out_proj" if owner else "out_proj", None)
                for local, key in (sub.keys if sub else {}).items():
                    layer.keys[f"out_proj.{local}"] = key
                    layer.values[f"out_proj.{local}"] = sub.values[local]  # type: ignore[union-attr]
    out: list[TorchLayer] = []
    for layer in groups.values():
        if layer.kind in (LSTM, GRU, RNN) or layer.kind is None:
            out.extend(_split_rnn(layer))
        else:
            out.append(layer)
    return out, ties(state)
