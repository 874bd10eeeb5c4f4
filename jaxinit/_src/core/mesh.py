"""The mesh a sharded operation lays leaves out on: the one passed, else ``jax.set_mesh``'s."""

from __future__ import annotations

import jax
from jax.sharding import Mesh

__all__ = ["context_mesh"]


def context_mesh(mesh: Mesh | None = None) -> Mesh | None:
    """``mesh``, else the concrete mesh ``jax.set_mesh`` has set, else ``None``.

    Inside a trace (``jax.jit``, ``vmap``, ``eval_shape``) there is no concrete
    mesh to read: ``None``, and the caller's code places its leaves itself.

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
    except ValueError:  # inside jit/vmap/eval_shape: no concrete mesh to place leaves on
        return None
    return None if current.empty else current
