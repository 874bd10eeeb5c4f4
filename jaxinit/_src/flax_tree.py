"""The tree tools for Flax: ``reinit`` (Linen variables and NNX modules) and ``init`` (Linen).

Paths are what the target holds: a Linen variables dict gives
``params/conv_1/kernel``, its ``params`` dict ``conv_1/kernel``, an NNX module
``conv/kernel``. Module classes come from the NNX graph, or, for Linen, from
tracing the model abstractly under ``flax.linen.intercept_methods``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from flax import nnx

from jaxinit._src.layout import FLAX
from jaxinit._src.tree import Job, Leaf, Owner, Rule, as_rules, donation, draw, make_leaves, plan

__all__ = ["init", "reinit"]


def _is_box(x: Any) -> bool:
    return isinstance(x, nn.meta.AxisMetadata)


def _unbox(x: Any) -> Any:
    return x.value if _is_box(x) else x


def _rebox(old: Any, new: Any) -> Any:
    return old.replace_boxed(new) if _is_box(old) else new


def _key_name(k: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _params_key(key: Any) -> jax.Array:
    if isinstance(key, Mapping):
        if "params" not in key:
            raise ValueError("key: a dict of keys must have a 'params' entry")
        return key["params"]
    return key


# ----------------------------------------------------------------------------
# Linen


def _record_modules(model: nn.Module, key: Any, args: Sequence[Any], kwargs: Mapping[str, Any]):
    """Abstract variables of ``model.init`` and the module at every path."""
    modules: dict[tuple[str, ...], nn.Module] = {}

    def interceptor(next_fun, a, kw, context):
        module = context.module
        try:
            path = tuple(str(p) for p in module.path)
        except Exception:  # an unbound module has no path
            path = None
        if path is not None:
            modules.setdefault(path, module)
        return next_fun(*a, **kw)

    def run(k):
        with nn.intercept_methods(interceptor):
            return model.init(k, *args, **kwargs)

    abstract = jax.eval_shape(run, key)
    modules.setdefault((), model)
    return abstract, modules


def _linen_leaves(variables: Any, modules: Mapping[tuple[str, ...], Any] | None, collections: bool):
    flat, treedef = jax.tree_util.tree_flatten_with_path(variables, is_leaf=_is_box)
    paths = [tuple(_key_name(k) for k in kp) for kp, _ in flat]
    values = [_unbox(v) for _, v in flat]

    def owners_of(i: int) -> tuple[Owner, ...]:
        if not modules:
            return ()
        path = paths[i]
        prefix, module_path = (path[:1], path[1:-1]) if collections else ((), path[:-1])
        found = []
        for depth in range(len(module_path) + 1):
            mod = modules.get(module_path[:depth])
            if mod is not None:
                found.append(Owner(prefix + module_path[:depth], type(mod), mod))
        return tuple(found)

    records, indices = make_leaves(paths, values, owners_of)
    return [v for _, v in flat], treedef, records, indices


def _needs_classes(rules: Sequence[Rule]) -> bool:
    return any(
        not isinstance(r.selector, str)
        and not callable(r.selector)
        or isinstance(r.selector, type | tuple)
        for r in rules
    )


def _linen_reinit(target, rules, key, strict, donate, model, args, kwargs):
    modules = None
    collections = True
    if model is not None:
        abstract, modules = _record_modules(model, key, args, kwargs)
        collections = isinstance(target, Mapping) and set(target) <= set(abstract) and bool(target)
    elif _needs_classes(rules):
        raise ValueError(
            "these rules select by module class, but a Linen variables dict does not record "
            "module classes: use jaxinit.flax.init(model, key, *args, rules=...) or pass "
            "model= (and args=) to jaxinit.flax.reinit"
        )
    boxed, treedef, records, indices = _linen_leaves(target, modules, collections)
    jobs = plan(records, rules, FLAX, strict)
    if not jobs:
        return target
    donated = donation([_unbox(b) for b in boxed], jobs, indices) if donate else []
    new = draw(_params_key(key), jobs, donated)
    leaves = list(boxed)
    for job, x in zip(jobs, new):
        i = indices[job.index]
        leaves[i] = _rebox(leaves[i], x)
    return jax.tree_util.tree_unflatten(treedef, leaves)


# ----------------------------------------------------------------------------
# NNX


def _nnx_reinit(module, rules, key, strict, donate):
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
    values = [v.get_value() if hasattr(v, "get_value") else v.value for _, v in variables]

    def owners_of(i: int) -> tuple[Owner, ...]:
        path = paths[i]
        return tuple(
            Owner(path[:d], type(modules[path[:d]]), modules[path[:d]])
            for d in range(len(path))
            if path[:d] in modules
        )

    records, indices = make_leaves(paths, values, owners_of)
    jobs = plan(records, rules, FLAX, strict)
    if not jobs:
        return module
    donated = donation(values, jobs, indices) if donate else []
    new = draw(_params_key(key), jobs, donated)
    for job, x in zip(jobs, new):  # only now, when every draw succeeded
        var = variables[indices[job.index]][1]
        if hasattr(var, "set_value"):
            var.set_value(x)
        else:
            var.value = x
    return module


# ----------------------------------------------------------------------------
# Public


def reinit(
    target: Any,
    rules: Any,
    *,
    key: jax.Array,
    strict: bool = True,
    donate: bool = False,
    model: nn.Module | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
) -> Any:
    """Re-initializes the Flax parameters (and other variables) the rules select.

    Initializers built without ``layout=`` get the flax layout
    ``(*kernel, in, out)``.

    Args:
      target: a Linen variables dict (``{"params": ..., "batch_stats": ...}``)
        or ``params`` dict, which is returned as a new dict; or an NNX module,
        which is updated in place and returned.
      rules: ``(selector, initializer)`` pairs, :class:`~jaxinit.Rule` s or a
        dict; first match wins. ``jaxinit.flax.TORCH_DEFAULTS`` is one.
      key: a PRNG key (or a dict with a ``"params"`` key); leaf ``path`` gets
        ``fold_in(key, stable_hash(path))``.
      strict: if ``True``, a non-optional rule that matches nothing is an error.
      donate: donate the replaced arrays' buffers (peak memory near one copy of
        the parameters; the old arrays are deleted).
      model, args, kwargs: for a Linen dict, the model (and the inputs of
        ``model.init``) so class selectors know each module's class; traced
        abstractly, nothing is computed.

    Returns:
      The re-initialized target. Unmatched leaves are the very same objects;
      structure, dtypes, shardings and ``nn.Partitioned`` boxes are kept.

    Raises:
      TypeError: for a malformed rule.
      ValueError: for a strict rule matching nothing, a class selector on a
        Linen dict without ``model=``, or an initializer returning the wrong
        shape or dtype (naming the rule and path); the target is untouched.
    """
    rules_t = as_rules(rules)
    if isinstance(target, nnx.Module):
        return _nnx_reinit(target, rules_t, key, strict, donate)
    return _linen_reinit(
        target, rules_t, key, strict, donate, model, tuple(args), dict(kwargs or {})
    )


_INIT_REST_CACHE: dict[Any, Any] = {}
_INIT_REST_CACHE_SIZE = 16


def _init_rest(
    model: nn.Module, in_tree: Any, static: tuple[Any, ...], rest: tuple[int, ...]
) -> Any:
    """A jitted ``model.init`` returning only the leaves ``rest``, cached per model and call.

    Linen modules are not hashable, so the cache is keyed by identity (and
    holds the model, so the identity stays valid).
    """
    try:
        cache_key = (id(model), in_tree, static, rest)
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
        full = jax.tree_util.tree_flatten(model.init(k, *a, **kw), is_leaf=_is_box)[0]
        return [full[i] for i in rest]

    jitted = jax.jit(run)
    if cache_key is not None:
        if len(_INIT_REST_CACHE) >= _INIT_REST_CACHE_SIZE:
            _INIT_REST_CACHE.pop(next(iter(_INIT_REST_CACHE)))
        _INIT_REST_CACHE[cache_key] = (model, jitted)
    return jitted


def init(
    model: nn.Module, key: Any, *args: Any, rules: Any, strict: bool = True, **kwargs: Any
) -> Any:
    """``model.init(key, *args, **kwargs)`` with the rules applied, compiled per distinct shape.

    The drop-in for ``model.init``: module classes and shapes are learned by
    tracing the model abstractly (``flax.linen.intercept_methods``, nothing is
    computed), then every selected leaf is drawn by its scheme's compiled
    kernel, one executable per distinct (scheme, shape, dtype), cached across
    calls, so twelve identical blocks compile like one. Only if some leaf is
    left unselected is ``model.init`` compiled, for those leaves alone (XLA
    drops the default init of the replaced ones, which is never materialized). ``batch_stats`` and the other
    collections come back as ``model.init`` returns them.

    The result equals ``jaxinit.flax.reinit(model.init(key, *args), rules,
    key=key, model=model, args=args)`` bit for bit.

    Args:
      model: a Linen module.
      key: a PRNG key, or a dict of keys as ``model.init`` takes
        (``{"params": k1, "dropout": k2}``); the rules use ``key["params"]``.
      *args: ``model.init``'s inputs.
      rules: the rules, e.g. ``jaxinit.flax.TORCH_DEFAULTS``.
      strict: if ``True``, a non-optional rule that matches nothing is an error.
      **kwargs: ``model.init``'s keyword arguments (``method=``, ``train=``...).

    Returns:
      The variables dict.

    >>> import jax, jax.numpy as jnp, flax.linen as nn, jaxinit
    >>> model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(2)])
    >>> variables = jaxinit.flax.init(model, jax.random.key(0), jnp.ones((1, 4)),
    ...                               rules=jaxinit.flax.TORCH_DEFAULTS)
    >>> bool(abs(variables["params"]["layers_0"]["bias"]).max() <= 0.5)
    True
    """
    rules_t = as_rules(rules)
    flat_in, in_tree = jax.tree_util.tree_flatten((args, kwargs))
    dynamic = [i for i, x in enumerate(flat_in) if isinstance(x, jax.Array | np.ndarray)]

    abstract, modules = _record_modules(model, key, args, kwargs)
    boxed, treedef, records, indices = _linen_leaves(abstract, modules, collections=True)
    jobs = plan(records, rules_t, FLAX, strict)
    replaced = {indices[j.index] for j in jobs}
    leaves = list(boxed)
    rest = [i for i in range(len(boxed)) if i not in replaced]
    if rest:
        # model.init for the leaves no rule selects; XLA drops the rest of it.
        run = _init_rest(
            model,
            in_tree,
            tuple(flat_in[i] if i not in dynamic else None for i in range(len(flat_in))),
            tuple(rest),
        )
        for i, x in zip(rest, run(key, [flat_in[i] for i in dynamic])):
            leaves[i] = x
    for job, x in zip(jobs, draw(_params_key(key), jobs)):
        i = indices[job.index]
        leaves[i] = _rebox(leaves[i], x)
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _unused(*_: Any) -> None:  # keep linters quiet about re-exported helper types
    return None


_ = (Job, Leaf)
