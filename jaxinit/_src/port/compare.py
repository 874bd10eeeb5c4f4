"""``compare_init``: does a JAX port start as its torch original does, leaf by leaf?

Both models are drawn over several seeds (``torch.manual_seed(s)``,
``jax.random.key(s)``), the torch draws are moved into the port's layout with
:func:`jaxinit.port.from_torch`'s pairing, and each leaf's values are pooled
over the seeds.

A leaf that torch draws identically for every seed (ones, zeros, a buffer) is
*deterministic*: the port must equal it bit for bit, for every key. Every
other leaf is *random* and gets three checks, each of which a correct port
fails with probability at most ``false_failure`` (the stated odds):

- **std**: the ratio ``r = std_jax / std_torch`` must be within
  ``1 ± z·SE``, ``z = Φ⁻¹(1 - false_failure/2)``. The sample std of ``n`` iid
  values with kurtosis ``κ = E[(x-μ)⁴]/σ⁴`` has relative standard error
  ``sqrt((κ - 1) / (4n))`` (delta method on the sample variance, whose
  variance is ``(κ - 1)σ⁴/n``), so ``SE = sqrt((κ - 1)/(4 n_jax) + (κ - 1)/(4 n_torch))``,
  with ``κ`` estimated from the pooled torch values (1.8 for a uniform, 3 for
  a normal). A true relative error ``δ`` is caught with probability at least
  ``1 - false_failure/2`` when ``δ >= 2 z SE``: the row's ``detectable``.
- **max|w|**: for a bounded uniform leaf (``κ`` near 1.8) or a normal one
  (``κ`` near 3), ``max|w|`` over ``n`` draws has a known distribution:
  ``P(max <= m) = F(m)^n`` with ``F(m) = m/b`` for ``U(-b, b)`` and
  ``2Φ(m/σ) - 1`` for ``N(0, σ²)``. The ratio of the two maxima must lie
  between the ``p`` and ``1 - p`` quantiles (``p = false_failure / 4`` per
  tail and side). For other shapes (truncated, sparse) max|w| is reported only.
- **KS**: the two-sample Kolmogorov-Smirnov test (asymptotic p-value with
  Stephens' small-sample correction) must not reject at ``alpha = false_failure``.

With ``R`` random leaves the whole report fails a correct port with
probability at most ``3 R · false_failure``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxinit._src.port import names as N
from jaxinit._src.port import plan as L
from jaxinit._src.port import target as T
from jaxinit._src.port import torch as P
from jaxinit._src.port.init_report import InitReport, LeafReport

__all__ = ["InitReport", "LeafReport", "compare_init"]

_KS_MAX = 200_000  # values per side the KS test looks at (an even subsample of the rest)


def _z(false_failure: float) -> float:
    return statistics.NormalDist().inv_cdf(1.0 - false_failure / 2.0)


def _max_quantile(family: str, n: int, p: float) -> float:
    """The ``p``-quantile of ``max|x|`` over ``n`` iid draws, in units of the bound or std."""
    q = math.exp(math.log(p) / n)  # F(m) = p ** (1/n)
    if family == "uniform":
        return q
    return statistics.NormalDist().inv_cdf((1.0 + q) / 2.0)


def _ks_pvalue(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sample KS p-value (asymptotic, Stephens' correction; Numerical Recipes' probks)."""
    x, y = np.sort(x), np.sort(y)
    n, m = x.size, y.size
    both = np.concatenate([x, y])
    d = float(
        np.max(
            np.abs(np.searchsorted(x, both, "right") / n - np.searchsorted(y, both, "right") / m)
        )
    )
    en = math.sqrt(n * m / (n + m))
    lam = (en + 0.12 + 0.11 / en) * d
    if lam < 0.2:
        return 1.0
    total, sign = 0.0, 1.0
    for k in range(1, 101):
        term = sign * 2.0 * math.exp(-2.0 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
        sign = -sign
    return min(max(total, 0.0), 1.0)


def _thin(x: np.ndarray) -> np.ndarray:
    if x.size <= _KS_MAX:
        return x
    return x[:: math.ceil(x.size / _KS_MAX)]


def _row(
    path: str,
    torch_name: str,
    t: np.ndarray,
    j: np.ndarray,
    exact: np.ndarray,
    exact_jax: np.ndarray,
    false_failure: float,
) -> LeafReport:
    """Compares one leaf; ``t``/``j`` are float64 ``(seeds, *shape)``, ``exact*`` in the leaf dtype."""
    failures: list[str] = []
    deterministic = bool(all(np.array_equal(exact[0], e, equal_nan=True) for e in exact[1:]))
    ts, js = float(t.std()), float(j.std())
    tm, jm = float(np.abs(t).max(initial=0.0)), float(np.abs(j).max(initial=0.0))
    common: dict[str, Any] = dict(
        path=path,
        torch_name=torch_name,
        shape=tuple(t.shape[1:]),
        torch_std=ts,
        jax_std=js,
        torch_max=tm,
        jax_max=jm,
        torch_values=t,
        jax_values=j,
    )
    if deterministic:
        if not all(np.array_equal(exact[0], e, equal_nan=True) for e in exact_jax):
            diff = float(np.abs(j - t[:1]).max(initial=0.0))
            failures.append(f"differs from torch's deterministic values (max |diff| {diff:.3g})")
        return LeafReport(
            **common,
            deterministic=True,
            std_tol=0.0,
            detectable=0.0,
            max_range=None,
            family=None,
            kurtosis=math.nan,
            ks_pvalue=None,
            failures=failures,
        )
    z = _z(false_failure)
    n_t, n_j = t.size, j.size
    centered = t - t.mean()
    m2 = float(np.mean(centered**2))
    kurt = float(np.mean(centered**4)) / (m2 * m2) if m2 > 0 else 1.0
    kurt = max(kurt, 1.0)
    se = math.sqrt((kurt - 1.0) / (4.0 * n_j) + (kurt - 1.0) / (4.0 * n_t))
    tol = z * se
    ratio = js / ts if ts > 0 else math.inf
    if not abs(ratio - 1.0) <= tol:
        failures.append(f"std ratio {ratio:.4f} outside 1 ± {tol:.4f}")
    family = None
    if min(n_t, n_j) >= 1000 and abs(t.mean()) <= 0.05 * ts:
        if abs(kurt - 1.8) <= 0.1:
            family = "uniform"
        elif abs(kurt - 3.0) <= 0.3:
            family = "normal"
    max_range = None
    if family is not None:
        p = false_failure / 4.0
        lo = _max_quantile(family, n_j, p) / _max_quantile(family, n_t, 1.0 - p)
        hi = _max_quantile(family, n_j, 1.0 - p) / _max_quantile(family, n_t, p)
        max_range = (lo, hi)
        r = jm / tm if tm > 0 else math.inf
        if not lo <= r <= hi:
            failures.append(f"max|w| ratio {r:.4f} outside [{lo:.4f}, {hi:.4f}]")
    pvalue = _ks_pvalue(_thin(t.ravel()), _thin(j.ravel()))
    if pvalue < false_failure:
        failures.append(f"KS test rejects (p = {pvalue:.2g} < {false_failure:g})")
    fixed = fixed_slices(exact, false_failure)
    failures += _check_fixed(fixed, exact, exact_jax)
    return LeafReport(
        **common,
        deterministic=False,
        std_tol=tol,
        detectable=2.0 * z * se,
        max_range=max_range,
        family=family,
        kurtosis=kurt,
        ks_pvalue=pvalue,
        failures=failures,
        fixed=fixed,
    )


def _same_every_seed(exact: np.ndarray) -> np.ndarray:
    """Per element: torch drew it identically for every seed (NaN equal to NaN)."""
    same = exact == exact[:1]
    if np.issubdtype(exact.dtype, np.inexact):
        same |= np.isnan(exact) & np.isnan(exact[:1])
    return np.all(same, axis=0)


def fixed_slices(exact: np.ndarray, false_failure: float) -> list[tuple[int, int]]:
    """Rows, columns (any axis) of a random leaf that torch draws identically every seed.

    An Embedding's ``padding_idx`` row is zero for every seed: structure a
    port must reproduce. A slice of ``m >= 2`` elements counts when chance
    cannot explain it. An element repeats its seed-0 value in all other seeds
    with probability at most that of repeating it in one, ``q``; so ``m``
    independent elements do so by chance with probability at most ``q^m``,
    and over the ``sum(shape)`` slices tried a slice is kept when
    ``sum(shape) * q^m <= false_failure``. ``q`` is estimated from the rest of
    the leaf: the largest of the rate at which the varying elements repeat a
    seed-0 value, the fraction of fixed elements outside the fixed slices, and
    one over the number of (element, seed) pairs looked at. Sparse inits, whose
    zeros move from seed to seed, repeat often and are not taken for structure;
    a single element is never told from chance.

    Args:
      exact: torch's values, ``(seeds, *shape)``, in the leaf's dtype.
      false_failure: the chance allowed of keeping a slice by coincidence.

    Returns:
      ``(axis, index)`` of each fixed slice.
    """
    seeds, shape = exact.shape[0], exact.shape[1:]
    size = exact[0].size
    if not shape or size == 0 or seeds < 2:
        return []
    same = _same_every_seed(exact)
    varying = ~same
    repeats = exact[1:] == exact[:1]
    q_var = float(np.mean(repeats[:, varying])) if varying.any() else 1.0
    tried = sum(shape)
    out = []
    for axis, n in enumerate(shape):
        m = size // n
        whole = np.all(np.moveaxis(same, axis, 0).reshape(n, -1), axis=1)
        if m < 2 or not whole.any() or whole.all():
            continue
        outside = np.broadcast_to(
            np.expand_dims(~whole, tuple(i for i in range(len(shape)) if i != axis)), shape
        )
        r_out = float(np.mean(same[outside]))
        floor = 1.0 / (int(outside.sum()) * (seeds - 1))
        q = max(q_var, r_out, floor)
        if q < 1.0 and tried * q**m <= false_failure:
            out += [(axis, int(i)) for i in np.flatnonzero(whole)]
    return out


def _check_fixed(
    fixed: Sequence[tuple[int, int]], exact: np.ndarray, exact_jax: np.ndarray
) -> list[str]:
    """Each fixed slice must hold torch's values in every JAX draw."""
    failures = []
    for axis, i in fixed:
        want = np.take(exact[0], i, axis=axis)
        got = np.take(exact_jax, i, axis=axis + 1)
        if all(np.array_equal(want, g, equal_nan=True) for g in got):
            continue
        diff = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)), initial=0.0))
        values = f"all {want.flat[0].item()!r}" if np.all(want == want.flat[0]) else "fixed values"
        failures.append(
            f"index {i} along axis {axis} is {values} in torch for every seed (e.g. an "
            f"Embedding's padding_idx row), but not in the JAX init (max |diff| {diff:.3g})"
        )
    return failures


