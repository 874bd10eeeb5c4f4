"""Recommended gains for nonlinearities, as ``torch.nn.init.calculate_gain``."""

from __future__ import annotations

import math
from typing import Literal

__all__ = ["calculate_gain", "Nonlinearity"]

Nonlinearity = Literal[
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
_DEFAULT_NEGATIVE_SLOPE = 0.01  # torch.nn.functional.leaky_relu's default


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
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
      param: the negative slope for ``"leaky_relu"`` (default ``0.01``);
        ignored by every other nonlinearity, as in torch.

    Returns:
      The gain, a Python float.

    Raises:
      ValueError: for an unknown nonlinearity (``Unsupported nonlinearity
        ...``) or a ``leaky_relu`` slope that is not a number.

    PyTorch equivalent: ``torch.nn.init.calculate_gain``.

    >>> import jaxinit
    >>> jaxinit.calculate_gain("relu")
    1.4142135623730951
    >>> jaxinit.calculate_gain("leaky_relu", 0.2)
    1.3867504905630728
    """
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = _DEFAULT_NEGATIVE_SLOPE
        elif _is_real_number(param):
            negative_slope = float(param)
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4  # torch's empirical value (pytorch/pytorch#50664)
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _is_real_number(x: object) -> bool:
    import numbers

    import numpy as np

    if isinstance(x, bool | np.bool_):
        return False
    if isinstance(x, numbers.Real):
        return True
    return isinstance(x, np.ndarray) and x.ndim == 0 and np.issubdtype(x.dtype, np.number)
