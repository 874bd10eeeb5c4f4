"""The ``Initializer`` type and the checks every scheme shares.

A scheme is a *builder* (validates hyperparameters in Python, returns an
:class:`Initializer`) plus a *kernel*: one function jitted with the shape,
dtype, layout and sharding static and the numeric hyperparameters traced, so
it compiles once per (scheme, shape, dtype, layout) and never again when a
hyperparameter changes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._src.layout import TORCH, Layout, LayoutLike, as_layout, shape_of

__all__ = ["Initializer"]

# What a kernel gets: key, the traced hyperparameters, then keyword-only statics.
Kernel = Callable[..., jax.Array]
# What a scheme computes in Python from (shape, layout, dtype): the traced arguments.
Prepare = Callable[[tuple[int, ...], Layout, np.dtype], Sequence[Any]]
# What a scheme checks about a shape (raises ValueError).
CheckShape = Callable[[tuple[int, ...], Layout], None]


@dataclasses.dataclass(frozen=True, eq=False)
class Initializer:
    """A torch-semantics initializer: ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Satisfies ``jax.nn.initializers.Initializer``, so it can be passed wherever
    Flax, Equinox or jax expect one (``nn.Dense(kernel_init=...)``). Built by
    the ``jaxinit`` builders, never directly.

    Attributes:
      name: the scheme's name (``"kaiming_normal"``).
      hyperparams: the validated hyperparameters, for display.
      layout: the explicit layout, or ``None`` to inherit the context's
        (a bare call uses ``default_layout``).
      default_layout: the layout used when neither the initializer nor the
        context gives one (torch for ``jaxinit.X``, flax for ``jaxinit.flax.X``).
      dtype: the default dtype when the call gives none.
    """

    name: str
    hyperparams: dict[str, Any]
    _prepare: Prepare = dataclasses.field(repr=False)
    _kernel: Kernel = dataclasses.field(repr=False)
    _check_shape: CheckShape | None = dataclasses.field(repr=False, default=None)
    _random: bool = dataclasses.field(repr=False, default=True)
    _complex_ok: bool = dataclasses.field(repr=False, default=True)
    _structured: bool = dataclasses.field(repr=False, default=False)
    layout: Layout | None = None
    default_layout: Layout = TORCH
    dtype: Any = None
    namespace: str = dataclasses.field(repr=False, default="jaxinit")
    # How a layout given by a context or default translates for this scheme
    # (torch's ConvTranspose reads fans with in and out swapped).
    _layout_map: tuple[tuple[Layout, Layout], ...] = dataclasses.field(repr=False, default=())

    def __repr__(self) -> str:
        args = [f"{k}={v!r}" for k, v in self.hyperparams.items()]
        if self.layout is not None:
            args.append(f"layout={self.layout!r}")
        return f"{self.namespace}.{self.name}({', '.join(args)})"

    @property
    def is_random(self) -> bool:
        """Whether the initializer uses its key."""
        return self._random

    def with_layout(self, layout: LayoutLike | None) -> Initializer:
        """Returns a copy with an explicit layout (``None`` clears it)."""
        return dataclasses.replace(self, layout=None if layout is None else as_layout(layout))

    def in_context(self, layout: LayoutLike) -> Initializer:
        """Returns the initializer as a context with ``layout`` applies it.

        An explicit layout wins; otherwise the context's layout is used. This
        is how ``jaxinit.flax.reinit`` gives flax-layout semantics to
        initializers built without ``layout=``.
        """
        if self.layout is not None:
            return self
        return dataclasses.replace(self, layout=self._mapped(as_layout(layout)))

    def resolved_layout(self) -> Layout:
        """The layout a call uses: the explicit one, else the default."""
        return self.layout if self.layout is not None else self._mapped(self.default_layout)

    def _mapped(self, layout: Layout) -> Layout:
        return dict(self._layout_map).get(layout, layout)

    def __call__(
        self,
        key: jax.Array | None,
        shape: Sequence[int],
        dtype: Any = None,
        out_sharding: Any = None,
    ) -> jax.Array:
        """Draws an array.

        Args:
          key: a PRNG key (typed ``jax.random.key`` or legacy ``PRNGKey``), one
            key, not a batch. Ignored (and may be ``None``) for deterministic
            schemes.
          shape: the shape to make.
          dtype: a floating (or, where torch allows, complex) dtype; ``None``
            means the builder's ``dtype`` or jax's default float.
          out_sharding: a ``NamedSharding`` (or a ``PartitionSpec`` under a
            mesh context) for the result.

        Returns:
          A new array of ``shape`` and ``dtype``.
        """
        dims = shape_of(shape)
        dt = resolve_dtype(self.name, dtype if dtype is not None else self.dtype, self._complex_ok)
        if self._random or key is not None:
            check_key(self.name, key)
        if math.prod(dims) == 0:
            if self._check_shape is not None:
                self._check_shape(dims, self.resolved_layout())
            return _empty(dims, dt, out_sharding)
        fn, args, layout = self.bind(dims, dt)
        return fn(
            key if self._random else None,
            *args,
            shape=dims,
            dtype=dt,
            layout=layout,
            out_sharding=out_sharding,
        )

    def bind(
        self, shape: Sequence[int], dtype: Any = None
    ) -> tuple[Kernel, Sequence[Any], Layout | None]:
        """Validates ``shape``/``dtype`` and returns ``(kernel, traced_args, static_layout)``.

        ``kernel(key, *traced_args, shape=, dtype=, layout=static_layout,
        out_sharding=)`` draws the array. Used by the tree tools to batch
        leaves that share a kernel and shape.
        """
        dims = shape_of(shape)
        dt = resolve_dtype(self.name, dtype if dtype is not None else self.dtype, self._complex_ok)
        layout = self.resolved_layout()
        if self._check_shape is not None:
            self._check_shape(dims, layout)
        args = self._prepare(dims, layout, dt)
        # iid schemes use the layout only for fans (computed above): keep it
        # out of their compile key.
        return self._kernel, args, layout if self._structured else None


def _empty(shape: tuple[int, ...], dtype: Any, out_sharding: Any) -> jax.Array:
    out = jnp.zeros(shape, dtype)
    return constrain(out, out_sharding)


# ----------------------------------------------------------------------------
# dtypes, keys, shardings


def default_float() -> np.dtype:
    """float32, or float64 under ``jax_enable_x64``."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))


