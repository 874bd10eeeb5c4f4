"""A leaf of a target as the rules see it: its path, value, enclosing layers and layout.

Every door builds these records (:func:`make_leaves`) from what it knows of
the target: the Linen modules of a traced model, the NNX graph, the Equinox
tree, or nothing (a bare dict). A leaf's layout comes from the registered
layer owning it (:func:`~jaxinit._src.layers.registry.layer_layout`); where
no layer is known, the door's default applies and the leaf says whether
that layout was stated or guessed (:attr:`Leaf.guessed`), so a rule whose
result depends on the layout can say so (:mod:`jaxinit._src.tree.plan`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxinit._src.core.layout import FLAX, Layout
from jaxinit._src.layers.registry import EMBED_FLAX, LayerKind, kind_of, layer_layout

__all__ = [
    "Contextual",
    "Leaf",
    "Owner",
    "flax_layout",
    "generic_layout",
    "key_name",
    "make_leaves",
]


# ----------------------------------------------------------------------------
# Leaves and what is known about them


@dataclasses.dataclass(frozen=True)
class Owner:
    """A module (or container) enclosing a leaf: its path, class and object."""

    path: tuple[str, ...]
    cls: type
    module: Any = None
    local: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @functools.cached_property
    def kind(self) -> LayerKind | None:
        """The registry row of this module (``None``: no layer jaxinit knows), looked up once."""
        return kind_of(self.module if self.module is not None else self.cls)


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
      guessed: whether ``layout`` is a guess (no known layer owns the leaf
        and the door had to assume one): a rule whose result depends on the
        layout is then refused under ``strict`` and warned about otherwise.
    """

    path: tuple[str, ...]
    value: Any
    owners: tuple[Owner, ...] = ()
    layout: Layout | None = None
    candidate: bool = True
    siblings: Mapping[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    lookup: Mapping[tuple[str, ...], Any] = dataclasses.field(default_factory=dict, repr=False)
    guessed: bool = False

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
    layout_of: Callable[[tuple[str, ...], Any, tuple[Owner, ...]], tuple[Layout, bool]],
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
        layout, guessed = layout_of(p, v, owners) if candidate else (None, False)
        records.append(
            Leaf(p, v, owners, layout, candidate, by_parent.get(p[:-1], {}), lookup, guessed)
        )
    return records


def key_name(k: Any) -> str:
    """The path component of a pytree key (``DictKey``, ``GetAttrKey``, ``SequenceKey``...)."""
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


# ----------------------------------------------------------------------------
# Leaf layouts, the same for every door


def owner_layout(
    path: tuple[str, ...], value: Any, owners: tuple[Owner, ...]
) -> tuple[Layout | None, bool]:
    """(the layout the registered layer owning the leaf gives it, whether a layer owns it).

    ``(None, True)``: a registered layer owns the leaf but gives it no kernel
    layout (a bias, a norm scale), or cannot say (an Einsum without equation).
    """
    if not owners or owners[-1].path != path[:-1]:
        return None, False
    owner = owners[-1]
    if owner.kind is None:
        return None, False
    return layer_layout(owner.module, tuple(value.shape), owner.local), True


# What a Linen/NNX leaf's name says of its layer when no module is known.
_BY_NAME = {"embedding": EMBED_FLAX}


def flax_layout(
    path: tuple[str, ...], value: Any, owners: tuple[Owner, ...]
) -> tuple[Layout, bool]:
    """A Flax leaf's (layout, guessed): its layer's kernel layout, else what its name says.

    Without a known layer: an ``embedding`` is an ``Embed`` table and a 2-D
    ``kernel`` a Dense kernel (the only Flax layers with those leaves); a
    1-D leaf reads no layout; anything else of two or more dimensions is
    read in the flax layout ``(*kernel, in, out)`` as a guess (a Conv,
    ConvTranspose or DenseGeneral kernel cannot be told apart by shape).
    """
    layout, owned = owner_layout(path, value, owners)
    if layout is not None:
        return layout, False
    ndim = len(value.shape)
    if owned:  # a layer jaxinit knows: only its kernel can lack a layout
        return FLAX, ndim >= 2 and _is_kernel(owners[-1], path)
    name = path[-1] if path else ""
    if name in _BY_NAME and ndim == 2:
        return _BY_NAME[name], False
    return FLAX, ndim >= 2 and not (name == "kernel" and ndim == 2)


def generic_layout(default: Layout) -> Callable[..., tuple[Layout, bool]]:
    """``jaxinit.reinit``'s leaf layouts: a registered layer's (Equinox), else ``default``.

    ``default`` is the caller's ``layout=``: stated, not guessed. A registered
    layer that cannot give its kernel's layout (an Equinox grouped
    ConvTranspose) leaves the kernel's layout guessed.
    """

    def layout_of(
        path: tuple[str, ...], value: Any, owners: tuple[Owner, ...]
    ) -> tuple[Layout, bool]:
        layout, owned = owner_layout(path, value, owners)
        if layout is not None:
            return layout, False
        kernel = owned and _is_kernel(owners[-1], path)
        return default, kernel and len(value.shape) >= 2

    return layout_of


def _is_kernel(owner: Owner, path: tuple[str, ...]) -> bool:
    row = owner.kind
    return row is not None and row.kernel == (path[-1] if path else None)
