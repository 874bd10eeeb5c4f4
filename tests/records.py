"""The scheme table that drives the tests, and the statistics helpers.

One :class:`Scheme` row per torch.nn.init scheme: the jaxinit builder, its
flax-layout variant, the torch function, hyperparameters, valid ranks and
dtypes, and the *stated* math (expected mean, std, bounds, kurtosis) taken
from torch's own formulas (``torch.nn.init._calculate_fan_in_and_fan_out``,
``calculate_gain``), never from jaxinit. A new scheme is one row.

Statistical tests are two-sample Kolmogorov-Smirnov against real torch samples
(``scipy.stats.ks_2samp``, reject at ``p < KS_ALPHA``) plus moment checks with
tolerances derived from the sample size. Seeds are fixed, so every run draws
the same numbers and a passing test always passes; the stated odds are those of
a correct implementation failing for an unlucky choice of seed.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
import torch
import torch.nn.init as tinit

import jaxinit
import jaxinit.flax

# A correct implementation fails one KS test with probability KS_ALPHA (for a
# given seed); with ~200 KS tests in the suite, the odds that a fresh choice of
# seeds would show one false failure are about 1 - (1 - 1e-3)**200 ~ 18%, and
# with the fixed seeds below they pass deterministically.
KS_ALPHA = 1e-3
# Moment tolerances are this many standard errors: a correct implementation
# exceeds one with probability ~6e-7 (two-sided normal tail at 5 sigma).
N_SE = 5.0
# Every KS test pools draws until it has at least this many values per side.
MIN_SAMPLES = 20_000

JAX_DTYPES = {
    "float32": jnp.float32,
    "bfloat16": jnp.bfloat16,
    "float16": jnp.float16,
    "float64": jnp.float64,
    "complex64": jnp.complex64,
    "complex128": jnp.complex128,
}
TORCH_DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float64": torch.float64,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
}
REAL_DTYPES = ("float32", "bfloat16", "float16", "float64")


# ----------------------------------------------------------------------------
# Layout moves


def flax_shape(torch_shape: tuple[int, ...]) -> tuple[int, ...]:
    """``(out, in, *k)`` -> ``(*k, in, out)``."""
    out, inp, *k = torch_shape
    return (*k, inp, out)


def torch_to_flax(w: np.ndarray) -> np.ndarray:
    """Moves a torch-layout array ``(out, in, *k)`` to the flax layout ``(*k, in, out)``."""
    n = w.ndim
    return np.transpose(w, (*range(2, n), 1, 0))


def flax_to_torch(w: np.ndarray) -> np.ndarray:
    """Moves a flax-layout array ``(*k, in, out)`` to the torch layout ``(out, in, *k)``."""
    n = w.ndim
    return np.transpose(w, (n - 1, n - 2, *range(n - 2)))


def layout_shape(torch_shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    return torch_shape if layout == "torch" else flax_shape(torch_shape)


def to_torch_layout(w: np.ndarray, layout: str) -> np.ndarray:
    return w if layout == "torch" else flax_to_torch(w)


# ----------------------------------------------------------------------------
# The stated math (from torch's formulas)


def torch_fans(torch_shape: tuple[int, ...]) -> tuple[int, int]:
    return tinit._calculate_fan_in_and_fan_out(torch.empty(torch_shape))


@dataclasses.dataclass(frozen=True)
class Moments:
    """What a scheme's entries should look like on a given torch shape."""

    mean: float
    std: float
    kurtosis: float  # E[(x - mean)^4] / std^4 (3 for a normal, 1.8 for a uniform)
    low: float | None = None  # exact support, where bounded
    high: float | None = None
    # Whether the density is bounded away from 0 at low/high (uniform), so that
    # 20k draws come within 0.1% of the width of both ends.
    reach: bool = False

    def samples_needed(self) -> int:
        """Values needed for N_SE standard errors of the std to be <= 2.5% of it.

        ``N_SE * std * sqrt((kurtosis - 1) / (4 n)) <= 0.025 * std``
        iff ``n >= (N_SE / 0.025)**2 * (kurtosis - 1) / 4 = 10_000 (kurtosis - 1)``.
        """
        return max(MIN_SAMPLES, math.ceil(1.01 * 10_000 * (self.kurtosis - 1.0)))


