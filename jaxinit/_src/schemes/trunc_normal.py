"""trunc_normal: the normal truncated to absolute bounds, exact in the far tails."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr
from jax.typing import DTypeLike

from jaxinit._src.core.builders import builder
from jaxinit._src.core.distribution import Distribution, fmt
from jaxinit._src.core.dtypes import sample_dtype
from jaxinit._src.core.family import Family, kernel, param
from jaxinit._src.core.frames import warn
from jaxinit._src.core.hyper import RealLike, concrete, real
from jaxinit._src.core.initializer import Initializer
from jaxinit._src.core.layout import LayoutLike
from jaxinit._src.core.special import trunc_normal_cdf, trunc_normal_moments
from jaxinit._src.schemes.ndtri import FAR_TAIL_LOG_P, ndtri
from jaxinit._src.schemes.sampling import make, open_uniform

__all__ = ["TRUNC_NORMAL", "ndtri_log", "trunc_normal"]


# ----------------------------------------------------------------------------
# trunc_normal: inverse CDF in log space, exact in the far tails

_LOG_2PI = math.log(2.0 * math.pi)
# Below this log-probability, exp() would leave the dtype's normal range (and
# XLA:CPU flushes subnormals to zero): the tail form of the inverse is used.
_TAIL_LOG_P = {np.dtype(np.float32): -80.0, np.dtype(np.float64): -700.0}
# log of the smallest open_uniform value, 2^-24 in float32 and 2^-54 in float64:
# p >= u Phi(beta), so no log p falls below log Phi(beta) + this.
_LOG_U_MIN = {np.dtype(np.float32): -24 * math.log(2.0), np.dtype(np.float64): -54 * math.log(2.0)}
# Room for the rounding of log p (a few ulps of numbers below 1000) in the path choice.
_LOG_P_MARGIN = 1.0


def _log_ndtr_tail(z: jax.Array) -> jax.Array:
    """log Phi(z) for z < -10: the asymptotic series of the Mills ratio (6 terms)."""
    w = 1.0 / (z * z)
    series = 1.0 + w * (-1.0 + w * (3.0 + w * (-15.0 + w * (105.0 + w * (-945.0)))))
    return -0.5 * z * z - jnp.log(-z) - 0.5 * _LOG_2PI + jnp.log(series)


def ndtri_log(log_p: jax.Array) -> jax.Array:
    """The standard normal quantile of ``exp(log_p)``, for any ``log_p <= 0``.

    Where ``exp(log_p)`` is a normal float, ``ndtri(exp(log_p))``. Below
    that (``z`` under about -12.4 in float32, -37 in float64), the tail form:
    start from the leading term of the asymptotic inverse and take Newton
    steps on ``log Phi(z) = log_p``, whose derivative ``phi(z)/Phi(z)`` is
    close to ``-z - 1/z`` there.
    """
    dtype = log_p.dtype
    tail = log_p < _TAIL_LOG_P[np.dtype(dtype)]
    central = ndtri(jnp.exp(jnp.where(tail, -1.0, log_p)))
    t = -2.0 * jnp.where(tail, log_p, -1000.0)
    z = -jnp.sqrt(t - jnp.log(t) - _LOG_2PI)
    for _ in range(3):  # Newton; the start is within 1%, each step squares the error
        z = z - (_log_ndtr_tail(z) - jnp.where(tail, log_p, -1000.0)) / (-z - 1.0 / z)
    return jnp.where(tail, z, central)


@kernel
def _trunc_normal_kernel(key, mean, std, a, b, *, shape, dtype, layout):
    r"""N(mean, std^2) restricted to [a, b], by inverting the normal CDF in log space.

    The standardized interval is reflected to lean left (``alpha + beta <= 0``),
    where ``log Phi`` keeps full relative precision. With ``u`` uniform on
    (0, 1), the quantile of

    .. math:: p = \Phi(\alpha) + u (\Phi(\beta) - \Phi(\alpha))
              = \Phi(\beta) \left(1 - (1 - u)(1 - \Phi(\alpha)/\Phi(\beta))\right)

    is computed from :math:`\log p`, so intervals 30 or 1000 std from the mean,
    where :math:`\Phi` underflows, are sampled exactly too.
    """
    sd = sample_dtype(dtype)
    mean, std, a, b = (jnp.asarray(v, sd) for v in (mean, std, a, b))
    alpha, beta = (a - mean) / std, (b - mean) / std
    flip = alpha + beta > 0  # (nan for (-inf, inf): no flip)
    lo = jnp.where(flip, -beta, alpha)
    hi = jnp.where(flip, -alpha, beta)
    log_lo, log_hi = log_ndtr(lo), log_ndtr(hi)
    u = open_uniform(key, shape, sd)
    log_p = jnp.minimum(log_hi + jnp.log1p((1.0 - u) * jnp.expm1(log_lo - log_hi)), 0.0)
    # The path is chosen once, from the scalars: when no log p can reach the tail (every
    # interval within about 10 std of the mean, in float32), only the central inverse is
    # computed, and when none is below exp(-32) (every float32 draw from an interval that
    # holds the mean: 1 - p is never that small), not even its far-tail polynomial. Each
    # is what ndtri_log computes there, bit for bit.
    floor = jnp.maximum(log_lo, log_hi + _LOG_U_MIN[np.dtype(sd)]) - _LOG_P_MARGIN
    path = jnp.where(
        floor >= FAR_TAIL_LOG_P, 0, jnp.where(floor >= _TAIL_LOG_P[np.dtype(sd)], 1, 2)
    )
    z = jax.lax.switch(
        path,
        (
            lambda lp: ndtri(jnp.exp(lp), far_tail=False),
            lambda lp: ndtri(jnp.exp(lp)),
            ndtri_log,
        ),
        log_p,
    )
    z = jnp.clip(z, lo, hi)
    x = jnp.clip(mean + std * jnp.where(flip, -z, z), a, b)
    return jnp.where(a == b, a, x)


class TruncNormalFamily(Family):
    """:math:`\\mathcal{N}(mean, std^2)` restricted to :math:`[a, b]` (absolute bounds)."""

    def _args(self, d: Distribution) -> tuple[float, float, float, float]:
        return param(d, "mean"), param(d, "std"), param(d, "a"), param(d, "b")

    def mean(self, d: Distribution) -> float:
        return trunc_normal_moments(*self._args(d))[0]

    def std(self, d: Distribution) -> float:
        return trunc_normal_moments(*self._args(d))[1]

    def support(self, d: Distribution) -> tuple[float, float]:
        return param(d, "a"), param(d, "b")

    def cdf(self, d: Distribution, x: np.ndarray) -> np.ndarray:
        mean, std, a, b = self._args(d)
        if a == b:
            return (x >= a).astype(np.float64)
        return trunc_normal_cdf(x, mean, std, a, b)

    def format(self, d: Distribution) -> str:
        p = d.params
        return (
            f"TruncN(mean={fmt(p['mean'])}, std={fmt(p['std'])}, a={fmt(p['a'])}, b={fmt(p['b'])})"
        )


TRUNC_NORMAL = TruncNormalFamily(
    "trunc_normal",
    _trunc_normal_kernel,
    ("mean", "std", "a", "b"),
    dtypes="real",
    elementwise=True,
    torch_kernel="normal_kernel_cpu",
)

_TRUNC_WARN_STDS = 2.0  # torch warns when the mean is more than 2 std outside [a, b]


@builder
def trunc_normal(
    mean: RealLike = 0.0,
    std: RealLike = 1.0,
    a: RealLike = -2.0,
    b: RealLike = 2.0,
    *,
    layout: LayoutLike | None = None,
    dtype: DTypeLike | None = None,
) -> Initializer:
    r"""Fills with :math:`\mathcal{N}(\text{mean}, \text{std}^2)` truncated to :math:`[a, b]`.

    The bounds are **absolute** values, as in torch: ``trunc_normal(std=0.02)``
    cuts at :math:`\pm 2`, i.e. :math:`\pm 100` std, so nothing is cut. This
    differs from ``jax.nn.initializers.truncated_normal``, whose bounds are in
    units of std. Sampling inverts the normal CDF in log space, so intervals
    far in a tail (``a=0.5, b=1`` with ``std=0.02``: 25 to 50 std) are exact
    in every dtype, where an ``erf`` or linear-probability inverse returns the
    bound.

    Args:
      mean: the mean of the untruncated normal.
      std: its standard deviation (``> 0``).
      a: the lower bound (absolute; may be ``-inf``).
      b: the upper bound (absolute, ``>= a``; may be ``inf``: ``a=0,
        b=inf`` is a half-normal). ``a == b`` gives the constant ``a``, as torch.
      layout: accepted for uniformity; it does not affect this scheme.
      dtype: the default dtype of the result (real only, as torch).

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      ValueError: if ``std <= 0`` or ``a > b``.

    Warns:
      UserWarning: torch's "mean is more than 2 std from [a, b]" (the values
        are still exact here).

    PyTorch equivalent: ``torch.nn.init.trunc_normal_(w, mean, std, a, b)``.

    >>> import jax, jaxinit
    >>> x = jaxinit.trunc_normal(std=1.0, a=-0.5, b=0.5)(jax.random.key(0), (1000,))
    >>> bool(x.min() >= -0.5), bool(x.max() <= 0.5)
    (True, True)
    """
    mean = real("trunc_normal", "mean", mean)
    std = real("trunc_normal", "std", std)
    a = real("trunc_normal", "a", a, finite=False)
    b = real("trunc_normal", "b", b, finite=False)
    if concrete(std) and std <= 0:
        raise ValueError(f"trunc_normal: std must be > 0, got {std}")
    if concrete(a, b) and a > b:
        raise ValueError(
            f"uniform_ expects to return a [from, to) range, but found from={a} > to={b} "
            f"(trunc_normal: a must be <= b)"
        )
    if concrete(mean, std, a, b) and (
        mean < a - _TRUNC_WARN_STDS * std or mean > b + _TRUNC_WARN_STDS * std
    ):
        warn(
            "mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
            "The distribution of values may be incorrect."
        )
    return make(
        "trunc_normal",
        {"mean": mean, "std": std, "a": a, "b": b},
        TRUNC_NORMAL,
        lambda shape, lay, dt: (mean, std, a, b),
        layout=layout,
        dtype=dtype,
    )
