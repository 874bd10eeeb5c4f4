"""``jaxinit.reinit``: the rules engine on any pytree (Equinox modules, dicts, lists, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax

from jaxinit._src.core.initializer import check_key
from jaxinit._src.core.layout import LayoutLike, as_layout
from jaxinit._src.layers.leaf import Leaf, Owner, generic_layout, key_name, make_leaves
from jaxinit._src.tree.draw import draw_jobs
from jaxinit._src.tree.plan import Unmatched, check_classes_known, plan
from jaxinit._src.tree.rules import as_rules

__all__ = ["reinit", "tree_leaves"]


# ----------------------------------------------------------------------------
# Generic pytrees (Equinox modules, dicts, lists, ...)


def _child(node: Any, k: Any) -> Any:
    if isinstance(k, jax.tree_util.GetAttrKey):
        return getattr(node, k.name, None)
    if isinstance(k, jax.tree_util.DictKey | jax.tree_util.SequenceKey):
        try:
            return node[k.key if isinstance(k, jax.tree_util.DictKey) else k.idx]
        except (KeyError, IndexError, TypeError):
            return None
    return None


def _walk_owners(tree: Any, keypath: Sequence[Any], path: tuple[str, ...]) -> tuple[Owner, ...]:
    """Objects (not plain containers) met on the way from the root to a leaf."""
    owners = []
    node = tree
    for depth, k in enumerate(keypath):
        if node is None:
            break
        if not isinstance(node, dict | list | tuple):
            owners.append(Owner(path[:depth], type(node), node))
        node = _child(node, k)
    return tuple(owners)


def tree_leaves(tree: Any, layout: LayoutLike = "torch") -> tuple[list[Any], Any, list[Leaf]]:
    """(values, treedef, leaf records) of any pytree, as :func:`jaxinit.reinit` sees it."""
    lay = as_layout(layout)
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    paths = [tuple(key_name(k) for k in kp) for kp, _ in flat]
    values = [v for _, v in flat]
    leaves = make_leaves(
        paths,
        values,
        lambda i: _walk_owners(tree, flat[i][0], paths[i]),
        generic_layout(lay),
    )
    return values, treedef, leaves


def reinit(
    tree: Any,
    rules: Any,
    *,
    key: jax.Array,
    layout: LayoutLike = "torch",
    strict: bool = True,
    unmatched: Unmatched = "keep",
    donate: bool = False,
) -> Any:
    """Re-initializes the leaves of any pytree that the rules select.

    Works on Equinox modules (class selectors match the module owning a
    leaf, or any enclosing module), dicts, lists and any registered pytree.
    Only floating/complex array leaves are candidates; everything else is
    left as is. For Flax targets use :func:`jaxinit.flax.reinit`, which knows
    Linen and NNX module classes and the layout of each Flax layer.

    Args:
      tree: the pytree.
      rules: ``(selector, initializer)`` pairs or :class:`Rule` s, or a dict;
        first match wins.
      key: a PRNG key; leaf ``path`` gets ``fold_in(key, stable_hash(path))``.
      layout: the layout given to initializers built without ``layout=``
        (default torch: Equinox weights are ``(out, in, ...)``).
      strict: if ``True``, a non-optional rule that matches nothing is an
        error saying why, where it can tell.
      unmatched: ``"keep"`` (default) leaves floating-point leaves no rule
        matches as they are; ``"error"`` raises, listing them.
      donate: if ``True``, the replaced leaves' buffers are donated, so peak
        memory stays near one copy of the parameters (the old arrays are
        deleted, unless a kept leaf shares their buffer; do not use them
        afterwards).

    Returns:
      A new pytree of the same structure; unmatched leaves are the very same
      objects, matched ones new arrays of the same shape, dtype and sharding.

    Raises:
      TypeError: for a malformed rule or selector.
      ValueError: for a rule that matched nothing under ``strict``, class
        selectors on a tree that holds no modules (a Linen variables dict:
        use ``jaxinit.flax.reinit(..., model=)``), uncovered leaves under
        ``unmatched="error"``, or an initializer returning the wrong shape or
        dtype; the tree is untouched.

    >>> import jax, jax.numpy as jnp, jaxinit
    >>> params = {"dense": {"weight": jnp.zeros((4, 3)), "bias": jnp.ones(4)}}
    >>> new = jaxinit.reinit(params, [("*/bias", jaxinit.zeros())], key=jax.random.key(0))
    >>> new["dense"]["weight"] is params["dense"]["weight"], new["dense"]["bias"].tolist()
    (True, [0.0, 0.0, 0.0, 0.0])
    """

    rules_t = as_rules(rules)
    check_key("reinit", key)
    values, treedef, leaves = tree_leaves(tree, layout)
    check_classes_known(
        rules_t,
        leaves,
        "For a Linen variables dict use jaxinit.flax.reinit(variables, rules, key=key, "
        "model=model, args=...) or jaxinit.flax.init(model, key, *args, rules=...).",
    )
    jobs = plan(leaves, rules_t, strict, unmatched)
    if not jobs:
        return tree
    new = list(values)
    for job, x in zip(jobs, draw_jobs(key, jobs, values, donate)):
        new[job.index] = x
    return jax.tree_util.tree_unflatten(treedef, new)
