"""``jaxinit.flax.init`` for NNX: build a module with the rules applied, drawing no default twice.

Eager NNX construction draws every parameter with Flax's default, and a
``reinit`` afterwards draws the selected ones again. Here:

1. the constructor is traced once under ``jax.jit`` (nothing runs): that
   gives the module's graph (paths, layer classes, shapes, dtypes) and a
   jaxpr computing every piece of its state from the key;
2. the rules are planned on that abstract graph (:func:`~jaxinit._src.tree.rules.plan`);
3. the selected leaves are drawn with the cached per-(scheme, shape) kernels
   (:func:`~jaxinit._src.tree.draw.draw_jobs`), exactly as ``reinit`` draws them;
4. the rest (RNG streams, unmatched parameters, batch statistics) comes from
   that jaxpr, cut down to the equations those leaves need (the replaced
   defaults are never computed) and run op by op, as the eager constructor
   runs, so those values equal an eager build's bit for bit;
5. ``nnx.merge`` assembles a new module from the graph and the values.

The trace (1.) is cached per (constructor, arguments, key structure), and
the cut-down jaxpr of 4. per set of leaves, so a second call runs no Python
constructor code and compiles nothing.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
from flax import nnx
from flax.core import spmd as flax_spmd
from jax.sharding import NamedSharding, PartitionSpec

from jaxinit._src.compat import empty_defaults_tolerated, jaxpr_as_fun, prune_jaxpr
from jaxinit._src.core.initializer import is_traced
from jaxinit._src.flax import sharding as S
from jaxinit._src.flax.common import nnx_owners, params_key
from jaxinit._src.layers.leaf import Leaf, flax_layout, key_name, make_leaves
from jaxinit._src.tree.draw import draw_jobs
from jaxinit._src.tree.plan import Unmatched, plan
from jaxinit._src.tree.rules import as_rules

__all__ = ["nnx_init", "trace_nnx"]


def nnx_rngs(key: Any) -> nnx.Rngs:
    """The ``rngs`` a constructor gets: ``nnx.Rngs(key)``, or ``nnx.Rngs(**key)`` for a dict."""
    if isinstance(key, Mapping):
        return nnx.Rngs(**key)
    return nnx.Rngs(key)


@dataclasses.dataclass
class TracedModule:
    """A constructor traced abstractly: the module's graph, its leaves, and the jaxpr of its state.

    Attributes:
      graphdef, treedef: ``nnx.split``'s graph and the pytree structure of its state.
      leaves: one :class:`Leaf` per state leaf, in ``treedef`` order, with a
        ``jax.ShapeDtypeStruct`` as value.
      jaxpr: computes every traced state leaf (``treedef`` order) from the key's leaves.
      static: the state leaves the constructor did not compute with jax, by index.
      rest: ``jaxpr`` cut down to a subset of its outputs, by subset.
    """

    graphdef: Any
    treedef: Any
    leaves: list[Leaf]
    jaxpr: Any
    static: dict[int, Any] = dataclasses.field(default_factory=dict)
    rest: dict[tuple[int, ...], Any] = dataclasses.field(default_factory=dict)

    def rest_values(self, indices: tuple[int, ...], key_leaves: Sequence[Any]) -> list[Any]:
        """The state leaves ``indices``, computed eagerly as the eager constructor computes them.

        The jaxpr is cut down to the equations those leaves need (so the
        replaced defaults are never computed) and run op by op, as an eager
        ``Module(rngs=nnx.Rngs(key))`` runs: values equal the eager
        construction's bit for bit (one jitted program could round some
        differently: XLA fuses across the ops). A leaf the constructor did not
        compute with jax is its own value (a numpy array copied).
        """
        pruned = self.rest.get(indices)
        if pruned is None:
            traced = [j for j in range(len(self.leaves)) if j not in self.static]
            output = {j: n for n, j in enumerate(traced)}  # state leaf -> jaxpr output
            keep = [output[i] for i in indices if i not in self.static]
            pruned = self.rest[indices] = prune_jaxpr(self.jaxpr, keep)
        # a constant output comes back as the jaxpr's literal: put it on a device, as eager
        # does (replicated over the mesh an eager build runs under, if any)
        mesh = S.context_mesh()
        where = None if mesh is None else NamedSharding(mesh, PartitionSpec())
        values = iter(
            x if isinstance(x, jax.Array) else jax.device_put(x, where)
            for x in jaxpr_as_fun(pruned)(*key_leaves)
        )
        return [copy.copy(self.static[i]) if i in self.static else next(values) for i in indices]


_TRACE_CACHE: dict[Any, tuple[Any, TracedModule]] = {}
_TRACE_CACHE_SIZE = 16


def _abstract(x: Any) -> tuple[tuple[int, ...], Any]:
    return tuple(x.shape), x.dtype


def trace_nnx(
    factory: Callable[..., Any], key: Any, args: Sequence[Any], kwargs: Mapping[str, Any]
) -> TracedModule:
    """Traces ``factory(*args, rngs=nnx_rngs(key), **kwargs)`` under ``jax.jit``; nothing runs.

    ``key`` may be abstract (``jax.ShapeDtypeStruct`` leaves). The result is
    cached per (factory, args, kwargs, key structure and types) when those
    are hashable; the cache holds the factory, as ``jax.jit``'s does.
    """
    if "rngs" in kwargs:
        raise TypeError(
            "jaxinit.flax.init: the constructor's rngs come from key "
            "(nnx.Rngs(key), or nnx.Rngs(**key) for a dict of keys); do not pass rngs="
        )
    key_leaves, key_tree = jax.tree_util.tree_flatten(key)
    mesh = S.context_mesh()  # an eager build under it shards by the metadata
    try:
        cache_key: Any = (
            factory,
            tuple(args),
            tuple(sorted(kwargs.items())),
            key_tree,
            tuple(_abstract(k) for k in key_leaves),
            mesh,
            jax.sharding.get_abstract_mesh(),
            flax_spmd.get_logical_axis_rules(),
        )
        hash(cache_key)
    except TypeError:
        cache_key = None
    hit = _TRACE_CACHE.get(cache_key) if cache_key is not None else None
    if hit is not None and hit[0] is factory:
        return hit[1]

    captured: dict[str, Any] = {}

    def build(*flat_key: Any) -> list[Any]:
        module = factory(
            *args, rngs=nnx_rngs(jax.tree_util.tree_unflatten(key_tree, flat_key)), **kwargs
        )
        if not isinstance(module, nnx.Module):
            raise TypeError(
                f"jaxinit.flax.init: {factory!r} returned {type(module).__name__}, not an "
                "nnx.Module; pass an NNX module class or a function building one"
            )
        graphdef, state = nnx.split(module)
        flat, treedef = jax.tree_util.tree_flatten_with_path(state)
        modules = {}
        for path, node in nnx.iter_graph(module):
            if isinstance(node, nnx.Module):
                modules[tuple(str(p) for p in path)] = node
        captured.update(graphdef=graphdef, treedef=treedef, modules=modules)
        captured["paths"] = [_state_path(kp) for kp, _ in flat]
        # Where an eager build under the mesh puts each leaf: its metadata's sharding.
        variables = jax.tree_util.tree_leaves(state, is_leaf=lambda x: isinstance(x, nnx.Variable))
        captured["shardings"] = [
            S.nnx_sharding(v, mesh) if isinstance(v, nnx.Variable) else None for v in variables
        ]
        # A value the constructor did not compute with jax (a Python number, a numpy
        # array) stays that object, as in an eager build; only traced values are outputs.
        captured["static"] = {i: value for i, (_, value) in enumerate(flat) if not is_traced(value)}
        return [value for _, value in flat if is_traced(value)]

    with empty_defaults_tolerated():  # a zero-width layer's Flax default would divide by 0
        traced = jax.jit(build).trace(*(jax.ShapeDtypeStruct(*_abstract(k)) for k in key_leaves))
    paths: list[tuple[str, ...]] = captured["paths"]
    modules: dict[tuple[str, ...], Any] = captured["modules"]
    static: dict[int, Any] = captured["static"]
    shardings: list[Any] = captured["shardings"]
    if len(shardings) != len(paths):  # a Variable holding a pytree: no per-leaf metadata
        shardings = [None] * len(paths)
    outputs = iter(traced.out_info)
    values = []
    for i in range(len(paths)):
        if i in static:
            values.append(static[i])
        else:
            out = next(outputs)
            values.append(jax.ShapeDtypeStruct(out.shape, out.dtype, sharding=shardings[i]))

    owners_of = nnx_owners(paths, modules)

    result = TracedModule(
        captured["graphdef"],
        captured["treedef"],
        make_leaves(paths, values, owners_of, flax_layout),
        traced.jaxpr,
        static,
    )
    if cache_key is not None:
        if len(_TRACE_CACHE) >= _TRACE_CACHE_SIZE:
            _TRACE_CACHE.pop(next(iter(_TRACE_CACHE)))
        _TRACE_CACHE[cache_key] = (factory, result)
    return result


def _state_path(keypath: Sequence[Any]) -> tuple[str, ...]:
    """The path of a state leaf as ``nnx_leaves`` names it (the Variable's, no ``value``)."""
    names = tuple(key_name(k) for k in keypath)
    if keypath and isinstance(keypath[-1], jax.tree_util.GetAttrKey):
        return names[:-1]
    return names


def nnx_init(
    factory: Callable[..., Any],
    key: Any,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    rules: Any,
    strict: bool,
    unmatched: Unmatched,
    mesh: jax.sharding.Mesh | None = None,
    axis_rules: Any = None,
) -> Any:
    """``jaxinit.flax.init`` for an NNX module class or factory (see its docstring).

    With ``mesh`` (or under ``jax.set_mesh``), the module is built as an eager
    build under that mesh builds it: each leaf drawn straight into the sharding
    its ``out_sharding`` metadata names.
    """
    mesh = S.context_mesh(mesh)
    if mesh is None:
        with S.axis_rules_context(axis_rules):
            return _nnx_init(factory, key, args, kwargs, rules, strict, unmatched)
    with jax.set_mesh(mesh), S.axis_rules_context(axis_rules):
        return _nnx_init(factory, key, args, kwargs, rules, strict, unmatched)


def _nnx_init(
    factory: Callable[..., Any],
    key: Any,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    rules: Any,
    strict: bool,
    unmatched: Unmatched,
) -> Any:
    if isinstance(factory, nnx.Module):
        raise TypeError(
            "jaxinit.flax.init builds an NNX module: pass its class (or a function building "
            "it), not a module; to re-initialize an existing module use jaxinit.flax.reinit"
        )
    if not callable(factory):
        raise TypeError(
            f"jaxinit.flax.init: expected a Linen module, an NNX module class or a function "
            f"building an NNX module, got {factory!r}"
        )
    rules_t = as_rules(rules)
    rule_key = params_key(key, "jaxinit.flax.init")
    traced = trace_nnx(factory, key, args, kwargs)
    leaves = traced.leaves
    jobs = plan(leaves, rules_t, strict, unmatched, abstract_ok=True)
    drawn = {job.index for job in jobs}
    rest = tuple(i for i in range(len(leaves)) if i not in drawn)
    values: list[Any] = [None] * len(leaves)
    draws = draw_jobs(rule_key, jobs, [leaf.value for leaf in leaves])
    if rest:
        for i, x in zip(rest, traced.rest_values(rest, jax.tree_util.tree_leaves(key))):
            values[i] = x
    for job, x in zip(jobs, draws):
        values[job.index] = x
    state = jax.tree_util.tree_unflatten(traced.treedef, values)
    return nnx.merge(traced.graphdef, state)
