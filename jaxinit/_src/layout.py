"""Weight layouts (which axis is input, which is output) and fan computation."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Literal

__all__ = [
    "FLAX",
    "TORCH",
    "Layout",
    "LayoutLike",
    "calculate_correct_fan",
    "calculate_fan_in_and_fan_out",
]

Axes = int | tuple[int, ...]


def _is_int(x: object) -> bool:
    import numpy as np

    return isinstance(x, int | np.integer) and not isinstance(x, bool)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Names the input and output axes of a weight; all others are receptive field.

    Like the ``in_axis``/``out_axis`` arguments of
    ``jax.nn.initializers.variance_scaling``, each may be an int or a sequence
    of ints (negative values count from the end). With several axes, their sizes
    multiply: a ``DenseGeneral`` kernel of shape ``(heads, head_dim, features)``
    has ``Layout(in_axis=(0, 1), out_axis=2)``.

    Attributes:
      in_axis: the input axis or axes.
      out_axis: the output axis or axes.

    >>> import jaxinit
    >>> jaxinit.TORCH
    Layout(in_axis=1, out_axis=0)
    >>> jaxinit.FLAX
    Layout(in_axis=-2, out_axis=-1)
    """

    in_axis: Axes
    out_axis: Axes

    def __post_init__(self) -> None:
        for name in ("in_axis", "out_axis"):
            value = getattr(self, name)
            if isinstance(value, Sequence) and not isinstance(value, str):
                axes = tuple(value)
            else:
                axes = (value,)
            if not axes or not all(_is_int(a) for a in axes):
                raise TypeError(
                    f"Layout: {name} must be an int or a non-empty sequence of ints, got {value!r}"
                )
            axes = tuple(int(a) for a in axes)
            object.__setattr__(self, name, axes[0] if len(axes) == 1 and _is_int(value) else axes)

    def axes(self, ndim: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """Returns ``(in_axes, out_axes, receptive_axes)`` normalized for ``ndim``.

        Raises:
          ValueError: if an axis is out of range or named twice.
        """
        in_axes = _normalize(self.in_axis, ndim, "in_axis", self)
        out_axes = _normalize(self.out_axis, ndim, "out_axis", self)
        if set(in_axes) & set(out_axes):
            raise ValueError(f"{self}: in_axis and out_axis overlap for a {ndim}-D shape")
        named = set(in_axes) | set(out_axes)
        receptive = tuple(a for a in range(ndim) if a not in named)
        return in_axes, out_axes, receptive


TORCH = Layout(in_axis=1, out_axis=0)
"""PyTorch (and Equinox) weights: ``(out, in/groups, *kernel)``."""

FLAX = Layout(in_axis=-2, out_axis=-1)
"""Flax, Haiku and Keras kernels: ``(*kernel, in, out)``."""

LayoutLike = Layout | Literal["torch", "flax"]


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


def shape_of(shape_or_array: object) -> tuple[int, ...]:
    """Returns a shape tuple from a shape or from anything with ``.shape``."""
    shape = getattr(shape_or_array, "shape", shape_or_array)
    if _is_int(shape):
        shape = (shape,)
    try:
        dims: tuple[Any, ...] = tuple(shape)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"shape must be a sequence of ints, got {shape_or_array!r}") from None
    if not all(_is_int(d) for d in dims):
        raise TypeError(f"shape must be a sequence of ints, got {shape_or_array!r}")
    dims = tuple(int(d) for d in dims)
    if any(d < 0 for d in dims):
        raise ValueError(f"shape must have non-negative dimensions, got {dims}")
    return dims


def calculate_fan_in_and_fan_out(
    shape: Sequence[int], layout: LayoutLike = "torch"
) -> tuple[int, int]:
    r"""Returns ``(fan_in, fan_out)`` of a weight shape, as torch computes them.

    .. math::
       \text{fan\_in} = \prod_{a \in \text{in}} s_a \cdot r, \qquad
       \text{fan\_out} = \prod_{a \in \text{out}} s_a \cdot r,

    where :math:`r` is the product of the receptive-field axes (all others).
    In the torch layout this is ``fan_in = shape[1] * prod(shape[2:])`` and
    ``fan_out = shape[0] * prod(shape[2:])``; in the flax layout
    ``fan_in = shape[-2] * prod(shape[:-2])``, ``fan_out = shape[-1] * prod(shape[:-2])``.

    Args:
      shape: the weight shape (or an array, whose ``.shape`` is used).
      layout: ``"torch"`` (default), ``"flax"`` or a :class:`Layout`.

    Returns:
      ``(fan_in, fan_out)`` as Python ints.

    Raises:
      ValueError: for fewer than 2 dimensions, as torch.

    PyTorch equivalent: ``torch.nn.init._calculate_fan_in_and_fan_out``.

    >>> import jaxinit
    >>> jaxinit.calculate_fan_in_and_fan_out((64, 32, 3, 3))
    (288, 576)
    >>> jaxinit.calculate_fan_in_and_fan_out((3, 3, 32, 64), layout="flax")
    (288, 576)
    """
    dims = shape_of(shape)
    if len(dims) < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"
        )
    in_axes, out_axes, receptive = as_layout(layout).axes(len(dims))
    field = math.prod(dims[a] for a in receptive)
    fan_in = math.prod(dims[a] for a in in_axes) * field
    fan_out = math.prod(dims[a] for a in out_axes) * field
    return fan_in, fan_out


FanMode = Literal["fan_in", "fan_out"]
_VALID_MODES = ["fan_in", "fan_out"]


def check_mode(mode: str) -> str:
    """Validates a fan mode with torch's words; returns it lower-cased, as torch."""
    if not isinstance(mode, str):
        raise ValueError(f"Mode {mode} not supported, please use one of {_VALID_MODES}")
    mode = mode.lower()
    if mode not in _VALID_MODES:
        raise ValueError(f"Mode {mode} not supported, please use one of {_VALID_MODES}")
    return mode


def calculate_correct_fan(shape: Sequence[int], mode: str, layout: LayoutLike = "torch") -> int:
    """Returns ``fan_in`` or ``fan_out`` of a weight shape, by ``mode``.

    Args:
      shape: the weight shape (or an array).
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
    mode = check_mode(mode)
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape, layout)
    return fan_in if mode == "fan_in" else fan_out


def torch_order(
    ndim: int, layout: Layout
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """The permutation that brings a ``layout`` shape to torch order ``(*out, *in, *rest)``.

    Returns ``(perm, out_axes, in_axes)``; ``x.transpose(perm)`` is torch-ordered.
    """
    in_axes, out_axes, receptive = layout.axes(ndim)
    return out_axes + in_axes + receptive, out_axes, in_axes
