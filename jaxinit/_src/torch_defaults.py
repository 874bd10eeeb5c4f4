"""PyTorch's default layer initializations, as builders.

What ``reset_parameters`` does in torch 2.x, one builder per case:

========================  ==============================================  =======================
torch module              torch's init                                    builder
========================  ==============================================  =======================
Linear, Conv{1,2,3}d      weight ``kaiming_uniform_(a=sqrt(5))``,         :func:`torch_linear_weight`,
                          i.e. U(±1/sqrt(fan_in)); bias U(±1/sqrt(fan_in)) :func:`torch_linear_bias`
                          with ``fan_in`` of the **weight**
ConvTranspose{1,2,3}d     the same, but torch reads ``fan_in`` from        :func:`torch_conv_transpose_weight`
                          weight dim 1: ``out/groups * prod(k)``
Embedding                 N(0, 1)                                         :func:`torch_embedding`
LayerNorm, GroupNorm,     weight 1, bias 0; running mean 0, var 1         :func:`~jaxinit.ones`, :func:`~jaxinit.zeros`
BatchNorm, RMSNorm
RNN, LSTM, GRU (+cells)   every parameter U(±1/sqrt(hidden_size))         :func:`torch_rnn`
MultiheadAttention        ``xavier_uniform_`` on the packed (3E, E)       :func:`torch_mha_in_proj`
                          in-projection; in/out biases 0; ``out_proj``
                          weight as Linear
========================  ==============================================  =======================
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from jaxinit._src.core import Initializer, builder
from jaxinit._src.gain import calculate_gain
from jaxinit._src.layout import FLAX, Layout, LayoutLike
from jaxinit._src.schemes import kaiming_uniform, normal, uniform, xavier_uniform_packed

__all__ = [
    "torch_conv_transpose_weight",
    "torch_embedding",
    "torch_linear_bias",
    "torch_linear_weight",
    "torch_mha_in_proj",
    "torch_rnn",
]

LINEAR_A = math.sqrt(5)  # the leaky_relu slope torch's Linear/ConvNd reset_parameters uses


def linear_bound(fan_in: int) -> float:
    """torch's Linear/Conv bound, ``1/sqrt(fan_in)`` (0 for ``fan_in == 0``, as torch)."""
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def linear_weight_bound(fan_in: int) -> float:
    """The bound of ``kaiming_uniform_(a=sqrt(5))`` for ``fan_in``, in torch's arithmetic."""
    gain = calculate_gain("leaky_relu", LINEAR_A)
    return math.sqrt(3.0) * gain / math.sqrt(fan_in)


@builder
def torch_linear_weight(*, layout: LayoutLike | None = None, dtype: Any = None) -> Initializer:
    """torch's default ``nn.Linear``/``nn.ConvNd`` weight: ``kaiming_uniform(a=sqrt(5))``.

    That is :math:`\\mathcal{U}(\\pm 1/\\sqrt{\\text{fan\\_in}})`, with
    ``fan_in = in/groups * prod(kernel)``. Use it as ``kernel_init``
    (``jaxinit.flax.torch_linear_weight()`` for Flax kernels).

    >>> import jax, jaxinit
    >>> w = jaxinit.torch_linear_weight()(jax.random.key(0), (64, 100))
    >>> bool(abs(w).max() <= 0.1)
    True
    """
    return kaiming_uniform(a=LINEAR_A, layout=layout, dtype=dtype)


@builder
def torch_linear_bias(
    fan_in: int, *, layout: LayoutLike | None = None, dtype: Any = None
) -> Initializer:
    """torch's default ``nn.Linear``/``nn.ConvNd`` bias: :math:`\\mathcal{U}(\\pm 1/\\sqrt{\\text{fan\\_in}})`.

    Args:
      fan_in: the **weight's** fan-in (``in_features``, or ``in/groups *
        prod(kernel)`` for a conv). The tree rules find it by themselves.

    >>> import jax, jaxinit
    >>> b = jaxinit.torch_linear_bias(100)(jax.random.key(0), (64,))
    >>> bool(abs(b).max() <= 0.1)
    True
    """
    if isinstance(fan_in, bool) or not isinstance(fan_in, int) or fan_in < 0:
        raise ValueError(f"torch_linear_bias: fan_in must be a non-negative int, got {fan_in!r}")
    bound = linear_bound(fan_in)
    return uniform(-bound, bound, layout=layout, dtype=dtype)


