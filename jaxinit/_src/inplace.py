"""The one converter from builders to torch-style ``X_(array, ..., key=k)`` helpers."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding

from jaxinit._src.core import Initializer

__all__ = ["make_inplace"]


def _sharding_of(array: Any) -> Any:
    if isinstance(array, jax.Array) and not isinstance(array, jax.core.Tracer):
        return array.sharding
    return None


def make_inplace(build: Callable[..., Initializer], module: str) -> Callable[..., jax.Array]:
    """Turns a builder ``X(*hyper)`` into ``X_(array, *hyper, key=None)``.

    The helper returns a **new** array with the input's shape, dtype and
    sharding; the input is not modified (JAX arrays are immutable). Random
    schemes need ``key=``; deterministic ones ignore it.
    """
    name = build.__name__

    @functools.wraps(build)
    def helper(array: Any, /, *args: Any, key: jax.Array | None = None, **kwargs: Any) -> jax.Array:
        if "dtype" in kwargs:
            raise TypeError(f"{name}_: the result has the input's dtype; do not pass dtype=")
        init = build(*args, **kwargs)
        shape = getattr(array, "shape", None)
        dtype = getattr(array, "dtype", None)
        if shape is None or dtype is None:
            raise TypeError(f"{name}_: expected an array first, got {type(array).__name__}")
        if init.is_random and key is None:
            raise TypeError(f"{name}_: a PRNG key is required: {name}_(array, ..., key=key)")
        sharding = _sharding_of(array)
        named = sharding if isinstance(sharding, NamedSharding) else None
        out = init(key, tuple(shape), np.dtype(dtype), out_sharding=named)
        if sharding is not None and named is None and out.sharding != sharding:
            out = jax.device_put(out, sharding)
        return out

    helper.__name__ = helper.__qualname__ = f"{name}_"
    helper.__module__ = module
    params = list(inspect.signature(build).parameters.values())
    hyper = [p for p in params if p.name not in ("layout", "dtype")]
    layout = [p for p in params if p.name == "layout"]
    helper.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("array", inspect.Parameter.POSITIONAL_ONLY),
            *hyper,
            inspect.Parameter("key", inspect.Parameter.KEYWORD_ONLY, default=None),
            *layout,
        ],
        return_annotation="jax.Array",
    )
    helper.__doc__ = (
        f"Returns a new array like ``array``, initialized by :func:`{module}.{name}`.\n\n"
        f"torch's ``torch.nn.init.{name}_(tensor, ...)`` as a pure function: the\n"
        f"result has ``array``'s shape, dtype and sharding; ``array`` itself is\n"
        f"untouched. Random schemes take ``key=``.\n\n"
        f"    w = {module}.{name}_(w, ..., key=key)\n"
    )
    return helper
