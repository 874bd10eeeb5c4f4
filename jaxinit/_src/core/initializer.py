"""The ``Initializer`` type and what every scheme shares.

A scheme is a *builder* (validates its hyperparameters in Python and returns
an :class:`Initializer`) over a :class:`Family`: one sampling kernel, jitted
with the shape, dtype, layout and sharding static and the numeric
parameters traced, so it compiles once per (family, shape, dtype, layout)
and never again when a hyperparameter changes.

The path from a builder to an array, for ``jaxinit.kaiming_normal(mode="fan_out")``:

1. the builder checks ``a``, ``mode`` and ``nonlinearity`` and returns an
   ``Initializer(family=NORMAL, params=...)``;
2. a call ``init(key, shape, dtype)`` resolves the layout (explicit, else the
   calling Flax layer's, else the builder's default), checks the shape,
   dtype and key;
3. ``params(shape, layout, dtype)`` turns fans into ``(mean, std)`` in Python;
4. ``NORMAL.kernel(key, mean, std, shape=, dtype=, layout=, out_sharding=)``
   draws the array.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxinit._src.core.distribution import Distribution
from jaxinit._src.core.dtypes import check_key as check_key
from jaxinit._src.core.dtypes import resolve_dtype
from jaxinit._src.core.family import Family, Kernel, unsharded
from jaxinit._src.core.hyper import IntLike as IntLike
from jaxinit._src.core.hyper import RealLike as RealLike
from jaxinit._src.core.hyper import is_traced as is_traced
from jaxinit._src.core.hyper import plain
from jaxinit._src.core.layout import FLAX, TORCH, Layout, LayoutLike, as_layout, shape_of
from jaxinit._src.core.sharding import constrain
from jaxinit._src.core.sharding import kernel_sharding as kernel_sharding
from jaxinit._src.core.sharding import place as place
from jaxinit._src.core.sharding import sharding_of as sharding_of

# check_key, is_traced, IntLike, RealLike, kernel_sharding, place and sharding_of
# are re-exported for the modules that imported them from here before the split.
__all__ = ["BUILDER_DEFAULTS", "CheckShape", "Initializer", "Params", "calling_layer_layout"]

# What a scheme computes in Python from (shape, layout, dtype): the kernel's params.
Params: TypeAlias = Callable[[tuple[int, ...], Layout, np.dtype], tuple[Any, ...]]
# What a scheme checks about a shape (raises ValueError).
CheckShape: TypeAlias = Callable[[tuple[int, ...], Layout], None]

BUILDER_DEFAULTS: dict[str, dict[str, Any]] = {}
"""Each builder's keyword defaults, so that reprs show only what was chosen."""


def _same_value(value: Any, default: Any) -> bool:
    """Whether a hyperparameter equals its builder's default (plain Python values only)."""
    plain_types = (int, float, str, type(None), tuple)
    if not (isinstance(value, plain_types) and isinstance(default, plain_types)):
        return False  # arrays, traced values: always shown
    if isinstance(value, bool) or isinstance(default, bool):
        return value is default
    return bool(value == default)


# ----------------------------------------------------------------------------
# The Initializer


