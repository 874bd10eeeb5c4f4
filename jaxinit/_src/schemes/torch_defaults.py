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
Embedding                 N(0, 1), the ``padding_idx`` row 0              :func:`torch_embedding`
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
from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxinit._src.core.builders import builder
from jaxinit._src.core.distribution import Distribution, fmt
from jaxinit._src.core.dtypes import sample_dtype
from jaxinit._src.core.family import Checks, Family, kernel, param
from jaxinit._src.core.hyper import IntLike, concrete, integer, plain
from jaxinit._src.core.initializer import Initializer
from jaxinit._src.core.layout import FLAX, Layout, LayoutLike
from jaxinit._src.core.special import irwin_hall_cdf
from jaxinit._src.schemes.fans import kaiming_uniform, xavier_std
from jaxinit._src.schemes.iid import (
    normal,
    padded_normal,
    symmetric_uniform,
    uniform,
    uniform_bounds,
)
from jaxinit._src.schemes.sampling import make, needs_fans, uniform_bits

__all__ = [
    "torch_conv_transpose_weight",
    "torch_embedding",
    "torch_linear_bias",
    "torch_linear_weight",
    "torch_mha_in_proj",
    "torch_rnn",
]

LINEAR_A = math.sqrt(5)  # the leaky_relu slope torch's Linear/ConvNd reset_parameters uses

# torch's ConvTranspose weight is (in, out/groups, *k) and torch reads fan_in
# from dim 1: in a flax (*k, in, out) kernel that is the last axis.
CONV_TRANSPOSE_FLAX = Layout(in_axis=-1, out_axis=-2)
# An embedding table is (num_embeddings, features) in torch and in Flax: torch
# reads fan_in from dim 1 (features), fan_out from dim 0.
EMBEDDING = Layout(in_axis=-1, out_axis=-2)


def linear_bound(fan_in: Any) -> Any:
    """torch's Linear/Conv bias bound, ``1/sqrt(fan_in)`` (0 for ``fan_in == 0``, as torch)."""
    if not concrete(fan_in):
        return jnp.where(fan_in > 0, 1.0 / jnp.sqrt(jnp.maximum(fan_in, 1)), 0.0)
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


@builder
def torch_linear_weight(
    *, layout: LayoutLike | None = None, dtype: DTypeLike | None = None
) -> Initializer:
    r"""torch's default ``nn.Linear``/``nn.ConvNd`` weight: ``kaiming_uniform(a=sqrt(5))``.

    That is :math:`\mathcal{U}[\pm 1/\sqrt{\text{fan\_in}})`, with
    ``fan_in = in/groups * prod(kernel)``. Use it as ``kernel_init``.

    Args:
      layout: which axes are in/out (default: torch's ``(out, in, *k)``;
        inside a Flax layer, the layer's).
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    >>> import jax, jaxinit
    >>> w = jaxinit.torch_linear_weight()(jax.random.key(0), (64, 100))
    >>> bool(abs(w).max() <= 0.1)
    True
    """
    return dataclasses.replace(
        kaiming_uniform(a=LINEAR_A, layout=layout, dtype=dtype),
        name="torch_linear_weight",
        hyperparams={},
    )


@builder(example=("100", (64,)))
def torch_linear_bias(
    fan_in: IntLike, *, layout: LayoutLike | None = None, dtype: DTypeLike | None = None
) -> Initializer:
    r"""torch's default ``nn.Linear``/``nn.ConvNd`` bias: :math:`\mathcal{U}[\pm 1/\sqrt{\text{fan\_in}})`.

    Args:
      fan_in: the **weight's** fan-in (``in_features``, or ``in/groups *
        prod(kernel)`` for a conv; any integer type). ``0`` gives zeros, as
        torch. The tree rules find it by themselves.
      layout: accepted for uniformity; it does not affect this scheme.
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      TypeError: if ``fan_in`` is not an integer.
      ValueError: if ``fan_in < 0``.

    >>> import jax, numpy as np, jaxinit
    >>> b = jaxinit.torch_linear_bias(np.prod((4, 5, 5)))(jax.random.key(0), (64,))
    >>> bool(abs(b).max() <= 0.1)
    True
    """
    fan_in = integer("torch_linear_bias", "fan_in", fan_in, minimum=0)
    bound = linear_bound(fan_in)
    return dataclasses.replace(
        uniform(-bound, bound, layout=layout, dtype=dtype),
        name="torch_linear_bias",
        hyperparams={"fan_in": fan_in},
    )


