"""chex-style assertions: an array, or every leaf of a tree, follows its initializer.

What is checked, by family of :class:`~jaxinit.Distribution`:

- **iid families** (uniform, normal, trunc_normal, uniform_sum): a one-sample
  Kolmogorov-Smirnov test against ``Distribution.cdf`` and a test of the
  variance about the known mean. Each has its share of ``false_failure``.
- **exact families**: constant (and any iid family with zero spread), eye
  and dirac must equal the expected array bit for bit.
- **orthogonal**: every batch entry's torch view divided by ``gain`` has
  orthonormal rows (wide) or columns (tall), to within float tolerance.
- **sparse**: exactly ``zeros`` zero entries in every column of the torch
  view; the non-zero entries are tested as iid normal.
- ``torch_embedding(padding_idx=...)``: the padding row is exactly 0, the
  other rows are tested as iid normal.

**KS p-value.** With ``n`` values, ``D = sup |F_n - F|``; the p-value used is
``min(1, 2 P(D_n^+ >= D))`` with Smirnov's exact one-sided tail (Birnbaum and
Tingey, 1951)

.. math:: P(D_n^+ \\ge d) = d \\sum_{j=0}^{\\lfloor n(1-d) \\rfloor}
          \\binom{n}{j} \\left(1 - d - \\frac{j}{n}\\right)^{n-j}
          \\left(d + \\frac{j}{n}\\right)^{j-1},

so ``P(reject) <= alpha`` holds exactly, not asymptotically (for small
p-values the bound is tight: the two tails barely overlap). For a
discontinuous distribution the test is conservative. 16-bit arrays are
compared with the distribution rounded to their dtype (the KS statistic is
taken against the rounded variable's CDF: ``F`` at the midpoints to the
neighbouring representable values), so the rounding of a large bfloat16
array is not mistaken for a wrong distribution. At most ``2**18`` values,
an even stride through the array, enter the KS test.

**Variance.** ``v = mean((x - mu)^2)`` with the distribution's mean ``mu``
has mean ``sigma^2``, relative standard error ``sqrt((kappa - 1) / n)`` and
skewness ``gamma / sqrt(n)``, where ``kappa = mu_4 / sigma^4`` and ``gamma =
(mu_6/sigma^6 - 3 kappa + 2) / (kappa - 1)^(3/2)`` (the kurtosis and the
skewness of ``(x - mu)^2``: 3 and ``2 sqrt(2)`` for a normal, 9/5 and about
0.64 for a uniform; estimated from the values for trunc_normal). ``v /
sigma^2`` must lie within ``1 + SE (±z + gamma (z^2 - 1) / (6 sqrt(n)))``, the
Cornish-Fisher quantiles, ``z = Phi^-1(1 - alpha/2)``, widened by what
rounding to the array's dtype can do (each value moves by at most half its
ulp, ``|x| eps / 2``: 0.4% of the std in bfloat16, nothing visible in
float32). It runs for ``n >= 1000``, where the expansion is accurate at these
levels; a 5% std error on ``10**5`` normal values moves ``v`` by 10%, about
22 standard errors.
"""

from __future__ import annotations

import math
import statistics
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._src.core.distribution import Distribution
from jaxinit._src.core.initializer import Initializer
from jaxinit._src.core.layout import LayoutLike, torch_order
from jaxinit._src.layers.leaf import Leaf
from jaxinit._src.tree.plan import Unmatched, plan
from jaxinit._src.tree.rules import as_rules

__all__ = ["assert_follows", "assert_tree_follows", "ks_pvalue"]

_KS_MAX = 2**18  # values entering the KS test (an even stride through larger arrays)
_MOMENT_MIN = 1000  # the variance test runs from this many values on

