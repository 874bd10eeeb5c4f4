"""``Distribution``, ``explain`` (generic, Linen, NNX) and coverage (``unmatched=``, abstract leaves).

Distributions are checked against the stated math and scipy; ``explain``
against what ``reinit``/``init`` then do (every matched leaf of a real init
follows the distribution its row shows), and for doing nothing: no XLA
compile happens while it runs.
"""

from __future__ import annotations

import math

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from flax import nnx

import jaxinit
import jaxinit.flax
from jaxinit.testing import assert_follows
from tests.helpers import count_compiles

KEY = jax.random.key(7)


# ----------------------------------------------------------------------------
# Distribution: reprs, moments, support, cdf


def test_distribution_repr_examples():
    assert repr(jaxinit.torch_linear_weight().distribution((64, 256))) == "U(-0.0625, 0.0625)"
    assert repr(jaxinit.kaiming_uniform(a=math.sqrt(5)).distribution((64, 256))) == (
        "U(-0.0625, 0.0625)"
    )
    cases = {
        "N(mean=0, std=0.125)": jaxinit.kaiming_normal(nonlinearity="linear").distribution((8, 64)),
        "TruncN(mean=0, std=0.02, a=-0.04, b=0.04)": jaxinit.trunc_normal(
            std=0.02, a=-0.04, b=0.04
        ).distribution((3,)),
        "const(0.5)": jaxinit.constant(0.5).distribution((3,), jnp.bfloat16),
        "const(1)": jaxinit.ones().distribution((2, 2), jnp.int32),
        "eye": jaxinit.eye().distribution((3, 4)),
        "dirac(groups=2)": jaxinit.dirac(2).distribution((4, 2, 3)),
        "orthogonal(gain=2, 64x96)": jaxinit.orthogonal(2.0).distribution((64, 32, 3)),
        "sparse(3 zeros per column, std=0.01)": jaxinit.sparse(0.3).distribution((10, 5)),
        "U(-0.125, 0.125) + U(-0.125, 0.125)": jaxinit.torch_rnn(64, terms=2).distribution((256,)),
        "N(mean=0, std=1), row 9 zero": jaxinit.torch_embedding(padding_idx=-1).distribution(
            (10, 4)
        ),
    }
    for text, dist in cases.items():
        assert repr(dist) == text


def test_distribution_layout_and_fans():
    # the same conv: torch (out, in, kh, kw) and flax (kh, kw, in, out) give one distribution
    torch_d = jaxinit.kaiming_uniform().distribution((64, 32, 3, 3))
    flax_d = jaxinit.flax.kaiming_uniform().distribution((3, 3, 32, 64))
    assert repr(torch_d) == repr(flax_d)
    bound = math.sqrt(2.0) * math.sqrt(3.0 / (32 * 9))  # gain sqrt(2/(1+0)), fan_in 288
    assert torch_d.params["high"] == pytest.approx(bound, rel=1e-12)
    assert flax_d.layout == jaxinit.FLAX and torch_d.layout == jaxinit.TORCH


@pytest.mark.parametrize(
    "init, shape, mean, std, support",
    [
        (jaxinit.uniform(-1.0, 3.0), (5,), 1.0, 4 / math.sqrt(12), (-1.0, 3.0)),
        (jaxinit.normal(0.5, 2.0), (5,), 0.5, 2.0, (-math.inf, math.inf)),
        (jaxinit.constant(-2.5), (5,), -2.5, 0.0, (-2.5, -2.5)),
        # sum of two U(-b, b), b = 1/8: triangular on [-1/4, 1/4], variance 2 b^2 / 3
        (jaxinit.torch_rnn(64, terms=2), (5,), 0.0, math.sqrt(2 / 3) / 8, (-0.25, 0.25)),
        # orthogonal: E[x^2] = gain^2 / max(rows, cols)
        (jaxinit.orthogonal(3.0), (16, 64), 0.0, 3.0 / 8.0, (-3.0, 3.0)),
        (jaxinit.sparse(0.5, std=0.2), (16, 64), 0.0, 0.2, (-math.inf, math.inf)),
    ],
    ids=["uniform", "normal", "constant", "uniform_sum", "orthogonal", "sparse"],
)
def test_distribution_moments_match_the_stated_math(init, shape, mean, std, support):
    d = init.distribution(shape)
    assert d.mean == pytest.approx(mean, abs=1e-15)
    assert d.std == pytest.approx(std, rel=1e-12)
    assert d.support == pytest.approx(support)