def resolve_dtype(name: str, dtype: Any, complex_ok: bool) -> np.dtype:
    """Validates a dtype: floating, or complex where the scheme allows it."""
    dt = default_float() if dtype is None else np.dtype(dtype)
    if jnp.issubdtype(dt, jnp.floating):
        return np.dtype(jax.dtypes.canonicalize_dtype(dt))
    if jnp.issubdtype(dt, jnp.complexfloating):
        if complex_ok:
            return np.dtype(jax.dtypes.canonicalize_dtype(dt))
        raise TypeError(
            f"{name}: complex dtypes are not supported (torch does not support them either), got {dt}"
        )
    raise TypeError(f"{name}: dtype must be a floating dtype, got {dt}")


def sample_dtype(dtype: np.dtype) -> np.dtype:
    """The real dtype to sample in: float32 for 16-bit floats, else the real part's."""
    real = np.dtype(jnp.finfo(dtype).dtype)
    return np.dtype(np.float32) if real.itemsize < 4 else real


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


def constrain(x: jax.Array, out_sharding: Any) -> jax.Array:
    """Puts ``x`` on ``out_sharding`` (inside jit: a sharding constraint)."""
    if out_sharding is None:
        return x
    if isinstance(out_sharding, jax.sharding.Sharding):
        mesh = getattr(out_sharding, "mesh", None)
    else:  # a PartitionSpec: resolved against the mesh context (jax.set_mesh)
        mesh = jax.sharding.get_abstract_mesh()
    axis_types = getattr(mesh, "axis_types", ())
    if any(t == jax.sharding.AxisType.Explicit for t in axis_types):
        if isinstance(out_sharding, jax.sharding.Sharding):
            # A concrete sharding carries its devices: device_put works with or
            # without a mesh context (reshard needs one: jax.make_mesh's
            # default axes are Explicit, and users rarely enter them).
            return jax.device_put(x, out_sharding)
        return jax.sharding.reshard(x, out_sharding)
    return jax.lax.with_sharding_constraint(x, out_sharding)