# The standardized 4th and 6th moments (kappa, eta) of one entry, where known in closed form.
# A sum of t U(-1/2, 1/2) has cumulants t/12, t(-1/120), t/252 (orders 2, 4, 6), so
# kappa = 3 - 6/(5t) and eta = 15 - 18/t + (1728/252)/t^2; t = 1 is the uniform (9/5, 27/7).
_NORMAL_MOMENTS = (3.0, 15.0)


def _moments(dist: Distribution, centered: np.ndarray) -> tuple[float, float]:
    if dist.family in ("normal", "sparse"):
        return _NORMAL_MOMENTS
    if dist.family in ("uniform", "uniform_sum"):
        t = float(dist.params.get("terms", 1))
        return 3.0 - 1.2 / t, 15.0 - 18.0 / t + (1728.0 / 252.0) / (t * t)
    m2 = float(np.mean(centered**2))  # trunc_normal: from the values
    return float(np.mean(centered**4)) / m2**2, float(np.mean(centered**6)) / m2**3


# ----------------------------------------------------------------------------
# The Kolmogorov-Smirnov p-value (no scipy)


def _log_factorials(n: int) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))])


def smirnov_sf(d: float, n: int) -> float:
    """``P(D_n^+ >= d)``, the exact one-sided KS tail (Birnbaum-Tingey), in log space."""
    if d <= 0.0:
        return 1.0
    if d >= 1.0:
        return 0.0
    j = np.arange(0, math.floor(n * (1.0 - d)) + 1, dtype=np.float64)
    log_fact = _log_factorials(n)
    jj = j.astype(np.int64)
    with np.errstate(divide="ignore"):
        terms = (
            log_fact[n]
            - log_fact[jj]
            - log_fact[n - jj]
            + (n - j) * np.log(np.maximum(1.0 - d - j / n, 0.0))
            + (j - 1.0) * np.log(d + j / n)
        )
    top = float(terms.max())
    return min(1.0, d * math.exp(top) * float(np.exp(terms - top).sum()))


def ks_pvalue(d: float, n: int) -> float:
    """A p-value for the two-sided one-sample KS statistic ``D = d`` of ``n`` values.

    ``min(1, 2 P(D_n^+ >= d))``: at least the exact two-sided p-value (a
    test rejecting when it is below ``alpha`` rejects a true distribution with
    probability at most ``alpha``) and, for small p-values, equal to it to
    within the overlap of the two tails.

    Args:
      d: the KS statistic, ``sup |F_n - F|``.
      n: the number of values.

    Returns:
      The p-value.

    >>> from jaxinit.testing import ks_pvalue
    >>> f"{ks_pvalue(0.01, 100_000):.4g}"  # scipy.stats.kstwo.sf(0.01, 100_000): 4.093e-09
    '4.093e-09'
    >>> round(ks_pvalue(0.05, 1000), 4)  # kstwo.sf: 0.0130
    0.013
    """
    return min(1.0, 2.0 * smirnov_sf(float(d), int(n)))


# ----------------------------------------------------------------------------
# One array against one distribution


def _z(alpha: float) -> float:
    return statistics.NormalDist().inv_cdf(1.0 - alpha / 2.0)


def _canonical(x: np.ndarray, dist: Distribution) -> np.ndarray:
    """``x`` as ``(batch, rows, cols)``: each batch entry's torch ``(out, in * receptive)`` view."""
    assert dist.layout is not None
    moved = np.transpose(x, torch_order(x.ndim, dist.layout))
    in_axes, out_axes, receptive, batch = dist.layout.all_axes(x.ndim)
    b = math.prod(x.shape[a] for a in batch)
    rows = math.prod(x.shape[a] for a in out_axes)
    return moved.reshape(b, rows, -1)


def _exact(x: np.ndarray, expected: np.ndarray, what: str) -> list[str]:
    expected = np.broadcast_to(np.asarray(expected).astype(x.dtype), x.shape)
    if np.array_equal(x, expected, equal_nan=bool(jnp.issubdtype(x.dtype, jnp.inexact))):
        return []
    wrong = int(np.sum(x != expected))
    first = np.argwhere(x != expected)[0]
    return [
        f"{wrong} of {x.size} entries differ from {what}; e.g. at {tuple(int(i) for i in first)}: "
        f"{x[tuple(first)]!r}, expected {expected[tuple(first)]!r}"
    ]


