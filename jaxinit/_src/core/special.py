"""Distribution functions in float64 with no scipy: the normal (accurate in the far
tails), the truncated normal's moments and CDF, and the Irwin-Hall CDF."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["irwin_hall_cdf", "ndtr", "trunc_normal_cdf", "trunc_normal_moments"]

_LOG_2PI = math.log(2 * math.pi)


# ----------------------------------------------------------------------------
# The standard normal in float64, accurate in the far tails (no scipy)


def _log_ndtr_scalar(x: float) -> float:
    """log Phi(x), accurate for every x (asymptotic series below -20)."""
    if x > -20.0:
        return math.log(0.5 * math.erfc(-x / math.sqrt(2.0)))
    # Phi(x) = phi(x) / |x| * (1 - 1/x^2 + 3/x^4 - 15/x^6 + ...)
    z2 = x * x
    series, term = 1.0, 1.0
    for k in range(1, 8):
        term *= -(2 * k - 1) / z2
        series += term
    return -z2 / 2 - math.log(-x) - _LOG_2PI / 2 + math.log(series)


_ERFC = np.frompyfunc(math.erfc, 1, 1)  # numpy has no erfc; this is math.erfc per entry


def ndtr(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.asarray(_ERFC(-np.asarray(x, np.float64) / math.sqrt(2.0)), np.float64)


def _log_ndtr(x: np.ndarray) -> np.ndarray:
    """``_log_ndtr_scalar`` on an array."""
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    central = x > -20.0
    with np.errstate(divide="ignore"):
        out[central] = np.log(ndtr(x[central]))
    tail = x[~central]
    z2 = tail * tail
    series, term = np.ones_like(tail), np.ones_like(tail)
    for k in range(1, 8):
        term = term * (-(2 * k - 1) / z2)
        series = series + term
    out[~central] = -z2 / 2 - np.log(-tail) - _LOG_2PI / 2 + np.log(series)
    return out


def _log_diff(log_hi: float, log_lo: float) -> float:
    """log(exp(log_hi) - exp(log_lo)) for log_lo <= log_hi."""
    if log_lo == -math.inf:
        return log_hi
    return log_hi + math.log(-math.expm1(log_lo - log_hi))


def _standardized(mean: float, std: float, a: float, b: float) -> tuple[float, float, float]:
    """(alpha, beta, sign): standardized bounds reflected to lean left (sign -1 if flipped)."""
    alpha, beta = (a - mean) / std, (b - mean) / std
    if alpha + beta > 0:
        return -beta, -alpha, -1.0
    return alpha, beta, 1.0


def trunc_normal_moments(mean: float, std: float, a: float, b: float) -> tuple[float, float]:
    mean, std, a, b = float(mean), float(std), float(a), float(b)
    if a == b:
        return a, 0.0
    alpha, beta, sign = _standardized(mean, std, a, b)
    log_z = _log_diff(_log_ndtr_scalar(beta), _log_ndtr_scalar(alpha))

    def log_phi(x: float) -> float:
        return -x * x / 2 - _LOG_2PI / 2

    def ratio(x: float) -> float:  # phi(x) / Z, and x phi(x) / Z (0 at infinity)
        return 0.0 if math.isinf(x) else math.exp(log_phi(x) - log_z)

    pa, pb = ratio(alpha), ratio(beta)
    m = pa - pb
    xa = 0.0 if math.isinf(alpha) else alpha * pa
    xb = 0.0 if math.isinf(beta) else beta * pb
    var = max(1.0 + xa - xb - m * m, 0.0)
    return mean + sign * std * m, std * math.sqrt(var)


def trunc_normal_cdf(x: np.ndarray, mean: float, std: float, a: float, b: float) -> np.ndarray:
    alpha, beta, sign = _standardized(mean, std, a, b)
    z = np.clip(sign * (x - mean) / std, alpha, beta)
    log_lo = _log_ndtr_scalar(alpha) if not math.isinf(alpha) else -math.inf
    log_z = _log_diff(_log_ndtr_scalar(beta), log_lo)
    log_zs = _log_ndtr(z)
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) where z is at the lower bound
        log_mass = (
            log_zs
            if log_lo == -math.inf
            else np.where(
                log_zs > log_lo,
                log_zs + np.log(-np.expm1(np.minimum(log_lo - log_zs, 0.0))),
                -np.inf,
            )
        )
    mass = np.exp(log_mass - log_z)
    out = mass if sign > 0 else 1.0 - mass
    return np.clip(np.where(x < a, 0.0, np.where(x >= b, 1.0, out)), 0.0, 1.0)


def irwin_hall_cdf(t: np.ndarray, n: int) -> np.ndarray:
    """CDF of a sum of ``n`` independent U(0, 1) at ``t``."""
    t = np.clip(t, 0.0, float(n))
    total = np.zeros_like(t)
    for k in range(n + 1):
        total += (-1) ** k * math.comb(n, k) * np.where(t > k, (t - k) ** n, 0.0)
    return np.clip(total / math.factorial(n), 0.0, 1.0)
