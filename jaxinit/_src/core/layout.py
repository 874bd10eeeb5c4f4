"""Weight layouts (which axes are input, output and batch) and fan computation."""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Sequence
from typing import Any, Literal, TypeAlias

import numpy as np

__all__ = [
    "FLAX",
    "TORCH",
    "Layout",
    "LayoutLike",
    "calculate_correct_fan",
    "calculate_fan_in_and_fan_out",
]

Axes: TypeAlias = int | tuple[int, ...]
FanMode: TypeAlias = Literal["fan_in", "fan_out"]


def is_int(x: object) -> bool:
    """A Python or numpy integer (not a bool)."""
    return isinstance(x, int | np.integer) and not isinstance(x, bool | np.bool_)


def _axes_tuple(value: Any, name: str, allow_empty: bool) -> tuple[int, ...]:
    if isinstance(value, int):  # the common case first: an ABC check costs far more
        axes = (value,)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        axes = tuple(value)
    else:
        axes = (value,)
    if (not axes and not allow_empty) or not all(is_int(a) for a in axes):
        what = "a sequence of ints" if allow_empty else "an int or a non-empty sequence of ints"
        raise TypeError(f"Layout: {name} must be {what}, got {value!r}")
    return tuple(int(a) for a in axes)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Names the input, output and batch axes of a weight; all others are receptive field.

    Like the ``in_axis``/``out_axis``/``batch_axis`` arguments of
    ``jax.nn.initializers.variance_scaling``, each may be an int or a sequence
    of ints (negative values count from the end). With several in (or out)
    axes their sizes multiply: a ``DenseGeneral`` kernel of shape
    ``(heads, head_dim, features)`` has ``Layout(in_axis=(0, 1), out_axis=2)``.

    Batch axes hold independent weights: layers stacked by ``nn.scan``, or the
    output positions of a locally connected layer. They count in no fan, and
    the structured schemes (eye, dirac, orthogonal, sparse) are applied to
    each batch entry separately.

    Attributes:
      in_axis: the input axis or axes.
      out_axis: the output axis or axes.
      batch_axis: the batch axes (default none).

    >>> import jaxinit
    >>> jaxinit.TORCH
    Layout(in_axis=1, out_axis=0)
    >>> jaxinit.FLAX
    Layout(in_axis=-2, out_axis=-1)
    >>> jaxinit.Layout(in_axis=-2, out_axis=-1, batch_axis=0)
    Layout(in_axis=-2, out_axis=-1, batch_axis=(0,))
    """

    in_axis: Axes
    out_axis: Axes
    batch_axis: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("in_axis", "out_axis"):
            value = getattr(self, name)
            axes = _axes_tuple(value, name, allow_empty=False)
            object.__setattr__(self, name, axes[0] if is_int(value) else axes)
        object.__setattr__(self, "batch_axis", _axes_tuple(self.batch_axis, "batch_axis", True))

    def __repr__(self) -> str:
        batch = f", batch_axis={self.batch_axis}" if self.batch_axis else ""
        return f"Layout(in_axis={self.in_axis}, out_axis={self.out_axis}{batch})"

    def axes(self, ndim: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """Returns ``(in_axes, out_axes, receptive_axes)`` normalized for ``ndim``.

        Raises:
          ValueError: if an axis is out of range or named twice.
        """
        in_axes, out_axes, receptive, _ = self.all_axes(ndim)
        return in_axes, out_axes, receptive

    def all_axes(
        self, ndim: int
    ) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """Returns ``(in_axes, out_axes, receptive_axes, batch_axes)`` normalized for ``ndim``."""
        in_axes = _normalize(self.in_axis, ndim, "in_axis", self)
        out_axes = _normalize(self.out_axis, ndim, "out_axis", self)
        batch = _normalize(self.batch_axis, ndim, "batch_axis", self)
        named = [*in_axes, *out_axes, *batch]
        if len(set(named)) != len(named):
            raise ValueError(f"{self}: in, out and batch axes overlap for a {ndim}-D shape")
        receptive = tuple(a for a in range(ndim) if a not in named)
        return in_axes, out_axes, receptive, batch


TORCH = Layout(in_axis=1, out_axis=0)
"""PyTorch (and Equinox) weights: ``(out, in/groups, *kernel)``."""

FLAX = Layout(in_axis=-2, out_axis=-1)
"""Flax, Haiku and Keras kernels: ``(*kernel, in, out)``."""

LayoutLike: TypeAlias = Layout | Literal["torch", "flax"]


def as_layout(layout: LayoutLike | None, default: Layout = TORCH) -> Layout:
    """Turns ``"torch"``, ``"flax"``, a :class:`Layout` or ``None`` into a Layout."""
    if layout is None:
        return default
    if isinstance(layout, Layout):
        return layout
    if isinstance(layout, str):
        named = {"torch": TORCH, "flax": FLAX}
        if layout.lower() in named:
            return named[layout.lower()]
    raise ValueError(f"layout must be 'torch', 'flax' or a jaxinit.Layout, got {layout!r}")


def _normalize(axes: Axes, ndim: int, name: str, layout: Layout) -> tuple[int, ...]:
    axes_t = (axes,) if isinstance(axes, int) else axes
    out = []
    for a in axes_t:
        if not -ndim <= a < ndim:
            raise ValueError(f"{layout}: {name} {a} is out of range for a {ndim}-D shape")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{layout}: {name} names an axis twice")
    return tuple(out)


def shape_of(shape: Any) -> tuple[int, ...]:
    """A shape tuple from an int or a sequence of concrete integers.

    Any sequence of ints works, as in ``jax.nn.initializers``: a tuple, a list,
    a 1-D integer numpy or jax array. An array is read as a shape (its
    *values*), never through ``.shape``.

    Raises:
      TypeError: for anything else (floats, bools, traced values, nested sequences).
      ValueError: for a negative dimension.
    """
    if is_int(shape):
        dims: tuple[Any, ...] = (shape,)
    elif isinstance(shape, np.ndarray | np.generic) or _is_jax_array(shape):
        arr = np.asarray(shape) if not _is_tracer(shape) else None
        if arr is None or arr.ndim > 1 or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(
                f"shape must be a sequence of concrete ints, got an array {_describe(shape)}"
                + ("; to use an array's shape, pass x.shape" if arr is not None else "")
            )
        dims = tuple(arr.reshape(-1).tolist())
    elif isinstance(shape, Sequence) and not isinstance(shape, str):
        dims = tuple(shape)
    else:
        raise TypeError(f"shape must be a sequence of ints, got {shape!r}")
    out = []
    for d in dims:
        if isinstance(d, bool | np.bool_):
            raise TypeError(f"shape must be a sequence of ints, got {shape!r}")
        try:
            out.append(operator.index(d))
        except TypeError:
            raise TypeError(
                f"shape must be a sequence of concrete ints, got {shape!r} "
                f"(element {d!r} is not an int)"
            ) from None
    if any(d < 0 for d in out):
        raise ValueError(f"shape must have non-negative dimensions, got {tuple(out)}")
    return tuple(out)


def weight_shape(shape_or_weight: Any) -> tuple[int, ...]:
    """A shape, or the shape of a floating/complex weight array (as torch's fans take a tensor)."""
    import jax.numpy as jnp

    dtype = getattr(shape_or_weight, "dtype", None)
    if dtype is not None and hasattr(shape_or_weight, "shape"):
        if jnp.issubdtype(dtype, jnp.inexact):
            return tuple(int(d) for d in shape_or_weight.shape)
    return shape_of(shape_or_weight)


def _is_jax_array(x: Any) -> bool:
    import jax

    return isinstance(x, jax.Array)


def _is_tracer(x: Any) -> bool:
    import jax

    return isinstance(x, jax.core.Tracer)


def _describe(x: Any) -> str:
    return f"of shape {tuple(x.shape)} and dtype {x.dtype}"


def calculate_fan_in_and_fan_out(shape: Any, layout: LayoutLike = "torch") -> tuple[int, int]:
    r"""Returns ``(fan_in, fan_out)`` of a weight shape, as torch computes them.

    .. math::
       \text{fan\_in} = \prod_{a \in \text{in}} s_a \cdot r, \qquad
       \text{fan\_out} = \prod_{a \in \text{out}} s_a \cdot r,

    where :math:`r` is the product of the receptive-field axes (all but the
    in, out and batch axes). In the torch layout this is ``fan_in = shape[1] *
    prod(shape[2:])`` and ``fan_out = shape[0] * prod(shape[2:])``; in the flax
    layout ``fan_in = shape[-2] * prod(shape[:-2])``, ``fan_out = shape[-1] *
    prod(shape[:-2])``.

    Args:
      shape: the weight shape (a sequence of ints), or a floating-point weight
        array, whose ``.shape`` is used, as torch takes a tensor.
      layout: ``"torch"`` (default), ``"flax"`` or a :class:`Layout`.

    Returns:
      ``(fan_in, fan_out)`` as Python ints.

    Raises:
      ValueError: for fewer than 2 dimensions (besides batch axes), as torch.

    PyTorch equivalent: ``torch.nn.init._calculate_fan_in_and_fan_out``.

    >>> import jaxinit
    >>> jaxinit.calculate_fan_in_and_fan_out((64, 32, 3, 3))
    (288, 576)
    >>> jaxinit.calculate_fan_in_and_fan_out((3, 3, 32, 64), layout="flax")
    (288, 576)
    """
    dims = weight_shape(shape)
    lay = as_layout(layout)
    if len(dims) - len(lay.batch_axis) < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"
        )
    in_axes, out_axes, receptive, _ = lay.all_axes(len(dims))
    field = math.prod(dims[a] for a in receptive)
    fan_in = math.prod(dims[a] for a in in_axes) * field
    fan_out = math.prod(dims[a] for a in out_axes) * field
    return fan_in, fan_out


