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
