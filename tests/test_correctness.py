"""Every input torch accepts works, nothing is silently wrong, nothing is lost.

Each section is one class of defect, tested at its root: against torch where torch
defines the behaviour, against scipy or stated math elsewhere.
"""

from __future__ import annotations

import math
import re
import warnings

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.init as tinit
from flax import nnx

import jaxinit
import jaxinit.flax
from tests import records as R

KEY = jax.random.key(0)
N = 40_000  # values per KS comparison (KS_ALPHA = 1e-3 per test, fixed seeds)


# ----------------------------------------------------------------------------
# trunc_normal: exact far tails, infinite bounds, a == b


# (mean, std, a, b): intervals 12 to 100 std from the mean, either side, and wide ones
FAR = [
    (0.0, 0.02, 0.5, 1.0),  # the example: 25 to 50 std
    (0.0, 1.0, 12.0, 13.0),
    (0.0, 1.0, 30.0, 31.0),
    (0.0, 1.0, -31.0, -30.0),
    (1.0, 2.0, -99.0, -59.0),  # -50 to -30 std
    (0.0, 1.0, 40.0, 100.0),
    (0.0, 1.0, 35.0, math.inf),
    (0.0, 1.0, -math.inf, -35.0),
    (0.0, 1.0, -3.0, 2.0),
    (0.0, 1.0, 0.0, math.inf),  # a half-normal
    (0.0, 1.0, -math.inf, math.inf),
]


