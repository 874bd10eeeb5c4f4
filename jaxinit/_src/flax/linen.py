"""The tree tools for Flax: ``reinit`` (Linen variables and NNX modules) and ``init`` (Linen).

Paths are what the target holds: a Linen variables dict gives
``params/conv_1/kernel``, its ``params`` dict ``conv_1/kernel``, an NNX module
``conv/kernel``. Module classes come from the NNX graph, or, for Linen, from
tracing the model abstractly under ``flax.linen.intercept_methods``. A leaf
owned by a Flax built-in layer is read in that layer's kernel layout
(:mod:`jaxinit._src.layers.registry`); any other leaf as its name says, else in
the flax layout as a guess (see :func:`jaxinit._src.layers.leaf.flax_layout`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from jaxinit._src import compat
from jaxinit._src.flax import sharding as S
from jaxinit._src.flax.common import is_box, nnx_owners, params_key, rebox, unbox
from jaxinit._src.flax.nnx_init import nnx_init
from jaxinit._src.flax.trace import record_modules
from jaxinit._src.layers.leaf import Leaf, Owner, flax_layout, key_name, make_leaves
from jaxinit._src.tree.draw import draw_jobs
from jaxinit._src.tree.plan import Unmatched, check_classes_known, plan
from jaxinit._src.tree.rules import as_rules

__all__ = ["init", "reinit"]


# ----------------------------------------------------------------------------
# Linen


def linen_leaves(
    variables: Any, modules: Mapping[tuple[str, ...], Any] | None, collections: bool
) -> tuple[list[Any], Any, list[Leaf]]:
    """(boxed leaves, treedef, Leaf records) of a Linen variables (or params) dict."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(variables, is_leaf=is_box)
    paths = [tuple(key_name(k) for k in kp) for kp, _ in flat]
    values = [unbox(v) for _, v in flat]

    def owners_of(i: int) -> tuple[Owner, ...]:
        if not modules:
            return ()
        path = paths[i]
        prefix, module_path = (path[:1], path[1:-1]) if collections else ((), path[:-1])
        found = []
        for depth in range(len(module_path) + 1):
            mod = modules.get(module_path[:depth])
            if mod is not None:
                calls = getattr(modules, "calls", {}).get(module_path[:depth], {})
                found.append(Owner(prefix + module_path[:depth], type(mod), mod, calls))
        return tuple(found)

    leaves = make_leaves(paths, values, owners_of, flax_layout)
    return [v for _, v in flat], treedef, leaves


_LINEN_HINT = (
    "A Linen variables dict does not record module classes: use "
    "jaxinit.flax.init(model, key, *args, rules=...) or pass model= (and args=) to "
    "jaxinit.flax.reinit."
)


def _linen_reinit(target, rules, key, strict, unmatched, donate, model, args, kwargs, mesh):
    modules = None
    collections = True
    if model is not None:
        abstract, modules = record_modules(model, key, args, kwargs)
        collections = isinstance(target, Mapping) and set(target) <= set(abstract) and bool(target)
    boxed, treedef, leaves = linen_leaves(target, modules, collections)
    check_classes_known(rules, leaves, _LINEN_HINT)
    jobs = plan(leaves, rules, strict, unmatched)
    if not jobs:
        return target
    if mesh is not None:  # a boxed leaf drawn straight into the sharding its box names
        shardings = S.linen_shardings(boxed, mesh)
        replicated = NamedSharding(mesh, PartitionSpec())
        for i, leaf in enumerate(leaves):  # an abstract leaf without one: replicated
            if shardings[i] is None and S.unplaced(leaf.value):
                shardings[i] = replicated
        jobs = [
            dataclasses.replace(job, sharding=s) if (s := shardings[job.index]) else job
            for job in jobs
        ]
    new = draw_jobs(params_key(key, "", check=False), jobs, [leaf.value for leaf in leaves], donate)
    out = list(boxed)
    for job, x in zip(jobs, new):
        out[job.index] = rebox(out[job.index], x)
    return jax.tree_util.tree_unflatten(treedef, out)


# ----------------------------------------------------------------------------
# NNX


def nnx_leaves(module: nnx.Module) -> tuple[list[Any], list[Leaf]]:
    """(the NNX Variables, Leaf records) of a module's graph."""
    nodes = list(nnx.iter_graph(module))
    modules = {
        tuple(str(p) for p in path): node for path, node in nodes if isinstance(node, nnx.Module)
    }
    variables = [
        (tuple(str(p) for p in path), node)
        for path, node in nodes
        if isinstance(node, nnx.Variable)
    ]
    paths = [p for p, _ in variables]
    values = [v.get_value() for _, v in variables]

    owners_of = nnx_owners(paths, modules)

    return [v for _, v in variables], make_leaves(paths, values, owners_of, flax_layout)