def kernel(fn: Callable[..., jax.Array]) -> Kernel:
    """Jits a scheme's sampling function with the shape, dtype, layout and sharding static.

    ``fn(key, *traced, shape, dtype, layout)`` computes in any dtype it likes;
    the wrapper casts to ``dtype`` and applies ``out_sharding``.
    """

    @functools.partial(jax.jit, static_argnames=("shape", "dtype", "layout", "out_sharding"))
    def run(key, *args, shape, dtype, layout, out_sharding):
        out = fn(key, *args, shape=shape, dtype=dtype, layout=layout)
        return constrain(out.astype(dtype), out_sharding)

    run.__name__ = run.__qualname__ = f"jaxinit_{fn.__name__.lstrip('_')}"  # type: ignore[attr-defined]
    return run


# ----------------------------------------------------------------------------
# hyperparameters


def real(name: str, arg: str, value: Any) -> float:
    """A finite real hyperparameter as a Python float (eagerly validated)."""
    if isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}: {arg} must be a real number, got {value!r}")
    if isinstance(value, numbers.Real):
        out = float(value)
    elif isinstance(value, np.ndarray | np.generic | jax.Array) and np.ndim(value) == 0:
        if isinstance(value, jax.core.Tracer):
            raise TypeError(
                f"{name}: {arg} must be a concrete number (hyperparameters are validated "
                f"when the initializer is built), got a traced value"
            )
        if not np.issubdtype(np.asarray(value).dtype, np.number) or np.iscomplexobj(value):
            raise TypeError(f"{name}: {arg} must be a real number, got {value!r}")
        out = float(value)
    else:
        raise TypeError(f"{name}: {arg} must be a real number, got {value!r}")
    if not math.isfinite(out):
        raise ValueError(f"{name}: {arg} must be finite, got {out}")
    return out


def _looks_like_array(x: Any) -> bool:
    if isinstance(x, np.ndarray | jax.Array):
        # A traced scalar is a hyperparameter, not torch's tensor argument:
        # real() rejects it with "must be a concrete number".
        return np.ndim(x) >= 1
    shape = getattr(x, "shape", None)
    return isinstance(shape, tuple) and len(shape) >= 1 and hasattr(x, "dtype")


def builder(fn: Callable[..., Initializer]) -> Callable[..., Initializer]:
    """Marks a builder: an array passed as a hyperparameter points to ``fn_``.

    torch's deprecated ``nn.init.kaiming_normal(tensor)`` form cannot exist here,
    since ``jaxinit.kaiming_normal`` is the builder.
    """
    name = fn.__name__

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Initializer:
        if any(_looks_like_array(a) for a in (*args, *kwargs.values())):
            raise TypeError(
                f"jaxinit.{name}() builds an initializer and takes hyperparameters, not an "
                f"array. To initialize an existing array (torch's deprecated "
                f"nn.init.{name}(tensor)), use jaxinit.{name}_(array, ..., key=key); "
                f"to get an initializer, call jaxinit.{name}(...) without the array."
            )
        return fn(*args, **kwargs)

    return wrapped


def with_default_layout(
    build: Callable[..., Initializer], layout: Layout, module: str
) -> Callable[..., Initializer]:
    """The same builder, with ``layout`` as the default layout of what it returns."""

    @functools.wraps(build)
    def wrapped(*args: Any, **kwargs: Any) -> Initializer:
        return dataclasses.replace(build(*args, **kwargs), default_layout=layout, namespace=module)

    wrapped.__module__ = module
    return wrapped
