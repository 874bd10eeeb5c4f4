"""The rules engine: re-initialize the leaves of any pytree by path, class or predicate.

A *rule* is ``(selector, initializer)``; rules are tried in order and the
first whose selector matches a leaf initializes it. Selectors:

* a string: an ``fnmatch`` glob over the whole ``/``-joined path (``*``
  crosses ``/``): ``"*/Conv_*/kernel"``, ``"*bn*/scale"``, ``"*kernel"``;
* a class (or a tuple of classes): matches a leaf when the module owning
  it, or any module enclosing that one, is an instance;
* ``(class, pattern)``: as a class, and the leaf's name (or its path below
  the matching module) matches the glob ``pattern``: ``(nn.Conv, "kernel")``,
  ``(nn.MultiHeadDotProductAttention, "out/*")``;
* a predicate ``(path, leaf) -> bool``.

Every re-initialized leaf gets the key ``fold_in(key, stable_hash(path))``
(see :func:`stable_hash`), so adding a layer or changing a rule never changes
the values of the other leaves. Drawing is :mod:`jaxinit._src.tree.draw`.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._src.core.initializer import Initializer, check_key, sharding_of
from jaxinit._src.core.layout import Layout, LayoutLike, as_layout

__all__ = ["Contextual", "Rule", "reinit", "stable_hash"]

Unmatched: TypeAlias = Literal["keep", "error"]


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

    Raises:
      TypeError: for a malformed selector, a non-callable initializer, or an
        uncalled jaxinit builder (``jaxinit.zeros`` instead of ``jaxinit.zeros()``).

    >>> import jaxinit
    >>> jaxinit.Rule("*/bias", jaxinit.zeros(), optional=True).optional
    True
    """

    selector: Any
    init: Any
    optional: bool = False

    def __post_init__(self) -> None:
        check_selector(self.selector)
        name = getattr(self.init, "jaxinit_builder", None)  # an uncalled jaxinit builder
        if isinstance(name, str):
            raise TypeError(
                f"rule {self.selector!r}: {name} is a builder: call it to get the "
                f"initializer: ({self.selector!r}, {name}())"
            )
        if not callable(self.init) and not isinstance(self.init, Contextual):
            raise TypeError(
                f"rule {self.selector!r}: the initializer must be callable "
                f"(key, shape, dtype) -> Array, got {self.init!r}"
            )

    @property
    def selects_classes(self) -> bool:
        """Whether the selector needs module classes (a class or ``(class, glob)``)."""
        s = self.selector
        return _is_classes(s) or (isinstance(s, tuple) and len(s) == 2 and _is_classes(s[0]))


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
            except TypeError as e:  # our own message: say which rule
                raise TypeError(f"rule {i}: {e}") from e
        else:
            raise TypeError(
                f"rule {i}: expected a (selector, initializer) pair or a jaxinit.Rule, got {item!r}"
            )
    return tuple(out)