def _nnx_reinit(module, rules, key, strict, unmatched, donate, mesh):
    variables, leaves = nnx_leaves(module)
    jobs = plan(leaves, rules, strict, unmatched)
    if not jobs:
        return module
    if mesh is not None:  # drawn straight into the sharding each Variable's metadata names
        jobs = [
            dataclasses.replace(job, sharding=s)
            if (s := S.nnx_sharding(variables[job.index], mesh)) is not None
            else job
            for job in jobs
        ]
    new = draw_jobs(params_key(key, "", check=False), jobs, [leaf.value for leaf in leaves], donate)
    for job, x in zip(jobs, new):  # only now, when every draw succeeded
        variables[job.index].set_value(x)
    return module


# ----------------------------------------------------------------------------
# Public


def reinit(
    target: Any,
    rules: Any,
    *,
    key: jax.Array,
    strict: bool = True,
    unmatched: Unmatched = "keep",
    donate: bool = False,
    model: nn.Module | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    mesh: jax.sharding.Mesh | None = None,
    axis_rules: Sequence[tuple[str, Any]] | None = None,
) -> Any:
    """Re-initializes the Flax parameters (and other variables) the rules select.

    Initializers built without ``layout=`` read a leaf in the kernel layout of
    the Flax layer owning it (a ``ConvTranspose`` kernel as torch reads its
    weight, an ``Embed`` table as torch's ``Embedding``, a kernel stacked by
    ``nn.scan`` per layer), and in the flax layout ``(*kernel, in, out)``
    where the owner is unknown.

    Args:
      target: a Linen variables dict (``{"params": ..., "batch_stats": ...}``)
        or ``params`` dict, which is returned as a new dict; or an NNX module,
        which is updated in place and returned.
      rules: ``(selector, initializer)`` pairs, :class:`~jaxinit.Rule` s or a
        dict; first match wins. ``jaxinit.flax.TORCH_DEFAULTS`` is one.
      key: a PRNG key (or a dict with a ``"params"`` key); leaf ``path`` gets
        ``fold_in(key, stable_hash(path))``.
      strict: if ``True``, a non-optional rule that matches nothing is an
        error saying why, where it can tell.
      unmatched: ``"keep"`` (default) or ``"error"``: raise if a
        floating-point leaf is left to no rule.
      donate: donate the replaced arrays' buffers (peak memory near one copy of
        the parameters; the old arrays are deleted, unless a kept leaf shares
        their buffer).
      model, args, kwargs: for a Linen dict, the model (and the inputs of
        ``model.init``) so class selectors know each module's class; traced
        abstractly, nothing is computed.
      mesh: a ``jax.sharding.Mesh`` (default: the one ``jax.set_mesh`` set, if
        any) to draw each re-initialized leaf straight into the
        ``NamedSharding`` its partitioning metadata names (an
        ``nn.Partitioned``/``nn.LogicallyPartitioned`` box, an NNX
        ``out_sharding``). A leaf without metadata keeps its own sharding (an
        abstract one without any is replicated). Values never depend on it.
      axis_rules: logical axis rules for ``nn.LogicallyPartitioned`` boxes
        (default: the ``nn.logical_axis_rules`` context).

    Returns:
      The re-initialized target. Unmatched leaves are the very same objects;
      structure, dtypes, shardings and ``nn.Partitioned`` boxes are kept.

    Raises:
      TypeError: for a malformed rule.
      ValueError: for a strict rule matching nothing, a class selector on a
        Linen dict without ``model=``, uncovered leaves under
        ``unmatched="error"``, or an initializer returning the wrong shape or
        dtype (naming the rule and path); the target is untouched.
    """
    rules_t = as_rules(rules)
    params_key(key, "jaxinit.flax.reinit")  # the key is checked before anything is done
    mesh = S.context_mesh(mesh)
    with S.axis_rules_context(axis_rules):
        if isinstance(target, nnx.Module):
            return _nnx_reinit(target, rules_t, key, strict, unmatched, donate, mesh)
        return _linen_reinit(
            target,
            rules_t,
            key,
            strict,
            unmatched,
            donate,
            model,
            tuple(args),
            dict(kwargs or {}),
            mesh,
        )


