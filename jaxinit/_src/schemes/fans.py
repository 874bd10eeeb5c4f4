"""The fan-scaled schemes: xavier (Glorot) and kaiming (He), uniform and normal."""

from __future__ import annotations

import math
from typing import Any

from jax.typing import DTypeLike

from jaxinit._src.core.builders import builder
from jaxinit._src.core.gain import Nonlinearity, calculate_gain, check_nonlinearity
from jaxinit._src.core.hyper import RealLike, concrete, real
from jaxinit._src.core.initializer import Initializer
from jaxinit._src.core.layout import (
    FanMode,
    Layout,
    LayoutLike,
    calculate_fan_in_and_fan_out,
    check_mode,
)
from jaxinit._src.schemes.iid import normal_std, symmetric_uniform
from jaxinit._src.schemes.sampling import needs_fans

__all__ = [
    "kaiming_normal",
    "kaiming_std",
    "kaiming_uniform",
    "xavier_normal",
    "xavier_std",
    "xavier_uniform",
]


# ----------------------------------------------------------------------------
# xavier (Glorot)


def xavier_std(gain: Any, shape: tuple[int, ...], layout: Layout, packed: Any = 1) -> Any:
    """torch's xavier std; ``packed`` projections share one weight (fan_out times ``packed``)."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape, layout)
    return gain * math.sqrt(2.0 / float(fan_in + packed * fan_out))


def _gain(name: str, gain: Any) -> Any:
    gain = real(name, "gain", gain)
    if concrete(gain) and gain < 0:
        raise ValueError(f"{name}: gain must be >= 0, got {gain}")
    return gain


@builder
def xavier_uniform(
    gain: RealLike = 1.0, *, layout: LayoutLike | None = None, dtype: DTypeLike | None = None
) -> Initializer:
    r"""Glorot uniform: :math:`\mathcal{U}[-b, b)`, :math:`b = \text{gain}\sqrt{6/(\text{fan\_in}+\text{fan\_out})}`.

    Args:
      gain: a scaling factor (``>= 0``).
      layout: which axes are in/out (default: torch's ``(out, in, *k)``;
        inside a Flax layer, the layer's).
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      ValueError: for a negative gain or a shape with fewer than 2 dimensions.

    PyTorch equivalent: ``torch.nn.init.xavier_uniform_(w, gain)``.
    ``jax.nn.initializers.glorot_uniform`` is the same with ``gain=1`` but
    reads the fans in the flax layout.

    >>> import jax, jaxinit
    >>> w = jaxinit.xavier_uniform()(jax.random.key(0), (64, 32))
    >>> bool(abs(w).max() <= (6 / 96) ** 0.5)
    True
    """
    gain = _gain("xavier_uniform", gain)
    return symmetric_uniform(
        "xavier_uniform",
        {"gain": gain},
        lambda shape, lay: math.sqrt(3.0) * xavier_std(gain, shape, lay),
        layout=layout,
        dtype=dtype,
        check=needs_fans("xavier_uniform"),
    )


@builder
def xavier_normal(
    gain: RealLike = 1.0, *, layout: LayoutLike | None = None, dtype: DTypeLike | None = None
) -> Initializer:
    r"""Glorot normal: :math:`\mathcal{N}(0, \sigma^2)`, :math:`\sigma = \text{gain}\sqrt{2/(\text{fan\_in}+\text{fan\_out})}`.

    **Untruncated**, as torch (``jax.nn.initializers.glorot_normal`` is truncated).

    Args:
      gain: a scaling factor (``>= 0``).
      layout: which axes are in/out (default: torch's ``(out, in, *k)``;
        inside a Flax layer, the layer's).
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      ValueError: for a negative gain or a shape with fewer than 2 dimensions.

    PyTorch equivalent: ``torch.nn.init.xavier_normal_(w, gain)``.

    >>> import jax, jaxinit
    >>> jaxinit.xavier_normal()(jax.random.key(0), (64, 32)).shape
    (64, 32)
    """
    gain = _gain("xavier_normal", gain)
    return normal_std(
        "xavier_normal",
        {"gain": gain},
        lambda shape, lay: xavier_std(gain, shape, lay),
        layout=layout,
        dtype=dtype,
        check=needs_fans("xavier_normal"),
    )


# ----------------------------------------------------------------------------
# kaiming (He)


def kaiming_std(gain: Any, mode: FanMode, shape: tuple[int, ...], layout: Layout) -> Any:
    """torch's kaiming std, ``gain / sqrt(fan)`` (0 for an empty fan: nothing is drawn)."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape, layout)
    fan = fan_in if mode == "fan_in" else fan_out
    return gain / math.sqrt(fan) if fan > 0 else 0.0


def _kaiming_args(name: str, a: Any, mode: Any, nonlinearity: Any) -> tuple[Any, FanMode, Any]:
    a = real(name, "a", a, finite=False)  # torch: a = inf gives gain 0, zeros
    checked_mode = check_mode(mode)
    nonlinearity = check_nonlinearity(nonlinearity)
    return a, checked_mode, calculate_gain(nonlinearity, a)


@builder
def kaiming_uniform(
    a: RealLike = 0.0,
    mode: FanMode = "fan_in",
    nonlinearity: Nonlinearity = "leaky_relu",
    *,
    layout: LayoutLike | None = None,
    dtype: DTypeLike | None = None,
) -> Initializer:
    r"""He uniform: :math:`\mathcal{U}[-b, b)`, :math:`b = \text{gain}\sqrt{3/\text{fan\_mode}}`.

    ``gain = calculate_gain(nonlinearity, a)``; with torch's defaults
    (``a=0``, ``"leaky_relu"``) it is :math:`\sqrt 2`.

    Args:
      a: the negative slope of the rectifier after this layer (``leaky_relu``).
      mode: ``"fan_in"`` (preserves forward variance) or ``"fan_out"``
        (backward); case-insensitive.
      nonlinearity: the nonlinearity's name, as for :func:`calculate_gain`.
      layout: which axes are in/out (default: torch's ``(out, in, *k)``;
        inside a Flax layer, the layer's).
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      ValueError: for an unknown mode (``Mode fanin not supported, please use
        one of ['fan_in', 'fan_out']``) or nonlinearity, or a 1-D shape.

    PyTorch equivalent: ``torch.nn.init.kaiming_uniform_(w, a, mode, nonlinearity)``.
    ``kaiming_uniform(a=math.sqrt(5))`` is torch's ``nn.Linear``/``ConvNd``
    default weight init (:func:`torch_linear_weight`).

    >>> import jax, jaxinit
    >>> jaxinit.kaiming_uniform(mode="fan_out")(jax.random.key(0), (64, 32, 3, 3)).shape
    (64, 32, 3, 3)
    """
    a, mode, gain = _kaiming_args("kaiming_uniform", a, mode, nonlinearity)
    return symmetric_uniform(
        "kaiming_uniform",
        {"a": a, "mode": mode, "nonlinearity": nonlinearity},
        lambda shape, lay: math.sqrt(3.0) * kaiming_std(gain, mode, shape, lay),
        layout=layout,
        dtype=dtype,
        check=needs_fans("kaiming_uniform"),
    )


@builder
def kaiming_normal(
    a: RealLike = 0.0,
    mode: FanMode = "fan_in",
    nonlinearity: Nonlinearity = "leaky_relu",
    *,
    layout: LayoutLike | None = None,
    dtype: DTypeLike | None = None,
) -> Initializer:
    r"""He normal: :math:`\mathcal{N}(0, \sigma^2)`, :math:`\sigma = \text{gain}/\sqrt{\text{fan\_mode}}`.

    **Untruncated**, as torch (``jax.nn.initializers.he_normal`` is truncated).

    Args:
      a: the negative slope of the rectifier after this layer (``leaky_relu``).
      mode: ``"fan_in"`` or ``"fan_out"``; case-insensitive.
      nonlinearity: the nonlinearity's name, as for :func:`calculate_gain`.
      layout: which axes are in/out (default: torch's ``(out, in, *k)``;
        inside a Flax layer, the layer's).
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      ValueError: for an unknown mode or nonlinearity, or a 1-D shape.

    PyTorch equivalent: ``torch.nn.init.kaiming_normal_(w, a, mode, nonlinearity)``.

    >>> import jax, jaxinit
    >>> init = jaxinit.kaiming_normal(mode="fan_out", nonlinearity="relu")
    >>> init(jax.random.key(0), (64, 32, 3, 3)).shape
    (64, 32, 3, 3)
    """
    a, mode, gain = _kaiming_args("kaiming_normal", a, mode, nonlinearity)
    return normal_std(
        "kaiming_normal",
        {"a": a, "mode": mode, "nonlinearity": nonlinearity},
        lambda shape, lay: kaiming_std(gain, mode, shape, lay),
        layout=layout,
        dtype=dtype,
        check=needs_fans("kaiming_normal"),
    )
