"""What an abstract trace of a Linen model tells a port, traced once per configuration.

``from_torch(..., model=)`` needs the module at every path of a Linen model
(its class and attributes: ``transpose_kernel``, ``num_heads``, ``epsilon``),
which only an abstract trace of ``model.init`` reveals: over 100 ms for a
ResNet-18. The trace is the one ``jaxinit.flax.init`` caches
(:mod:`jaxinit._src.flax.trace`), so a repeated port of the same model does
not trace again. Flax is an optional extra: it is imported on first use.
"""

from __future__ import annotations

import types
from collections.abc import Mapping, Sequence
from typing import Any

import jax

__all__ = ["clear_trace_cache", "traced_modules"]


def _flax_trace() -> types.ModuleType:
    from jaxinit._src.flax import trace  # flax is an optional extra

    return trace


def clear_trace_cache() -> None:
    """Forgets every cached trace (the next ``model=`` call traces again)."""
    _flax_trace().clear_trace_cache()


def traced_modules(
    model: Any, args: Sequence[Any], kwargs: Mapping[str, Any] | None
) -> Mapping[tuple[str, ...], Any]:
    """The module at every path of a Linen model, from one (cached) abstract trace of ``model.init``."""
    try:
        _, modules = _flax_trace().record_modules(
            model, jax.random.key(0), tuple(args), dict(kwargs or {})
        )
    except Exception as e:
        raise ValueError(
            f"model=: tracing {type(model).__name__}.init abstractly failed ({e}); pass the "
            "inputs of model.init as args= (and kwargs=)"
        ) from e
    return types.MappingProxyType(modules)