_INIT_REST_CACHE: dict[Any, Any] = {}
_INIT_REST_CACHE_SIZE = 16


def _init_rest(
    model: nn.Module,
    in_tree: Any,
    static: tuple[Any, ...],
    rest: tuple[int, ...],
    shardings: tuple[Any, ...] | None = None,
) -> Any:
    """A jitted ``model.init`` returning only the leaves ``rest``, cached per model and call.

    Linen modules are not hashable, so the cache is keyed by identity (and
    holds the model, so the identity stays valid).
    """
    try:
        cache_key = (id(model), in_tree, static, rest, shardings)
        hash(cache_key)
    except TypeError:
        cache_key = None
    hit = _INIT_REST_CACHE.get(cache_key) if cache_key is not None else None
    if hit is not None and hit[0] is model:
        return hit[1]

    def run(k: Any, dyn: Sequence[Any]) -> list[Any]:
        leaves = list(static)
        slots = [i for i, x in enumerate(static) if x is None]
        for i, x in zip(slots, dyn):
            leaves[i] = x
        a, kw = jax.tree_util.tree_unflatten(in_tree, leaves)
        with compat.empty_defaults_tolerated():
            variables = model.init(k, *a, **kw)
        full = jax.tree_util.tree_flatten(variables, is_leaf=is_box)[0]
        return [full[i] for i in rest]

    jitted = jax.jit(run, out_shardings=None if shardings is None else list(shardings))
    if cache_key is not None:
        if len(_INIT_REST_CACHE) >= _INIT_REST_CACHE_SIZE:
            _INIT_REST_CACHE.pop(next(iter(_INIT_REST_CACHE)))
        _INIT_REST_CACHE[cache_key] = (model, jitted)
    return jitted


def init(
    model: nn.Module,
    key: Any,
    *args: Any,
    rules: Any,
    strict: bool = True,
    unmatched: Unmatched = "keep",
    mesh: jax.sharding.Mesh | None = None,
    axis_rules: Sequence[tuple[str, Any]] | None = None,
    **kwargs: Any,
) -> Any:
    """``model.init(key, *args, **kwargs)`` with the rules applied, with few cached programs.

    The drop-in for ``model.init``: module classes and shapes are learned by
    tracing the model abstractly (``flax.linen.intercept_methods``, nothing is
    computed; the trace is cached per model configuration, input shapes and
    dtypes, and logical axis rules, as ``jax.jit`` caches one), then every selected leaf is drawn by a cached program: one per
    (family, element count, dtype) for the elementwise schemes, one per
    (scheme, shape) for the structured ones, so twelve identical blocks
    compile like one. Only if some leaf is
    left unselected is ``model.init`` compiled, for those leaves alone (XLA
    drops the default init of the replaced ones, which is never
    materialized). ``batch_stats`` and the other collections come back as
    ``model.init`` returns them.

    The result equals ``jaxinit.flax.reinit(model.init(key, *args), rules,
    key=key, model=model, args=args)`` bit for bit.

    **NNX.** ``init(ModuleClass_or_factory, key, *ctor_args, rules=...,
    **ctor_kwargs)`` builds ``ModuleClass(*ctor_args, rngs=nnx.Rngs(key),
    **ctor_kwargs)`` (``nnx.Rngs(**key)`` for a dict of keys) without drawing
    the defaults the rules replace: the constructor is traced abstractly once
    (cached per class, arguments and key type), the selected leaves are drawn
    by the cached kernels, and only what no rule selects (RNG streams,
    unmatched parameters, batch statistics) is computed, by the constructor's
    own operations cut down to those leaves and run eagerly. The module
    equals ``jaxinit.flax.reinit(ModuleClass(*ctor_args,
    rngs=nnx.Rngs(key)), rules, key=key)`` bit for bit, RNG state included.
    The constructor must be traceable (as under ``nnx.eval_shape``).

    **Sharded.** With ``mesh=`` (or under ``jax.set_mesh(mesh)``) each leaf
    is drawn straight into the ``NamedSharding`` its partitioning metadata
    names (Linen ``nn.Partitioned``, ``nn.LogicallyPartitioned`` with
    ``axis_rules``, NNX ``out_sharding``; a Linen leaf without a box is
    replicated, as ``nn.get_sharding`` does): each device computes only its
    own shards, and no device ever holds a whole leaf it does not own. The
    values equal the unsharded init's bit for bit (jax's partitionable
    threefry). An NNX module equals the eager build under that mesh followed
    by ``reinit``, shardings included.

    Args:
      model: a Linen module; or an NNX module class, or a function taking the
        constructor's arguments and ``rngs=`` and returning an NNX module.
      key: a PRNG key, or a dict of keys as ``model.init`` takes
        (``{"params": k1, "dropout": k2}``; for NNX the streams of
        ``nnx.Rngs``); the rules use ``key["params"]``.
      *args: ``model.init``'s inputs, or the NNX constructor's arguments.
      rules: the rules, e.g. ``jaxinit.flax.TORCH_DEFAULTS``.
      strict: if ``True``, a non-optional rule that matches nothing is an error.
      unmatched: ``"keep"`` (default: Flax's own init for leaves no rule
        selects) or ``"error"``.
      mesh: a ``jax.sharding.Mesh`` to lay the leaves out on (default: the
        one ``jax.set_mesh`` set, if any; none: Flax's own placement).
      axis_rules: logical axis rules, ``[(logical_name, mesh_axes), ...]``,
        for ``nn.LogicallyPartitioned`` boxes and NNX ``out_sharding`` names
        (default: the ``nn.logical_axis_rules`` context).
      **kwargs: ``model.init``'s keyword arguments (``method=``, ``train=``...),
        or the NNX constructor's (not ``rngs``: it comes from ``key``).

    Returns:
      The variables dict (Linen), or the new NNX module.

    >>> import jax, jax.numpy as jnp, flax.linen as nn, jaxinit
    >>> model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(2)])
    >>> variables = jaxinit.flax.init(model, jax.random.key(0), jnp.ones((1, 4)),
    ...                               rules=jaxinit.flax.TORCH_DEFAULTS)
    >>> bool(abs(variables["params"]["layers_0"]["bias"]).max() <= 0.5)
    True
    >>> from flax import nnx
    >>> layer = jaxinit.flax.init(nnx.Linear, jax.random.key(0), 4, 8,
    ...                           rules=jaxinit.flax.TORCH_DEFAULTS)
    >>> bool(abs(layer.bias[...]).max() <= 0.5)
    True
    """
    if not isinstance(model, nn.Module):  # NNX: a module class or a function building one
        return nnx_init(
            model,
            key,
            args,
            kwargs,
            rules=rules,
            strict=strict,
            unmatched=unmatched,
            mesh=mesh,
            axis_rules=axis_rules,
        )
    with S.axis_rules_context(axis_rules):
        return _linen_init(model, key, args, kwargs, rules, strict, unmatched, S.context_mesh(mesh))


