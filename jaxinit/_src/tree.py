"""The rules engine: re-initialize the leaves of any pytree by path, class or predicate.

A *rule* is ``(selector, initializer)``; rules are tried in order and the
first whose selector matches a leaf initializes it. Selectors:

* a string: an ``fnmatch`` glob over the whole ``/``-joined path (``*``
  crosses ``/``): ``"*/Conv_*/kernel"``, ``"*bn*/scale"``, ``"*kernel"``;
* a class: matches a leaf when the module owning it, or any module
  enclosing that one, is an instance;
* ``(class, pattern)``: as a class, and the leaf's name (or its path below
  the matching module) matches the glob ``pattern``: ``(nn.Conv, "kernel")``,
  ``(nn.MultiHeadDotProductAttention, "out/*")``;
* a predicate ``(path, leaf) -> bool``.

Every re-initialized leaf gets the key ``fold_in(key, stable_hash(path))``
(see :func:`stable_hash`), so adding a layer or changing a rule never changes
the values of the other leaves. All new values are drawn in one compiled
program in which leaves sharing (scheme, shape, dtype) are drawn by one
vmapped kernel, so compile time grows with the number of distinct shapes,
not of layers.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding

from jaxinit._src.core import Initializer, check_key
from jaxinit._src.layout import Layout, LayoutLike, as_layout

__all__ = ["Rule", "Contextual", "reinit", "stable_hash"]


# ----------------------------------------------------------------------------
# Rules


@dataclasses.dataclass(frozen=True)
class Rule:
    """One ``(selector, initializer)`` pair; ``optional`` rules may match nothing.

    Args:
      selector: a glob string, a module class, ``(class, name_glob)`` or a
        predicate ``(path, leaf) -> bool``.
      init: an initializer ``(key, shape, dtype) -> Array`` (a jaxinit one,
        a ``jax.nn.initializers`` one, any callable of that form) or a
        :class:`Contextual` one.
      optional: if ``True``, ``strict=True`` does not complain when this rule
        matches no leaf. Every rule of ``TORCH_DEFAULTS`` is optional.

    >>> import jaxinit
    >>> jaxinit.Rule("*/bias", jaxinit.zeros(), optional=True).optional
    True
    """

    selector: Any
    init: Any
    optional: bool = False

    def __post_init__(self) -> None:
        check_selector(self.selector)
        if not callable(self.init) and not isinstance(self.init, Contextual):
            raise TypeError(
                f"rule {self.selector!r}: the initializer must be callable "
                f"(key, shape, dtype) -> Array, got {self.init!r}"
            )


def _is_classes(x: Any) -> bool:
    """A class, or a non-empty tuple of classes (any of them)."""
    if isinstance(x, type):
        return True
    return isinstance(x, tuple) and bool(x) and all(isinstance(c, type) for c in x)


def check_selector(selector: Any) -> None:
    """Raises ``TypeError`` for anything that is not a valid selector."""
    if isinstance(selector, str) or _is_classes(selector):
        return
    if isinstance(selector, tuple):
        if len(selector) == 2 and _is_classes(selector[0]) and isinstance(selector[1], str):
            return
        raise TypeError(
            f"selector {selector!r}: a tuple selector must be (module class, name glob), "
            "e.g. (nn.Conv, 'kernel'), or a tuple of classes"
        )
    if callable(selector):
        return
    raise TypeError(
        f"selector {selector!r}: expected a glob string, a module class, "
        f"(class, name glob) or a predicate (path, leaf) -> bool, got {type(selector).__name__}"
    )


def as_rules(rules: Any) -> tuple[Rule, ...]:
    """Normalizes a dict or a sequence of pairs/Rules to a tuple of Rules."""
    if isinstance(rules, Rule):
        return (rules,)
    if isinstance(rules, Mapping):
        items: Iterable[Any] = rules.items()
    elif isinstance(rules, str) or not isinstance(rules, Iterable):
        raise TypeError(
            f"rules must be a sequence of (selector, initializer) pairs or a dict, got {rules!r}"
        )
    else:
        items = rules
    out = []
    for i, item in enumerate(items):
        if isinstance(item, Rule):
            out.append(item)
        elif isinstance(item, tuple) and len(item) == 2:
            try:
                out.append(Rule(item[0], item[1]))
            except TypeError as e:
                raise TypeError(f"rule {i}: {e}") from None
        else:
            raise TypeError(
                f"rule {i}: expected a (selector, initializer) pair or a jaxinit.Rule, got {item!r}"
            )
    return tuple(out)


# ----------------------------------------------------------------------------
# Leaves and what is known about them


@dataclasses.dataclass(frozen=True)
class Owner:
    """A module (or container) enclosing a leaf: its path, class and object."""

    path: tuple[str, ...]
    cls: type
    module: Any = None


@dataclasses.dataclass(frozen=True)
class Leaf:
    """A candidate leaf: an array (or ShapeDtypeStruct) of inexact dtype.

    Attributes:
      path: the path components.
      value: the array (unboxed).
      owners: enclosing modules, outermost first; the last one owns the leaf.
      siblings: the candidate leaves of the same parent (itself included), by name.
      lookup: every candidate leaf of the tree, by path.
    """

    path: tuple[str, ...]
    value: Any
    owners: tuple[Owner, ...] = ()
    siblings: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    lookup: Mapping[tuple[str, ...], Any] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def path_str(self) -> str:
        return "/".join(self.path)

    @property
    def name(self) -> str:
        return self.path[-1] if self.path else ""

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.value.dtype)

    def owner_of(self, cls: type | tuple[type, ...]) -> Owner | None:
        """The innermost enclosing module that is an instance of ``cls``."""
        for owner in reversed(self.owners):
            if issubclass(owner.cls, cls):
                return owner
        return None


def matches(selector: Any, leaf: Leaf) -> bool:
    """Whether ``selector`` selects ``leaf``."""
    if isinstance(selector, str):
        return fnmatch.fnmatchcase(leaf.path_str, selector)
    if _is_classes(selector):
        return leaf.owner_of(selector) is not None
    if isinstance(selector, tuple):
        cls, pattern = selector
        for owner in reversed(leaf.owners):
            if issubclass(owner.cls, cls):
                below = "/".join(leaf.path[len(owner.path) :])
                if fnmatch.fnmatchcase(leaf.name, pattern) or fnmatch.fnmatchcase(below, pattern):
                    return True
        return False
    return bool(selector(leaf.path_str, leaf.value))


class Contextual:
    """An initializer chosen per leaf, from what the tree knows about it.

    ``fn(leaf, layout)`` returns the initializer for that leaf: a bias finding
    ``fan_in`` from its sibling kernel, an attention projection finding its
    siblings' widths. Used by the torch-default rules.

    Args:
      fn: ``(leaf: Leaf, layout: Layout) -> initializer``.
      name: shown in error messages and reprs.
    """

    def __init__(self, fn: Callable[[Leaf, Layout], Any], name: str):
        self.fn = fn
        self.name = name

    def resolve(self, leaf: Leaf, layout: Layout) -> Any:
        return self.fn(leaf, layout)

    def __repr__(self) -> str:
        return f"jaxinit.{self.name}"


# ----------------------------------------------------------------------------
# Keys


def stable_hash(path: str) -> int:
    """A process-independent 31-bit hash of a ``/``-joined path.

    The first four bytes of ``sha256(path.encode("utf-8"))``, big-endian,
    with the top bit cleared (so it is a valid non-negative int32). Unlike
    Python's ``hash``, it does not change between processes.

    >>> import jaxinit
    >>> jaxinit.stable_hash("params/Dense_0/kernel") == jaxinit.stable_hash("params/Dense_0/kernel")
    True
    """
    digest = hashlib.sha256(path.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def leaf_key(key: jax.Array, path: str) -> jax.Array:
    """The key a leaf at ``path`` is drawn with: ``fold_in(key, stable_hash(path))``."""
    return jax.random.fold_in(key, stable_hash(path))


# ----------------------------------------------------------------------------
# Planning: which rule initializes which leaf, with which concrete initializer


@dataclasses.dataclass(frozen=True)
class Job:
    """One leaf to draw: where, with what, and what it must look like."""

    index: int
    path: str
    rule: int
    init: Any
    shape: tuple[int, ...]
    dtype: np.dtype
    sharding: Any
    rule_desc: str = ""


def _describe(i: int, rule: Rule) -> str:
    return f"rule {i} ({rule.selector!r} -> {rule.init!r})"


def plan(leaves: Sequence[Leaf], rules: Sequence[Rule], layout: Layout, strict: bool) -> list[Job]:
    """Assigns each leaf its first matching rule; checks ``strict``."""
    used = [False] * len(rules)
    jobs = []
    for index, leaf in enumerate(leaves):
        for r, rule in enumerate(rules):
            try:
                hit = matches(rule.selector, leaf)
            except Exception as e:
                raise type(e)(f"{_describe(r, rule)} failed on {leaf.path_str!r}: {e}") from e
            if not hit:
                continue
            used[r] = True
            init = rule.init
            if isinstance(init, Contextual):
                try:
                    init = init.resolve(leaf, layout)
                except (ValueError, TypeError) as e:
                    raise type(e)(f"{_describe(r, rule)} on {leaf.path_str!r}: {e}") from e
            if isinstance(init, Initializer):
                init = init.in_context(layout)
            sharding = getattr(leaf.value, "sharding", None)
            concrete = isinstance(leaf.value, jax.Array) and isinstance(
                sharding, jax.sharding.Sharding
            )
            if isinstance(leaf.value, jax.core.Tracer) or not (
                isinstance(sharding, NamedSharding) or concrete
            ):
                sharding = None
            jobs.append(
                Job(
                    index,
                    leaf.path_str,
                    r,
                    init,
                    leaf.shape,
                    leaf.dtype,
                    sharding,
                    _describe(r, rule),
                )
            )
            break
    if strict:
        unused = [
            _describe(r, rule) for r, rule in enumerate(rules) if not used[r] and not rule.optional
        ]
        if unused:
            raise ValueError(
                "strict=True: these rules matched no leaf: "
                + "; ".join(unused)
                + ". Fix the selector, mark the rule optional (jaxinit.Rule(..., optional=True)) "
                "or pass strict=False."
            )
    return jobs


# ----------------------------------------------------------------------------
# Drawing: one cached executable per (scheme, shape, dtype, layout, sharding)
#
# Each leaf is drawn by its scheme's kernel, jitted with the shape static and
# the hyperparameters and the path hash traced, so a model of twelve
# identical blocks compiles each distinct (scheme, shape) once, and a later
# model with the same shapes compiles nothing. (One XLA program returning
# every leaf would compile one output fusion per leaf: on CPU that costs
# about as much as the sampling itself.) Inside a caller's jit the same
# calls simply become part of the caller's program.


@functools.partial(jax.jit, static_argnames=("fn", "shape", "dtype", "layout", "out_sharding"))
def _draw_leaf(key, path_hash, *args, fn, shape, dtype, layout, out_sharding):
    leaf = jax.random.fold_in(key, path_hash)
    return fn(leaf, *args, shape=shape, dtype=dtype, layout=layout, out_sharding=out_sharding)


def _drawer(job: Job) -> Callable[[jax.Array], jax.Array]:
    """A function of the base key that draws ``job``'s array."""
    init = job.init
    h = np.uint32(stable_hash(job.path))
    if isinstance(init, Initializer) and all(d > 0 for d in job.shape):
        fn, args, layout = init.bind(job.shape, job.dtype)
        statics = dict(
            fn=fn,
            shape=job.shape,
            dtype=job.dtype,
            layout=layout,
            out_sharding=_named(job.sharding),
        )
        if not init.is_random:
            return lambda key: fn(None, *args, **{k: v for k, v in statics.items() if k != "fn"})
        return lambda key: _draw_leaf(key, h, *args, **statics)
    if isinstance(init, Initializer):
        return lambda key: init(
            jax.random.fold_in(key, h), job.shape, job.dtype, _named(job.sharding)
        )

    def plain(key: jax.Array) -> jax.Array:
        x = init(jax.random.fold_in(key, h), job.shape, job.dtype)
        if job.sharding is not None and not isinstance(x, jax.core.Tracer):
            x = jax.device_put(x, job.sharding)
        return x

    return plain