def _uniform_moments(low: float, high: float) -> Moments:
    return Moments((low + high) / 2, (high - low) / math.sqrt(12), 1.8, low, high, reach=True)


def _trunc_moments(mean: float, std: float, a: float, b: float) -> Moments:
    dist = scipy.stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
    m, v, _, excess = (float(x) for x in dist.stats(moments="mvsk"))
    return Moments(m, math.sqrt(v), excess + 3.0, a, b)


def _kaiming_std(shape, a=0.0, mode="fan_in", nonlinearity="leaky_relu") -> float:
    fan = tinit._calculate_correct_fan(torch.empty(shape), mode)
    return tinit.calculate_gain(nonlinearity, a) / math.sqrt(fan)


def _xavier_std(shape, gain=1.0) -> float:
    fan_in, fan_out = torch_fans(shape)
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


def _orthogonal_moments(shape, gain=1.0) -> Moments:
    # Rows (wide) or columns (tall) of the rows x cols view are orthonormal and
    # Haar distributed, so every entry has mean 0 and E[x^2] = gain^2 / max(rows, cols).
    rows = shape[0]
    cols = math.prod(shape) // rows
    # A coordinate of a uniform unit vector in d dims has kurtosis 3d / (d + 2) < 3.
    d = max(rows, cols)
    return Moments(0.0, gain / math.sqrt(d), 3.0 * d / (d + 2))


# ----------------------------------------------------------------------------
# The table


@dataclasses.dataclass(frozen=True)
class Scheme:
    """One torch.nn.init scheme and how to test it.

    ``build``/``flax_build`` take ``kwargs`` (torch's names); ``torch_fn`` is
    the torch in-place function called as ``torch_fn(w, **kwargs)``.
    """

    name: str
    build: Callable[..., jaxinit.Initializer]
    flax_build: Callable[..., jaxinit.Initializer]
    torch_fn: Callable[..., torch.Tensor]
    kwargs: dict[str, Any]
    ranks: tuple[int, ...]
    random: bool = True
    complex_ok: bool = True
    # Stated math, from torch's formulas: torch shape -> Moments (random schemes).
    moments: Callable[[tuple[int, ...]], Moments] | None = None
    # Kinds of structure tested elsewhere: "orthogonal", "sparse", "eye", "dirac".
    kind: str = "iid"

    @property
    def id(self) -> str:
        args = ",".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.kwargs.items()
        )
        return f"{self.name}({args})"

    @property
    def dtypes(self) -> tuple[str, ...]:
        return REAL_DTYPES + (("complex64",) if self.complex_ok else ())

    def make(self, layout: str = "torch", **override: Any) -> jaxinit.Initializer:
        """The initializer for ``layout``: ``jaxinit.X`` or ``jaxinit.flax.X``."""
        kwargs = {**self.kwargs, **override}
        if layout == "torch":
            return self.build(**kwargs)
        return self.flax_build(**kwargs)

    def with_kwargs(self, **kwargs: Any) -> Scheme:
        return dataclasses.replace(self, kwargs={**self.kwargs, **kwargs})

    def torch_sample(self, torch_shape, seed: int | None, dtype: str = "float32") -> np.ndarray:
        """torch's ``X_`` on a fresh torch-shaped tensor, as a numpy array.

        ``seed=None`` continues torch's global generator (for consecutive draws).
        """
        if seed is not None:
            torch.manual_seed(seed)
        w = torch.empty(torch_shape, dtype=TORCH_DTYPES[dtype])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # trunc_normal_'s far-tail warning
            self.torch_fn(w, **self.kwargs)
        if dtype == "bfloat16":
            w = w.float()
        return w.numpy()


def _row(name: str, kwargs: dict[str, Any], ranks=(2, 3, 4, 5), **extra: Any) -> Scheme:
    return Scheme(
        name=name,
        build=getattr(jaxinit, name),
        flax_build=getattr(jaxinit.flax, name),
        torch_fn=getattr(tinit, f"{name}_"),
        kwargs=kwargs,
        ranks=ranks,
        **extra,
    )


def uniform(a=0.0, b=1.0) -> Scheme:
    return _row(
        "uniform",
        {"a": a, "b": b},
        ranks=(0, 1, 2, 3, 4, 5),
        moments=lambda s: _uniform_moments(a, b),
    )