@builder
def torch_conv_transpose_weight(
    *, layout: LayoutLike | None = None, dtype: DTypeLike | None = None
) -> Initializer:
    """torch's default ``nn.ConvTransposeNd`` weight, with torch's fan quirk.

    torch applies ``kaiming_uniform_(a=sqrt(5))`` to the ``(in, out/groups,
    *k)`` weight, so its "fan_in" is ``out/groups * prod(k)``. In the torch
    layout this builder reads the stored torch weight that way; given the flax
    layout (``jaxinit.flax.torch_conv_transpose_weight()``, a ``ConvTranspose``
    layer, the tree tools) it reads a flax ``(*k, in, out)`` ConvTranspose
    kernel as ``Layout(in_axis=-1, out_axis=-2)``. An explicit ``layout=`` is
    used as given. Pair it with ``torch_linear_bias(out/groups * prod(k))``.

    Args:
      layout: which axes are in/out (default: torch's ``(in, out/groups, *k)``
        read as torch reads it).
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    >>> import jax, jaxinit
    >>> w = jaxinit.torch_conv_transpose_weight()(jax.random.key(0), (16, 4, 3, 3))
    >>> bool(abs(w).max() <= 1 / (4 * 9) ** 0.5)
    True
    """
    return dataclasses.replace(
        kaiming_uniform(a=LINEAR_A, layout=layout, dtype=dtype),
        name="torch_conv_transpose_weight",
        hyperparams={},
        layout_map=((FLAX, CONV_TRANSPOSE_FLAX),),
    )


# ----------------------------------------------------------------------------
# Embedding


@builder(example=("", (10, 4)))
def torch_embedding(
    padding_idx: IntLike | None = None,
    *,
    layout: LayoutLike | None = None,
    dtype: DTypeLike | None = None,
) -> Initializer:
    r"""torch's default ``nn.Embedding`` weight: :math:`\mathcal{N}(0, 1)`, the ``padding_idx`` row 0.

    The table is ``(num_embeddings, features)`` in torch and in Flax alike;
    the row is an index on the layout's out axis (axis 0 of a torch table, and
    of a Flax ``Embed`` table, whose layout the Flax variant and the tree tools
    use).

    Args:
      padding_idx: as ``nn.Embedding(padding_idx=...)``: this row (negative
        counts from the end) is zeroed. ``None``: no row is.
      layout: which axis indexes the rows (default: torch's: axis 0).
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      ValueError: at call time, if ``padding_idx`` is outside the table
        (torch: ``Padding_idx must be within num_embeddings``).

    >>> import jax, jaxinit
    >>> table = jaxinit.torch_embedding(padding_idx=0)(jax.random.key(0), (10, 4))
    >>> table[0].tolist()
    [0.0, 0.0, 0.0, 0.0]
    """
    if padding_idx is None:
        return dataclasses.replace(
            normal(0.0, 1.0, layout=layout, dtype=dtype), name="torch_embedding", hyperparams={}
        )
    return padded_normal("torch_embedding", {}, 0.0, 1.0, padding_idx, layout=layout, dtype=dtype)


# ----------------------------------------------------------------------------
# Recurrent layers


