"""Where each leaf of a Flax model lives on a mesh: its ``NamedSharding`` from its metadata.

Flax states a parameter's layout as metadata: Linen wraps the value in an
``nn.Partitioned`` box (mesh axis names) or an ``nn.LogicallyPartitioned``
box (logical names, turned into mesh axes by logical axis rules); NNX keeps
``out_sharding`` (and optionally ``sharding_rules`` and ``mesh``) in a
Variable's metadata. This module turns that metadata into the
``NamedSharding`` s that ``jaxinit.flax.init(..., mesh=)``, ``reinit`` and
``from_torch`` draw or read each leaf into, as Flax's own recipe does
(``nn.get_sharding``, ``nn.logical_to_mesh_sharding``,
``nnx.get_named_sharding``). What a leaf without metadata gets is the
caller's choice: ``init`` replicates it (as ``nn.get_sharding`` does),
``reinit`` and ``from_torch`` keep its own sharding and replicate an abstract
leaf that has none.

The mesh is the one passed (``mesh=``), else the one set by
``jax.set_mesh``; a box's own ``mesh`` wins over both. Logical rules are a
box's own ``rules``, else the ones passed (``axis_rules=``), else those of the
``nn.logical_axis_rules`` context.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import flax.linen as nn
import jax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxinit._src.core.mesh import context_mesh
from jaxinit._src.layers.leaf import key_name

__all__ = [
    "axis_rules_context",
    "box_sharding",
    "context_mesh",
    "linen_path_shardings",
    "linen_shardings",
    "nnx_sharding",
    "nnx_shardings",
    "unplaced",
]


@contextlib.contextmanager
def axis_rules_context(axis_rules: Sequence[tuple[str, Any]] | None) -> Iterator[None]:
    """Runs the block under ``nn.logical_axis_rules(axis_rules)`` if rules are given."""
    if axis_rules is None:
        yield
        return
    with nn.logical_axis_rules(tuple(axis_rules)):
        yield


def _spec(box: Any, axis_rules: Sequence[tuple[str, Any]] | None) -> PartitionSpec:
    if isinstance(box, nn.LogicallyPartitioned):
        rules = box.rules if box.rules is not None else axis_rules
        spec = nn.logical_to_mesh_axes(box.names, None if rules is None else tuple(rules))
        return spec if spec is not None else PartitionSpec()
    return box.get_partition_spec()


def box_sharding(
    leaf: Any, mesh: Mesh, axis_rules: Sequence[tuple[str, Any]] | None = None
) -> NamedSharding | None:
    """The sharding a Linen leaf's ``nn.Partitioned`` box names; ``None`` for a leaf without one."""
    if not isinstance(leaf, nn.Partitioned):
        return None
    return NamedSharding(leaf.mesh if leaf.mesh is not None else mesh, _spec(leaf, axis_rules))


def unplaced(value: Any) -> bool:
    """An abstract leaf (``jax.ShapeDtypeStruct``) that carries no sharding."""
    return isinstance(value, jax.ShapeDtypeStruct) and value.sharding is None


def linen_shardings(
    boxed: Sequence[Any], mesh: Mesh, axis_rules: Sequence[tuple[str, Any]] | None = None
) -> list[NamedSharding | None]:
    """Per leaf of a Linen tree flattened with boxes as leaves: its box's sharding, or ``None``."""
    return [box_sharding(leaf, mesh, axis_rules) for leaf in boxed]


def linen_path_shardings(tree: Any, mesh: Mesh) -> dict[str, NamedSharding]:
    """``path -> NamedSharding`` for the boxed leaves of a Linen variables (or params) dict."""
    flat = jax.tree_util.tree_flatten_with_path(
        tree, is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata)
    )[0]
    out = {}
    for kp, leaf in flat:
        s = box_sharding(leaf, mesh)
        if s is not None:
            out["/".join(key_name(k) for k in kp)] = s
    return out


def nnx_sharding(var: Any, mesh: Mesh | None) -> NamedSharding | None:
    """The sharding an NNX Variable's metadata names, as an eager build under ``mesh`` places it.

    ``None`` where the Variable has no ``out_sharding`` (or eager sharding is
    off): an eager build leaves such a value where the computation put it.
    """
    metadata = var.get_metadata()
    if not metadata.get("out_sharding") or not metadata.get("eager_sharding", True):
        return None
    own = metadata.get("mesh")
    mesh = own if own is not None else mesh
    if mesh is None:
        return None
    spec = nnx.get_partition_spec(nnx.State({"v": var}))["v"]
    spec = spec.get_value() if isinstance(spec, nnx.Variable) else spec
    if not isinstance(spec, PartitionSpec):
        raise TypeError(
            f"the out_sharding metadata {metadata['out_sharding']!r} gives no PartitionSpec"
        )
    return NamedSharding(mesh, spec)


def nnx_shardings(module: Any, mesh: Mesh | None) -> dict[str, NamedSharding]:
    """``path -> NamedSharding`` for the Variables of an NNX module whose metadata names one."""
    out = {}
    for path, node in nnx.iter_graph(module):
        if isinstance(node, nnx.Variable):
            s = nnx_sharding(node, mesh)
            if s is not None:
                out["/".join(str(p) for p in path)] = s
    return out