def _named(sharding: Any) -> NamedSharding | None:
    """The sharding a kernel can constrain its output to; others are placed by :func:`_place`."""
    return sharding if isinstance(sharding, NamedSharding) else None


def _place(x: jax.Array, sharding: Any) -> jax.Array:
    """Puts a concrete result on its leaf's sharding (e.g. a single non-default device)."""
    if (
        sharding is None
        or isinstance(x, jax.core.Tracer)
        or x.sharding.is_equivalent_to(sharding, x.ndim)
    ):
        return x
    return jax.device_put(x, sharding)


def donation(values: Sequence[Any], jobs: Sequence[Job], indices: Sequence[int]) -> list[Any]:
    """The old arrays of ``jobs`` to donate: ``None`` for one a kept leaf still holds.

    ``values`` are all the (unboxed) leaves, ``indices`` map a job's leaf to them.
    """
    replaced = {indices[j.index] for j in jobs}
    kept = {id(v) for i, v in enumerate(values) if i not in replaced}
    olds = [values[indices[j.index]] for j in jobs]
    return [None if id(old) in kept else old for old in olds]


def _check(job: Job, shape: Sequence[int], dtype: Any) -> None:
    if tuple(shape) != job.shape or np.dtype(dtype) != job.dtype:
        raise ValueError(
            f"{job.rule_desc or f'rule {job.rule}'} returns shape {tuple(shape)} and dtype {dtype} "
            f"for {job.path!r}, which is {job.shape} {job.dtype}; the target was left untouched"
        )