def _check_arguments(torch_factory: Any, jax_init: Any) -> None:
    """Says what was passed and what is expected (an instance is not a factory)."""
    if P.is_torch_module(torch_factory):
        cls = type(torch_factory).__name__
        raise TypeError(
            f"compare_init: torch_factory must build a new torch model each time it is called "
            f"(after torch.manual_seed(s)), got an instance of {cls}; pass the class "
            f"({cls}, or type(model)) or a function (lambda: {cls}(...))"
        )
    if not callable(torch_factory):
        raise TypeError(
            "compare_init: torch_factory must be a class or function returning a torch "
            f"nn.Module, got {type(torch_factory).__name__}"
        )
    linen = hasattr(jax_init, "init") and hasattr(jax_init, "apply")
    if T.is_target(jax_init) or linen or not callable(jax_init):
        raise TypeError(
            "compare_init: jax_init must be a function key -> the initialized JAX model (e.g. "
            "lambda key: jaxinit.flax.init(model, key, x, rules=jaxinit.flax.TORCH_DEFAULTS)), "
            f"got {'a Linen module' if linen else 'an instance of ' + type(jax_init).__name__}"
        )


def compare_init(
    torch_factory: Callable[[], Any],
    jax_init: Callable[[jax.Array], Any],
    *,
    seeds: int = 8,
    false_failure: float = 1e-6,
    model: Any = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    rename: Any = None,
    torch_types: Mapping[str, Any] | None = None,
) -> InitReport:
    """Compares a JAX port's initial parameters with torch's, leaf by leaf, over several seeds.

    For ``s`` in ``range(seeds)``: ``torch.manual_seed(s); torch_factory()``
    and ``jax_init(jax.random.key(s))``. The torch draws are moved into the
    port's layout with the pairing of :func:`jaxinit.port.from_torch`; each
    leaf's values are pooled over the seeds and checked as the module
    docstring of ``jaxinit._src.port.compare`` derives: deterministic leaves
    bit for bit; random leaves by std (tolerance ``z·SE`` from the sample size
    and the kurtosis), max|w| (order statistics, for uniform and normal
    leaves) and a two-sample KS test, each failing a correct port with
    probability ``false_failure``.

    Args:
      torch_factory: builds the torch model (its init is what is compared).
      jax_init: ``key -> target`` (a Linen variables dict, an NNX module or an
        Equinox module), e.g. ``lambda k: jaxinit.flax.init(model, k, x, rules=...)``.
      seeds: how many seeds to pool.
      false_failure: the chance that one check fails a correct port.
      model, args, kwargs, rename, torch_types: as for :func:`jaxinit.port.from_torch`.

    Returns:
      An :class:`InitReport`: ``.rows``, ``.ok``, ``.failures``, ``str()`` is
      a table, ``.plot(path)`` draws histograms (needs matplotlib).

    >>> report = jaxinit.port.compare_init(  # doctest: +SKIP
    ...     lambda: torch.nn.Linear(64, 32),
    ...     lambda k: jaxinit.flax.init(nn.Dense(32), k, jnp.ones((1, 64)), rules=TORCH_DEFAULTS),
    ... )
    >>> report.ok  # doctest: +SKIP
    True
    """
    if seeds < 2:
        raise ValueError(
            f"compare_init: seeds must be >= 2 (to tell random from fixed), got {seeds}"
        )
    if not 0.0 < false_failure < 1.0:
        raise ValueError(f"compare_init: false_failure must be in (0, 1), got {false_failure}")
    _check_arguments(torch_factory, jax_init)
    torch = P.import_torch()
    torch_draws = []
    jax_draws = []
    for s in range(seeds):
        torch.manual_seed(s)
        torch_draws.append(torch_factory())
        if not P.is_torch_module(torch_draws[-1]):
            raise TypeError(
                f"compare_init: torch_factory() returned {type(torch_draws[-1]).__name__}, "
                "expected a torch nn.Module"
            )
        jax_draws.append(jax_init(jax.random.key(s)))
    layers, aliases = P.torch_layers(torch_draws[0])
    N.glob_kinds(layers, torch_types)
    tgt = T.collect(jax_draws[0], model, args, kwargs)
    plan = L.make_plan(layers, aliases, tgt, rename)
    per_seed_torch = []
    for s, m in enumerate(torch_draws):
        if s:
            layers, _ = P.torch_layers(m)
        values = {tl.keys[n]: tl.values[n] for tl in layers for n in tl.keys}
        out, mismatches = L.forward(plan, tgt, values)
        if s == 0:
            shapes = {k: tuple(v.shape) for k, v in values.items()}
            L.report(
                "compare_init", plan, True, tgt, shapes, mismatches, check_hyperparameters=False
            )
        per_seed_torch.append(out)
    per_seed_jax = [tgt] + [T.collect(d) for d in jax_draws[1:]]
    names = {i: ", ".join(st.keys) for st in plan.steps for i in st.leaves}
    position = {
        tl.keys[n]: k for k, (tl, n) in enumerate((tl, n) for tl in layers for n in tl.keys)
    }
    first = {i: min(position.get(k, 0) for k in st.keys) for st in plan.steps for i in st.leaves}
    rows = []
    for i in sorted(per_seed_torch[0], key=lambda i: (first.get(i, 0), i)):
        leaf = tgt.leaves[i]
        exact_t = np.stack([np.asarray(o[i], dtype=leaf.dtype) for o in per_seed_torch])
        exact_j = np.stack([d.read(i) for d in per_seed_jax])
        rows.append(
            _row(
                leaf.path,
                names.get(i, ""),
                exact_t.astype(np.float64),
                exact_j.astype(np.float64),
                exact_t,
                exact_j,
                false_failure,
            )
        )
    return InitReport(rows, seeds, false_failure, notes=plan.review.settings)