@dataclasses.dataclass(frozen=True, eq=False)
class Initializer:
    """A torch-semantics initializer: ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Satisfies ``jax.nn.initializers.Initializer``, so it can be passed wherever
    Flax, Equinox or jax expect one (``nn.Dense(kernel_init=...)``). Built by
    the ``jaxinit`` builders, never directly.

    Attributes:
      name: the scheme's name (``"kaiming_normal"``).
      hyperparams: the validated hyperparameters, for display.
      layout: the explicit layout, or ``None`` to take the layout of the
        context that applies it (a Flax layer, the tree tools), else
        ``default_layout``.
      default_layout: the layout of a bare call (torch for ``jaxinit.X``,
        flax for ``jaxinit.flax.X``).
      dtype: the default dtype when the call gives none.
    """

    name: str
    hyperparams: Mapping[str, Any]
    family: Family = dataclasses.field(repr=False)
    params: Params = dataclasses.field(repr=False)
    check: CheckShape | None = dataclasses.field(default=None, repr=False)
    layout: Layout | None = None
    default_layout: Layout = TORCH
    dtype: DTypeLike | None = None
    namespace: str = dataclasses.field(default="jaxinit", repr=False)
    # How a layout from a context or default translates for this scheme
    # (torch's ConvTranspose default reads its fans with in and out swapped).
    layout_map: tuple[tuple[Layout, Layout], ...] = dataclasses.field(default=(), repr=False)

    def __repr__(self) -> str:
        defaults = BUILDER_DEFAULTS.get(f"{self.namespace}.{self.name}") or BUILDER_DEFAULTS.get(
            self.name, {}
        )
        args = [
            f"{k}={plain(v)!r}"
            for k, v in self.hyperparams.items()
            if not (k in defaults and _same_value(v, defaults[k]))
        ]
        if self.layout is not None:
            named = {TORCH: "torch", FLAX: "flax"}.get(self.layout)
            args.append(f"layout={named!r}" if named else f"layout={self.layout!r}")
        prefix = f"{self.namespace}." if self.namespace else ""
        return f"{prefix}{self.name}({', '.join(args)})"

    @property
    def is_random(self) -> bool:
        """Whether the initializer uses its key."""
        return self.family.random

    def _dtype(self, dtype: DTypeLike | None) -> np.dtype:
        family = self.family
        chosen = dtype if dtype is not None else self.dtype
        return resolve_dtype(self.name, chosen, family.dtypes, family.torch_kernel)

    def with_layout(self, layout: LayoutLike | None) -> Initializer:
        """Returns a copy with an explicit layout (``None`` clears it)."""
        return dataclasses.replace(self, layout=None if layout is None else as_layout(layout))

    def in_context(self, layout: LayoutLike) -> Initializer:
        """Returns the initializer as a context with ``layout`` applies it.

        An explicit layout wins; otherwise the context's layout is used. This
        is how the tree tools give their layout to initializers built without
        ``layout=``.
        """
        if self.layout is not None:
            return self
        return dataclasses.replace(self, layout=self._mapped(as_layout(layout)))

    def resolved_layout(self, shape: Sequence[int] | None = None) -> Layout:
        """The layout a call uses: the explicit one, else the calling Flax layer's, else the default."""
        if self.layout is not None:
            return self.layout
        context = calling_layer_layout(shape_of(shape), self) if shape is not None else None
        return self._mapped(context if context is not None else self.default_layout)

    def _mapped(self, layout: Layout) -> Layout:
        return dict(self.layout_map).get(layout, layout)

    def __call__(
        self,
        key: jax.Array | None,
        shape: Sequence[int],
        dtype: DTypeLike | None = None,
        out_sharding: Any = None,
    ) -> jax.Array:
        """Draws an array.

        Args:
          key: a PRNG key (typed ``jax.random.key`` or legacy ``PRNGKey``), one
            key, not a batch. Ignored (and may be ``None``) for deterministic
            schemes.
          shape: the shape to make: any sequence of ints.
          dtype: a floating (or, where torch allows, complex, int or bool)
            dtype; ``None`` means the builder's ``dtype`` or jax's default float.
          out_sharding: a ``NamedSharding`` (or a ``PartitionSpec`` under a
            mesh context) for the result.

        Returns:
          A new array of ``shape`` and ``dtype``.
        """
        if self.family.random or key is not None:
            check_key(self.name, key)  # first: a swapped (shape, key) is named as such
        dims = shape_of(shape)
        dt = self._dtype(dtype)
        layout = self.resolved_layout(dims)
        if self.check is not None:
            self.check(dims, layout)
        if math.prod(dims) == 0:
            return constrain(jnp.zeros(dims, dt), out_sharding)
        params = self.params(dims, layout, dt)
        return self.family.kernel(
            key if self.family.random else None,
            *params,
            shape=dims,
            dtype=dt,
            layout=layout if self.family.structured else None,
            out_sharding=out_sharding,
            flat=unsharded((key, *params), out_sharding),
        )

    def bind(
        self, shape: Sequence[int], dtype: DTypeLike | None = None
    ) -> tuple[Kernel, tuple[Any, ...], Layout | None]:
        """Validates ``shape``/``dtype``; returns ``(kernel, params, static_layout)``.

        ``kernel(key, *params, shape=, dtype=, layout=static_layout,
        out_sharding=)`` draws the array. The tree tools use it to draw many
        leaves with cached executables.
        """
        dims = shape_of(shape)
        dt = self._dtype(dtype)
        layout = self.resolved_layout(dims)
        if self.check is not None:
            self.check(dims, layout)
        return (
            self.family.kernel,
            self.params(dims, layout, dt),
            layout if self.family.structured else None,
        )

    def distribution(self, shape: Sequence[int], dtype: DTypeLike | None = None) -> Distribution:
        """What this initializer draws for ``shape``, as a :class:`~jaxinit.Distribution`.

        >>> import jaxinit
        >>> jaxinit.torch_linear_weight().distribution((64, 256))
        U(-0.0625, 0.0625)
        """
        dims = shape_of(shape)
        dt = self._dtype(dtype)
        layout = self.resolved_layout(dims)
        if self.check is not None:
            self.check(dims, layout)
        return self.family.describe(self.params(dims, layout, dt), dims, layout, dt)


# ----------------------------------------------------------------------------
# The layout of the calling Flax layer


_LAYER_CONTEXT: list[Callable[[tuple[int, ...], Any], Layout | None]] = []


def set_layer_context(find: Callable[[tuple[int, ...], Any], Layout | None]) -> None:
    """Registers how the calling layer's layout is found (``jaxinit._src.layers.context``)."""
    _LAYER_CONTEXT[:] = [find]


def calling_layer_layout(shape: tuple[int, ...], init: Any = None) -> Layout | None:
    """The kernel layout of the Flax layer calling the initializer ``init``, if any."""
    return _LAYER_CONTEXT[0](shape, init) if _LAYER_CONTEXT else None
