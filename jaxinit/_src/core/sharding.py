"""Sharding: the one place that puts arrays where they belong."""

from __future__ import annotations

from typing import Any

import jax

from jaxinit._src.core.hyper import is_traced

__all__ = ["constrain", "kernel_sharding", "place", "sharding_of"]


def constrain(x: jax.Array, out_sharding: Any) -> jax.Array:
    """Puts ``x`` on ``out_sharding`` (inside jit: a sharding constraint).

    ``out_sharding`` is a ``Sharding`` or, under a mesh context
    (``jax.set_mesh``), a ``PartitionSpec``.
    """
    if out_sharding is None:
        return x
    if isinstance(out_sharding, jax.sharding.Sharding):
        mesh = getattr(out_sharding, "mesh", None)
    else:
        mesh = jax.sharding.get_abstract_mesh()
    axis_types = getattr(mesh, "axis_types", ())
    if any(t == jax.sharding.AxisType.Explicit for t in axis_types):
        if isinstance(out_sharding, jax.sharding.Sharding):
            # A concrete sharding carries its devices: device_put works with or
            # without a mesh context (reshard needs one).
            return jax.device_put(x, out_sharding)
        return jax.sharding.reshard(x, out_sharding)
    return jax.lax.with_sharding_constraint(x, out_sharding)


def kernel_sharding(sharding: Any) -> jax.sharding.NamedSharding | None:
    """The part of a leaf's sharding a kernel can constrain its output to."""
    return sharding if isinstance(sharding, jax.sharding.NamedSharding) else None


def sharding_of(x: Any) -> jax.sharding.Sharding | None:
    """The sharding of a concrete array (``None`` for tracers, numpy and abstract values)."""
    if isinstance(x, jax.Array) and not is_traced(x):
        return x.sharding
    sharding = getattr(x, "sharding", None)  # a ShapeDtypeStruct may carry one
    return sharding if isinstance(sharding, jax.sharding.NamedSharding) else None


def place(x: jax.Array, sharding: Any) -> jax.Array:
    """Puts a concrete result on ``sharding`` if it is not there already."""
    if sharding is None or is_traced(x) or x.sharding.is_equivalent_to(sharding, x.ndim):
        return x
    return jax.device_put(x, sharding)