def normal(mean=0.0, std=1.0) -> Scheme:
    return _row(
        "normal",
        {"mean": mean, "std": std},
        ranks=(0, 1, 2, 3, 4, 5),
        moments=lambda s: Moments(mean, std, 3.0),
    )


def trunc_normal(mean=0.0, std=1.0, a=-2.0, b=2.0) -> Scheme:
    return _row(
        "trunc_normal",
        {"mean": mean, "std": std, "a": a, "b": b},
        ranks=(0, 1, 2, 3, 4, 5),
        complex_ok=False,
        moments=lambda s: _trunc_moments(mean, std, a, b),
    )


def xavier_uniform(gain=1.0) -> Scheme:
    def moments(s):
        bound = math.sqrt(3.0) * _xavier_std(s, gain)
        return _uniform_moments(-bound, bound)

    return _row("xavier_uniform", {"gain": gain}, moments=moments)


def xavier_normal(gain=1.0) -> Scheme:
    return _row(
        "xavier_normal", {"gain": gain}, moments=lambda s: Moments(0.0, _xavier_std(s, gain), 3.0)
    )


def kaiming_uniform(a=0.0, mode="fan_in", nonlinearity="leaky_relu") -> Scheme:
    def moments(s):
        bound = math.sqrt(3.0) * _kaiming_std(s, a, mode, nonlinearity)
        return _uniform_moments(-bound, bound)

    return _row(
        "kaiming_uniform", {"a": a, "mode": mode, "nonlinearity": nonlinearity}, moments=moments
    )


def kaiming_normal(a=0.0, mode="fan_in", nonlinearity="leaky_relu") -> Scheme:
    return _row(
        "kaiming_normal",
        {"a": a, "mode": mode, "nonlinearity": nonlinearity},
        moments=lambda s: Moments(0.0, _kaiming_std(s, a, mode, nonlinearity), 3.0),
    )


def orthogonal(gain=1.0) -> Scheme:
    return _row(
        "orthogonal",
        {"gain": gain},
        complex_ok=False,
        kind="orthogonal",
        moments=lambda s: _orthogonal_moments(s, gain),
    )


def sparse(sparsity=0.3, std=0.01) -> Scheme:
    # Moments of the non-zero entries.
    return _row(
        "sparse",
        {"sparsity": sparsity, "std": std},
        ranks=(2,),
        kind="sparse",
        moments=lambda s: Moments(0.0, std, 3.0),
    )


def constant(val=0.1) -> Scheme:
    return _row("constant", {"val": val}, ranks=(0, 1, 2, 3, 4, 5), random=False)


def ones() -> Scheme:
    return _row("ones", {}, ranks=(0, 1, 2, 3, 4, 5), random=False)


def zeros() -> Scheme:
    return _row("zeros", {}, ranks=(0, 1, 2, 3, 4, 5), random=False)


def eye() -> Scheme:
    return _row("eye", {}, ranks=(2,), random=False, kind="eye")


def dirac(groups=1) -> Scheme:
    return _row("dirac", {"groups": groups}, ranks=(3, 4, 5), random=False, kind="dirac")


# Every random scheme, with torch's defaults (uniform/normal moved off theirs
# so a wrong mean or scale would show).
RANDOM = (
    uniform(-0.5, 1.5),
    normal(0.5, 2.0),
    trunc_normal(),
    xavier_uniform(),
    xavier_normal(),
    kaiming_uniform(),
    kaiming_normal(),
    orthogonal(),
    sparse(0.3),
)
DETERMINISTIC = (constant(1 / 3), ones(), zeros(), eye(), dirac(), dirac(groups=2))
ALL = RANDOM + DETERMINISTIC

# Torch-layout shapes (out, in, *k): 2-D to 5-D, square and not.
SHAPES = ((64, 32), (20, 300), (48, 16, 5), (32, 16, 3, 3), (8, 6, 2, 3, 3))


def example_shape(scheme: Scheme) -> tuple[int, ...]:
    """A torch-layout shape the scheme accepts, divisible by a (4, 2) mesh."""
    if scheme.kind == "dirac":
        return (8, 4, 3, 3)
    if 4 in scheme.ranks:
        return (8, 4, 3, 3)
    return (8, 6)


