"""The mesh a sharded operation lays leaves out on: the one passed, else ``jax.set_mesh``'s."""

from __future__ import annotations

import jax
from jax.sharding import Mesh

__all__ = ["context_mesh"]


def context_mesh(mesh: Mesh | None = None) -> Mesh | None:
    """``mesh``, else the concrete mesh ``jax.set_mesh`` has set, else ``None``.

    Inside ``jax.jit`` no concrete mesh can be read (``jax.sharding.get_mesh``
    refuses): there the leaves take the shardings the jitted function's
    ``out_shardings`` (or XLA) give them, and ``None`` is returned.

    Raises:
      TypeError: for something that is not a ``jax.sharding.Mesh``.
    """
    if mesh is not None:
        if not isinstance(mesh, Mesh):
            raise TypeError(
                "mesh: expected a jax.sharding.Mesh (e.g. jax.make_mesh((4, 2), ('data', "
                f"'model'))), got {type(mesh).__name__}"
            )
        return mesh
    try:
        current = jax.sharding.get_mesh()
    except ValueError:  # inside jax.jit: "get_mesh can only be used outside of jax.jit"
        return None
    return None if current.empty else current