def describe_rule(index: int, rule: Rule) -> str:
    """``rule 3 ('*/bias' -> jaxinit.zeros())``, for messages."""
    return f"rule {index} ({rule.selector!r} -> {rule.init!r})"


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
    """A leaf of the target, as the rules see it.

    Attributes:
      path: the path components.
      value: the array (unboxed; a ``ShapeDtypeStruct`` for abstract targets).
      owners: enclosing modules, outermost first.
      layout: the layout initializers built without ``layout=`` get here (the
        owning Flax layer's, else the tree tool's).
      candidate: whether rules may re-initialize it (an inexact array).
      siblings: the candidate leaves of the same parent (itself included), by name.
      lookup: every candidate leaf of the tree, by path.
    """

    path: tuple[str, ...]
    value: Any
    owners: tuple[Owner, ...] = ()
    layout: Layout | None = None
    candidate: bool = True
    siblings: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)
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

    @property
    def parent(self) -> Owner | None:
        """The module owning the leaf directly, if it is known."""
        if self.owners and self.owners[-1].path == self.path[:-1]:
            return self.owners[-1]
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
      fn: ``(leaf: Leaf, layout: Layout) -> initializer``; ``layout`` is the
        leaf's (its layer's, else the tree tool's).
      name: shown in error messages and reprs.
    """

    def __init__(self, fn: Callable[[Leaf, Layout], Any], name: str):
        self.fn = fn
        self.name = name

    def resolve(self, leaf: Leaf) -> Any:
        assert leaf.layout is not None
        return self.fn(leaf, leaf.layout)

    def __repr__(self) -> str:
        return f"jaxinit.{self.name}"


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
    layout_of: Callable[[tuple[str, ...], Any, tuple[Owner, ...]], Layout],
) -> list[Leaf]:
    """Leaf records for every value, with siblings, a shared lookup and layouts."""
    lookup = {p: v for p, v in zip(paths, values) if is_candidate(v)}
    by_parent: dict[tuple[str, ...], dict[str, Any]] = {}
    for p, v in lookup.items():
        by_parent.setdefault(p[:-1], {})[p[-1] if p else ""] = v
    records = []
    for i, (p, v) in enumerate(zip(paths, values)):
        owners = owners_of(i)
        candidate = is_candidate(v)
        records.append(
            Leaf(
                p,
                v,
                owners,
                layout_of(p, v, owners) if candidate else None,
                candidate,
                by_parent.get(p[:-1], {}),
                lookup,
            )
        )
    return records


# ----------------------------------------------------------------------------
# Keys


def stable_hash(path: str) -> int:
    """A process-independent 31-bit hash of a ``/``-joined path.

    The first four bytes of ``sha256(path.encode("utf-8"))``, big-endian,
    with the top bit cleared (so it is a valid non-negative int32). Unlike
    Python's ``hash``, it does not change between processes.

    >>> import jaxinit
    >>> jaxinit.stable_hash("params/Dense_0/kernel")
    855295399
    """
    digest = hashlib.sha256(path.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


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


def _why_unused(r: int, rule: Rule, leaves: Sequence[Leaf], owner: list[int | None]) -> str:
    """Why rule ``r`` matched no leaf, where that can be told, and the nearest paths."""
    hits = [leaf for leaf in leaves if _safe_match(rule.selector, leaf)]
    candidates = [i for i, leaf in enumerate(leaves) if leaf.candidate and leaf in hits]
    if candidates:
        takers = sorted({t for i in candidates if (t := owner[i]) is not None})
        return f"every leaf it matches was taken by an earlier rule ({', '.join(f'rule {t}' for t in takers)})"
    if hits:
        shown = ", ".join(f"{h.path_str!r} ({_dtype_name(h.value)})" for h in hits[:3])
        return f"it matches only leaves that are not floating-point arrays: {shown}"
    notes = []
    selector = rule.selector
    if isinstance(selector, str):
        if selector.endswith("/value") and any(
            fnmatch.fnmatchcase(leaf.path_str, selector[: -len("/value")]) for leaf in leaves
        ):
            notes.append(
                "paths name the unboxed leaf (an nn.Partitioned box adds no '/value'): "
                f"use {selector[: -len('/value')]!r}"
            )
        near = difflib.get_close_matches(selector, [leaf.path_str for leaf in leaves], 3, 0.3)
        if near:
            notes.append(f"nearest paths: {', '.join(map(repr, near))}")
    elif rule.selects_classes and not any(leaf.owners for leaf in leaves):
        notes.append("the target records no module classes")
    return "; ".join(notes) if notes else "no leaf matches it"


def _safe_match(selector: Any, leaf: Leaf) -> bool:
    try:
        return matches(selector, leaf)
    except Exception:
        return False


def _dtype_name(value: Any) -> str:
    dtype = getattr(value, "dtype", None)
    return str(dtype) if dtype is not None else type(value).__name__


def plan(
    leaves: Sequence[Leaf],
    rules: Sequence[Rule],
    strict: bool,
    unmatched: Unmatched = "keep",
    *,
    abstract_ok: bool = False,
) -> list[Job]:
    """Assigns each candidate leaf its first matching rule; checks ``strict`` and ``unmatched``.

    ``abstract_ok``: the caller materializes the abstract leaves no rule draws
    (``jaxinit.flax.init``); otherwise an undrawn abstract leaf is an error.
    """
    if unmatched not in ("keep", "error"):
        raise ValueError(f"unmatched must be 'keep' or 'error', got {unmatched!r}")
    taken_by: list[int | None] = [None] * len(leaves)
    used = [False] * len(rules)
    jobs = []
    for index, leaf in enumerate(leaves):
        if not leaf.candidate:
            continue
        for r, rule in enumerate(rules):
            try:
                hit = matches(rule.selector, leaf)
            except Exception as e:
                e.add_note(f"while matching {describe_rule(r, rule)} on {leaf.path_str!r}")
                raise
            if not hit:
                continue
            used[r] = True
            taken_by[index] = r
            init = rule.init
            if isinstance(init, Contextual):
                try:
                    init = init.resolve(leaf)
                except Exception as e:
                    e.add_note(f"in {describe_rule(r, rule)} on {leaf.path_str!r}")
                    raise
            if isinstance(init, Initializer):
                assert leaf.layout is not None
                init = init.in_context(leaf.layout)
            jobs.append(
                Job(
                    index,
                    leaf.path_str,
                    r,
                    init,
                    leaf.shape,
                    leaf.dtype,
                    sharding_of(leaf.value),
                    describe_rule(r, rule),
                )
            )
            break
    if strict:
        unused = [
            f"{describe_rule(r, rule)}: {_why_unused(r, rule, leaves, taken_by)}"
            for r, rule in enumerate(rules)
            if not used[r] and not rule.optional
        ]
        if unused:
            raise ValueError(
                "strict=True: these rules matched no leaf:\n  "
                + "\n  ".join(unused)
                + "\nFix the selector, mark the rule optional (jaxinit.Rule(..., optional=True)) "
                "or pass strict=False."
            )
    drawn = {job.index for job in jobs}
    abstract = [
        leaf.path_str
        for i, leaf in enumerate(leaves)
        if i not in drawn and isinstance(leaf.value, jax.ShapeDtypeStruct)
    ]
    uncovered = [
        leaf.path_str for i, leaf in enumerate(leaves) if leaf.candidate and i not in drawn
    ]
    if abstract and not abstract_ok:
        raise ValueError(
            f"these abstract (ShapeDtypeStruct) leaves are not drawn by any rule and would be "
            f"returned unmaterialized: {_listing(abstract)}. Add rules for them, or build the "
            "model with jaxinit.flax.init, which materializes the leaves no rule selects."
        )
    if unmatched == "error" and uncovered:
        raise ValueError(
            f"unmatched='error': no rule covers these floating-point leaves: {_listing(uncovered)}"
        )
    return jobs


def _listing(paths: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(map(repr, paths[:limit]))
    return shown + (f", ... ({len(paths) - limit} more)" if len(paths) > limit else "")


def check_classes_known(rules: Sequence[Rule], leaves: Sequence[Leaf], hint: str) -> None:
    """Raises if class selectors meet a target that records no module classes at all."""
    if any(rule.selects_classes for rule in rules) and not any(leaf.owners for leaf in leaves):
        selectors = [describe_rule(r, rule) for r, rule in enumerate(rules) if rule.selects_classes]
        raise ValueError(
            f"{len(selectors)} rule(s) select by module class, e.g. {selectors[0]}, but this "
            f"target holds no modules (only dicts, lists and arrays), so they can match "
            f"nothing. {hint}"
        )


# ----------------------------------------------------------------------------
# Generic pytrees (Equinox modules, dicts, lists, ...)


def key_name(k: Any) -> str:
    """The path component of a pytree key (``DictKey``, ``GetAttrKey``, ``SequenceKey``...)."""
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


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
        lambda path, value, owners: lay,
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
    from jaxinit._src.tree.draw import draw_jobs

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
