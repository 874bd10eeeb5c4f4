"""What an abstract trace of a Linen model tells jaxinit, traced once per configuration.

``jaxinit.flax.init``, ``reinit(..., model=)``, ``explain`` and
``from_torch(..., model=)`` need the abstract variables of ``model.init`` and
the module at every path (its class and attributes: ``transpose_kernel``,
``num_heads``, ``einsum_str``), which only an abstract trace reveals: 0.1 s for
a ResNet-18, 0.8 s for a GPT-2-small. As ``jax.jit`` caches a trace, the
result is cached per model configuration, input signature (tree structure,
arrays by shape and dtype, other values by value) and logical axis rules, so a
repeated call does not trace again. A model whose structure depends on input
*values* is not supported, as under ``jax.jit(model.init)``.
"""

from __future__ import annotations

import collections
import inspect
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax

from jaxinit._src import compat
from jaxinit._src.layers.registry import EINSUM, kind_of

__all__ = ["Modules", "clear_trace_cache", "record_modules"]


class Modules(dict):
    """Linen modules by path, and (``calls``) the call arguments of some of them by path."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[tuple[str, ...], Mapping[str, Any]] = {}


# (abstract variables, modules) per model configuration and input signature;
# least recently used first. Each entry holds the model, so an identity key stays unique.
_TRACE_CACHE: collections.OrderedDict[Hashable, tuple[Any, Any, Modules]] = (
    collections.OrderedDict()
)
_TRACE_CACHE_SIZE = 16


def clear_trace_cache() -> None:
    """Forgets every cached trace (the next call traces again)."""
    _TRACE_CACHE.clear()


def _abstract(x: Any) -> Any:
    """A call argument as the cache may keep it: arrays (tracers) by shape and dtype."""
    if isinstance(x, jax.Array | jax.ShapeDtypeStruct) or hasattr(x, "aval"):
        return jax.ShapeDtypeStruct(x.shape, x.dtype)
    return x


def _call_arguments(module: nn.Module, args: Sequence[Any], kwargs: Mapping[str, Any]):
    try:
        bound = inspect.signature(type(module).__call__).bind(module, *args, **kwargs)
    except TypeError:
        return {}
    return {k: _abstract(v) for k, v in bound.arguments.items() if k != "self"}


def _trace(model: nn.Module, key: Any, args: Sequence[Any], kwargs: Mapping[str, Any]):
    modules = Modules()

    def interceptor(next_fun, a, kw, context):
        module = context.module
        try:
            path = tuple(str(p) for p in module.path)
        except Exception:  # noqa: BLE001  (an unbound module has no path)
            path = None
        if path is not None:
            modules.setdefault(path, module)
            if context.method_name == "__call__" and path not in modules.calls:
                row = kind_of(module)
                if row is not None and row.kind == EINSUM:
                    modules.calls[path] = _call_arguments(module, a, kw)
        return next_fun(*a, **kw)

    def run(k):
        with nn.intercept_methods(interceptor):
            return model.init(k, *args, **kwargs)

    with compat.empty_defaults_tolerated():
        abstract = jax.eval_shape(run, key)
    modules.setdefault((), model)
    return abstract, modules


def _signature(tree: Any) -> Hashable:
    """A tree as ``jax.jit`` sees it: structure, arrays by shape and dtype, the rest by value."""
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    parts: list[Hashable] = [treedef]
    for x in leaves:
        if hasattr(x, "shape") and hasattr(x, "dtype"):
            parts.append(("array", tuple(x.shape), str(x.dtype), bool(getattr(x, "weak_type", 0))))
        else:
            parts.append(("value", type(x), x))  # the type too: 1, 1.0 and True are equal
    return tuple(parts)


def _trace_key(model: Any, key: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Hashable:
    """A cache key that never matches a model of another configuration.

    A Linen module is a dataclass whose hash and equality cover its fields and
    class, so two equal modules trace alike. One with an unhashable field (a
    list of layers) is keyed by identity *and* by its ``repr``, which shows its
    fields: mutating such a list in place changes the key. An unhashable
    static input raises ``TypeError`` (not cached).
    """
    signature = (_signature((key, tuple(args), dict(kwargs))), nn.get_logical_axis_rules())
    try:
        cache_key: Hashable = ("model", model, signature)
        hash(cache_key)
    except TypeError:
        cache_key = ("identity", id(model), repr(model), signature)
        hash(cache_key)
    return cache_key


def record_modules(model: nn.Module, key: Any, args: Sequence[Any], kwargs: Mapping[str, Any]):
    """Abstract variables of ``model.init`` and the module at every path, traced once.

    The returned mapping also holds, as ``.calls``, the call arguments of the
    layers whose kernel layout depends on them (``nn.Einsum(...)(x, "bi,io->bo")``),
    arrays among them by shape and dtype. Both are shared with later calls:
    read them, never change them.
    """
    try:
        cache_key: Hashable | None = _trace_key(model, key, args, kwargs)
    except TypeError:
        cache_key = None
    if cache_key is not None and cache_key in _TRACE_CACHE:
        _TRACE_CACHE.move_to_end(cache_key)
        _, abstract, modules = _TRACE_CACHE[cache_key]
        return abstract, modules
    abstract, modules = _trace(model, key, args, kwargs)
    if cache_key is not None:
        _TRACE_CACHE[cache_key] = (model, abstract, modules)
        while len(_TRACE_CACHE) > _TRACE_CACHE_SIZE:
            _TRACE_CACHE.popitem(last=False)
    return abstract, modules
