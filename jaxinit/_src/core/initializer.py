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
import functools
import inspect
import math
import numbers
import os
import sys
import textwrap
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, Protocol, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxinit._src.core.layout import FLAX, TORCH, Layout, LayoutLike, as_layout, is_int, shape_of

if TYPE_CHECKING:
    from jaxinit._src.core.distribution import Distribution

__all__ = ["Initializer", "IntLike", "RealLike"]

P = ParamSpec("P")

# Hyperparameter types: any real (integer) number, as a Python, numpy or jax
# scalar; a jax scalar may be traced (inside jit/vmap). Checked at run time.
RealLike: TypeAlias = float | np.floating[Any] | np.integer[Any] | jax.Array
IntLike: TypeAlias = int | np.integer[Any] | jax.Array

# ----------------------------------------------------------------------------
# Warnings that point at the user's line


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` with the stack level of the first frame outside jaxinit."""
    frame = sys._getframe(1)
    level = 2  # 1 is this function; 2 its caller, the frame above
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)


# ----------------------------------------------------------------------------
# Hyperparameters: every real number type, concrete or traced


def is_traced(x: Any) -> bool:
    """Whether ``x`` is a jax tracer (a hyperparameter inside ``jit``/``vmap``)."""
    return isinstance(x, jax.core.Tracer)


def real(name: str, arg: str, value: Any, *, finite: bool = True) -> Any:
    """A real hyperparameter: a Python float, or the tracer itself when traced.

    Accepts Python, numpy and jax real scalars (0-d arrays included). Traced
    values are returned as they are: the checks that need a concrete value are
    skipped for them (documented in each builder).
    """
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}: {arg} must be a real number, got {value!r}")
    if isinstance(value, numbers.Real):
        out = float(value)
    elif isinstance(value, np.ndarray | np.generic | jax.Array) and np.ndim(value) == 0:
        dtype = value.dtype
        if not (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)):
            raise TypeError(f"{name}: {arg} must be a real number, got {value!r}")
        if is_traced(value):
            return value
        out = float(value)
    else:
        raise TypeError(f"{name}: {arg} must be a real number, got {value!r}")
    if math.isnan(out) or (finite and math.isinf(out)):
        raise ValueError(f"{name}: {arg} must be {'finite' if finite else 'a number'}, got {out}")
    return out


def integer(name: str, arg: str, value: Any, *, minimum: int) -> Any:
    """An integer hyperparameter >= ``minimum``: a Python int, or the tracer when traced."""
    if is_int(value):
        out = int(value)
    elif (
        isinstance(value, np.ndarray | jax.Array)
        and np.ndim(value) == 0
        and jnp.issubdtype(value.dtype, jnp.integer)
    ):
        if is_traced(value):
            return value
        out = int(value)
    else:
        raise TypeError(f"{name}: {arg} must be an int, got {value!r}")
    if out < minimum:
        raise ValueError(f"{name}: {arg} must be >= {minimum}, got {out}")
    return out


def concrete(*values: Any) -> bool:
    """Whether none of ``values`` is traced (so value checks can run)."""
    return not any(is_traced(v) for v in values)


# ----------------------------------------------------------------------------
# dtypes and keys

DtypeKinds: TypeAlias = Literal["inexact", "real", "any"]

# torch's names for the dtypes it names in "not implemented for" errors.
_TORCH_DTYPE_NAMES = {
    "bool": "Bool",
    "int8": "Char",
    "uint8": "Byte",
    "int16": "Short",
    "uint16": "UInt16",
    "int32": "Int",
    "uint32": "UInt32",
    "int64": "Long",
    "uint64": "UInt64",
}


def default_float() -> np.dtype:
    """float32, or float64 under ``jax_enable_x64``."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))


def resolve_dtype(name: str, dtype: DTypeLike | None, family: Family) -> np.dtype:
    """Validates a dtype for ``family``; 64-bit dtypes without x64 warn as jax does."""
    requested = default_float() if dtype is None else np.dtype(dtype)
    dt = np.dtype(jax.dtypes.canonicalize_dtype(requested))
    if dt != requested:
        warn(
            f"Explicitly requested dtype {requested} requested in {name} is not available, "
            f"and will be truncated to dtype {dt}. To enable more dtypes, set the "
            "jax_enable_x64 configuration option or the JAX_ENABLE_X64 shell environment variable."
        )
    if jnp.issubdtype(dt, jnp.floating) or family.dtypes == "any":
        return dt
    if jnp.issubdtype(dt, jnp.complexfloating):
        if family.dtypes == "inexact":
            return dt
        raise TypeError(
            f"{name}: complex dtypes are not supported (torch does not support them either), "
            f"got {dt}"
        )
    torch_name = _TORCH_DTYPE_NAMES.get(dt.name, dt.name)
    raise TypeError(
        f'{name}: "{family.torch_kernel}" not implemented for {torch_name!r}: a random '
        f"scheme needs a floating dtype, got {dt}"
    )


def sample_dtype(dtype: np.dtype) -> np.dtype:
    """The real dtype to sample in: float32 for 16-bit floats, else the real part's."""
    real_dtype = np.dtype(jnp.finfo(dtype).dtype)
    return np.dtype(np.float32) if real_dtype.itemsize < 4 else real_dtype


def is_key(x: Any) -> bool:
    """A typed PRNG key (any batch shape) or a legacy raw ``uint32[2]`` key."""
    if not isinstance(x, jax.Array | np.ndarray):
        return False
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return True
    return bool(x.dtype == np.uint32 and x.shape[-1:] == (2,))


def check_key(name: str, key: Any) -> None:
    """Accepts one typed key or one legacy uint32 key; rejects batches and non-keys."""
    if key is None:
        raise TypeError(f"{name}: a PRNG key is required, got None")
    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape != ():
            raise ValueError(
                f"{name}: expected a single PRNG key, got a batch of keys of shape {shape}; "
                "use jax.vmap over keys instead"
            )
        return
    if dtype is not None and np.dtype(dtype) == np.uint32 and shape is not None and len(shape) >= 1:
        if len(shape) == 1:
            return
        raise ValueError(
            f"{name}: expected a single PRNG key, got a batch of raw keys of shape {shape}; "
            "use jax.vmap over keys instead"
        )
    raise TypeError(f"{name}: expected a PRNG key (jax.random.key or PRNGKey), got {key!r}")


# ----------------------------------------------------------------------------
# Sharding: the one place that puts arrays where they belong


def constrain(x: jax.Array, out_sharding: Any) -> jax.Array:
    """Puts ``x`` on ``out_sharding`` (inside jit: a sharding constraint).

    ``out_sharding`` is a ``Sharding`` or, under a mesh context
    (``jax.set_mesh``), a ``PartitionSpec``.
    """
    if out_sharding is None:
        return x
    if isinstance(out_sharding, jax.sharding.Sharding):
        mesh = getattr(out_sharding, "mesh", None)
    else:
        mesh = jax.sharding.get_abstract_mesh()
    axis_types = getattr(mesh, "axis_types", ())
    if any(t == jax.sharding.AxisType.Explicit for t in axis_types):
        if isinstance(out_sharding, jax.sharding.Sharding):
            # A concrete sharding carries its devices: device_put works with or
            # without a mesh context (reshard needs one).
            return jax.device_put(x, out_sharding)
        return jax.sharding.reshard(x, out_sharding)
    return jax.lax.with_sharding_constraint(x, out_sharding)


def kernel_sharding(sharding: Any) -> jax.sharding.NamedSharding | None:
    """The part of a leaf's sharding a kernel can constrain its output to."""
    return sharding if isinstance(sharding, jax.sharding.NamedSharding) else None


def sharding_of(x: Any) -> jax.sharding.Sharding | None:
    """The sharding of a concrete array (``None`` for tracers, numpy and abstract values)."""
    if isinstance(x, jax.Array) and not is_traced(x):
        return x.sharding
    sharding = getattr(x, "sharding", None)  # a ShapeDtypeStruct may carry one
    return sharding if isinstance(sharding, jax.sharding.NamedSharding) else None


def place(x: jax.Array, sharding: Any) -> jax.Array:
    """Puts a concrete result on ``sharding`` if it is not there already."""
    if sharding is None or is_traced(x) or x.sharding.is_equivalent_to(sharding, x.ndim):
        return x
    return jax.device_put(x, sharding)


# ----------------------------------------------------------------------------
# Families: how a distribution is drawn


class Kernel(Protocol):
    """A jitted sampler: ``(key, *params, shape=, dtype=, layout=, out_sharding=) -> Array``."""

    def __call__(
        self,
        key: Any,
        *params: Any,
        shape: tuple[int, ...],
        dtype: np.dtype,
        layout: Layout | None,
        out_sharding: Any,
    ) -> jax.Array: ...


def kernel(fn: Callable[..., jax.Array]) -> Kernel:
    """Jits a family's sampling function with the shape, dtype, layout and sharding static.

    ``fn(key, *params, shape, dtype, layout)`` computes in any dtype it likes;
    the wrapper casts to ``dtype`` and applies ``out_sharding``.
    """

    @functools.partial(jax.jit, static_argnames=("shape", "dtype", "layout", "out_sharding"))
    def run(key, *params, shape, dtype, layout, out_sharding):
        out = fn(key, *params, shape=shape, dtype=dtype, layout=layout)
        return constrain(out.astype(dtype), out_sharding)

    run.__name__ = run.__qualname__ = f"jaxinit_{fn.__name__.lstrip('_')}"  # type: ignore[attr-defined]
    return run  # type: ignore[return-value]


@dataclasses.dataclass(frozen=True)
class Family:
    """A distribution family: its kernel and what it accepts.

    Attributes:
      name: ``"uniform"``, ``"normal"``, ...
      kernel: the jitted sampler.
      describe: ``(params, shape, layout) -> Distribution``, the distribution
        the kernel draws from with those parameters.
      random: whether the kernel uses its key.
      dtypes: ``"inexact"`` (float and complex), ``"real"`` (float only) or
        ``"any"`` (the deterministic fills: also int and bool, as torch).
      structured: whether the layout changes the kernel's program (eye,
        dirac, orthogonal, sparse); iid families use the layout only for fans,
        computed in Python, so it stays out of their compile key.
      torch_kernel: torch's kernel name in its "not implemented for" error.
    """

    name: str
    kernel: Kernel
    describe: Callable[[tuple[Any, ...], tuple[int, ...], Layout], Distribution]
    random: bool = True
    dtypes: DtypeKinds = "inexact"
    structured: bool = False
    torch_kernel: str = ""


# What a scheme computes in Python from (shape, layout, dtype): the kernel's params.
Params: TypeAlias = Callable[[tuple[int, ...], Layout, np.dtype], tuple[Any, ...]]
# What a scheme checks about a shape (raises ValueError).
CheckShape: TypeAlias = Callable[[tuple[int, ...], Layout], None]


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
        defaults = BUILDER_DEFAULTS.get(self.name, {})
        args = [
            f"{k}={v!r}"
            for k, v in self.hyperparams.items()
            if not (k in defaults and _same_value(v, defaults[k]))
        ]
        if self.layout is not None:
            named = {TORCH: "torch", FLAX: "flax"}.get(self.layout)
            args.append(f"layout={named!r}" if named else f"layout={self.layout!r}")
        return f"{self.namespace}.{self.name}({', '.join(args)})"

    @property
    def is_random(self) -> bool:
        """Whether the initializer uses its key."""
        return self.family.random

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
        dims = shape_of(shape)
        dt = resolve_dtype(self.name, dtype if dtype is not None else self.dtype, self.family)
        if self.family.random or key is not None:
            check_key(self.name, key)
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
        dt = resolve_dtype(self.name, dtype if dtype is not None else self.dtype, self.family)
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
        dt = resolve_dtype(self.name, dtype if dtype is not None else self.dtype, self.family)
        layout = self.resolved_layout(dims)
        if self.check is not None:
            self.check(dims, layout)
        return self.family.describe(self.params(dims, layout, dt), dims, layout)


# ----------------------------------------------------------------------------
# The layout of the calling Flax layer


_LAYER_CONTEXT: list[Callable[[tuple[int, ...], Any], Layout | None]] = []


def set_layer_context(find: Callable[[tuple[int, ...], Any], Layout | None]) -> None:
    """Registers how the calling layer's layout is found (``jaxinit._src.layers.context``)."""
    _LAYER_CONTEXT[:] = [find]


def calling_layer_layout(shape: tuple[int, ...], init: Any = None) -> Layout | None:
    """The kernel layout of the Flax layer calling the initializer ``init``, if any."""
    return _LAYER_CONTEXT[0](shape, init) if _LAYER_CONTEXT else None


# ----------------------------------------------------------------------------
# Builders


def _misuse(qualname: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Raises a clear TypeError for the two common mistakes with a builder."""
    if args and is_key(args[0]):
        raise TypeError(
            f"{qualname} is a builder: call it to get the initializer, e.g. "
            f"kernel_init={qualname}(), not kernel_init={qualname}"
        )
    values = (*args, *kwargs.values())
    if any(_is_array(v) for v in values):
        name = qualname.rsplit(".", 1)[-1]
        raise TypeError(
            f"{qualname}() builds an initializer and takes hyperparameters, not an "
            f"array. To initialize an existing array (torch's deprecated "
            f"nn.init.{name}(tensor)), use {qualname}_(array, ..., key=key); "
            f"to get an initializer, call {qualname}(...) without the array."
        )


def _is_array(x: Any) -> bool:
    """An array of one or more dimensions (numpy, jax, torch...): a weight, not a hyperparameter."""
    shape = getattr(x, "shape", None)
    return hasattr(x, "dtype") and isinstance(shape, tuple) and len(shape) >= 1


BUILDER_DEFAULTS: dict[str, dict[str, Any]] = {}
"""Each builder's keyword defaults, so that reprs show only what was chosen."""


def _same_value(value: Any, default: Any) -> bool:
    """Whether a hyperparameter equals its builder's default (plain Python values only)."""
    plain = (int, float, str, type(None), tuple)
    if not (isinstance(value, plain) and isinstance(default, plain)):
        return False  # arrays, traced values: always shown
    if isinstance(value, bool) or isinstance(default, bool):
        return value is default
    return bool(value == default)


def builder(fn: Callable[P, Initializer]) -> Callable[P, Initializer]:
    """Marks a builder: clear errors when it is used as an initializer or given an array.

    torch's deprecated ``nn.init.kaiming_normal(tensor)`` form cannot exist
    here, since ``jaxinit.kaiming_normal`` is the builder.
    """

    @functools.wraps(fn)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> Initializer:
        _misuse(f"jaxinit.{fn.__name__}", args, kwargs)
        return fn(*args, **kwargs)

    wrapped.jaxinit_builder = f"jaxinit.{fn.__name__}"  # type: ignore[attr-defined]
    BUILDER_DEFAULTS[fn.__name__] = {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    return wrapped


def flax_variant(
    build: Callable[P, Initializer], default_layout: Layout = FLAX
) -> Callable[P, Initializer]:
    """``jaxinit.flax.X``: the builder ``jaxinit.X`` with the flax layout as default."""
    name = build.__name__
    inner: Callable[..., Initializer] = getattr(build, "__wrapped__", build)

    @functools.wraps(build)
    def flax_builder(*args: P.args, **kwargs: P.kwargs) -> Initializer:
        _misuse(f"jaxinit.flax.{name}", args, kwargs)
        init = inner(*args, **kwargs)
        return dataclasses.replace(init, default_layout=default_layout, namespace="jaxinit.flax")

    flax_builder.__module__ = "jaxinit.flax"
    flax_builder.__qualname__ = name
    flax_builder.__doc__ = flax_doc(build.__doc__ or "", name, default_layout)
    flax_builder.jaxinit_builder = f"jaxinit.flax.{name}"  # type: ignore[attr-defined]
    return flax_builder


def flax_defaults(doc: str) -> str:
    """A docstring's "default: torch's (out, in, ...)" layouts, said for the flax variant."""
    for torch_axes, flax_axes in (("(out, in, *k)", "(*k, in, out)"), ("(out, in)", "(in, out)")):
        doc = doc.replace(f"default: torch's ``{torch_axes}``", f"default: flax's ``{flax_axes}``")
    return doc


_FLAX_EXAMPLES = {  # name: (builder arguments, shape) for the flax variants' examples
    "sparse": ("0.25", (32, 64)),
    "eye": ("", (32, 64)),
    "constant": ("0.5", (3, 3, 32, 64)),
    "torch_linear_bias": ("100", (64,)),
    "torch_rnn": ("64", (256,)),
    "torch_embedding": ("", (10, 4)),
}


def flax_doc(doc: str, name: str, layout: Layout) -> str:
    """The docstring of a flax-layout variant, from the torch-layout one."""
    doc = flax_defaults(inspect.cleandoc(doc))
    summary, _, rest = doc.partition("\n")
    rest = rest.split("\n>>>")[0].rstrip()  # the torch-layout example is replaced below
    where = (
        "``(*kernel, in, out)``"
        if layout == FLAX
        else f"``{layout!r}`` (an ``Embed`` table read as torch's ``Embedding``)"
    )
    note = textwrap.fill(
        f"The flax-layout variant of :func:`jaxinit.{name}`: the same arguments and "
        f"distribution, but a bare call reads the shape in the flax layout {where}. "
        f"Inside a Flax layer or the tree tools it takes their layout, as "
        f"``jaxinit.{name}`` does; an explicit ``layout=`` wins.",
        width=88,
    )
    args, shape = _FLAX_EXAMPLES.get(name, ("", (3, 3, 32, 64)))
    example = (
        f">>> import jax, jaxinit\n"
        f">>> init = jaxinit.flax.{name}({args})\n"
        f">>> init(jax.random.key(0), {shape}).shape\n"
        f"{shape}"
    )
    return f"{summary}\n\n{note}\n{rest}\n\n{example}\n"
