"""``Distribution``: what an initializer draws for a given shape, as a small value."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias

import numpy as np

from jaxinit._src.core.layout import Layout

__all__ = ["Distribution"]

FamilyName: TypeAlias = Literal[
    "uniform",
    "uniform_sum",
    "normal",
    "trunc_normal",
    "constant",
    "eye",
    "dirac",
    "orthogonal",
    "sparse",
]

_IID = ("uniform", "uniform_sum", "normal", "trunc_normal", "constant")
_LOG_2PI = math.log(2 * math.pi)


@dataclasses.dataclass(frozen=True)
class Distribution:
    """What an initializer draws for one shape: a family and its parameters.

    Returned by :meth:`jaxinit.Initializer.distribution`. The iid families
    (every entry independent, identically distributed) have a ``cdf``:

    | family           | parameters                      | entries                                                        |
    |------------------|---------------------------------|----------------------------------------------------------------|
    | ``uniform``      | ``low``, ``high``               | :math:`\\mathcal{U}[low, high)`                                |
    | ``uniform_sum``  | ``low``, ``high``, ``terms``    | a sum of ``terms`` independent :math:`\\mathcal{U}[low, high)` |
    | ``normal``       | ``mean``, ``std``               | :math:`\\mathcal{N}(mean, std^2)`                              |
    | ``trunc_normal`` | ``mean``, ``std``, ``a``, ``b`` | :math:`\\mathcal{N}(mean, std^2)` restricted to :math:`[a, b]` |
    | ``constant``     | ``value``                       | ``value``                                                      |

    ``torch_embedding(padding_idx=...)`` is ``normal`` with a ``zero_row``
    parameter (that row of the torch view is 0), so not iid; its ``mean``
    and ``std`` are those of the other rows.

    The structured families describe a whole array: ``eye``, ``dirac``
    (``groups``), ``orthogonal`` (``gain``, ``rows``, ``cols``: every batch
    entry's ``rows x cols`` torch view is ``gain`` times a Haar-random
    (semi-)orthogonal matrix) and ``sparse`` (``std``, ``zeros``: every
    column of the torch view has exactly ``zeros`` zero entries, the others
    :math:`\\mathcal{N}(0, std^2)`).

    Attributes:
      family: the family's name.
      params: its parameters (Python numbers, or tracers for traced hyperparameters).
      shape: the shape it was computed for.
      layout: the layout the shape was read in.

    >>> import jaxinit
    >>> d = jaxinit.kaiming_uniform(a=5 ** 0.5).distribution((64, 256))
    >>> d
    U(-0.0625, 0.0625)
    >>> round(d.std, 6)
    0.036084
    """

    family: FamilyName
    params: Mapping[str, Any]
    shape: tuple[int, ...] = ()
    layout: Layout | None = None

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("params", {})
        if name in params:
            return params[name]
        prop = getattr(type(self), name, None)
        if isinstance(prop, property) and prop.fget is not None:
            return prop.fget(self)  # a property that raised AttributeError: say its reason
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    @property
    def is_iid(self) -> bool:
        """Whether the entries are independent and identically distributed."""
        if self.family == "uniform_sum":
            return np.ndim(self.params["terms"]) == 0
        return self.family in _IID and "zero_row" not in self.params

    @property
    def is_random(self) -> bool:
        """Whether the entries are random (not a fixed array)."""
        return self.family not in ("constant", "eye", "dirac") and not (
            self.family in ("uniform", "uniform_sum") and self.params["low"] == self.params["high"]
        )

    @property
    def mean(self) -> float:
        """The mean of one entry (of the non-zero entries for ``sparse``)."""
        p = self.params
        if self.family in ("uniform", "uniform_sum"):
            terms = np.mean(p.get("terms", 1))
            return float(terms * (p["low"] + p["high"]) / 2)
        if self.family == "normal":
            return float(p["mean"])
        if self.family == "trunc_normal":
            return _trunc_normal_moments(p["mean"], p["std"], p["a"], p["b"])[0]
        if self.family == "constant":
            return float(p["value"])
        if self.family in ("orthogonal", "sparse"):
            return 0.0
        raise AttributeError(f"a {self.family} array has no entry mean; see .params")

    @property
    def std(self) -> float:
        """The standard deviation of one entry (of the non-zero entries for ``sparse``).

        For ``orthogonal``, ``gain / sqrt(max(rows, cols))``: the rms of an
        entry of a Haar-random (semi-)orthogonal matrix.
        """
        p = self.params
        if self.family in ("uniform", "uniform_sum"):
            terms = np.mean(p.get("terms", 1))
            return float(math.sqrt(terms / 12.0) * (p["high"] - p["low"]))
        if self.family in ("normal", "sparse"):
            return float(p["std"])
        if self.family == "trunc_normal":
            return _trunc_normal_moments(p["mean"], p["std"], p["a"], p["b"])[1]
        if self.family == "constant":
            return 0.0
        if self.family == "orthogonal":
            return float(abs(p["gain"]) / math.sqrt(max(p["rows"], p["cols"])))
        raise AttributeError(f"a {self.family} array has no entry std; see .params")

    @property
    def support(self) -> tuple[float, float]:
        """The smallest interval holding every entry."""
        p = self.params
        if self.family == "uniform":
            return float(p["low"]), float(p["high"])
        if self.family == "uniform_sum":
            terms = np.max(p["terms"])
            return float(terms * p["low"]), float(terms * p["high"])
        if self.family == "trunc_normal":
            return float(p["a"]), float(p["b"])
        if self.family == "constant":
            return float(p["value"]), float(p["value"])
        if self.family in ("eye", "dirac"):
            return 0.0, 1.0
        if self.family == "orthogonal":
            return -abs(float(p["gain"])), abs(float(p["gain"]))
        return -math.inf, math.inf

    def cdf(self, x: Any) -> np.ndarray:
        """The CDF of one entry at ``x`` (iid families only), in float64.

        Raises:
          TypeError: for the structured families, whose entries are not iid.
        """
        if not self.is_iid:
            raise TypeError(f"a {self.family} array is not iid: it has no per-entry cdf")
        x = np.asarray(x, np.float64)
        p = self.params
        if self.family == "constant":
            return (x >= float(p["value"])).astype(np.float64)
        if self.family in ("uniform", "uniform_sum"):
            low, high = float(p["low"]), float(p["high"])
            terms = int(p.get("terms", 1))
            if high == low:
                return (x >= terms * low).astype(np.float64)
            return _irwin_hall_cdf((x - terms * low) / (high - low), terms)
        if self.family == "normal":
            if float(p["std"]) == 0:
                return (x >= float(p["mean"])).astype(np.float64)
            return _ndtr((x - float(p["mean"])) / float(p["std"]))
        mean, std, a, b = (float(p[k]) for k in ("mean", "std", "a", "b"))
        if a == b:
            return (x >= a).astype(np.float64)
        return _trunc_normal_cdf(x, mean, std, a, b)

    def __repr__(self) -> str:
        p = self.params
        f = _fmt
        if self.family == "uniform":
            return f"U({f(p['low'])}, {f(p['high'])})"
        if self.family == "uniform_sum":
            terms = p["terms"]
            if np.ndim(terms) == 0:
                return " + ".join([f"U({f(p['low'])}, {f(p['high'])})"] * int(terms))
            return f"sum of {tuple(np.unique(terms))} U({f(p['low'])}, {f(p['high'])}) by entry"
        if self.family == "normal":
            zero_row = f", row {p['zero_row']} zero" if "zero_row" in p else ""
            return f"N(mean={f(p['mean'])}, std={f(p['std'])}){zero_row}"
        if self.family == "trunc_normal":
            return f"TruncN(mean={f(p['mean'])}, std={f(p['std'])}, a={f(p['a'])}, b={f(p['b'])})"
        if self.family == "constant":
            return f"const({f(p['value'])})"
        if self.family == "eye":
            return "eye"
        if self.family == "dirac":
            return f"dirac(groups={p['groups']})"
        if self.family == "orthogonal":
            return f"orthogonal(gain={f(p['gain'])}, {p['rows']}x{p['cols']})"
        return f"sparse({p['zeros']} zeros per column, std={f(p['std'])})"


def _fmt(x: Any) -> str:
    if isinstance(x, np.ndarray | np.generic) and x.ndim == 0:  # a value converted to a dtype
        x = x.item() if isinstance(x.item(), bool | int | float | complex) else float(x)
    if isinstance(x, complex):
        return f"{x:.6g}"
    if isinstance(x, float | int | np.number):
        return f"{float(x):.6g}"
    return repr(x)


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


def _ndtr(x: np.ndarray) -> np.ndarray:
    return 0.5 * np.asarray(_ERFC(-np.asarray(x, np.float64) / math.sqrt(2.0)), np.float64)


def _log_ndtr(x: np.ndarray) -> np.ndarray:
    """``_log_ndtr_scalar`` on an array."""
    x = np.asarray(x, np.float64)
    out = np.empty_like(x)
    central = x > -20.0
    with np.errstate(divide="ignore"):
        out[central] = np.log(_ndtr(x[central]))
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


def _trunc_normal_moments(mean: float, std: float, a: float, b: float) -> tuple[float, float]:
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


def _trunc_normal_cdf(x: np.ndarray, mean: float, std: float, a: float, b: float) -> np.ndarray:
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


def _irwin_hall_cdf(t: np.ndarray, n: int) -> np.ndarray:
    """CDF of a sum of ``n`` independent U(0, 1) at ``t``."""
    t = np.clip(t, 0.0, float(n))
    total = np.zeros_like(t)
    for k in range(n + 1):
        total += (-1) ** k * math.comb(n, k) * np.where(t > k, (t - k) ** n, 0.0)
    return np.clip(total / math.factorial(n), 0.0, 1.0)