# torch's ConvTranspose weight is (in, out/groups, *k) and torch reads fan_in
# from dim 1: in a flax (*k, in, out) kernel that is the last axis.
CONV_TRANSPOSE_FLAX = Layout(in_axis=-1, out_axis=-2)


@builder
def torch_conv_transpose_weight(
    *, layout: LayoutLike | None = None, dtype: Any = None
) -> Initializer:
    """torch's default ``nn.ConvTransposeNd`` weight, with torch's fan quirk.

    torch applies ``kaiming_uniform_(a=sqrt(5))`` to the ``(in, out/groups,
    *k)`` weight, so its "fan_in" is ``out/groups * prod(k)``. In the torch
    layout this builder reads the stored torch weight that way; in the flax
    layout (``jaxinit.flax.torch_conv_transpose_weight()``, or this builder
    inside ``jaxinit.flax.reinit``) it reads a flax ``(*k, in, out)``
    ConvTranspose kernel as ``Layout(in_axis=-1, out_axis=-2)``. An explicit
    ``layout=`` is used as given. Pair it with ``torch_linear_bias(out/groups
    * prod(k))``.
    """
    init = kaiming_uniform(a=LINEAR_A, layout=layout, dtype=dtype)
    return dataclasses.replace(init, _layout_map=((FLAX, CONV_TRANSPOSE_FLAX),))


@builder
def torch_embedding(*, layout: LayoutLike | None = None, dtype: Any = None) -> Initializer:
    """torch's default ``nn.Embedding`` weight: :math:`\\mathcal{N}(0, 1)`."""
    return normal(0.0, 1.0, layout=layout, dtype=dtype)


@builder
def torch_rnn(
    hidden_size: int, *, layout: LayoutLike | None = None, dtype: Any = None
) -> Initializer:
    """torch's default for every RNN/LSTM/GRU parameter: :math:`\\mathcal{U}(\\pm 1/\\sqrt{H})`.

    Args:
      hidden_size: ``H``, the number of hidden features.
    """
    if isinstance(hidden_size, bool) or not isinstance(hidden_size, int) or hidden_size < 1:
        raise ValueError(f"torch_rnn: hidden_size must be a positive int, got {hidden_size!r}")
    bound = 1.0 / math.sqrt(hidden_size)
    return uniform(-bound, bound, layout=layout, dtype=dtype)


@builder
def torch_mha_in_proj(
    num_packed: int = 3, *, layout: LayoutLike | None = None, dtype: Any = None
) -> Initializer:
    r"""torch ``nn.MultiheadAttention``'s in-projection: ``xavier_uniform_`` on the packed weight.

    torch packs the query, key and value projections into one ``(3E, E)``
    weight, so each projection is :math:`\mathcal{U}(\pm b)`,
    :math:`b = \sqrt{6 / (\text{fan\_in} + 3\,\text{fan\_out})}`, with the fans
    of one projection. ``num_packed=1`` is plain ``xavier_uniform`` (torch's
    case when ``kdim``/``vdim`` differ from ``embed_dim``).

    Args:
      num_packed: how many projections share the packed weight.
      layout: which axes are in/out of one projection's weight; a Flax
        attention kernel ``(in, heads, head_dim)`` is ``Layout(0, (1, 2))``.
    """
    if isinstance(num_packed, bool) or not isinstance(num_packed, int) or num_packed < 1:
        raise ValueError(
            f"torch_mha_in_proj: num_packed must be a positive int, got {num_packed!r}"
        )

    return xavier_uniform_packed(
        "torch_mha_in_proj", {"num_packed": num_packed}, 1.0, num_packed, layout, dtype
    )