def _ks_statistic(values: np.ndarray, dist: Distribution) -> tuple[float, int]:
    """``sup |F_n - F|`` over at most ``_KS_MAX`` values; 16-bit floats against the rounded ``F``."""
    x = values.ravel()
    if x.size > _KS_MAX:
        x = x[:: -(-x.size // _KS_MAX)]
    x = np.sort(x)
    n = x.size
    xf = x.astype(np.float64)
    if x.dtype.itemsize < 4:  # the distribution of the value rounded to this dtype
        inf = np.asarray(np.inf, x.dtype)
        hi = (xf + np.nextafter(x, inf).astype(np.float64)) / 2
        lo = (xf + np.nextafter(x, -inf).astype(np.float64)) / 2
        f_hi, f_lo = dist.cdf(hi), dist.cdf(lo)
        if dist.family == "uniform":
            # values rounding to the upper bound are moved to the lower one, as torch does
            top = np.asarray(dist.params["high"], x.dtype)
            cut = (float(top) + float(np.nextafter(top, -inf))) / 2
            wrap = 1.0 - float(dist.cdf(cut))
            low = float(np.asarray(dist.params["low"], x.dtype))
            f_hi = dist.cdf(np.minimum(hi, cut)) + wrap * (xf >= low)
            f_lo = dist.cdf(np.minimum(lo, cut)) + wrap * (xf > low)
    else:
        f_hi = f_lo = dist.cdf(xf)
    i = np.arange(1, n + 1, dtype=np.float64)
    d = max(float(np.max(i / n - f_hi)), float(np.max(f_lo - (i - 1) / n)), 0.0)
    return d, n


def _variance_check(values: np.ndarray, dist: Distribution, alpha: float) -> list[str]:
    v = values.astype(np.float64)
    mu, sigma = float(dist.mean), float(dist.std)
    centered = v - mu
    n = v.size
    kappa, eta = _moments(dist, centered)
    if kappa <= 1.0:
        return []
    ratio = float(np.mean(centered**2)) / sigma**2
    se = math.sqrt((kappa - 1.0) / n)
    gamma = (eta - 3.0 * kappa + 2.0) / (kappa - 1.0) ** 1.5 / math.sqrt(n)
    z = _z(alpha)
    shift = gamma * (z * z - 1.0) / 6.0
    # Rounding each value to the dtype moves it by e, |e| <= max(|x| eps/2, tiny): that moves
    # mean((x - mu)^2) by at most 2 sqrt(ratio * E) + E (Cauchy-Schwarz), E = mean(e^2) / sigma^2.
    info = jnp.finfo(values.dtype)
    bound = np.maximum(np.abs(v) * (float(info.eps) / 2), float(info.smallest_normal))
    rounding = float(np.mean(bound**2)) / sigma**2
    slack = 2.0 * math.sqrt(ratio * rounding) + rounding
    low, high = 1.0 + se * (-z + shift) - slack, 1.0 + se * (z + shift) + slack
    if low <= ratio <= high:
        return []
    return [
        f"std {math.sqrt(ratio) * sigma:.6g} is {math.sqrt(ratio):.4f}x the expected "
        f"{sigma:.6g}; for n = {n} at alpha = {alpha:.2g} it must be within "
        f"[{math.sqrt(max(low, 0.0)):.4f}, {math.sqrt(high):.4f}]x"
    ]


def _parts(x: np.ndarray, dist: Distribution) -> tuple[np.ndarray, Distribution]:
    """Complex values as their real and imaginary parts (iid, each with the part's distribution)."""
    if not np.iscomplexobj(x):
        return x, dist
    values = np.concatenate([x.real.ravel(), x.imag.ravel()])
    if dist.family in ("normal", "sparse"):  # each part N(mean, std^2 / 2), as torch
        params = {**dist.params, "std": dist.params["std"] / math.sqrt(2.0)}
        return values, Distribution(dist.family, params, dist.shape, dist.layout)
    return values, dist


def _iid(x: np.ndarray, dist: Distribution, alpha: float) -> list[str]:
    """KS and variance tests of iid values (``alpha`` shared between them)."""
    values, dist = _parts(x, dist)
    values = values.ravel()
    if np.isnan(values.astype(np.float64)).any():
        return [f"{int(np.isnan(values.astype(np.float64)).sum())} entries are NaN"]
    if dist.std == 0.0:
        return _exact(values, np.asarray(dist.mean), f"the constant {dist.mean:g}")
    tests = 2 if values.size >= _MOMENT_MIN else 1
    failures = []
    d, n = _ks_statistic(values, dist)
    p = ks_pvalue(d, n)
    if p < alpha / tests:
        failures.append(
            f"KS test rejects: D = {d:.4g}, p = {p:.3g} < alpha = {alpha / tests:.2g} (n = {n})"
        )
    if tests == 2:
        failures += _variance_check(values, dist, alpha / tests)
    return failures


def _orthogonal(x: np.ndarray, dist: Distribution) -> list[str]:
    gain = float(dist.params["gain"])
    view = _canonical(x, dist).astype(np.float64)
    if gain == 0.0:
        return _exact(x, np.zeros((), x.dtype), "zeros (gain 0)")
    rows, cols = view.shape[1:]
    q = view / gain
    gram = q @ np.swapaxes(q, 1, 2) if rows <= cols else np.swapaxes(q, 1, 2) @ q
    error = float(np.max(np.abs(gram - np.eye(gram.shape[-1]))))
    # rounding to the dtype moves each Gram entry by up to eps (Cauchy-Schwarz on unit
    # rows), the float32 QR by a few n * eps32 at most
    eps = float(jnp.finfo(x.dtype).eps)
    tol = 2.0 * eps + 10.0 * max(rows, cols) * float(jnp.finfo(np.float32).eps)
    if error <= tol:
        return []
    what = "rows" if rows <= cols else "columns"
    return [
        f"the {rows}x{cols} torch view / gain {gain:g} does not have orthonormal {what}: "
        f"max |Q Q^T - I| = {error:.3g} > {tol:.3g}"
    ]


def _sparse(x: np.ndarray, dist: Distribution, alpha: float) -> list[str]:
    view = _canonical(x, dist)
    zeros = int(dist.params["zeros"])
    if float(dist.params["std"]) == 0.0:
        return _exact(x, np.zeros((), x.dtype), "zeros (std 0)")
    counts = np.sum(view == 0, axis=1)
    if not np.all(counts == zeros):
        bad = np.argwhere(counts != zeros)[0]
        return [
            f"column {int(bad[1])} (batch entry {int(bad[0])}) of the torch view has "
            f"{int(counts[tuple(bad)])} zeros, expected exactly {zeros} in every column"
        ]
    nonzero = view[view != 0]
    normal = Distribution("normal", {"mean": 0.0, "std": dist.params["std"]})
    return [f"non-zero entries: {f}" for f in _iid(nonzero, normal, alpha)]


def _structured_expected(dist: Distribution, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    from jaxinit._src.schemes.structured import dirac, eye

    if dist.family == "eye":
        init = eye(layout=dist.layout)
    else:
        init = dirac(int(dist.params["groups"]), layout=dist.layout)
    return np.asarray(init(None, shape, dtype))


def failures(x: np.ndarray, dist: Distribution, alpha: float) -> list[str]:
    """Why ``x`` does not follow ``dist`` (empty if it does); random checks share ``alpha``."""
    if tuple(x.shape) != tuple(dist.shape):
        return [f"shape {tuple(x.shape)} is not the distribution's {tuple(dist.shape)}"]
    if x.size == 0:
        return []
    family = dist.family
    if family == "constant":
        return _exact(x, np.asarray(dist.params["value"]), f"the constant {dist!r}")
    if family in ("eye", "dirac"):
        return _exact(x, _structured_expected(dist, x.shape, x.dtype), f"{dist!r}")
    if family == "orthogonal":
        return _orthogonal(x, dist)
    if family == "sparse":
        return _sparse(x, dist, alpha)
    if family == "uniform_sum" and np.ndim(dist.params["terms"]):
        terms = np.asarray(dist.params["terms"]).ravel()
        blocks = np.split(x, len(terms), axis=-1)
        found = []
        for b, (block, t) in enumerate(zip(blocks, terms)):
            part = Distribution("uniform_sum", {**dist.params, "terms": int(t)}, block.shape)
            found += [f"block {b} ({part!r}): {f}" for f in _iid(block, part, alpha / len(terms))]
        return found
    if "zero_row" in dist.params:  # torch_embedding(padding_idx=...)
        view = _canonical(x, dist)
        row = int(dist.params["zero_row"])
        found = [
            f"padding row {row}: {f}" for f in _exact(view[:, row], np.zeros((), x.dtype), "0")
        ]
        rest = np.delete(view, row, axis=1)
        normal = Distribution("normal", {"mean": dist.params["mean"], "std": dist.params["std"]})
        return found + _iid(rest, normal, alpha)
    return _iid(x, dist, alpha)


def _to_numpy(array: Any) -> np.ndarray:
    if isinstance(array, jax.Array):
        return np.asarray(jax.device_get(array))
    return np.asarray(array)


def _distribution_of(
    init: Any, shape: tuple[int, ...], dtype: Any, layout: LayoutLike | None
) -> Distribution:
    if isinstance(init, Distribution):
        if layout is not None:
            raise TypeError(
                "assert_follows: a Distribution carries its own layout; layout= is for an "
                "initializer"
            )
        return init
    if isinstance(init, Initializer):
        if layout is not None:
            init = init.in_context(layout)
        return init.distribution(shape, dtype)
    raise TypeError(
        "assert_follows: expected a jaxinit initializer or a jaxinit.Distribution, got "
        f"{init!r} (a foreign initializer's distribution is unknown)"
    )


def assert_follows(
    array: Any,
    initializer_or_distribution: Initializer | Distribution,
    *,
    layout: LayoutLike | None = None,
    false_failure: float = 1e-6,
) -> None:
    """Asserts that ``array`` is a draw of a jaxinit initializer (or from a distribution).

    Random families are tested statistically with tolerances from the
    sample size (a one-sample KS test and a variance test); the others
    exactly: constant, eye and dirac bit for bit, orthogonal to float
    tolerance, sparse's zero count per column exactly. The module docstring
    of ``jaxinit.testing`` states the statistics.

    Args:
      array: the array to check (any array-like; 16-bit floats are compared
        with the distribution rounded to their dtype).
      initializer_or_distribution: a jaxinit initializer (its distribution is
        taken for ``array``'s shape and dtype) or a :class:`~jaxinit.Distribution`.
      layout: the layout the initializer read ``array`` in, if it was not its
        own (an explicit ``layout=`` wins, as in the tree tools): e.g.
        ``"flax"`` for ``jaxinit.kaiming_normal()`` applied by a Flax layer.
        Must be ``None`` for a ``Distribution``.
      false_failure: the probability that a true draw fails (at most: the
        random checks share it).

    Raises:
      AssertionError: if the array does not follow the distribution, with
        the family, the statistic, its threshold and ``n``.
      TypeError: for an argument that is neither a jaxinit initializer nor
        a ``Distribution``.
      ValueError: if the initializer cannot draw that shape or dtype.

    >>> import jax, jaxinit
    >>> from jaxinit.testing import assert_follows
    >>> init = jaxinit.kaiming_normal(nonlinearity="relu")
    >>> assert_follows(init(jax.random.key(0), (256, 512)), init)
    >>> assert_follows(init(jax.random.key(0), (256, 512)) * 1.05, init)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    AssertionError: assert_follows: the (256, 512) float32 array does not follow N(mean=0, std=0.0625) (normal): KS test rejects: D = 0.01262, p = 1.5e-18 < alpha = 5e-07 (n = 131072); std 0.0656628 is 1.0506x the expected 0.0625; ...
    """
    x = _to_numpy(array)
    dist = _distribution_of(initializer_or_distribution, tuple(x.shape), x.dtype, layout)
    found = failures(x, dist, false_failure)
    if found:
        raise AssertionError(
            f"assert_follows: the {tuple(x.shape)} {x.dtype} array does not follow {dist!r} "
            f"({dist.family}): " + "; ".join(found)
        )


# ----------------------------------------------------------------------------
# Trees


def _is_flax(tree: Any, model: Any) -> bool:
    """A Flax target: an NNX module, a Linen dict with ``model=``, or one holding Flax boxes.

    Never imports flax: a Flax object can only exist if flax is imported.
    """
    if model is not None:
        return True
    nnx = sys.modules.get("flax.nnx")
    if nnx is not None and isinstance(tree, nnx.Module):
        return True
    core = sys.modules.get("flax.core")
    if core is not None and isinstance(tree, core.FrozenDict):
        return True
    meta = sys.modules.get("flax.core.meta")
    if meta is not None and isinstance(tree, Mapping):
        boxed = jax.tree_util.tree_leaves(tree, is_leaf=lambda x: isinstance(x, meta.AxisMetadata))
        return any(isinstance(x, meta.AxisMetadata) for x in boxed)
    return False


def _leaves(
    tree: Any,
    layout: LayoutLike | None,
    key: Any,
    model: Any,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
) -> list[Leaf]:
    if _is_flax(tree, model):
        if layout is not None:
            raise ValueError(
                "assert_tree_follows: a Flax target is read in each layer's layout "
                "(as jaxinit.flax.reinit reads it); layout= is for other pytrees"
            )
        from jaxinit._src.flax.explain import target_leaves

        # a Linen model is traced with the key's structure (a dict for extra rngs)
        return target_leaves(
            tree, args, kwargs, key=key if model is not None else None, model=model
        )
    from jaxinit._src.tree.generic import tree_leaves

    return tree_leaves(tree, "torch" if layout is None else layout)[2]


def _rule_text(index: int, rules: Sequence[Any]) -> str:
    from jaxinit._src.tree.explain import describe_selector

    return f"rule {index}, {describe_selector(rules[index].selector)}"


def assert_tree_follows(
    tree: Any,
    rules: Any,
    *,
    key: Any = None,
    layout: LayoutLike | None = None,
    false_failure: float = 1e-6,
    strict: bool = True,
    unmatched: Unmatched = "keep",
    model: Any = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
) -> None:
    """Asserts that every leaf the rules select follows the initializer its rule gives it.

    Leaves are matched as :func:`jaxinit.reinit` (or, for Flax targets,
    :func:`jaxinit.flax.reinit`) matches them: first match wins, each
    initializer read in the leaf's layout, a bias with its ``fan_in``. Then
    every matched leaf is checked as :func:`assert_follows` checks one array,
    or, given ``key``, compared bit for bit with what ``reinit`` draws with
    that key. Every failing leaf is listed in one ``AssertionError``.

    Flax targets (NNX modules, Linen dicts with ``model=`` or holding
    ``nn.Partitioned`` boxes) are read as ``jaxinit.flax.reinit`` reads them;
    a plain Linen dict without ``model=`` is a plain dict (torch layout unless
    ``layout="flax"``). flax is imported only for a Flax target.

    Args:
      tree: the initialized pytree, Linen variables dict or NNX module.
      rules: the rules it was initialized with.
      key: if given, the key it was initialized with: the matched leaves must
        equal ``reinit(tree, rules, key=key)``'s bit for bit.
      layout: for a non-Flax tree, the layout given to initializers built
        without ``layout=`` (default ``"torch"``, as ``jaxinit.reinit``).
      false_failure: the probability that a correctly initialized tree fails
        (at most: the random leaves share it equally).
      strict: a non-optional rule matching nothing is an error, as in ``reinit``.
      unmatched: ``"error"`` also fails the assertion if a floating-point
        leaf is matched by no rule.
      model, args, kwargs: for a Linen variables dict, the model and the
        inputs of ``model.init`` (for class selectors and layer layouts).

    Raises:
      AssertionError: listing every leaf that does not follow its rule (and,
        with ``unmatched="error"``, every leaf no rule matches).
      ValueError: for a rule that matches nothing under ``strict``, or one
        whose initializer is not a jaxinit one (its distribution is unknown:
        pass ``key=``).
      TypeError: for a malformed rule.

    >>> import jax, jax.numpy as jnp, jaxinit
    >>> from jaxinit.testing import assert_tree_follows
    >>> rules = [("*/weight", jaxinit.orthogonal()), ("*/bias", jaxinit.torch_linear_bias(64))]
    >>> tree = {"fc": {"weight": jnp.zeros((64, 64)), "bias": jnp.zeros(64)}}
    >>> tree = jaxinit.reinit(tree, rules, key=jax.random.key(0))
    >>> assert_tree_follows(tree, rules)
    >>> assert_tree_follows(tree, rules, key=jax.random.key(0))
    """
    rules_t = as_rules(rules)
    leaves = _leaves(tree, layout, key, model, args, kwargs)
    jobs = plan(leaves, rules_t, strict, "keep")
    found: list[str] = []
    if unmatched == "error":
        drawn = {job.index for job in jobs}
        found += [
            f"{leaf.path_str!r}: matched by no rule"
            for i, leaf in enumerate(leaves)
            if leaf.candidate and i not in drawn
        ]
    elif unmatched != "keep":
        raise ValueError(f"unmatched must be 'keep' or 'error', got {unmatched!r}")
    if key is not None:
        from jaxinit._src.tree.draw import draw_jobs

        rule_key = key["params"] if isinstance(key, Mapping) else key
        expected = draw_jobs(rule_key, jobs, [leaf.value for leaf in leaves])
        for job, want in zip(jobs, expected):
            got = _to_numpy(leaves[job.index].value)
            wrong = _exact(got, _to_numpy(want), "what reinit draws with this key")
            if wrong:
                found.append(f"{job.path!r} ({_rule_text(job.rule, rules_t)}): {wrong[0]}")
    else:
        foreign = [job for job in jobs if not isinstance(job.init, Initializer)]
        if foreign:
            raise ValueError(
                "assert_tree_follows: the distribution of a non-jaxinit initializer is unknown: "
                + ", ".join(f"{job.rule_desc} on {job.path!r}" for job in foreign[:5])
                + "; pass key= to compare with what reinit draws"
            )
        dists = [job.init.distribution(job.shape, job.dtype) for job in jobs]
        random = max(1, sum(d.is_random for d in dists))
        alpha = false_failure / random
        for job, dist in zip(jobs, dists):
            wrong = failures(_to_numpy(leaves[job.index].value), dist, alpha)
            if wrong:
                found.append(
                    f"{job.path!r} ({_rule_text(job.rule, rules_t)}: {dist!r}): " + "; ".join(wrong)
                )
    if found:
        raise AssertionError(
            f"assert_tree_follows: {len(found)} leaf(s) do not follow their rule:\n  "
            + "\n  ".join(found)
        )
