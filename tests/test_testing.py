"""``jaxinit.testing``: the KS p-value against scipy, ``assert_follows`` and
``assert_tree_follows`` (correct draws pass, wrong ones fail), and
``torch_embedding(padding_idx=...)`` against torch.

Seeds are fixed, so every run draws the same numbers. Stated odds: a correct
draw fails ``assert_follows`` with probability at most ``false_failure``
(1e-6 by default; the calibration test measures the rate at 2%); a 5% std
error on 10**5 values is more than 20 standard errors of the variance test
away, so it is caught with probability above 1 - 1e-20.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import torch
from flax import nnx

import jaxinit
import jaxinit.flax
from jaxinit.testing import assert_follows, assert_tree_follows, ks_pvalue
from tests import records

SEEDS = (0, 1, 2)


def key(seed: int) -> jax.Array:
    return jax.random.key(seed)


# ----------------------------------------------------------------------------
# The KS p-value, against scipy


@pytest.mark.parametrize("n", [1, 2, 7, 50, 1000, 20_000])
def test_ks_pvalue_matches_scipy(n):
    from jaxinit._src.testing.ks import smirnov_sf

    for p in (0.5, 0.1, 1e-2, 1e-4, 1e-6, 1e-9, 1e-12):
        d = float(scipy.stats.ksone.isf(p, n))
        # the one-sided tail is exact (Birnbaum-Tingey)
        assert smirnov_sf(d, n) == pytest.approx(float(scipy.stats.ksone.sf(d, n)), rel=1e-6)
        # the two-sided p-value is never below the exact one (the test keeps its level),
        # at most twice it, and equal to it for small p
        d2 = float(scipy.stats.kstwo.isf(p, n))
        exact = float(scipy.stats.kstwo.sf(d2, n))
        got = ks_pvalue(d2, n)
        assert exact * (1 - 1e-6) <= got <= 2 * exact * (1 + 1e-6) + 1e-300
        if p <= 1e-4:
            assert got == pytest.approx(exact, rel=1e-3)
    assert ks_pvalue(0.0, n) == 1.0 and ks_pvalue(1.0, n) == 0.0


def test_ks_pvalue_at_the_largest_sample_size():
    from jaxinit._src.testing.ks import KS_MAX, smirnov_sf

    for p in (1e-3, 1e-7):
        d = math.sqrt(-math.log(p) / (2 * KS_MAX))  # the asymptotic one-sided quantile
        assert smirnov_sf(d, KS_MAX) == pytest.approx(scipy.stats.ksone.sf(d, KS_MAX), rel=1e-6)


# ----------------------------------------------------------------------------
# assert_follows: correct draws pass


def _shape(scheme: records.Scheme) -> tuple[int, ...]:
    # orthogonal is checked exactly (its QR is the slow part): a small matrix will do
    shapes = {"eye": (300, 256), "dirac": (64, 32, 3, 3), "orthogonal": (48, 96)}
    return shapes.get(scheme.kind, (256, 400))


@pytest.mark.parametrize("scheme", records.ALL, ids=lambda s: s.id)
def test_correct_draws_pass(scheme):
    init = scheme.make()
    shape = _shape(scheme)
    for seed in SEEDS if scheme.random else (0,):
        assert_follows(init(key(seed), shape), init)
    if scheme.kind != "iid":  # the flax-layout variant of a structured scheme, on the flax shape
        flax_init = scheme.make("flax")
        assert_follows(flax_init(key(0), records.flax_shape(shape)), flax_init)


@pytest.mark.parametrize(
    "init, dtype",
    [
        (jaxinit.kaiming_uniform(), jnp.bfloat16),
        (jaxinit.normal(0.5, 2.0), jnp.float16),
        (jaxinit.trunc_normal(std=0.5), jnp.bfloat16),
        (jaxinit.torch_rnn(64, terms=2), jnp.float16),
        (jaxinit.uniform(0.0, 1.0), jnp.bfloat16),  # coarse near 1: 2**-8 steps
    ],
    ids=lambda x: repr(x) if isinstance(x, jaxinit.Initializer) else None,
)
def test_16_bit_draws_pass(init, dtype):
    for seed in SEEDS[:2]:
        assert_follows(init(key(seed), (256, 512), dtype), init)


def test_coarse_16_bit_rounding_is_not_a_failure_but_errors_still_are():
    # N(100, 0.5) in bfloat16: the grid step near 100 is 0.5, one std. A continuous KS
    # test and a plain variance test would reject; the rounded distribution passes.
    init = jaxinit.normal(100.0, 0.5)
    x = init(key(0), (200_000,), jnp.bfloat16)
    assert len(np.unique(np.asarray(x))) < 20
    assert_follows(x, init)
    with pytest.raises(AssertionError, match="KS test rejects"):
        assert_follows(jaxinit.normal(100.0, 0.6)(key(0), (200_000,), jnp.bfloat16), init)


def test_float64_draws_pass(x64):
    init = jaxinit.trunc_normal(0.0, 1.0, 1.0, 3.0)
    assert_follows(init(key(0), (512, 256), jnp.float64), init)


def test_complex_draws_pass_and_fail():
    init = jaxinit.normal(0.0, 2.0)
    x = init(key(0), (256, 256), jnp.complex64)  # each part N(0, 2) as torch
    assert_follows(x, init)
    with pytest.raises(AssertionError, match="std"):
        assert_follows(x * 1.05, init)


def test_structured_and_per_block_draws_pass():
    cases = [
        (jaxinit.torch_rnn(32, terms=(2, 2, 1)), (300, 96)),  # NNX GRUCell input bias blocks
        (jaxinit.orthogonal(2.0, layout=jaxinit.Layout(1, 2, batch_axis=0)), (4, 16, 32)),
        (jaxinit.flax.orthogonal(), (32, 64)),
        (jaxinit.sparse(0.9, std=3.0), (100, 1000)),
        (jaxinit.constant(0.1), (3, 3)),
        (jaxinit.zeros(), (5, 0)),  # no entries: nothing to check
    ]
    for init, shape in cases:
        assert_follows(init(key(0), shape), init)
    bf16 = jaxinit.orthogonal(0.5)
    assert_follows(bf16(key(0), (32, 64), jnp.bfloat16), bf16)


# ----------------------------------------------------------------------------
# assert_follows: wrong draws fail


@pytest.mark.parametrize(
    "init",
    [
        jaxinit.kaiming_normal(),
        jaxinit.kaiming_uniform(),
        jaxinit.xavier_normal(gain=2.0),
        jaxinit.trunc_normal(std=0.5),
        jaxinit.torch_rnn(64, terms=2),
        jaxinit.torch_linear_bias(100),
    ],
    ids=repr,
)
def test_a_5_percent_std_error_on_1e5_values_is_caught(init):
    shape = (250, 400) if init.name != "torch_linear_bias" else (100_000,)
    for seed in SEEDS:
        x = init(key(seed), shape)
        assert_follows(x, init)
        # bounded families: 1.05x leaves the support (an exact check) before the std test
        grown = r"std \S+ is 1\.0[3-7]\d*x the expected|entries lie outside the support"
        with pytest.raises(AssertionError, match=grown):
            assert_follows(x * 1.05, init)
        with pytest.raises(AssertionError, match=r"std \S+ is 0\.9[3-7]\d*x the expected"):
            assert_follows(x * 0.95, init)


def test_wrong_shape_mean_or_family_is_caught():
    init = jaxinit.normal(0.0, 1.0)
    x = init(key(0), (100_000,))
    with pytest.raises(AssertionError, match="KS test rejects"):
        assert_follows(x + 0.05, init)  # a shift of 5% of the std
    same_std = jaxinit.uniform(-math.sqrt(3.0), math.sqrt(3.0))(key(0), (100_000,))
    with pytest.raises(AssertionError, match=r"KS test rejects.*n = 100000"):
        assert_follows(same_std, init)  # the same mean and std, another family
    with pytest.raises(AssertionError, match=r"shape \(100000,\) is not the distribution's"):
        assert_follows(x, init.distribution((1000, 100)))


def test_exact_and_structured_failures_say_what_is_wrong():
    eye = jaxinit.eye()(None, (4, 4))
    with pytest.raises(AssertionError, match=r"1 of 16 entries differ from eye; e.g. at \(0, 1\)"):
        assert_follows(eye.at[0, 1].set(1.0), jaxinit.eye())
    with pytest.raises(AssertionError, match="differ from the constant const"):
        assert_follows(jnp.full((3,), 0.1 + 1e-7), jaxinit.constant(0.1))
    q = jaxinit.orthogonal()(key(0), (32, 64))
    with pytest.raises(
        AssertionError, match=r"32x64 torch view / gain 1 does not have orthonormal rows"
    ):
        assert_follows(q * 1.05, jaxinit.orthogonal())
    conv = jaxinit.orthogonal()(key(0), (16, 8, 3, 3))  # rows: 16 out; cols: 8 in x 9
    assert_follows(conv, jaxinit.orthogonal())
    with pytest.raises(AssertionError, match="3x384 torch view / gain 1 does not have orthonormal"):
        assert_follows(conv, jaxinit.orthogonal(layout="flax"))  # out = 3, in = 3, k = 16 x 8
    w = jaxinit.sparse(0.5)(key(0), (10, 20_000))  # 100k non-zeros
    with pytest.raises(AssertionError, match=r"has 6 zeros, expected exactly 5 in every column"):
        assert_follows(w.at[w[:, 3].argmax(), 3].set(0.0), jaxinit.sparse(0.5))
    with pytest.raises(AssertionError, match=r"non-zero entries: std \S+ is 1\.0[3-7]"):
        assert_follows(w * 1.05, jaxinit.sparse(0.5))
    nan = jnp.full((10,), jnp.nan)
    with pytest.raises(AssertionError, match="10 of 10 entries are not finite"):
        assert_follows(nan, jaxinit.normal())


def test_layout_argument_and_bad_arguments():
    kernel = jaxinit.flax.kaiming_normal()(key(0), (512, 128))  # flax (in, out): fan_in 512
    assert_follows(kernel, jaxinit.kaiming_normal(), layout="flax")
    with pytest.raises(AssertionError, match="std"):
        assert_follows(kernel, jaxinit.kaiming_normal())  # read as torch: fan_in 128
    dist = jaxinit.kaiming_normal().distribution((512, 128))
    with pytest.raises(TypeError, match="carries its own layout"):
        assert_follows(kernel, dist, layout="flax")
    with pytest.raises(TypeError, match="foreign initializer"):
        assert_follows(kernel, jax.nn.initializers.lecun_normal())
    with pytest.raises(ValueError, match="eye: Only tensors with 2 dimensions"):
        assert_follows(jnp.zeros((2, 2, 2)), jaxinit.eye())


def test_false_failure_rate_is_at_most_the_stated_one():
    # 400 correct arrays of 2000 values at false_failure = 2%: the number of failures is
    # Binomial(400, p <= 0.02), mean <= 8; P(>= 19 | p = 0.02) ~ 4e-4 (the odds this fails).
    rng = np.random.default_rng(0)
    for dist, draw in (
        (jaxinit.normal(1.0, 2.0).distribution((2000,)), lambda: rng.normal(1.0, 2.0, 2000)),
        (jaxinit.uniform(-1.0, 3.0).distribution((2000,)), lambda: rng.uniform(-1.0, 3.0, 2000)),
    ):
        failed = 0
        for _ in range(400):
            try:
                assert_follows(draw().astype(np.float32), dist, false_failure=0.02)
            except AssertionError:
                failed += 1
        assert failed < 19, (dist, failed)


# ----------------------------------------------------------------------------
# assert_tree_follows


def test_assert_tree_follows_generic():
    rules = [("*/weight", jaxinit.orthogonal()), ("*/bias", jaxinit.torch_linear_bias(128))]
    tree = {
        "fc": {"weight": jnp.zeros((64, 128)), "bias": jnp.zeros(64)},
        "out": {"weight": jnp.zeros((32, 64)), "bias": jnp.zeros(32), "scale": jnp.zeros(3)},
    }
    tree = jaxinit.reinit(tree, rules, key=key(0))
    assert_tree_follows(tree, rules)
    assert_tree_follows(tree, rules, key=key(0))
    with pytest.raises(AssertionError, match=r"(?s)4 leaf\(s\) do not follow.*'fc/bias' \(rule 1"):
        assert_tree_follows(tree, rules, key=key(1))  # another key: every leaf differs
    bad = {**tree, "fc": {**tree["fc"], "weight": tree["fc"]["weight"] * 1.05}}
    with pytest.raises(
        AssertionError,
        match=r"1 leaf\(s\) do not follow their rule:\n  'fc/weight' \(rule 0, '\*/weight': "
        r"orthogonal\(gain=1, 64x128\)\): the 64x128 torch view",
    ):
        assert_tree_follows(bad, rules)
    with pytest.raises(AssertionError, match=r"'out/scale': matched by no rule"):
        assert_tree_follows(tree, rules, unmatched="error")
    with pytest.raises(ValueError, match="strict=True: these rules matched no leaf"):
        assert_tree_follows(tree, [*rules, ("*/missing", jaxinit.zeros())])
    with pytest.raises(ValueError, match="distribution of a non-jaxinit initializer is unknown"):
        assert_tree_follows(tree, [("*/weight", jax.nn.initializers.orthogonal())])
    # flax-layout reading of a plain dict
    flat = {"k": jaxinit.flax.kaiming_uniform()(key(0), (512, 128))}
    assert_tree_follows(flat, [("k", jaxinit.kaiming_uniform())], layout="flax")
    with pytest.raises(AssertionError):
        assert_tree_follows(flat, [("k", jaxinit.kaiming_uniform())])


class Cnn(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Conv(32, (3, 3))(x)
        x = nn.BatchNorm(use_running_average=not train)(x)
        return nn.Dense(10)(x.reshape(x.shape[0], -1))


def test_assert_tree_follows_linen():
    x = jnp.ones((2, 8, 8, 3))
    variables = jaxinit.flax.init(Cnn(), key(0), x, rules=jaxinit.flax.TORCH_DEFAULTS)
    assert_tree_follows(variables, jaxinit.flax.TORCH_DEFAULTS, model=Cnn(), args=(x,))
    assert_tree_follows(variables, jaxinit.flax.TORCH_DEFAULTS, model=Cnn(), args=(x,), key=key(0))
    # every wrong leaf is listed: the constants exactly; the uniform leaves scaled by 1.1
    # leave their support [-b, b) (the Conv kernel's 864 values included, too few for a
    # statistical test to see a 10% error); zeros stay zeros
    wrong = jax.tree_util.tree_map(lambda v: v * 1.1, variables)
    with pytest.raises(
        AssertionError,
        match=r"(?s)6 leaf\(s\) do not follow.*'batch_stats/BatchNorm_0/var'.*"
        r"'params/BatchNorm_0/scale'.*'params/Conv_0/bias'.*'params/Conv_0/kernel'.*"
        r"outside the support.*'params/Dense_0/kernel'",
    ):
        assert_tree_follows(wrong, jaxinit.flax.TORCH_DEFAULTS, model=Cnn(), args=(x,))


class Tiny(nnx.Module):
    def __init__(self, *, rngs):
        self.embed = nnx.Embed(1000, 64, rngs=rngs)
        self.fc = nnx.Linear(64, 256, rngs=rngs)
        self.norm = nnx.LayerNorm(256, rngs=rngs)


def test_assert_tree_follows_nnx():
    rules = [("embed/*", jaxinit.flax.torch_embedding(padding_idx=0)), *jaxinit.flax.TORCH_DEFAULTS]
    module = jaxinit.flax.init(Tiny, key(0), rules=rules)
    assert_tree_follows(module, rules)
    assert_tree_follows(module, rules, key=key(0))
    with pytest.raises(ValueError, match="layout= is for other pytrees"):
        assert_tree_follows(module, rules, layout="flax")
    eager = Tiny(rngs=nnx.Rngs(0))  # Flax's defaults: lecun normal kernels, normal embedding
    with pytest.raises(AssertionError, match=r"(?s)'embed/embedding'.*padding row 0.*'fc/kernel'"):
        assert_tree_follows(eager, rules)


# ----------------------------------------------------------------------------
# torch_embedding(padding_idx=...), against torch's nn.Embedding


@pytest.mark.parametrize("padding_idx", [0, 7, -1, -1000])
def test_torch_embedding_padding_row_is_zero_and_the_rest_follows_torch(padding_idx):
    num, dim = 1000, 64
    torch.manual_seed(0)
    ref = torch.nn.Embedding(num, dim, padding_idx=padding_idx).weight.detach().numpy()
    row = padding_idx % num
    init = jaxinit.torch_embedding(padding_idx=padding_idx)
    table = np.asarray(init(key(0), (num, dim)))
    assert (table[row] == 0).all() and (ref[row] == 0).all()
    others = np.delete(table, row, axis=0)
    assert (others != 0).all()
    records.assert_ks(others, np.delete(ref, row, axis=0), f"padding_idx={padding_idx}")
    assert_follows(table, init)
    with pytest.raises(AssertionError, match=rf"padding row {row}"):
        assert_follows(jnp.asarray(table).at[row, 0].set(1.0), init)
    # a table drawn without the padding row fails the padded distribution, and vice versa
    with pytest.raises(AssertionError):
        assert_follows(jaxinit.torch_embedding()(key(0), (num, dim)), init)


def test_torch_embedding_padding_idx_out_of_range_as_torch():
    with pytest.raises(AssertionError, match="Padding_idx must be within num_embeddings"):
        torch.nn.Embedding(10, 4, padding_idx=10)
    for bad in (10, -11):
        with pytest.raises(ValueError, match="Padding_idx must be within num_embeddings"):
            jaxinit.torch_embedding(padding_idx=bad)(key(0), (10, 4))
    with pytest.raises(TypeError, match="padding_idx must be an int"):
        jaxinit.torch_embedding(padding_idx=1.5)


def test_torch_embedding_padding_idx_in_flax_rules():
    init = jaxinit.flax.torch_embedding(padding_idx=-2)
    table = init(key(0), (10, 4))  # an Embed table is (num, features) in Flax too
    assert (table[8] == 0).all() and (np.delete(np.asarray(table), 8, axis=0) != 0).all()
    # Linen Embed through jaxinit.flax.init
    model = nn.Embed(500, 128)
    rule = [((nn.Embed, "embedding"), jaxinit.flax.torch_embedding(padding_idx=3))]
    variables = jaxinit.flax.init(model, key(1), jnp.zeros((1, 2), jnp.int32), rules=rule)
    table = variables["params"]["embedding"]
    assert (table[3] == 0).all()
    assert_follows(table, jaxinit.flax.torch_embedding(padding_idx=3))
    # NNX Embed, with the generic plain-glob rule
    module = jaxinit.flax.init(nnx.Embed, key(2), 500, 128, rules=[("embedding", init)])
    assert (module.embedding[...][498] == 0).all()
    assert_follows(module.embedding[...], init)


# ----------------------------------------------------------------------------
# The thresholds themselves: power near them, calibration at them, an independent KS


def _count(messages: list[str], what: str) -> int:
    return sum(what in m for m in messages)


def _messages(init, draws: np.ndarray, false_failure: float) -> list[str]:
    out = []
    for x in draws:
        try:
            assert_follows(x, init, false_failure=false_failure)
        except AssertionError as e:
            out.append(str(e))
    return out


def test_a_3_percent_std_error_at_2e4_values_is_caught_with_the_stated_power():
    # n = 20_480 normal values: the variance has relative SE sqrt(2/n) = 0.99%, and at
    # false_failure = 1e-6 the band is +-5.03 SE (+-2.5% in std). A 3% std error moves the
    # variance by 6.1%, 6.2 SE: caught unless the sample variance comes out 1.1 SE low,
    # power 1 - Phi(-1.1) ~ 0.86. Over 40 seeds at least 24 must fail (binomial(40, 0.86)
    # gives fewer with odds ~1e-6); a band 3 times as wide catches none. A 5% error
    # (10.3 SE, 5.2 beyond the band) is caught by every seed (misses: odds ~1e-7 each).
    init = jaxinit.normal(std=0.02)
    draws = np.asarray(jax.vmap(lambda k: init(k, (20_480,)))(jax.random.split(key(7), 40)))
    assert _count(_messages(init, draws * 1.03, 1e-6), "std ") >= 24
    assert _count(_messages(init, draws * 0.97, 1e-6), "std ") >= 24
    assert _count(_messages(init, draws * 1.05, 1e-6), "std ") == 40
    assert _messages(init, draws, 1e-6) == []


@pytest.mark.parametrize("init", [jaxinit.normal(0.5, 2.0), jaxinit.uniform(-1.0, 3.0)], ids=repr)
def test_correct_draws_fail_at_the_stated_rate(init):
    # 1000 correct draws of n = 1000 at false_failure = 0.05: the KS test and the variance
    # test each get alpha = 0.025. The KS p-value is exact (min(1, 2 x one-sided), at most
    # the two-sided one), the variance band is a Cornish-Fisher quantile: each rejects
    # binomial(1000, ~0.025) times, 25 +- 5. Both counts must lie within the binomial's
    # [1e-5, 1 - 1e-5] quantiles at rate 0.025 (KS: at rate 0.02, as the doubled one-sided
    # tail is a little conservative at n = 1000). A threshold 1e-6 times too strict, or a
    # band 3 times too wide, rejects (almost) never and fails here.
    draws = np.asarray(jax.vmap(lambda k: init(k, (1000,)))(jax.random.split(key(11), 1000)))
    messages = _messages(init, draws, 0.05)
    ks, var = _count(messages, "KS test rejects"), _count(messages, "std ")
    for count, rate in ((ks, 0.02), (var, 0.025)):
        low, high = scipy.stats.binom.ppf([1e-5, 1 - 1e-5], 1000, [rate, 0.025])
        assert low <= count <= high, (count, low, high)


@pytest.mark.parametrize("n", [50, 1000, 20_000])
def test_ks_statistic_and_pvalue_match_scipy_kstest(n):
    from jaxinit._src.testing.ks import ks_statistic

    rng = np.random.default_rng(n)
    for init, scale in ((jaxinit.normal(0.0, 2.0), 2.1), (jaxinit.uniform(-1.0, 1.0), 1.02)):
        dist = init.distribution((n,), jnp.float64 if jax.config.jax_enable_x64 else None)
        x = rng.standard_normal(n) * scale if "N(" in repr(dist) else rng.uniform(-1, 1, n)
        x = x.astype(np.float32)
        d, m = ks_statistic(x, dist)
        ref = scipy.stats.kstest(x.astype(np.float64), dist.cdf)
        assert m == n and d == pytest.approx(ref.statistic, rel=1e-9, abs=1e-12)
        exact = float(scipy.stats.kstwo.sf(d, n))
        assert ks_pvalue(d, n) >= exact * (1 - 1e-9)  # never anti-conservative
        if exact < 1e-3:  # the two one-sided tails barely overlap there
            assert ks_pvalue(d, n) == pytest.approx(exact, rel=1e-3)


# ----------------------------------------------------------------------------
# Exact supports, non-finite values


@pytest.mark.parametrize(
    "init",
    [
        jaxinit.normal(),
        jaxinit.uniform(-1.0, 1.0),
        jaxinit.kaiming_uniform(),
        jaxinit.xavier_normal(),
    ],
    ids=repr,
)
def test_a_column_of_inf_or_nan_fails(init):
    x = np.array(init(key(0), (64, 128)))
    for bad in (np.inf, -np.inf, np.nan):
        y = x.copy()
        y[:, 5] = bad
        with pytest.raises(AssertionError, match=r"64 of 8192 entries are not finite.*\(0, 5\)"):
            assert_follows(y, init)
    w = np.array(jaxinit.sparse(0.5)(key(0), (64, 128)))
    w[w != 0] = np.inf
    with pytest.raises(AssertionError, match="not finite"):
        assert_follows(w, jaxinit.sparse(0.5))


def test_values_beyond_the_support_fail():
    init = jaxinit.uniform(-1.0, 1.0)
    x = np.array(init(key(0), (1000, 1000)))
    x.ravel()[:1000] = 1.01  # 0.1%: too few for KS or the variance to see
    with pytest.raises(AssertionError, match=r"1000 of 1000000 entries lie outside the support"):
        assert_follows(x, init)
    # U[a, b) never reaches b, in any dtype (torch: bfloat16 draws rounding up to b go to a)
    for dtype in (jnp.float32, jnp.bfloat16, jnp.float16):
        y = np.array(init(key(1), (1000,), dtype))
        assert_follows(y, init)
        y[3] = 1.0
        with pytest.raises(AssertionError, match="outside the support"):
            assert_follows(y, init)
    tn = jaxinit.trunc_normal(0.0, 1.0, -0.5, 0.5)
    z = np.array(tn(key(2), (4096,)))
    assert_follows(z, tn)
    z[7] = 0.5 + 1e-3
    with pytest.raises(AssertionError, match=r"1 of 4096 entries lie outside the support"):
        assert_follows(z, tn)


def test_the_rounded_support_is_torchs():
    # torch's bfloat16 uniform_(-0.1, 0.1) over 10^7 values: min = bf16(-0.1), max = the
    # value below bf16(0.1), never bf16(0.1) itself; our support says the same
    torch.manual_seed(0)
    t = torch.empty(10**7, dtype=torch.bfloat16).uniform_(-0.1, 0.1)
    lo, hi = jaxinit.uniform(-0.1, 0.1).distribution((3,), jnp.bfloat16).support
    assert float(t.min()) == lo and float(t.max()) == hi
    lo32, hi32 = jaxinit.uniform(-0.1, 0.1).distribution((3,)).support
    assert hi32 == float(np.nextafter(np.float32(0.1), np.float32(0))) and lo32 == float(
        np.float32(-0.1)
    )
