"""chex-style assertions: an array, or every leaf of a tree, follows its initializer.

What is checked is up to each distribution family (``Family.check``), with
the tests of :mod:`jaxinit._src.testing.checks`:

- **iid families** (uniform, normal, trunc_normal, uniform_sum, and a user's
  :func:`jaxinit.scheme` on them): every value finite and inside the exact
  support rounded to the dtype (a uniform never reaches its upper bound, a
  truncated normal never leaves ``[a, b]``), then a one-sample
  Kolmogorov-Smirnov test against the family's CDF and a test of the
  variance about the known mean. Each has its share of ``false_failure``.
- **exact families**: constant (and any iid family with zero spread), eye
  and dirac must equal the expected array bit for bit.
- **orthogonal**: every batch entry's torch view divided by ``gain`` has
  orthonormal rows (wide) or columns (tall), to within float tolerance.
- **sparse**: exactly ``zeros`` zero entries in every column of the torch
  view; the non-zero entries are tested as iid normal.
- the padded normal (``torch_embedding(padding_idx=...)``): the padding row
  is exactly 0, the other rows are tested as iid normal.
- ``torch_rnn(terms=(2, 2, 1))``: each block of the last axis as its own sum.

**KS p-value.** ``min(1, 2 P(D_n^+ >= D))`` with Smirnov's exact one-sided
tail (:func:`ks_pvalue`), so ``P(reject) <= alpha`` holds exactly, not
asymptotically (for small p-values the bound is tight: the two tails barely
overlap). For a discontinuous distribution the test is conservative. 16-bit
arrays are compared with the distribution rounded to their dtype (``F`` at
the midpoints to the neighbouring representable values), so the rounding of
a large bfloat16 array is not mistaken for a wrong distribution. At most
``2**18`` values, an even stride through the array, enter the KS test.

**Variance.** ``mean((x - mu)^2) / sigma^2`` must lie within the
Cornish-Fisher quantiles of its sampling distribution (from the family's
4th and 6th moments), widened by what rounding to the dtype can do; it runs
for ``n >= 1000``. A 3% std error on ``20_000`` normal values (about 6
standard errors of the variance) fails; so does a 5% error on ``10**5``
values (22 standard errors).

**dtypes.** The random families refuse the 8-bit floats as torch's kernels
do (``TypeError``); the fills, ``eye`` and ``dirac`` take them.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxinit._src.core.distribution import Distribution
from jaxinit._src.core.dtypes import check_key
from jaxinit._src.core.initializer import Initializer
from jaxinit._src.core.layout import LayoutLike
from jaxinit._src.layers.leaf import Leaf
from jaxinit._src.testing.checks import Tests, failures
from jaxinit._src.testing.ks import ks_pvalue as ks_pvalue
from jaxinit._src.tree.draw import draw_jobs
from jaxinit._src.tree.explain import describe_selector
from jaxinit._src.tree.generic import tree_leaves
from jaxinit._src.tree.plan import Unmatched, plan
from jaxinit._src.tree.rules import as_rules

__all__ = ["assert_follows", "assert_tree_follows", "ks_pvalue"]


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
        # a Distribution without a dtype: its support is rounded to the array's
        return init if init.dtype is not None else dataclasses.replace(init, dtype=np.dtype(dtype))
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
            f"({dist.family.name}): " + "; ".join(found)
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
    return tree_leaves(tree, "torch" if layout is None else layout)[2]


def _rule_text(index: int, rules: Sequence[Any]) -> str:
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
        rule_key = key["params"] if isinstance(key, Mapping) else key
        check_key("assert_tree_follows", rule_key)
        expected = draw_jobs(rule_key, jobs, [leaf.value for leaf in leaves])
        for job, want in zip(jobs, expected):
            got = _to_numpy(leaves[job.index].value)
            wrong = Tests(0.0).exact(got, _to_numpy(want), "what reinit draws with this key")
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
