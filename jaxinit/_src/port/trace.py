"""What an abstract trace of a Linen model tells a port, traced once per configuration.

``from_torch(..., model=)`` needs the module at every path of a Linen model
(its class and attributes: ``transpose_kernel``, ``num_heads``, ``epsilon``),
which only an abstract trace of ``model.init`` reveals: over 100 ms for a
ResNet-18. A repeated port of the same model does not trace again.
"""

from __future__ import annotations

import collections
import types
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import jax

__all__ = ["clear_trace_cache", "traced_modules"]


# What an abstract trace of ``model.init`` learns (the module at every path),
# per model and input signature; least recently used first.
_TRACE_CACHE: collections.OrderedDict[Hashable, tuple[Any, Mapping[tuple[str, ...], Any]]] = (
    collections.OrderedDict()
)
_TRACE_CACHE_SIZE = 16  # models kept (each entry holds the model's bound modules)


def clear_trace_cache() -> None:
    """Forgets every cached trace (the next ``model=`` call traces again)."""
    _TRACE_CACHE.clear()


def _signature(args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> Hashable:
    """The inputs as ``jax.jit`` sees them: tree structure, arrays by shape and dtype, the rest by value."""
    leaves, treedef = jax.tree_util.tree_flatten((tuple(args), dict(kwargs or {})))
    parts: list[Hashable] = []
    for x in leaves:
        if hasattr(x, "shape") and hasattr(x, "dtype"):
            parts.append(("array", tuple(x.shape), str(x.dtype), bool(getattr(x, "weak_type", 0))))
        else:
            parts.append(("value", type(x), x))  # the type too: 1, 1.0 and True are equal
    return (treedef, tuple(parts))


def _trace_key(model: Any, args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> Hashable:
    """A cache key that never matches a model of another configuration.

    A Linen module is a dataclass whose hash and equality cover its fields and
    class, so two equal modules trace alike. One with an unhashable field (a
    list of layers) is keyed by identity *and* by its ``repr``, which shows its
    fields: mutating such a list in place changes the key.
    """
    signature = _signature(args, kwargs)
    try:
        key: Hashable = ("model", model, signature)
        hash(key)
    except TypeError:
        key = ("identity", id(model), repr(model), signature)
        hash(key)  # (a signature with an unhashable static argument raises: not cached)
    return key


def traced_modules(
    model: Any, args: Sequence[Any], kwargs: Mapping[str, Any] | None
) -> Mapping[tuple[str, ...], Any]:
    """The module at every path of a Linen model, from one abstract trace of ``model.init``.

    Cached per model configuration and input shapes and dtypes (as ``jax.jit``
    caches a trace), so a repeated ``from_torch(..., model=)`` does not trace
    again. A module whose structure depends on input *values* is not supported
    here, as under ``jax.jit(model.init)``.
    """
    from jaxinit._src.flax.linen import record_modules

    try:
        key: Hashable | None = _trace_key(model, args, kwargs)
    except TypeError:
        key = None
    if key is not None and key in _TRACE_CACHE:
        _TRACE_CACHE.move_to_end(key)
        return _TRACE_CACHE[key][1]
    try:
        _, modules = record_modules(model, jax.random.key(0), tuple(args), dict(kwargs or {}))
    except Exception as e:
        raise ValueError(
            f"model=: tracing {type(model).__name__}.init abstractly failed ({e}); pass the "
            "inputs of model.init as args= (and kwargs=)"
        ) from e
    frozen = types.MappingProxyType(dict(modules))
    if key is not None:
        _TRACE_CACHE[key] = (model, frozen)  # the model kept alive: its id stays unique
        while len(_TRACE_CACHE) > _TRACE_CACHE_SIZE:
            _TRACE_CACHE.popitem(last=False)
    return frozen
