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
* a predicate ``(path, leaf) -> bool``;
* :class:`Layers`: the leaves of registered layers of some kinds, in every
  framework (what ``TORCH_DEFAULTS`` uses; see :mod:`jaxinit._src.layers.registry`).

Every re-initialized leaf gets the key ``fold_in(key, stable_hash(path))``
(see :func:`stable_hash`), so adding a layer or changing a rule never changes
the values of the other leaves. Drawing is :mod:`jaxinit._src.tree.draw`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from jaxinit._src.layers.leaf import Contextual, Leaf
from jaxinit._src.layers.registry import KINDS

__all__ = ["Layers", "Rule", "as_rules", "describe_rule", "matches"]


@dataclasses.dataclass(frozen=True)
class Layers:
    """A selector for the leaves of layers of the given registered kinds, in any framework.

    Matches a leaf when the layer owning it, or any enclosing one, is of one
    of ``kinds`` (Linen, NNX and Equinox layers of a kind share its name:
    ``"dense"`` is Linen's ``Dense`` and NNX's ``Linear``; Equinox kinds are
    ``"eqx_linear"``, ...), and the leaf's name, or its path below that layer,
    matches the glob ``pattern``.

    >>> import jaxinit
    >>> jaxinit.Layers(("dense", "eqx_linear"), "bias")
    jaxinit.Layers(('dense', 'eqx_linear'), 'bias')
    """

    kinds: tuple[str, ...]
    pattern: str = "*"

    def __post_init__(self) -> None:
        if isinstance(self.kinds, str):
            object.__setattr__(self, "kinds", (self.kinds,))
        unknown = sorted(set(self.kinds) - {row.kind for row in KINDS})
        if unknown:
            known = sorted({row.kind for row in KINDS})
            raise ValueError(f"Layers: unknown layer kinds {unknown}; known kinds: {known}")
        if not isinstance(self.pattern, str):
            raise TypeError(f"Layers: pattern must be a glob string, got {self.pattern!r}")

    def __repr__(self) -> str:
        return f"jaxinit.Layers({tuple(self.kinds)!r}, {self.pattern!r})"

    def matches(self, leaf: Leaf) -> bool:
        for owner in reversed(leaf.owners):
            row = owner.kind
            if row is not None and row.kind in self.kinds:
                below = "/".join(leaf.path[len(owner.path) :])
                return fnmatch.fnmatchcase(leaf.name, self.pattern) or fnmatch.fnmatchcase(
                    below, self.pattern
                )
        return False


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
        builder = _uncalled_builder(self.init)
        if builder is not None:
            raise TypeError(
                f"rule {self.selector!r}: {builder} is a builder that returns an initializer, "
                f"not an initializer (key, shape, dtype) -> Array: call it: "
                f"({self.selector!r}, {builder}())"
            )

    @property
    def selects_classes(self) -> bool:
        """Whether the selector needs module classes (a class or ``(class, glob)``)."""
        s = self.selector
        return (
            isinstance(s, Layers)
            or _is_classes(s)
            or (isinstance(s, tuple) and len(s) == 2 and _is_classes(s[0]))
        )


_INIT_ARGS = ("key", "rng", "prng_key")  # what an initializer calls its first argument
_BUILDER_MODULES = ("jax.nn.initializers", "jax._src.nn.initializers", "flax.")


def _uncalled_builder(init: Any) -> str | None:
    """``jax.nn.initializers.lecun_normal`` (the builder, not ``lecun_normal()``): its name."""
    module = getattr(init, "__module__", None) or ""
    if not module.startswith(_BUILDER_MODULES) or not inspect.isfunction(init):
        return None
    try:
        params = list(inspect.signature(init).parameters)
    except (TypeError, ValueError):
        return None
    if params and params[0] in _INIT_ARGS:
        return None
    public = "jax.nn.initializers" if module.startswith(("jax.", "jax._src")) else module
    return f"{public}.{init.__name__}"


def _is_classes(x: Any) -> bool:
    """A class, or a non-empty tuple of classes (any of them)."""
    if isinstance(x, type):
        return True
    return isinstance(x, tuple) and bool(x) and all(isinstance(c, type) for c in x)


def check_selector(selector: Any) -> None:
    """Raises ``TypeError`` for anything that is not a valid selector."""
    if isinstance(selector, str | Layers) or _is_classes(selector):
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


def matches(selector: Any, leaf: Leaf) -> bool:
    """Whether ``selector`` selects ``leaf``."""
    if isinstance(selector, str):
        return fnmatch.fnmatchcase(leaf.path_str, selector)
    if isinstance(selector, Layers):
        return selector.matches(leaf)
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