def _standardized_ks(x: np.ndarray, mean: float, std: float, a: float, b: float) -> float:
    z = (np.asarray(x, np.float64).ravel() - mean) / std
    dist = scipy.stats.truncnorm((a - mean) / std, (b - mean) / std)
    return scipy.stats.kstest(z, dist.cdf).pvalue


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("mean,std,a,b", FAR, ids=str)
def test_trunc_normal_far_tails_follow_scipys_truncnorm(mean, std, a, b, jit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "mean is more than 2 std" warning
        init = jaxinit.trunc_normal(mean, std, a, b)
    draw = jax.jit(lambda k: init(k, (N,))) if jit else (lambda k: init(k, (N,)))
    x = np.asarray(draw(KEY))
    assert np.isfinite(x).all() and (x >= a).all() and (x <= b).all()
    for bound in (a, b):  # the old failure: every draw was the bound
        assert (x == np.float32(bound)).mean() < 0.01, f"draws collapse onto {bound}"
    p = _standardized_ks(x, mean, std, a, b)
    assert p > R.KS_ALPHA, p


def test_trunc_normal_float64_up_to_1000_std(x64):
    with pytest.warns(UserWarning, match="more than 2 std"):
        init = jaxinit.trunc_normal(0.0, 1.0, -1000.0, -999.0)
    x = np.asarray(init(KEY, (N,), jnp.float64))
    assert x.dtype == np.float64 and (x >= -1000).all() and (x <= -999).all()
    # the mass sits within a few 1/1000 of the upper bound: an exponential of rate ~999.5
    gap = -999.0 - x
    assert abs(gap.mean() - 1 / 999.5) < 5 * (1 / 999.5) / math.sqrt(N)
    assert _standardized_ks(x, 0.0, 1.0, -1000.0, -999.0) > R.KS_ALPHA


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("mean,std,a,b", FAR[:5], ids=str)
def test_trunc_normal_16_bit_is_the_float32_draw_rounded(mean, std, a, b, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        init = jaxinit.trunc_normal(mean, std, a, b)
    half = np.asarray(init(KEY, (N,), R.JAX_DTYPES[dtype]))
    full = np.asarray(init(KEY, (N,), jnp.float32))
    np.testing.assert_array_equal(half, full.astype(R.JAX_DTYPES[dtype]))
    assert np.isfinite(half.astype(np.float32)).all()


def test_trunc_normal_far_tail_matches_torch_where_torch_is_right():
    # 12 std: torch (erfinv in float64 here) still resolves it; both follow truncnorm
    torch.manual_seed(0)
    w = torch.empty(N, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tinit.trunc_normal_(w, 0.0, 1.0, 12.0, 13.0)
        ours = np.asarray(jaxinit.trunc_normal(0.0, 1.0, 12.0, 13.0)(KEY, (N,)))
    R.assert_ks(ours, w.numpy(), "trunc_normal [12, 13]")


def test_trunc_normal_half_normal_and_constant_as_torch():
    torch.manual_seed(1)
    w = torch.empty(N)
    tinit.trunc_normal_(w, 0.0, 1.0, 0.0, math.inf)
    ours = np.asarray(jaxinit.trunc_normal(0.0, 1.0, 0.0, math.inf)(KEY, (N,)))
    R.assert_ks(ours, w.numpy(), "half-normal")
    # a == b: torch returns the constant a
    w = tinit.trunc_normal_(torch.empty(5), 0.0, 1.0, 0.7, 0.7).numpy()
    ours = np.asarray(jaxinit.trunc_normal(0.0, 1.0, 0.7, 0.7)(KEY, (5,)))
    np.testing.assert_array_equal(ours, w)


def test_trunc_normal_distribution_moments_are_scipys():
    for mean, std, a, b in FAR:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = jaxinit.trunc_normal(mean, std, a, b).distribution((3,))
        ref = scipy.stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)
        assert d.mean == pytest.approx(float(ref.mean()), rel=1e-6, abs=1e-9)
        assert d.std == pytest.approx(float(ref.std()), rel=1e-4)


# ----------------------------------------------------------------------------
# uniform keeps [a, b) in every dtype


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float32"])
@pytest.mark.parametrize("a,b", [(0.0, 1.0), (-1.0, 1.0), (2.0, 3.0), (-0.3, 0.1)])
def test_uniform_is_half_open_in_every_dtype(a, b, dtype):
    dt = R.JAX_DTYPES[dtype]
    x = np.asarray(jaxinit.uniform(a, b)(KEY, (200_000,), dt)).astype(np.float64)
    hi = float(np.asarray(b, dt).astype(np.float64))  # b as the dtype holds it
    lo = float(np.asarray(a, dt).astype(np.float64))
    assert x.max() < hi and x.min() >= lo, (x.min(), x.max(), lo, hi)
    # still uniform: KS against torch's draws in the same dtype
    torch.manual_seed(2)
    w = torch.empty(200_000, dtype=R.TORCH_DTYPES[dtype])
    tinit.uniform_(w, a, b)
    R.assert_ks(x, w.float().numpy(), f"uniform({a}, {b}) {dtype}")


def test_kaiming_uniform_in_bfloat16_stays_inside_its_bound():
    shape = (64, 3)  # bound sqrt(6/3)/sqrt(1 + 0) ... many values round to the bound in bf16
    w = np.asarray(jaxinit.kaiming_uniform()(KEY, shape, jnp.bfloat16)).astype(np.float64)
    bound = float(np.asarray(math.sqrt(6.0 / 3.0 / (1 + 0.0)), jnp.bfloat16))
    assert (w < bound).all() and (w >= -bound).all()


# ----------------------------------------------------------------------------
# shapes: any sequence of ints, as jax.nn


@pytest.mark.parametrize(
    "shape",
    [(4, 3), [4, 3], np.array([4, 3]), jnp.array([4, 3]), (np.int64(4), np.int32(3))],
    ids=["tuple", "list", "numpy", "jax", "numpy ints"],
)
def test_shape_as_any_sequence_of_ints(shape):
    want = jaxinit.kaiming_normal()(KEY, (4, 3))
    chex.assert_trees_all_equal(jaxinit.kaiming_normal()(KEY, shape), want)
    ref = jax.nn.initializers.normal()(KEY, shape)  # jax.nn reads it the same way
    assert ref.shape == (4, 3)


@pytest.mark.parametrize(
    "shape,match",
    [
        (np.array([4.0, 3.0]), "concrete ints"),
        (np.zeros((2, 2), np.int32), "concrete ints"),
        ((4, True), "sequence of ints"),
        ("43", "sequence of ints"),
        ((4, 3.0), "concrete ints"),
    ],
)
def test_bad_shapes_are_rejected_clearly(shape, match):
    with pytest.raises(TypeError, match=match):
        jaxinit.normal()(KEY, shape)


def test_a_float_weight_gives_its_shape_to_the_fan_functions():
    w = np.zeros((64, 32, 3, 3), np.float32)
    assert jaxinit.calculate_fan_in_and_fan_out(w) == tinit._calculate_fan_in_and_fan_out(
        torch.from_numpy(w)
    )
    # an integer array is a shape (its values)
    assert jaxinit.calculate_fan_in_and_fan_out(np.array([64, 32])) == (32, 64)


# ----------------------------------------------------------------------------
# rule sets that cannot apply must say so


def test_class_rules_on_a_linen_dict_raise_pointing_to_model():
    model = nn.Sequential([nn.Dense(3), nn.Dense(2)])
    variables = model.init(KEY, jnp.ones((1, 4)))
    with pytest.raises(ValueError, match=r"jaxinit\.flax\.reinit\(.*model="):
        jaxinit.reinit(variables, jaxinit.flax.TORCH_DEFAULTS, key=KEY)
    with pytest.raises(ValueError, match="model="):
        jaxinit.flax.reinit(variables, jaxinit.flax.TORCH_DEFAULTS, key=KEY)
    # with the model, it applies
    out = jaxinit.flax.reinit(
        variables, jaxinit.flax.TORCH_DEFAULTS, key=KEY, model=model, args=(jnp.ones((1, 4)),)
    )
    assert not np.array_equal(
        out["params"]["layers_0"]["bias"], variables["params"]["layers_0"]["bias"]
    )


# ----------------------------------------------------------------------------
# donation never deletes what is still used, and never before every check


def test_donate_keeps_a_buffer_a_kept_leaf_shares():
    a = jnp.arange(6.0).reshape(2, 3)
    b = jax.device_put(a, jax.devices()[0])  # a new Array object on the same buffer
    assert a is not b and a.unsafe_buffer_pointer() == b.unsafe_buffer_pointer()
    tree = {"a": a, "tied": b, "c": jnp.ones(4)}
    out = jaxinit.reinit(
        tree, [("a", jaxinit.zeros()), ("c", jaxinit.zeros())], key=KEY, donate=True
    )
    assert out["tied"] is b and not b.is_deleted()
    np.testing.assert_array_equal(np.asarray(out["tied"]), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(np.asarray(out["a"]), 0.0)
    assert tree["c"].is_deleted()  # the unshared one was donated


def test_donate_compiles_everything_before_deleting(monkeypatch):
    from jaxinit._src.tree import draw

    tree = {"a": jnp.ones((3, 4)), "b": jnp.ones((5, 6))}
    calls = []
    real_compile = draw._Drawer.compile

    def failing(self, key, done):
        calls.append(self.job.path)
        if self.job.path == "b":
            raise RuntimeError("XLA compilation failed")
        return real_compile(self, key, done)

    monkeypatch.setattr(draw._Drawer, "compile", failing)
    with pytest.raises(RuntimeError, match="compilation failed"):
        jaxinit.reinit(tree, [("*", jaxinit.normal())], key=KEY, donate=True)
    assert calls == ["a", "b"]
    assert not tree["a"].is_deleted() and not tree["b"].is_deleted()


# ----------------------------------------------------------------------------
# torch's zero-width layers


def test_torch_defaults_on_a_zero_width_layer_follow_torch():
    with pytest.warns(UserWarning, match="zero-element"):  # torch's own kaiming_uniform_
        torch_layer = torch.nn.Linear(0, 4)
    assert torch_layer.weight.shape == (4, 0)
    np.testing.assert_array_equal(torch_layer.bias.detach().numpy(), 0.0)
    # (Flax's own default, lecun_normal, divides by zero here: give the layer another)
    zeros = jax.nn.initializers.zeros
    dense = nn.Dense(4, kernel_init=zeros, bias_init=jax.nn.initializers.ones)
    v = jaxinit.flax.init(dense, KEY, jnp.ones((1, 0)), rules=jaxinit.flax.TORCH_DEFAULTS)
    assert v["params"]["kernel"].shape == (0, 4)
    np.testing.assert_array_equal(np.asarray(v["params"]["bias"]), 0.0)
    m = nnx.Linear(0, 4, kernel_init=zeros, bias_init=jax.nn.initializers.ones, rngs=nnx.Rngs(0))
    jaxinit.flax.reinit(m, jaxinit.flax.TORCH_DEFAULTS, key=KEY)
    np.testing.assert_array_equal(np.asarray(m.bias[...]), 0.0)


# ----------------------------------------------------------------------------
# every real number type, everywhere

SCALARS = [np.int64(7), np.int32(7), jnp.int32(7), np.array(7)]
REALS = [np.float64(0.2), np.float32(0.25), jnp.float32(0.25), np.array(0.25)]


@pytest.mark.parametrize("n", SCALARS, ids=lambda x: type(x).__name__)
def test_integer_hyperparameters_of_any_type(n):
    shape = (6, 5)
    pairs = [
        (jaxinit.torch_linear_bias(n), jaxinit.torch_linear_bias(7)),
        (jaxinit.torch_rnn(n), jaxinit.torch_rnn(7)),
        (jaxinit.torch_mha_in_proj(np.int64(3)), jaxinit.torch_mha_in_proj(3)),
        (jaxinit.dirac(np.int64(1)), jaxinit.dirac(1)),
    ]
    for ours, plain in pairs:
        s = (4, 2, 3) if ours.name == "dirac" else shape
        chex.assert_trees_all_equal(ours(KEY, s), plain(KEY, s))
    assert jaxinit.torch_linear_bias(np.prod((4, 5, 5))).hyperparams["fan_in"] == 100


@pytest.mark.parametrize("x", REALS, ids=lambda x: type(x).__name__)
def test_real_hyperparameters_of_any_type(x):
    v = float(x)
    assert jaxinit.calculate_gain("leaky_relu", x) == tinit.calculate_gain("leaky_relu", v)
    for build in (jaxinit.normal, jaxinit.uniform, jaxinit.xavier_normal, jaxinit.kaiming_uniform):
        chex.assert_trees_all_equal(build(x)(KEY, (6, 5)), build(v)(KEY, (6, 5)))


# ----------------------------------------------------------------------------
# deterministic fills: every dtype torch's fill_ takes, bit for bit

FILL_DTYPES = ["bool", "int8", "uint8", "int16", "int32"]
TORCH_INT = {
    "bool": torch.bool,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
}


def _torch_or_error(fn):
    try:
        return fn().numpy()
    except RuntimeError as e:
        return e


@pytest.mark.parametrize("dtype", FILL_DTYPES)
@pytest.mark.parametrize(
    "val", [0.7, -1.7, -1, 2, 255.7, 300, -128.9, 127, math.nan, math.inf, -0.0]
)
def test_constant_converts_as_torchs_fill(val, dtype):
    want = _torch_or_error(lambda: tinit.constant_(torch.empty(3, dtype=TORCH_INT[dtype]), val))
    if isinstance(want, Exception):
        with pytest.raises(ValueError, match="without overflow"):
            jaxinit.constant(val)(None, (3,), jnp.dtype(dtype))
        return
    ours = np.asarray(jaxinit.constant(val)(None, (3,), jnp.dtype(dtype)))
    assert ours.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(ours, want)


def test_int64_fill_under_x64(x64):
    for val in (2**40, -(2**40) - 1, 2.5e15):
        want = tinit.constant_(torch.empty(2, dtype=torch.int64), val).numpy()
        np.testing.assert_array_equal(
            np.asarray(jaxinit.constant(val)(None, (2,), jnp.int64)), want
        )


@pytest.mark.parametrize("dtype", FILL_DTYPES)
def test_ones_zeros_eye_dirac_in_integer_and_bool_dtypes(dtype):
    t = TORCH_INT[dtype]
    jd = jnp.dtype(dtype)
    checks = [
        (jaxinit.ones(), tinit.ones_, (3, 4)),
        (jaxinit.zeros(), tinit.zeros_, (3, 4)),
        (jaxinit.eye(), tinit.eye_, (3, 4)),
        (jaxinit.dirac(), tinit.dirac_, (4, 2, 3, 3)),
    ]
    for ours, theirs, shape in checks:
        want = theirs(torch.empty(shape, dtype=t)).numpy()
        got = np.asarray(ours(None, shape, jd))
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, want)
    # the helpers keep the array's dtype
    got = jaxinit.dirac_(jnp.zeros((4, 4, 3), jd), 2)
    want = tinit.dirac_(torch.empty((4, 4, 3), dtype=t), 2).numpy()
    np.testing.assert_array_equal(np.asarray(got), want)


@pytest.mark.parametrize("name", ["uniform", "normal", "kaiming_normal", "orthogonal", "sparse"])
def test_random_schemes_refuse_integers_with_torchs_words(name):
    args = (0.5,) if name == "sparse" else ()
    torch_fn = getattr(tinit, f"{name}_")
    with pytest.raises(Exception) as theirs:
        torch_fn(torch.empty(4, 4, dtype=torch.long), *args)
    words = re.search(r'"\w+" not implemented for', str(theirs.value)).group(0)
    with pytest.raises(TypeError, match=re.escape(words)):
        getattr(jaxinit, name)(*args)(KEY, (4, 4), jnp.int32)


# ----------------------------------------------------------------------------
# traced hyperparameters: scale sweeps under vmap and jit


def test_vmap_over_std_and_gain():
    stds = jnp.array([0.01, 0.1, 1.0])
    sweep = jax.vmap(lambda s: jaxinit.normal(std=s)(KEY, (256, 64)))(stds)
    for s, row in zip(stds, sweep):
        chex.assert_trees_all_close(row, jaxinit.normal(std=float(s))(KEY, (256, 64)), rtol=1e-6)
    gains = jnp.array([0.5, 2.0])
    sweep = jax.vmap(lambda g: jaxinit.xavier_uniform(g)(KEY, (64, 32)))(gains)
    for g, row in zip(gains, sweep):
        chex.assert_trees_all_close(row, jaxinit.xavier_uniform(float(g))(KEY, (64, 32)), rtol=1e-6)


@pytest.mark.parametrize(
    "build,value",
    [
        (lambda v: jaxinit.kaiming_normal(a=v), 0.2),
        (lambda v: jaxinit.uniform(-v, v), 0.3),
        (lambda v: jaxinit.trunc_normal(0.0, v, -2 * v, 2 * v), 0.02),
        (lambda v: jaxinit.constant(v), 0.5),
        (lambda v: jaxinit.sparse(v), 0.3),
        (lambda v: jaxinit.orthogonal(v), 2.0),
        (lambda v: jaxinit.torch_linear_bias(v), 25),
    ],
    ids=[
        "kaiming a",
        "uniform bounds",
        "trunc_normal",
        "constant",
        "sparse",
        "orthogonal",
        "linear bias",
    ],
)
def test_traced_hyperparameters_equal_concrete_ones(build, value):
    shape = (16, 12)
    x = jnp.asarray(value)
    traced = jax.jit(lambda v: build(v)(KEY, shape))(x)
    chex.assert_trees_all_close(traced, build(value)(KEY, shape), rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------
# clear errors


def test_an_uncalled_builder_says_to_call_it():
    with pytest.raises(TypeError, match=re.escape("kernel_init=jaxinit.flax.kaiming_normal()")):
        nn.Dense(3, kernel_init=jaxinit.flax.kaiming_normal).init(KEY, jnp.ones((1, 2)))
    with pytest.raises(TypeError, match="is a builder"):
        nnx.Linear(2, 3, kernel_init=jaxinit.xavier_uniform, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match=re.escape("jaxinit.zeros()")):
        jaxinit.reinit({"b": jnp.ones(3)}, [("b", jaxinit.zeros)], key=KEY)


def test_a_positional_key_to_a_helper_says_to_pass_key():
    with pytest.raises(TypeError, match=re.escape("key=key")):
        jaxinit.normal_(jnp.zeros(3), KEY)
    with pytest.raises(TypeError, match="positionally"):
        jaxinit.flax.kaiming_normal_(jnp.zeros((3, 4)), jax.random.PRNGKey(0))


def test_strict_says_why_a_rule_matched_nothing():
    tree = {
        "enc": {"kernel": jnp.ones((3, 4)), "bias": jnp.ones(4), "count": jnp.zeros((), jnp.int32)},
        "dec": {"kernel": jnp.ones((4, 2))},
    }

    def message(rules) -> str:
        with pytest.raises(ValueError) as e:
            jaxinit.reinit(tree, rules, key=KEY)
        return str(e.value)

    assert "not floating-point" in message([("*/count", jaxinit.zeros())])
    msg = message([("*kernel", jaxinit.zeros()), ("enc/kernel", jaxinit.ones())])
    assert "taken by an earlier rule (rule 0)" in msg
    assert "nearest paths: 'enc/kernel'" in message([("enc/kernal", jaxinit.zeros())])
    boxed = nn.Partitioned(jnp.ones((3, 4)), (None, "model"))
    with pytest.raises(ValueError, match=r"no '/value'.*use 'enc/kernel'"):
        jaxinit.flax.reinit(
            {"enc": {"kernel": boxed}}, [("enc/kernel/value", jaxinit.zeros())], key=KEY
        )


def test_warnings_point_at_the_users_line():
    with pytest.warns(UserWarning, match="more than 2 std") as record:
        jaxinit.trunc_normal(mean=10.0)
    assert record[0].filename == __file__
    with pytest.warns(UserWarning, match="zero-element") as record:
        jaxinit.kaiming_normal_(jnp.zeros((0, 3)), key=KEY)
    assert record[0].filename == __file__


def test_a_float64_array_without_x64_warns_as_jax_does():
    w = np.zeros((4, 3))  # numpy's default float64
    with pytest.warns(UserWarning, match="float64 requested in .* is not available"):
        out = jaxinit.normal_(w, key=KEY)
    assert out.dtype == jnp.float32
    with pytest.warns(UserWarning, match="not available"):
        jax.nn.initializers.normal()(KEY, (2,), jnp.float64)  # jax's own, for comparison


@pytest.mark.parametrize("name", R.SCHEME_NAMES)
def test_zero_element_warnings_are_torchs(name):
    shape = (0, 3, 3) if name == "dirac" else (0, 3)
    args = {"sparse": (0.5,), "constant": (1.0,)}.get(name, ())
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        getattr(tinit, f"{name}_")(torch.empty(shape), *args)
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        out = getattr(jaxinit, f"{name}_")(jnp.zeros(shape), *args, key=KEY)
        getattr(jaxinit, name)(*args)(KEY, shape)  # builders stay silent, as jax.nn
    assert out.shape == shape
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