def _linen_init(
    model: nn.Module,
    key: Any,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    rules: Any,
    strict: bool,
    unmatched: Unmatched,
    mesh: jax.sharding.Mesh | None,
) -> Any:
    rules_t = as_rules(rules)
    rule_key = params_key(key, "jaxinit.flax.init")
    flat_in, in_tree = jax.tree_util.tree_flatten((args, kwargs))
    dynamic = [i for i, x in enumerate(flat_in) if isinstance(x, jax.Array | np.ndarray)]

    abstract, modules = record_modules(model, key, args, kwargs)
    boxed, treedef, leaves = linen_leaves(abstract, modules, collections=True)
    jobs = plan(leaves, rules_t, strict, unmatched, abstract_ok=True)
    shardings = None
    if mesh is not None:  # a leaf without a box is replicated, as nn.get_sharding does
        replicated = NamedSharding(mesh, PartitionSpec())
        shardings = [s or replicated for s in S.linen_shardings(boxed, mesh)]
    if shardings is not None:  # each leaf drawn straight into the sharding its box names
        jobs = [dataclasses.replace(job, sharding=shardings[job.index]) for job in jobs]
    replaced = {job.index for job in jobs}
    out = list(boxed)
    rest = [i for i in range(len(boxed)) if i not in replaced]
    if rest:
        # model.init for the leaves no rule selects; XLA drops the rest of it.
        run = _init_rest(
            model,
            in_tree,
            tuple(flat_in[i] if i not in dynamic else None for i in range(len(flat_in))),
            tuple(rest),
            None if shardings is None else tuple(shardings[i] for i in rest),
        )
        for i, x in zip(rest, run(key, [flat_in[i] for i in dynamic])):
            out[i] = x
    for job, x in zip(jobs, draw_jobs(rule_key, jobs, [leaf.value for leaf in leaves])):
        out[job.index] = rebox(out[job.index], x)
    return jax.tree_util.tree_unflatten(treedef, out)