def draw(key: jax.Array, jobs: Sequence[Job], donated: Sequence[Any] = ()) -> list[jax.Array]:
    """Draws every job's array; returns them in job order.

    Every job is checked before anything is drawn or donated: jaxinit
    initializers validate the shape and dtype when bound, other callables are
    traced abstractly (``jax.eval_shape``) and must give the leaf's shape and
    dtype, so a bad rule raises and the target is left untouched. With ``donated`` (the old arrays, one per job), each old array is
    deleted just before its replacement is drawn, so peak memory stays near
    one copy of the parameters plus the largest leaf.
    """
    check_key("reinit", key)
    drawers = []
    for job in jobs:
        try:
            fn = _drawer(job)  # a jaxinit initializer validates shape and dtype here
            if not isinstance(job.init, Initializer):
                out = jax.eval_shape(fn, key)
                _check(job, out.shape, out.dtype)
        except (ValueError, TypeError) as e:
            if "the target was left untouched" in str(e):
                raise
            raise type(e)(
                f"{job.rule_desc or f'rule {job.rule}'} on {job.path!r}: {e}; the target was left untouched"
            ) from e
        drawers.append(fn)
    new = []
    for i, fn in enumerate(drawers):
        if donated:
            old = donated[i]
            if isinstance(old, jax.Array) and not isinstance(old, jax.core.Tracer):
                old.delete()
        new.append(_place(fn(key), jobs[i].sharding))
    return new