@pytest.mark.parametrize(
    "mean, std, a, b",
    [
        (0.0, 1.0, -2.0, 2.0),
        (0.0, 0.02, -2.0, 2.0),  # torch's absolute bounds: nothing is cut
        (0.3, 1.0, 0.0, math.inf),  # half-normal-like
        (0.0, 1.0, 8.0, 9.0),  # 8 to 9 std
        (0.0, 0.02, 0.5, 1.0),  # 25 to 50 std
        (0.0, 1.0, -math.inf, -30.0),  # left tail, 30 std
    ],
)
@pytest.mark.filterwarnings("ignore:mean is more than 2 std")  # torch's far-tail warning
def test_trunc_normal_moments_and_cdf_match_scipy(mean, std, a, b):
    d = jaxinit.trunc_normal(mean, std, a, b).distribution((4,))
    ref = scipy.stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
    assert d.mean == pytest.approx(float(ref.mean()), rel=1e-9, abs=1e-12)
    assert d.std == pytest.approx(float(ref.std()), rel=1e-6)
    assert d.support == (a, b)
    lo, hi = (ref.ppf(1e-9), ref.ppf(1 - 1e-9))
    x = np.concatenate([np.linspace(lo, hi, 501), [a - 1.0, b + 1.0] if math.isfinite(a) else []])
    x = x[np.isfinite(x)]
    np.testing.assert_allclose(d.cdf(x), ref.cdf(x), rtol=1e-8, atol=1e-13)
    # the tail mass near the upper end, relative (1 - cdf is tiny there)
    upper = np.linspace(ref.ppf(0.999), hi, 50)
    np.testing.assert_allclose(1 - d.cdf(upper), ref.sf(upper), rtol=1e-5, atol=1e-14)


def test_iid_cdfs_match_scipy():
    x = np.linspace(-3.0, 3.0, 1201)
    uniform = jaxinit.uniform(-0.5, 1.5).distribution((3,))
    np.testing.assert_allclose(uniform.cdf(x), scipy.stats.uniform(-0.5, 2.0).cdf(x), atol=1e-15)
    normal = jaxinit.normal(0.25, 0.75).distribution((3,))
    np.testing.assert_allclose(normal.cdf(x), scipy.stats.norm(0.25, 0.75).cdf(x), rtol=1e-12)
    # torch_rnn(H, terms=2): U(-b, b) + U(-b, b) is triangular on [-2b, 2b] with mode 0
    b = 1 / math.sqrt(16)
    tri = jaxinit.torch_rnn(16, terms=2).distribution((3,))
    ref = scipy.stats.triang(0.5, loc=-2 * b, scale=4 * b)
    np.testing.assert_allclose(tri.cdf(x), ref.cdf(x), atol=1e-14)
    const = jaxinit.constant(0.5).distribution((3,))
    np.testing.assert_array_equal(const.cdf(np.array([0.4999, 0.5, 0.6])), [0.0, 1.0, 1.0])
    # kaiming_uniform's bounds, checked against the formula of torch.nn.init
    ku = jaxinit.kaiming_uniform(nonlinearity="relu").distribution((128, 512))
    bound = math.sqrt(2.0) * math.sqrt(3.0 / 512)
    np.testing.assert_allclose(ku.cdf(x), scipy.stats.uniform(-bound, 2 * bound).cdf(x), atol=1e-14)


@pytest.mark.parametrize(
    "dist",
    [
        jaxinit.eye().distribution((3, 3)),
        jaxinit.dirac().distribution((4, 4, 3)),
        jaxinit.orthogonal().distribution((4, 8)),
        jaxinit.sparse(0.5).distribution((4, 8)),
        jaxinit.torch_rnn(8, terms=(2, 2, 1)).distribution((24,)),
        jaxinit.torch_embedding(padding_idx=0).distribution((10, 4)),
    ],
    ids=repr,
)
def test_structured_distributions_have_no_per_entry_cdf(dist):
    assert not dist.is_iid
    with pytest.raises(TypeError, match="not iid"):
        dist.cdf(0.0)


def test_deterministic_distributions_have_no_std_where_meaningless():
    with pytest.raises(AttributeError, match="no entry std"):
        _ = jaxinit.eye().distribution((3, 3)).std
    assert not jaxinit.dirac().distribution((4, 4, 3)).is_random
    assert jaxinit.orthogonal().distribution((4, 4)).is_random


