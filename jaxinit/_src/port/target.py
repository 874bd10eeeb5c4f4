"""The JAX side of a port: the leaves of a Linen variables dict, an NNX or an Equinox module.

Leaves are grouped into layers of known kind (from the module classes: the
NNX graph, the Equinox tree, or a Linen model traced abstractly), the way
:mod:`jaxinit._src.port.torch` groups torch tensors. A composite layer
(attention, a recurrent cell) claims the leaves of its inner layers.

What a port fills: a Linen dict's ``params`` and ``batch_stats`` collections
(or every leaf of a bare ``params`` dict), an NNX module's ``nnx.Param`` and
``nnx.BatchStat`` variables, an Equinox module's inexact-array leaves.
Everything else is returned as the very same object.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxinit._src.layers.registry import (  # noqa: F401  (the kinds, for the port)
    ATTENTION,
    CONV,
    CONV_TRANSPOSE,
    DENSE,
    DENSE_GENERAL,
    EMBED,
    EQX_CONV,
    EQX_CONV_TRANSPOSE,
    EQX_EMBED,
    EQX_GRU,
    EQX_LINEAR,
    EQX_LSTM,
    EQX_MHA,
    EQX_NORM,
    GRU_CELL,
    GRU_FUSED,
    KINDS,
    LSTM_CELL,
    LSTM_FUSED,
    NORM,
    SIMPLE_CELL,
)
from jaxinit._src.port import trace

__all__ = ["Target", "TargetLayer", "TargetLeaf", "collect"]

COMPOSITE = tuple(dict.fromkeys(row.kind for row in KINDS if row.composite and row.torch))

_LINEN_COLLECTIONS = ("params", "batch_stats")


def _classes(module: Any, *names: str) -> tuple[type, ...]:
    return tuple(c for n in names if isinstance(c := getattr(module, n, None), type))


def _kind_table() -> list[tuple[tuple[type, ...], str]]:
    """(classes, kind) of the registry, most specific first; only frameworks already imported."""
    return [(classes, row.kind) for row in KINDS if (classes := row.resolve())]


def module_kind(module: Any, table: Sequence[tuple[tuple[type, ...], str]]) -> str | None:
    for classes, kind in table:
        if isinstance(module, classes):
            return kind
    return None


def _rnn_wrappers() -> tuple[type, ...]:
    found: tuple[type, ...] = ()
    if "flax" in sys.modules:
        import flax.linen as nn
        from flax import nnx

        found = _classes(nn, "RNN") + _classes(nnx, "RNN")
    return found


@dataclasses.dataclass
class TargetLeaf:
    """One leaf a port fills: its ``/``-joined path, (unboxed) value, shape and dtype."""

    path: str
    value: Any

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.value.dtype)


@dataclasses.dataclass
class TargetLayer:
    """The leaves one conversion writes, under their path relative to the layer.

    Attributes:
      path: the module path (no collection).
      key: the pairing path (the ``cell`` of an RNN wrapper dropped).
      kind: a kind of this module, or ``None`` (unknown or a plain module).
      module: the module, if known.
      leaves: relative path -> index into :attr:`Target.leaves`.
    """

    path: tuple[str, ...]
    key: tuple[str, ...]
    kind: str | None
    module: Any
    leaves: dict[tuple[str, ...], int]
    parts: list[TargetLayer] = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return "/".join(self.path)

    def describe(self) -> str:
        cls = type(self.module).__name__ if self.module is not None else None
        return f"{self.name or '<root>'}" + (f" ({cls})" if cls else "")


def _key_name(k: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _is_inexact(x: Any) -> bool:
    dtype = getattr(x, "dtype", None)
    return (
        dtype is not None
        and hasattr(x, "shape")
        and jax.numpy.issubdtype(np.dtype(dtype), np.inexact)
    )


class Target:
    """A Linen variables dict, an NNX module or an Equinox module, as leaves and layers."""

    def __init__(self, flavor: str, leaves: list[TargetLeaf], layers: list[TargetLayer]):
        self.flavor = flavor
        self.leaves = leaves
        self.layers = layers
        self.abstract_rest: list[str] = []  # abstract leaves a port never fills (RNG state ...)
        self._write: Any = None

    def read(self, index: int) -> np.ndarray:
        return np.asarray(self.leaves[index].value)

    def write(self, new: Mapping[int, Any]) -> Any:
        """Returns the target with leaves ``new`` (index -> array) replaced."""
        return self._write(new)


def _assign(
    paths: Sequence[tuple[str, ...]],
    owners_of: Any,
    table: Sequence[tuple[tuple[type, ...], str]],
    prefix_len: Sequence[int],
) -> list[TargetLayer]:
    """Groups leaf paths into layers; ``owners_of(i)`` -> [(module path, module)], outermost first.

    A composite layer also lists its ``parts``: its inner layers, grouped as if
    it were not composite (to pair with torch models that spell attention out
    as separate Linear layers).
    """
    layers = _group(paths, owners_of, table, prefix_len, composite=True)
    fine = _group(paths, owners_of, table, prefix_len, composite=False)
    for layer in layers:
        if layer.kind in COMPOSITE:
            inside = set(layer.leaves.values())
            layer.parts = [f for f in fine if set(f.leaves.values()) <= inside]
    return layers


def _group(
    paths: Sequence[tuple[str, ...]],
    owners_of: Any,
    table: Sequence[tuple[tuple[type, ...], str]],
    prefix_len: Sequence[int],
    composite: bool,
) -> list[TargetLayer]:
    wrappers = _rnn_wrappers()
    layers: dict[tuple[str, ...], TargetLayer] = {}
    for i, path in enumerate(paths):
        body = path[prefix_len[i] :]
        owners = owners_of(i)
        chosen: tuple[tuple[str, ...], Any, str | None] | None = None
        for mpath, module in owners if composite else ():  # the outermost composite claims all
            kind = module_kind(module, table)
            if kind in COMPOSITE:
                chosen = (mpath, module, kind)
                break
        if chosen is None:
            for mpath, module in reversed(owners):
                kind = module_kind(module, table)
                if kind is not None and (not composite and kind in COMPOSITE):
                    kind = None
                if kind is not None and len(mpath) == len(body) - 1:
                    chosen = (mpath, module, kind)
                    break
        if chosen is None:
            mpath = body[:-1]
            module = next((m for p, m in owners if p == mpath), None)
            chosen = (mpath, module, None)
        mpath, module, kind = chosen
        layer = layers.get(mpath)
        if layer is None:
            key = list(mpath)
            by_path = dict(owners)
            for d in range(len(mpath) - 1, -1, -1):
                parent = by_path.get(mpath[:d])
                if wrappers and isinstance(parent, wrappers) and mpath[d] == "cell":
                    del key[d]
            layer = layers[mpath] = TargetLayer(mpath, tuple(key), kind, module, {})
        layer.leaves[body[len(mpath) :]] = i
    return list(layers.values())


# ----------------------------------------------------------------------------
# Linen


def _linen(
    target: Any, model: Any, args: Sequence[Any], kwargs: Mapping[str, Any] | None
) -> Target:
    import flax.linen as nn

    def is_box(x: Any) -> bool:
        return isinstance(x, nn.meta.AxisMetadata)

    modules: Mapping[tuple[str, ...], Any] = {}
    if model is not None:
        modules = trace.traced_modules(model, args, kwargs)
    flat, treedef = jax.tree_util.tree_flatten_with_path(target, is_leaf=is_box)
    # a variables dict (params and/or batch_stats: BatchNorm(use_scale=False, use_bias=False)
    # has no params), or a bare params dict
    collections = isinstance(target, Mapping) and any(c in target for c in _LINEN_COLLECTIONS)
    paths, index = [], []
    rest = []
    for i, (kp, boxed) in enumerate(flat):
        path = tuple(_key_name(k) for k in kp)
        value = boxed.value if is_box(boxed) else boxed
        if (collections and path[0] not in _LINEN_COLLECTIONS) or not _is_inexact(value):
            if isinstance(value, jax.ShapeDtypeStruct):
                rest.append("/".join(path))
            continue
        paths.append(path)
        index.append(i)
    start = 1 if collections else 0

    def owners_of(j: int) -> list[tuple[tuple[str, ...], Any]]:
        body = paths[j][start:-1]
        return [(body[:d], modules[body[:d]]) for d in range(len(body) + 1) if body[:d] in modules]

    table = _kind_table()
    layers = _assign(paths, owners_of, table, [start] * len(paths))
    leaves = []
    for j, i in enumerate(index):
        boxed = flat[i][1]
        leaves.append(TargetLeaf("/".join(paths[j]), boxed.value if is_box(boxed) else boxed))
    out = Target("Linen variables", leaves, layers)
    out.abstract_rest = rest

    def write(new: Mapping[int, Any]) -> Any:
        items = [v for _, v in flat]
        for j, x in new.items():
            i = index[j]
            items[i] = items[i].replace_boxed(x) if is_box(items[i]) else x
        return jax.tree_util.tree_unflatten(treedef, items)

    out._write = write
    return out


# ----------------------------------------------------------------------------
# NNX


def _nnx(module: Any) -> Target:
    from flax import nnx

    nodes = list(nnx.iter_graph(module))
    modules = {tuple(str(p) for p in path): n for path, n in nodes if isinstance(n, nnx.Module)}

    def value(var: Any) -> Any:
        return var.get_value() if hasattr(var, "get_value") else var.value

    variables, rest = [], []
    for path, n in nodes:
        if not isinstance(n, nnx.Variable):
            continue
        names = tuple(str(p) for p in path)
        if isinstance(n, nnx.Param | nnx.BatchStat) and _is_inexact(value(n)):
            variables.append((names, n))
        elif isinstance(value(n), jax.ShapeDtypeStruct):
            rest.append("/".join(names))
    paths = [p for p, _ in variables]

    def owners_of(j: int) -> list[tuple[tuple[str, ...], Any]]:
        body = paths[j][:-1]
        return [(body[:d], modules[body[:d]]) for d in range(len(body) + 1) if body[:d] in modules]

    layers = _assign(paths, owners_of, _kind_table(), [0] * len(paths))
    leaves = [TargetLeaf("/".join(p), value(v)) for p, v in variables]
    out = Target("NNX module", leaves, layers)
    out.abstract_rest = rest

    def write(new: Mapping[int, Any]) -> Any:
        for j, x in new.items():  # only now, when every check has passed
            var = variables[j][1]
            if hasattr(var, "set_value"):
                var.set_value(x)
            else:
                var.value = x
        return module

    out._write = write
    return out


# ----------------------------------------------------------------------------
# Equinox


def _equinox(module: Any) -> Target:
    import equinox as eqx

    flat, treedef = jax.tree_util.tree_flatten_with_path(module)
    paths, index = [], []
    owner_lists, rest = [], []
    for i, (kp, leaf) in enumerate(flat):
        path = tuple(_key_name(k) for k in kp)
        if not _is_inexact(leaf):
            if isinstance(leaf, jax.ShapeDtypeStruct):
                rest.append("/".join(path))
            continue
        owners = []
        obj = module
        for d, k in enumerate(kp):
            if isinstance(obj, eqx.Module):
                owners.append((path[:d], obj))
            try:
                if isinstance(k, jax.tree_util.GetAttrKey):
                    obj = getattr(obj, k.name)
                elif isinstance(k, jax.tree_util.SequenceKey | jax.tree_util.DictKey):
                    obj = obj[k.idx if isinstance(k, jax.tree_util.SequenceKey) else k.key]
                else:
                    break
            except (AttributeError, KeyError, IndexError, TypeError):
                break
        paths.append(path)
        index.append(i)
        owner_lists.append(owners)

    layers = _assign(paths, lambda j: owner_lists[j], _kind_table(), [0] * len(paths))
    leaves = [TargetLeaf("/".join(paths[j]), flat[i][1]) for j, i in enumerate(index)]
    out = Target("Equinox module", leaves, layers)
    out.abstract_rest = rest

    def write(new: Mapping[int, Any]) -> Any:
        items = [v for _, v in flat]
        for j, x in new.items():
            items[index[j]] = x
        return jax.tree_util.tree_unflatten(treedef, items)

    out._write = write
    return out


def is_target(x: Any) -> bool:
    """``x`` is a Linen variables dict, an NNX module or an Equinox module (a port's target)."""
    if isinstance(x, Mapping):
        return True
    nnx, eqx = sys.modules.get("flax.nnx"), sys.modules.get("equinox")
    return (nnx is not None and isinstance(x, nnx.Module)) or (
        eqx is not None and isinstance(x, eqx.Module)
    )


def collect(
    target: Any,
    model: Any = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
) -> Target:
    """The leaves and layers of a Linen variables dict, an NNX module or an Equinox module."""
    if "flax" in sys.modules:
        from flax import nnx

        if isinstance(target, nnx.Module):
            return _nnx(target)
    if "equinox" in sys.modules:
        import equinox as eqx

        if isinstance(target, eqx.Module):
            return _equinox(target)
    if isinstance(target, Mapping):
        if "flax" not in sys.modules:
            import flax.linen  # noqa: F401  (a Linen dict needs flax's box types)
        return _linen(target, model, args, kwargs)
    raise TypeError(
        "expected a Linen variables (or params) dict, an NNX module or an Equinox module, "
        f"got {type(target).__name__}"
    )