# ----------------------------------------------------------------------------
# Sampling and statistics


def n_draws(shape: tuple[int, ...], minimum: int = MIN_SAMPLES) -> int:
    return max(1, -(-minimum // max(1, math.prod(shape))))


def jax_draws(
    init: jaxinit.Initializer, shape, n: int, seed: int = 0, dtype=jnp.float32
) -> np.ndarray:
    """``n`` independent draws (one key each), stacked."""
    keys = jax.random.split(jax.random.key(seed), n)
    return np.stack([np.asarray(init(k, shape, dtype)) for k in keys])


def torch_draws(
    scheme: Scheme, torch_shape, n: int, seed: int = 0, dtype: str = "float32"
) -> np.ndarray:
    """``n`` consecutive torch draws after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return np.stack([scheme.torch_sample(torch_shape, None, dtype) for _ in range(n)])


def std_se(std: float, kurtosis: float, n: int) -> float:
    """Standard error of the sample std of ``n`` iid values (delta method).

    ``Var(s^2) ~ std^4 (kurtosis - 1) / n`` and ``s ~ sqrt(s^2)``, so
    ``se(s) ~ std * sqrt((kurtosis - 1) / (4 n))``.
    """
    return std * math.sqrt((kurtosis - 1.0) / (4.0 * n))


def assert_ks(a: np.ndarray, b: np.ndarray, what: str = "") -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    assert a.size >= MIN_SAMPLES // 2 and b.size >= MIN_SAMPLES // 2, (a.size, b.size)
    p = scipy.stats.ks_2samp(a, b).pvalue
    assert p > KS_ALPHA, f"{what}: KS p={p:.2e} (n={a.size}, {b.size})"
    return p


def assert_moments(x: np.ndarray, m: Moments, what: str = "") -> None:
    """Mean and std within N_SE standard errors; tight enough to see a 5% std error."""
    x = np.asarray(x, np.float64).ravel()
    n = x.size
    se = std_se(m.std, m.kurtosis, n)
    # The tolerance is at most 2.5% of std, so an implementation whose std is
    # 5% off lands >= 2.5% (>= N_SE standard errors) outside it: caught.
    assert N_SE * se <= 0.025 * m.std, f"sample too small to see a 5% std error (n={n})"
    assert abs(x.std() - m.std) <= N_SE * se, (
        f"{what}: std {x.std():.6g}, expected {m.std:.6g} +- {N_SE * se:.2g}"
    )
    mean_se = m.std / math.sqrt(n)
    assert abs(x.mean() - m.mean) <= N_SE * mean_se, (
        f"{what}: mean {x.mean():.6g}, expected {m.mean:.6g}"
    )


def assert_bounds(x: np.ndarray, m: Moments, what: str = "") -> None:
    """Every value within [low, high]; the extremes within 0.1% of the width of them.

    For n >= 20k uniform draws, P(max < high - 1e-3 * width) = (1 - 1e-3)^n < 3e-9.
    """
    x = np.asarray(x).ravel()
    low, high = m.low, m.high
    # Compare in the sample dtype: the bound is a Python double, the samples
    # are rounded to float32.
    lo_f, hi_f = np.asarray(low, x.dtype), np.asarray(high, x.dtype)
    assert x.min() >= lo_f and x.max() <= hi_f, (
        f"{what}: [{x.min()}, {x.max()}] outside [{low}, {high}]"
    )
    if not m.reach:
        return
    width = high - low
    assert x.min() <= low + 1e-3 * width and x.max() >= high - 1e-3 * width, (
        f"{what}: [{x.min()}, {x.max()}] does not reach [{low}, {high}]"
    )


def chi2_uniform_pvalue(counts: np.ndarray) -> float:
    """Pearson chi-square p-value of ``counts`` against equal expected counts."""
    counts = np.asarray(counts, np.float64).ravel()
    return float(scipy.stats.chisquare(counts).pvalue)


# The 14 torch.nn.init schemes, in torch's order (one list for every test file).
SCHEME_NAMES = (
    "uniform",
    "normal",
    "trunc_normal",
    "constant",
    "ones",
    "zeros",
    "eye",
    "dirac",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "sparse",
)