# ----------------------------------------------------------------------------
# explain: generic pytrees


def test_explain_generic_rows_and_table():
    params = {
        "dense": {"weight": jnp.zeros((64, 256)), "bias": jnp.zeros(64)},
        "norm": {"scale": jnp.zeros(64)},
        "step": jnp.zeros((), jnp.int32),  # not floating-point: no row
    }
    rules = [
        ("*/weight", jaxinit.torch_linear_weight()),
        ("*/bias", jaxinit.torch_linear_bias(256)),
        ("*/head/*", jaxinit.zeros()),
        jaxinit.Rule("*/other/*", jaxinit.ones(), optional=True),
    ]
    ex = jaxinit.explain(params, rules)
    assert [r.path for r in ex] == ["dense/bias", "dense/weight", "norm/scale"]
    bias, weight, scale = ex
    assert (bias.rule, bias.selector, bias.init) == (
        1,
        "'*/bias'",
        "jaxinit.torch_linear_bias(fan_in=256)",
    )
    assert repr(bias.distribution) == "U(-0.0625, 0.0625)" and bias.matched
    assert weight.shape == (64, 256) and weight.dtype == np.float32
    assert weight.layout == jaxinit.TORCH
    assert not scale.matched and scale.rule is None and scale.distribution is None
    assert ex.unmatched == (scale,)
    assert ex.row("dense/weight") is weight
    with pytest.raises(KeyError):
        ex.row("step")
    # the non-optional rule that matched nothing is listed (the optional one is not)
    assert len(ex.unused_rules) == 1 and ex.unused_rules[0].startswith("rule 2 ('*/head/*'")
    assert (
        str(ex)
        == repr(ex)
        == (
            "path          shape      dtype    rule  selector    init                                   distribution\n"
            "dense/bias    (64,)      float32  1     '*/bias'    jaxinit.torch_linear_bias(fan_in=256)  U(-0.0625, 0.0625)\n"
            "dense/weight  (64, 256)  float32  0     '*/weight'  jaxinit.torch_linear_weight()          U(-0.0625, 0.0625)\n"
            "norm/scale    (64,)      float32  -     -           -                                      -\n"
            "1 of 3 floating-point leaves matched no rule: 'norm/scale'\n"
            "matched no leaf: rule 2 ('*/head/*' -> jaxinit.zeros()): no leaf matches it"
        )
    )


def test_explain_layout_changes_the_fans_and_explicit_layout_wins():
    tree = {"w": jax.ShapeDtypeStruct((256, 64), jnp.float32)}  # abstract leaves are fine
    torch_row = jaxinit.explain(tree, [("w", jaxinit.kaiming_normal())])[0]
    flax_row = jaxinit.explain(tree, [("w", jaxinit.kaiming_normal())], layout="flax")[0]
    assert torch_row.distribution.std == pytest.approx(math.sqrt(2 / 64))
    assert flax_row.distribution.std == pytest.approx(math.sqrt(2 / 256))
    explicit = jaxinit.explain(tree, [("w", jaxinit.kaiming_normal(layout="torch"))], layout="flax")
    assert explicit[0].distribution.std == pytest.approx(math.sqrt(2 / 64))
    assert "layout='torch'" in explicit[0].init
    assert explicit[0].layout == jaxinit.TORCH and flax_row.layout == jaxinit.FLAX


def test_explain_shows_what_reinit_would_refuse():
    tree = {"w3": jnp.zeros((2, 3, 4)), "w": jnp.zeros((3, 3))}
    rules = [("w*", jaxinit.eye())]
    ex = jaxinit.explain(tree, rules)
    assert ex.errors == (ex.row("w3"),)
    assert "eye: Only tensors with 2 dimensions" in ex.row("w3").error
    assert "error: eye: Only tensors" in str(ex)
    with pytest.raises(ValueError, match="eye: Only tensors with 2 dimensions"):
        jaxinit.reinit(tree, rules, key=KEY)


