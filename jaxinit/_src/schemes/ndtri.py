"""The standard normal quantile, as ``jax.scipy.special.ndtri`` computes it, with its far tail optional.

``ndtri`` evaluates three rational approximations (Cephes) for every element
and keeps one: the central one for ``exp(-2) < p < 1 - exp(-2)``, and for
``min(p, 1 - p)`` below that, one polynomial in ``1/z`` (``z = sqrt(-2 log
min(p, 1 - p))``) under ``z = 8`` and another above (``min(p, 1 - p) <
exp(-32)``, about 1.3e-14). Where the caller knows that no ``p`` is that far
out, :func:`ndtri` with ``far_tail=False`` skips the third polynomial: the
same operations on the same values, so the same bits, for less work.
``tests/test_schemes_ndtri.py`` checks both against jax's ``ndtri``, bit for
bit.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["FAR_TAIL_LOG_P", "ndtri"]

# log of the probability below which (in min(p, 1 - p)) the far-tail polynomial is used.
FAR_TAIL_LOG_P = -32.0

# The Cephes coefficients jax uses (jax/_src/scipy/special.py, _ndtri).
_P0 = (
    -5.99633501014107895267e1,
    9.80010754185999661536e1,
    -5.66762857469070293439e1,
    1.39312609387279679503e1,
    -1.23916583867381258016e0,
)
_Q0 = (
    1.0,
    1.95448858338141759834e0,
    4.67627912898881538453e0,
    8.63602421390890590575e1,
    -2.25462687854119370527e2,
    2.00260212380060660359e2,
    -8.20372256168333339912e1,
    1.59056225126211695515e1,
    -1.18331621121330003142e0,
)
_P1 = (
    4.05544892305962419923e0,
    3.15251094599893866154e1,
    5.71628192246421288162e1,
    4.40805073893200834700e1,
    1.46849561928858024014e1,
    2.18663306850790267539e0,
    -1.40256079171354495875e-1,
    -3.50424626827848203418e-2,
    -8.57456785154685413611e-4,
)
_Q1 = (
    1.0,
    1.57799883256466749731e1,
    4.53907635128879210584e1,
    4.13172038254672030440e1,
    1.50425385692907503408e1,
    2.50464946208309415979e0,
    -1.42182922854787788574e-1,
    -3.80806407691578277194e-2,
    -9.33259480895457427372e-4,
)
_P2 = (
    3.23774891776946035970e0,
    6.91522889068984211695e0,
    3.93881025292474443415e0,
    1.33303460815807542389e0,
    2.01485389549179081538e-1,
    1.23716634817820021358e-2,
    3.01581553508235416007e-4,
    2.65806974686737550832e-6,
    6.23974539184983293730e-9,
)
_Q2 = (
    1.0,
    6.02427039364742014255e0,
    3.67983563856160859403e0,
    1.37702099489081330271e0,
    2.16236993594496635890e-1,
    1.34204006088543189037e-2,
    3.28014464682127739104e-4,
    2.89247864745380683936e-6,
    6.79019408009981274425e-9,
)


def ndtri(p: jax.Array, *, far_tail: bool = True) -> jax.Array:
    """The standard normal quantile of ``p`` (float32 or float64), as ``jax.scipy.special.ndtri``.

    With ``far_tail=False`` the result is only valid where ``min(p, 1 - p) >
    exp(-32)`` (or ``p`` is 0 or 1); there it is the same, bit for bit, for
    less work.
    """
    dtype = lax.dtype(p).type
    shape = np.shape(p)
    p0, q0, p1, q1 = (np.array(c, dtype=dtype) for c in (_P0, _Q0, _P1, _Q1))
    mcp = jnp.where(p > dtype(-np.expm1(-2.0)), dtype(1.0) - p, p)
    # 0 would give NaNs below; its result is replaced at the end
    s = jnp.where(mcp == dtype(0.0), jnp.full(shape, dtype(0.5)), mcp)
    w = s - dtype(0.5)
    ww = lax.square(w)
    big = w + w * ww * (jnp.polyval(p0, ww) / jnp.polyval(q0, ww))
    big *= -dtype(math.sqrt(2.0 * math.pi))
    z = lax.sqrt(dtype(-2.0) * lax.log(s))
    first = z - lax.log(z) / z
    small = first - jnp.polyval(p1, 1 / z) / jnp.polyval(q1, 1 / z) / z
    if far_tail:
        p2, q2 = np.array(_P2, dtype=dtype), np.array(_Q2, dtype=dtype)
        far = first - jnp.polyval(p2, 1 / z) / jnp.polyval(q2, 1 / z) / z
        small = jnp.where(z >= dtype(8.0), far, small)
    x = jnp.where(s > dtype(np.exp(-2.0)), big, small)
    x = jnp.where(p > dtype(1.0 - np.exp(-2.0)), x, -x)
    infinity = jnp.full(shape, dtype(np.inf))
    return jnp.where(p == dtype(0.0), -infinity, jnp.where(p == dtype(1.0), infinity, x))
