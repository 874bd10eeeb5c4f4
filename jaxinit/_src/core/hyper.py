"""Hyperparameters: every real (integer) number type, concrete or traced.

A builder checks its hyperparameters when it is called. Python, numpy and jax
scalars (0-d arrays included) are accepted; a jax scalar may be traced (inside
``jit``/``vmap``), and then the checks that need a concrete value are skipped.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._src.core.layout import is_int

__all__ = ["IntLike", "RealLike", "concrete", "integer", "is_traced", "plain", "real"]

RealLike: TypeAlias = float | np.floating[Any] | np.integer[Any] | jax.Array
IntLike: TypeAlias = int | np.integer[Any] | jax.Array


def is_traced(x: Any) -> bool:
    """Whether ``x`` is a jax tracer (a hyperparameter inside ``jit``/``vmap``)."""
    return isinstance(x, jax.core.Tracer)


def real(name: str, arg: str, value: Any, *, finite: bool = True) -> Any:
    """A real hyperparameter: a Python float, or the tracer itself when traced.

    ``finite=False`` lets ``inf`` through (never ``nan``).
    """
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}: {arg} must be a real number, got {value!r}")
    if isinstance(value, numbers.Real):
        out = float(value)
    elif isinstance(value, np.ndarray | np.generic | jax.Array) and np.ndim(value) == 0:
        dtype = value.dtype
        if not (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)):
            raise TypeError(f"{name}: {arg} must be a real number, got {value!r}")
        if is_traced(value):
            return value
        out = float(value)
    else:
        raise TypeError(f"{name}: {arg} must be a real number, got {_short(value)}")
    if math.isnan(out) or (finite and math.isinf(out)):
        raise ValueError(f"{name}: {arg} must be {'finite' if finite else 'a number'}, got {out}")
    return out


def integer(name: str, arg: str, value: Any, *, minimum: int) -> Any:
    """An integer hyperparameter >= ``minimum``: a Python int, or the tracer when traced."""
    if is_int(value):
        out = int(value)
    elif (
        isinstance(value, np.ndarray | jax.Array)
        and np.ndim(value) == 0
        and jnp.issubdtype(value.dtype, jnp.integer)
    ):
        if is_traced(value):
            return value
        out = int(value)
    else:
        raise TypeError(f"{name}: {arg} must be an int, got {_short(value)}")
    if out < minimum:
        raise ValueError(f"{name}: {arg} must be >= {minimum}, got {out}")
    return out


def concrete(*values: Any) -> bool:
    """Whether none of ``values`` is traced (so value checks can run)."""
    return not any(is_traced(v) for v in values)


def plain(value: Any) -> Any:
    """``value`` as the Python literal that builds it: numpy scalars (also inside tuples
    and lists) become ints, floats, complex and bools, so reprs read as Python."""
    if isinstance(value, tuple | list):
        return type(value)(plain(v) for v in value)
    if isinstance(value, np.generic | np.ndarray) and np.ndim(value) == 0:
        return value.item()
    return value


def _short(value: Any) -> str:
    """A value for an error message: arrays by shape and dtype, not their contents."""
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if isinstance(shape, tuple) and dtype is not None:
        return f"an array of shape {shape} and dtype {dtype}"
    return repr(value)