def test_explain_equinox_class_selectors_and_foreign_initializers():
    model = eqx.nn.MLP(4, 2, 8, depth=1, key=jax.random.key(0))
    rules = [
        ((eqx.nn.Linear, "weight"), jaxinit.orthogonal()),
        ((eqx.nn.Linear, "bias"), jax.nn.initializers.zeros),
    ]
    ex = jaxinit.explain(model, rules)
    assert [r.path for r in ex] == [
        "layers/0/weight",
        "layers/0/bias",
        "layers/1/weight",
        "layers/1/bias",
    ]
    assert ex[0].selector == "(Linear, 'weight')"
    assert repr(ex[0].distribution) == "orthogonal(gain=1, 8x4)"
    assert ex[1].distribution is None and ex[1].init == "jax.nn.initializers.zeros"


def test_explain_draws_and_compiles_nothing():
    params = {"a": {"kernel": jnp.zeros((32, 16)), "bias": jnp.zeros(32)}}
    x = jnp.ones((1, 5))
    linen = nn.Sequential([nn.Dense(8), nn.BatchNorm(use_running_average=True), nn.Dense(3)])

    class Net(nnx.Module):
        def __init__(self, *, rngs):
            self.a = nnx.Linear(5, 7, rngs=rngs)
            self.drop = nnx.Dropout(0.5, rngs=rngs)

    with count_compiles() as compiles:
        jaxinit.explain(params, [("*", jaxinit.orthogonal())])
        jaxinit.flax.explain(linen, jaxinit.flax.TORCH_DEFAULTS, x)
        jaxinit.flax.explain(Net, jaxinit.flax.TORCH_DEFAULTS)
        jaxinit.flax.explain(nnx.Linear, jaxinit.flax.TORCH_DEFAULTS, 64, 32)
    assert compiles[0] == 0


# ----------------------------------------------------------------------------
# explain: Flax


