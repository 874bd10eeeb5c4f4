"""Recommended gains for nonlinearities, as ``torch.nn.init.calculate_gain``."""

from __future__ import annotations

import math
from typing import Any, Literal, TypeAlias

import jax.numpy as jnp

from jaxinit._src.core.hyper import RealLike, is_traced, real

__all__ = ["Nonlinearity", "calculate_gain", "check_nonlinearity"]

Nonlinearity: TypeAlias = Literal[
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
]

_LINEAR = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
)
_KNOWN = (*_LINEAR, "tanh", "relu", "leaky_relu", "selu")
_DEFAULT_NEGATIVE_SLOPE = 0.01  # torch.nn.functional.leaky_relu's default
_SELU_GAIN = 3.0 / 4  # torch's empirical value (pytorch/pytorch#50664)


def check_nonlinearity(nonlinearity: Any) -> Nonlinearity:
    """Validates a nonlinearity name with torch's words."""
    if not isinstance(nonlinearity, str) or nonlinearity not in _KNOWN:
        raise ValueError(f"Unsupported nonlinearity {nonlinearity}")
    return nonlinearity  # type: ignore[return-value]


def calculate_gain(nonlinearity: Nonlinearity, param: RealLike | None = None) -> Any:
    r"""Returns the recommended gain for a nonlinearity, as torch does.

    ================= ==================================================
    nonlinearity      gain
    ================= ==================================================
    linear, conv*d,   :math:`1`
    conv_transpose*d,
    sigmoid
    tanh              :math:`5/3`
    relu              :math:`\sqrt{2}`
    leaky_relu        :math:`\sqrt{2 / (1 + \text{negative\_slope}^2)}`
    selu              :math:`3/4`
    ================= ==================================================

    Args:
      nonlinearity: the name of the nonlinearity (``torch.nn.functional``
        names).
      param: the negative slope for ``"leaky_relu"`` (default ``0.01``): any
        real number (Python, numpy or jax scalar); ignored by every other
        nonlinearity, as in torch.

    Returns:
      The gain, a Python float (a jax scalar if ``param`` is traced, as
      inside ``jit``/``vmap``).

    Raises:
      ValueError: for an unknown nonlinearity (``Unsupported nonlinearity
        ...``) or a ``leaky_relu`` slope that is not a number
        (``negative_slope ... not a valid number``).

    PyTorch equivalent: ``torch.nn.init.calculate_gain``.

    >>> import jaxinit
    >>> jaxinit.calculate_gain("relu")
    1.4142135623730951
    >>> jaxinit.calculate_gain("leaky_relu", 0.2)
    1.3867504905630728
    """
    nonlinearity = check_nonlinearity(nonlinearity)
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "selu":
        return _SELU_GAIN
    if param is None:
        slope: Any = _DEFAULT_NEGATIVE_SLOPE
    else:
        try:
            slope = real("calculate_gain", "param", param, finite=False)
        except (TypeError, ValueError):
            raise ValueError(f"negative_slope {param} not a valid number") from None
    if is_traced(slope):
        return jnp.sqrt(2.0 / (1 + slope**2))
    return math.sqrt(2.0 / (1 + slope**2))