# ----------------------------------------------------------------------------
# Generic pytrees (Equinox modules, dicts, lists, ...)


def _key_name(k: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _child(node: Any, k: Any) -> Any:
    if isinstance(k, jax.tree_util.GetAttrKey):
        return getattr(node, k.name)
    if isinstance(k, jax.tree_util.DictKey | jax.tree_util.SequenceKey):
        try:
            return node[k.key if isinstance(k, jax.tree_util.DictKey) else k.idx]
        except Exception:
            return None
    return None


def is_candidate(x: Any) -> bool:
    """Array-like leaves of floating or complex dtype are what rules can re-initialize."""
    dtype = getattr(x, "dtype", None)
    if dtype is None or not hasattr(x, "shape"):
        return False
    try:
        return bool(jnp.issubdtype(dtype, jnp.inexact))
    except TypeError:
        return False


def make_leaves(
    paths: Sequence[tuple[str, ...]],
    values: Sequence[Any],
    owners_of: Callable[[int], tuple[Owner, ...]],
) -> tuple[list[Leaf], list[int]]:
    """Leaf records for the candidate values, with siblings and a shared lookup."""
    lookup = {p: v for p, v in zip(paths, values) if is_candidate(v)}
    by_parent: dict[tuple[str, ...], dict[str, Any]] = {}
    for p, v in lookup.items():
        by_parent.setdefault(p[:-1], {})[p[-1] if p else ""] = v
    records, indices = [], []
    for i, (p, v) in enumerate(zip(paths, values)):
        if is_candidate(v):
            records.append(Leaf(p, v, owners_of(i), by_parent.get(p[:-1], {}), lookup))
            indices.append(i)
    return records, indices


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


def pytree_leaves(tree: Any) -> tuple[list[Any], Any, list[Leaf], list[int]]:
    """Flattens ``tree`` into (leaves, treedef, candidate Leaf records, their indices)."""
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    paths = [tuple(_key_name(k) for k in kp) for kp, _ in flat]
    values = [v for _, v in flat]
    records, indices = make_leaves(
        paths, values, lambda i: _walk_owners(tree, flat[i][0], paths[i])
    )
    return values, treedef, records, indices


def reinit(
    tree: Any,
    rules: Any,
    *,
    key: jax.Array,
    layout: LayoutLike = "torch",
    strict: bool = True,
    donate: bool = False,
) -> Any:
    """Re-initializes the leaves of any pytree that the rules select.

    Works on Equinox modules (class selectors match the module owning a
    leaf, or any enclosing module), dicts, lists and any registered pytree.
    Only floating/complex array leaves are candidates; everything else is
    left as is.

    Args:
      tree: the pytree.
      rules: ``(selector, initializer)`` pairs or :class:`Rule` s, or a dict;
        first match wins.
      key: a PRNG key; leaf ``path`` gets ``fold_in(key, stable_hash(path))``.
      layout: the layout given to initializers built without ``layout=``
        (default torch: Equinox weights are ``(out, in, ...)``).
      strict: if ``True``, a non-optional rule that matches nothing is an error.
      donate: if ``True``, the replaced leaves' buffers are donated, so peak
        memory stays near one copy of the parameters (the old arrays are
        deleted; do not use them afterwards).

    Returns:
      A new pytree of the same structure; unmatched leaves are the very same
      objects, matched ones new arrays of the same shape, dtype and sharding.

    Raises:
      TypeError: for a malformed rule or selector.
      ValueError: for a rule that matched nothing under ``strict``, or an
        initializer returning the wrong shape or dtype; the tree is untouched.

    >>> import jax, jax.numpy as jnp, jaxinit
    >>> params = {"dense": {"weight": jnp.zeros((4, 3)), "bias": jnp.ones(4)}}
    >>> new = jaxinit.reinit(params, [("*/bias", jaxinit.zeros())], key=jax.random.key(0))
    >>> new["dense"]["weight"] is params["dense"]["weight"], new["dense"]["bias"].tolist()
    (True, [0.0, 0.0, 0.0, 0.0])
    """
    rules_t = as_rules(rules)
    lay = as_layout(layout)
    leaves, treedef, records, indices = pytree_leaves(tree)
    jobs = plan(records, rules_t, lay, strict)
    if not jobs:
        return tree
    donated = donation(leaves, jobs, indices) if donate else []
    new = draw(key, jobs, donated)
    for job, x in zip(jobs, new):
        leaves[indices[job.index]] = x
    return jax.tree_util.tree_unflatten(treedef, leaves)