class Block(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Embed(50, 16)(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=2)(x, x)
        x = nn.LayerNorm()(x)
        return nn.Dense(4)(x)


def test_flax_explain_linen_model_rows_follow_what_init_draws():
    tokens = jnp.zeros((1, 6), jnp.int32)
    rules = [("*/Dense_0/bias", jaxinit.flax.zeros()), *jaxinit.flax.TORCH_DEFAULTS]
    ex = jaxinit.flax.explain(Block(), rules, tokens)
    assert not ex.unmatched and not ex.unused_rules and not ex.errors
    rows = {r.path: r for r in ex}
    assert rows["params/Dense_0/bias"].rule == 0
    assert repr(rows["params/Dense_0/kernel"].distribution) == "U(-0.25, 0.25)"  # 1/sqrt(16)
    assert repr(rows["params/Embed_0/embedding"].distribution) == "N(mean=0, std=1)"
    # query/key/value: xavier on torch's packed (3E, E) weight: sqrt(6 / (E + 3E)) = 0.306186
    query = rows["params/MultiHeadDotProductAttention_0/query/kernel"]
    assert repr(query.distribution) == "U(-0.306186, 0.306186)"
    assert query.selector == "(attention, 'query/kernel')"  # the registry's kind
    assert query.init == "jaxinit.torch_mha_in_proj()"  # num_packed=3, the default
    assert query.layout == jaxinit.Layout(in_axis=(-3,), out_axis=(-2, -1))  # (in, heads, hd)
    # what init then draws follows every row
    variables = jaxinit.flax.init(Block(), KEY, tokens, rules=rules)
    flat = {
        "/".join(str(k.key) for k in kp): v
        for kp, v in jax.tree_util.tree_leaves_with_path(variables)
    }
    for row in ex:
        assert_follows(flat[row.path], row.distribution, false_failure=1e-9)
    # the same rows for the variables dict, given the model
    again = jaxinit.flax.explain(variables, rules, tokens, model=Block())
    assert [(r.path, repr(r.distribution)) for r in again] == [
        (r.path, repr(r.distribution)) for r in ex
    ]


def test_flax_explain_linen_table():
    model = nn.Sequential([nn.Dense(8), nn.BatchNorm(use_running_average=True)])
    ex = jaxinit.flax.explain(model, jaxinit.flax.TORCH_DEFAULTS, jnp.ones((1, 3)))
    assert str(ex) == (
        "path                       shape   dtype    rule  selector                                  init                                 distribution\n"
        "batch_stats/layers_1/mean  (8,)    float32  19    ((norm | eqx_norm), 'mean')               jaxinit.zeros()                      const(0)\n"
        "batch_stats/layers_1/var   (8,)    float32  20    ((norm | eqx_norm), 'var')                jaxinit.ones()                       const(1)\n"
        "params/layers_0/bias       (8,)    float32  13    ((dense | dense_general | +5), 'bias')    jaxinit.torch_linear_bias(fan_in=3)  U(-0.57735, 0.57735)\n"
        "params/layers_0/kernel     (3, 8)  float32  11    ((dense | dense_general | +5), 'kernel')  jaxinit.torch_linear_weight()        U(-0.57735, 0.57735)\n"
        "params/layers_1/bias       (8,)    float32  18    ((norm | eqx_norm), 'bias')               jaxinit.zeros()                      const(0)\n"
        "params/layers_1/scale      (8,)    float32  16    ((norm | eqx_norm), 'scale')              jaxinit.ones()                       const(1)"
    )
    # long cells are cut in the middle, so the parameter name stays visible
    long = "*" * 60 + "Dense_0/kernel"
    tokens = jnp.zeros((1, 6), jnp.int32)
    wide = jaxinit.flax.explain(Block(), [(long, jaxinit.flax.zeros())], tokens)
    (line,) = [x for x in str(wide).splitlines() if x.startswith("params/Dense_0/kernel")]
    assert "..." in line and "Dense_0/kernel'" in line


class Mlp(nnx.Module):
    def __init__(self, din, dout, *, rngs):
        self.layers = nnx.List([nnx.Linear(din, 8, rngs=rngs), nnx.Linear(8, dout, rngs=rngs)])
        self.bn = nnx.BatchNorm(dout, rngs=rngs)
        self.drop = nnx.Dropout(0.1, rngs=rngs)


def test_flax_explain_nnx_class_and_module_agree():
    rules = [("layers/1/kernel", jaxinit.flax.zeros()), *jaxinit.flax.TORCH_DEFAULTS]
    of_class = jaxinit.flax.explain(Mlp, rules, 3, 2)
    of_module = jaxinit.flax.explain(Mlp(3, 2, rngs=nnx.Rngs(0)), rules)
    assert [dataclass_tuple(r) for r in of_class] == [dataclass_tuple(r) for r in of_module]
    assert str(of_class) == (
        "path             shape   dtype    rule  selector                                  init                                 distribution\n"
        "bn/bias          (2,)    float32  19    ((norm | eqx_norm), 'bias')               jaxinit.zeros()                      const(0)\n"
        "bn/mean          (2,)    float32  20    ((norm | eqx_norm), 'mean')               jaxinit.zeros()                      const(0)\n"
        "bn/scale         (2,)    float32  17    ((norm | eqx_norm), 'scale')              jaxinit.ones()                       const(1)\n"
        "bn/var           (2,)    float32  21    ((norm | eqx_norm), 'var')                jaxinit.ones()                       const(1)\n"
        "layers/0/bias    (8,)    float32  14    ((dense | dense_general | +5), 'bias')    jaxinit.torch_linear_bias(fan_in=3)  U(-0.57735, 0.57735)\n"
        "layers/0/kernel  (3, 8)  float32  12    ((dense | dense_general | +5), 'kernel')  jaxinit.torch_linear_weight()        U(-0.57735, 0.57735)\n"
        "layers/1/bias    (2,)    float32  14    ((dense | dense_general | +5), 'bias')    jaxinit.torch_linear_bias(fan_in=8)  U(-0.353553, 0.353553)\n"
        "layers/1/kernel  (8, 2)  float32  0     'layers/1/kernel'                         jaxinit.flax.zeros()                 const(0)"
    )


def dataclass_tuple(row):
    return (
        row.path,
        row.shape,
        str(row.dtype),
        row.rule,
        row.selector,
        row.init,
        repr(row.distribution),
    )


def test_flax_explain_rejects_what_it_cannot_read():
    with pytest.raises(TypeError, match="expected a Linen model"):
        jaxinit.flax.explain(3, jaxinit.flax.TORCH_DEFAULTS)


# ----------------------------------------------------------------------------
# Coverage: unmatched="error", and abstract leaves are drawn or refused


def test_generic_reinit_unmatched_error_lists_the_paths():
    tree = {"a": jnp.zeros(3), "b": {"c": jnp.zeros(2), "d": jnp.zeros(2, jnp.int32)}}
    with pytest.raises(ValueError, match=r"unmatched='error'.*'b/c'") as info:
        jaxinit.reinit(tree, [("a", jaxinit.ones())], key=KEY, unmatched="error")
    assert "'a'" not in str(info.value) and "'b/d'" not in str(info.value)  # int: not a candidate
    out = jaxinit.reinit(tree, [("*", jaxinit.ones())], key=KEY, unmatched="error")
    assert out["b"]["d"] is tree["b"]["d"]
    kept = jaxinit.reinit(tree, [("a", jaxinit.ones())], key=KEY)
    assert kept["b"]["c"] is tree["b"]["c"]
    with pytest.raises(ValueError, match="unmatched must be 'keep' or 'error'"):
        jaxinit.reinit(tree, [("a", jaxinit.ones())], key=KEY, unmatched="warn")


def test_linen_init_and_reinit_unmatched_error():
    model = nn.Sequential([nn.Dense(4), nn.LayerNorm()])
    x = jnp.ones((1, 3))
    rules = [((nn.Dense, "*"), jaxinit.flax.zeros())]
    with pytest.raises(ValueError, match=r"params/layers_1/bias.*params/layers_1/scale"):
        jaxinit.flax.init(model, KEY, x, rules=rules, unmatched="error")
    variables = model.init(KEY, x)
    with pytest.raises(ValueError, match=r"no rule covers these floating-point leaves"):
        jaxinit.flax.reinit(variables, rules, key=KEY, model=model, args=(x,), unmatched="error")
    full = jaxinit.flax.init(model, KEY, x, rules=jaxinit.flax.TORCH_DEFAULTS, unmatched="error")
    assert (full["params"]["layers_1"]["scale"] == 1).all()


def test_nnx_reinit_and_init_unmatched_error():
    rules = [((nnx.Linear, "*"), jaxinit.flax.zeros())]
    with pytest.raises(ValueError, match=r"bn/bias.*bn/mean.*bn/scale.*bn/var"):
        jaxinit.flax.reinit(Mlp(3, 2, rngs=nnx.Rngs(0)), rules, key=KEY, unmatched="error")
    with pytest.raises(ValueError, match=r"no rule covers.*bn/bias"):
        jaxinit.flax.init(Mlp, KEY, 3, 2, rules=rules, unmatched="error")
    module = jaxinit.flax.init(Mlp, KEY, 3, 2, rules=jaxinit.flax.TORCH_DEFAULTS, unmatched="error")
    assert (module.bn.var[...] == 1).all()


def test_abstract_leaves_are_drawn_or_refused():
    # generic
    tree = {
        "w": jax.ShapeDtypeStruct((4, 3), jnp.float32),
        "b": jax.ShapeDtypeStruct((4,), jnp.float32),
    }
    with pytest.raises(ValueError, match=r"abstract \(ShapeDtypeStruct\) leaves.*'b'"):
        jaxinit.reinit(tree, [("w", jaxinit.ones())], key=KEY)
    out = jaxinit.reinit(tree, [("*", jaxinit.ones())], key=KEY)
    assert all(isinstance(v, jax.Array) for v in jax.tree_util.tree_leaves(out))
    # Linen: the abstract variables of model.init
    model = nn.Dense(4)
    abstract = jax.eval_shape(model.init, KEY, jnp.ones((1, 3)))
    with pytest.raises(ValueError, match=r"abstract.*params/bias"):
        jaxinit.flax.reinit(abstract, [("*/kernel", jaxinit.flax.ones())], key=KEY)
    drawn = jaxinit.flax.reinit(
        abstract, jaxinit.flax.TORCH_DEFAULTS, key=KEY, model=model, args=(jnp.ones((1, 3)),)
    )
    assert isinstance(drawn["params"]["bias"], jax.Array)
    # NNX: nnx.eval_shape; the RNG state is abstract too, so only jaxinit.flax.init can build it
    linear = nnx.eval_shape(lambda: nnx.Linear(3, 4, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"abstract.*'bias'"):
        jaxinit.flax.reinit(linear, [("kernel", jaxinit.flax.ones())], key=KEY)
    linear = jaxinit.flax.reinit(linear, jaxinit.flax.TORCH_DEFAULTS, key=KEY)
    assert isinstance(linear.kernel[...], jax.Array)
    mlp = nnx.eval_shape(lambda: Mlp(3, 2, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match=r"abstract.*drop/rngs/key.*jaxinit.flax.init"):
        jaxinit.flax.reinit(mlp, jaxinit.flax.TORCH_DEFAULTS, key=KEY)