@kernel
def _uniform_sum_kernel(key, low, high, terms, *, shape, dtype, layout):
    """The sum of ``terms`` (1 or 2, per block of the last axis) independent U[low, high)."""
    u = uniform_bits(key, (2, *shape), sample_dtype(dtype), low, high)
    blocks = terms.shape[0] if terms.ndim else 1
    per_entry = jnp.repeat(terms, shape[-1] // blocks) if terms.ndim else terms
    return u[0] + jnp.where(per_entry >= 2, u[1], jnp.zeros((), u.dtype))


class UniformSumFamily(Family):
    """A sum of ``terms`` independent U[low, high) per entry (``terms`` per block of the last axis)."""

    def describe(
        self,
        values: tuple[Any, ...],
        shape: tuple[int, ...],
        layout: Layout | None,
        dtype: np.dtype | None,
    ) -> Distribution:
        low, high, terms = values
        terms = tuple(int(t) for t in terms) if np.ndim(terms) else int(terms)
        return Distribution(self, {"low": low, "high": high, "terms": terms}, shape, layout, dtype)

    def is_iid(self, d: Distribution) -> bool:
        return isinstance(d.params["terms"], int)

    def is_random(self, d: Distribution) -> bool:
        return bool(d.params["low"] != d.params["high"])

    def _terms(self, d: Distribution) -> np.ndarray:
        return np.asarray(d.params["terms"], np.float64)

    def mean(self, d: Distribution) -> float:
        return float(np.mean(self._terms(d)) * (param(d, "low") + param(d, "high")) / 2)

    def std(self, d: Distribution) -> float:
        spread = param(d, "high") - param(d, "low")
        return float(math.sqrt(np.mean(self._terms(d)) / 12.0) * spread)

    def support(self, d: Distribution) -> tuple[float, float]:
        terms = float(np.max(self._terms(d)))
        return terms * param(d, "low"), terms * param(d, "high")

    def cdf(self, d: Distribution, x: np.ndarray) -> np.ndarray:
        low, high, terms = param(d, "low"), param(d, "high"), int(d.params["terms"])
        if high == low:
            return (x >= terms * low).astype(np.float64)
        return irwin_hall_cdf((x - terms * low) / (high - low), terms)

    def moments(self, d: Distribution, centered: np.ndarray) -> tuple[float, float]:
        # A sum of t U(-1/2, 1/2) has cumulants t/12, t(-1/120), t/252 (orders 2, 4, 6), so
        # kappa = 3 - 6/(5t) and eta = 15 - 18/t + (1728/252)/t^2; t = 1 is the uniform.
        t = float(d.params["terms"])
        return 3.0 - 1.2 / t, 15.0 - 18.0 / t + (1728.0 / 252.0) / (t * t)

    def check(self, x: np.ndarray, d: Distribution, checks: Checks) -> list[str]:
        terms = d.params["terms"]
        if isinstance(terms, int):
            return checks.iid(x, d)
        found = []
        for b, (block, t) in enumerate(zip(np.split(x, len(terms), axis=-1), terms)):
            part = dataclasses.replace(d, params={**d.params, "terms": t}, shape=block.shape)
            alpha = checks.alpha / len(terms)
            found += [f"block {b} ({part!r}): {f}" for f in checks.iid(block, part, alpha)]
        return found

    def format(self, d: Distribution) -> str:
        one = f"U({fmt(d.params['low'])}, {fmt(d.params['high'])})"
        terms = d.params["terms"]
        if isinstance(terms, int):
            return " + ".join([one] * terms)
        return f"sum of {terms} {one} by block of the last axis"


UNIFORM_SUM = UniformSumFamily(
    "uniform_sum",
    _uniform_sum_kernel,
    ("low", "high", "terms"),
    dtypes="real",
    torch_kernel="check_uniform_bounds",
)


@builder(example=("64", (256,)))
def torch_rnn(
    hidden_size: IntLike,
    terms: IntLike | Sequence[IntLike] = 1,
    *,
    layout: LayoutLike | None = None,
    dtype: DTypeLike | None = None,
) -> Initializer:
    r"""torch's default for every RNN/LSTM/GRU parameter: :math:`\mathcal{U}[\pm 1/\sqrt{H})`.

    A Flax recurrent cell often keeps one bias where torch's cell has two
    that are added (``b_ih + b_hh`` before an LSTM gate): the torch model's
    function then starts with their **sum**, a triangular distribution on
    :math:`\pm 2/\sqrt{H}`. ``terms=2`` draws that sum.

    Args:
      hidden_size: ``H``, the number of hidden features (any integer type).
      terms: how many independent :math:`\mathcal{U}[\pm 1/\sqrt{H})` each entry
        sums: 1 (a torch parameter) or 2 (a Flax bias standing for two torch
        biases). A sequence splits the last axis into that many equal blocks
        (gates), each with its own count: NNX's ``GRUCell`` input bias
        ``(r, z, n)`` is ``terms=(2, 2, 1)``.
      layout: accepted for uniformity; it does not affect this scheme.
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      ValueError: for ``hidden_size < 1`` or terms other than 1 and 2; at call
        time, if the last axis does not split into the blocks of ``terms``.

    >>> import jax, jaxinit
    >>> w = jaxinit.torch_rnn(64)(jax.random.key(0), (256, 64))
    >>> bool(abs(w).max() <= 0.125)
    True
    >>> jaxinit.torch_rnn(64, terms=2).distribution((256,))
    U(-0.125, 0.125) + U(-0.125, 0.125)
    """
    hidden_size = integer("torch_rnn", "hidden_size", hidden_size, minimum=1)
    bound = linear_bound(hidden_size)
    counts = tuple(terms) if isinstance(terms, Sequence) else (terms,)
    counts = tuple(integer("torch_rnn", "terms", t, minimum=1) for t in counts)
    if not counts or any(t > 2 for t in counts):
        raise ValueError(f"torch_rnn: terms must be 1 or 2 (per block), got {terms!r}")
    if counts == (1,):
        return dataclasses.replace(
            uniform(-bound, bound, layout=layout, dtype=dtype),
            name="torch_rnn",
            hyperparams={"hidden_size": hidden_size},
        )
    per_block = isinstance(terms, Sequence)

    def params(shape: tuple[int, ...], lay: Layout, dt: np.dtype) -> tuple[Any, ...]:
        if per_block and (not shape or shape[-1] % len(counts)):
            raise ValueError(
                f"torch_rnn: terms={tuple(counts)} splits the last axis into {len(counts)} "
                f"equal blocks, but the shape is {shape}"
            )
        low, high = uniform_bounds(-bound, bound, dt)
        return low, high, np.asarray(counts if per_block else counts[0], np.int32)

    return make(
        "torch_rnn",
        {"hidden_size": hidden_size, "terms": plain(terms)},
        UNIFORM_SUM,
        params,
        layout=layout,
        dtype=dtype,
    )


# ----------------------------------------------------------------------------
# MultiheadAttention


@builder
def torch_mha_in_proj(
    num_packed: IntLike = 3, *, layout: LayoutLike | None = None, dtype: DTypeLike | None = None
) -> Initializer:
    r"""torch ``nn.MultiheadAttention``'s in-projection: ``xavier_uniform_`` on the packed weight.

    torch packs the query, key and value projections into one ``(3E, E)``
    weight, so each projection is :math:`\mathcal{U}[\pm b)`,
    :math:`b = \sqrt{6 / (\text{fan\_in} + 3\,\text{fan\_out})}`, with the fans
    of one projection. ``num_packed=1`` is plain ``xavier_uniform`` (torch's
    case when ``kdim``/``vdim`` differ from ``embed_dim``).

    Args:
      num_packed: how many projections share the packed weight (any integer type).
      layout: which axes are in/out of one projection's weight; a Flax
        attention kernel ``(in, heads, head_dim)`` is ``Layout(0, (1, 2))``.
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    >>> import jax, jaxinit
    >>> w = jaxinit.torch_mha_in_proj()(jax.random.key(0), (64, 64))
    >>> bool(abs(w).max() <= (6 / (64 + 3 * 64)) ** 0.5)
    True
    """
    num_packed = integer("torch_mha_in_proj", "num_packed", num_packed, minimum=1)
    return symmetric_uniform(
        "torch_mha_in_proj",
        {"num_packed": num_packed},
        lambda shape, lay: math.sqrt(3.0) * xavier_std(1.0, shape, lay, num_packed),
        layout=layout,
        dtype=dtype,
        check=needs_fans("torch_mha_in_proj"),
    )