_VALID_MODES = ["fan_in", "fan_out"]


def check_mode(mode: Any) -> FanMode:
    """Validates a fan mode with torch's words; returns it lower-cased, as torch."""
    lowered = mode.lower() if isinstance(mode, str) else mode
    if lowered == "fan_in":
        return "fan_in"
    if lowered == "fan_out":
        return "fan_out"
    raise ValueError(f"Mode {lowered} not supported, please use one of {_VALID_MODES}")


def calculate_correct_fan(shape: Any, mode: FanMode, layout: LayoutLike = "torch") -> int:
    """Returns ``fan_in`` or ``fan_out`` of a weight shape, by ``mode``.

    Args:
      shape: the weight shape (or a floating-point weight array).
      mode: ``"fan_in"`` or ``"fan_out"`` (case-insensitive, as torch).
      layout: ``"torch"`` (default), ``"flax"`` or a :class:`Layout`.

    Raises:
      ValueError: for another mode (``Mode fanin not supported, please use one
        of ['fan_in', 'fan_out']``) or fewer than 2 dimensions.

    PyTorch equivalent: ``torch.nn.init._calculate_correct_fan``.

    >>> import jaxinit
    >>> jaxinit.calculate_correct_fan((64, 32, 3, 3), "fan_out")
    576
    """
    checked = check_mode(mode)
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape, layout)
    return fan_in if checked == "fan_in" else fan_out


def torch_order(ndim: int, layout: Layout) -> tuple[int, ...]:
    """The permutation bringing a ``layout`` shape to ``(*batch, *out, *in, *receptive)``."""
    in_axes, out_axes, receptive, batch = layout.all_axes(ndim)
    return batch + out_axes + in_axes + receptive


def canonical_shape(shape: tuple[int, ...], layout: Layout) -> tuple[int, ...]:
    """``shape`` as torch sees each batch entry: ``(batch, out, in, *receptive)``.

    ``batch``, ``out`` and ``in`` are the products of those axes' sizes.
    """
    in_axes, out_axes, receptive, batch = layout.all_axes(len(shape))
    return (
        math.prod(shape[a] for a in batch),
        math.prod(shape[a] for a in out_axes),
        math.prod(shape[a] for a in in_axes),
        *(shape[a] for a in receptive),
    )
