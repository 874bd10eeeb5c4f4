"""The tree tools never lose a value, never share a key, and say what they cannot know.

Oracles: torch for the layer defaults (two-sample KS against torch's own
layers over many seeds; false-failure odds 1e-4 per test), and stated maths for
keys (sha256, ``jax.random.fold_in``).
"""

from __future__ import annotations

import hashlib

import equinox as eqx
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
from jaxinit._src.tree.keys import path_words, words_key

KEY = jax.random.key(0)

# ----------------------------------------------------------------------------
# Zero-width layers: Flax's defaults (which divide by fan_in) never block the rules


@pytest.mark.parametrize(
    "factory, shapes",
    [
        (lambda rngs: nnx.Linear(0, 4, rngs=rngs), {"kernel": (0, 4), "bias": (4,)}),
        (lambda rngs: nnx.Embed(0, 4, rngs=rngs), {"embedding": (0, 4)}),
        (lambda rngs: nnx.Conv(0, 4, (3,), rngs=rngs), {"kernel": (3, 0, 4), "bias": (4,)}),
    ],
)
def test_zero_width_nnx_layers_build(factory, shapes):
    module = jaxinit.flax.init(factory, KEY, rules=jaxinit.flax.TORCH_DEFAULTS)
    got = {
        str(p[0]): np.shape(v)
        for p, v in jax.tree_util.tree_leaves_with_path(nnx.state(module))
        for p in [[getattr(k, "key", k) for k in p]]
    }
    assert got == shapes


def test_zero_width_linen_dense_matches_torch():
    variables = jaxinit.flax.init(
        nn.Dense(4), KEY, jnp.ones((1, 0)), rules=jaxinit.flax.TORCH_DEFAULTS
    )
    assert variables["params"]["kernel"].shape == (0, 4)
    # torch: Linear(0, 4) has bound = 0 for its bias (fan_in 0), so every entry is 0
    with pytest.warns(UserWarning, match="zero-element tensors"):
        torch_bias = torch.nn.Linear(0, 4).bias.detach().numpy()
    np.testing.assert_array_equal(np.asarray(variables["params"]["bias"]), torch_bias)


# ----------------------------------------------------------------------------
# Keys: a 64-bit path hash, two fold_ins, collisions refused


def test_stable_hash_is_the_first_8_bytes_of_sha256():
    for path in ["params/Dense_0/kernel", "", "é/ü", "a" * 1000]:
        want = int.from_bytes(hashlib.sha256(path.encode("utf-8")).digest()[:8], "big")
        assert jaxinit.stable_hash(path) == want


def test_a_leaf_is_drawn_with_the_key_of_its_path():
    tree = {"a": {"kernel": jnp.zeros((8, 8))}}
    init = jaxinit.normal()
    out = jaxinit.reinit(tree, [("a/kernel", init)], key=KEY)
    h = jaxinit.stable_hash("a/kernel")
    key = jax.random.fold_in(jax.random.fold_in(KEY, h >> 32), h & 0xFFFFFFFF)
    np.testing.assert_array_equal(out["a"]["kernel"], init(key, (8, 8)))
    np.testing.assert_array_equal(
        jax.random.key_data(jaxinit.leaf_key(KEY, "a/kernel")), jax.random.key_data(key)
    )


def test_paths_whose_31_bit_hashes_collided_now_draw_different_values():
    # These two paths shared their 31-bit hash (so their key) before.
    a, b = "params/block_76486/kernel", "params/block_85223/kernel"
    old = [
        int.from_bytes(hashlib.sha256(p.encode()).digest()[:4], "big") & 0x7FFFFFFF for p in (a, b)
    ]
    assert old[0] == old[1]
    tree = {"params": {p.split("/")[1]: {"kernel": jnp.zeros((4, 4))} for p in (a, b)}}
    out = jaxinit.reinit(tree, [("*kernel", jaxinit.normal())], key=KEY)
    x, y = (out["params"][p.split("/")[1]]["kernel"] for p in (a, b))
    assert not np.array_equal(x, y)


def test_host_key_words_equal_jax_fold_in():
    words = path_words(["x/kernel", "y/bias", "z"])
    for w in words:
        key = words_key(KEY, w)
        want = jax.random.fold_in(jax.random.fold_in(KEY, int(w[0])), int(w[1]))
        np.testing.assert_array_equal(jax.random.key_data(key), jax.random.key_data(want))


def test_a_hash_collision_is_refused(monkeypatch):
    from jaxinit._src.tree import keys

    monkeypatch.setattr(keys, "stable_hash", lambda path: 7)
    with pytest.raises(ValueError, match="same 64-bit hash"):
        keys.path_words(["a", "b"])


# ----------------------------------------------------------------------------
# donate=True never deletes an original before the new values exist


class _FailsWhenRun:
    """A foreign initializer that traces fine but fails when it runs (unhashable: called as is)."""

    __hash__ = None  # type: ignore[assignment]

    def __call__(self, key, shape, dtype=jnp.float32):
        if not isinstance(key, jax.core.Tracer):
            raise RuntimeError("this initializer fails at run time")
        return jnp.zeros(shape, dtype)


def test_donate_keeps_the_originals_when_an_initializer_fails_at_run_time():
    tree = {"a": jnp.ones((64, 64)), "b": jnp.ones((64, 64))}
    rules = [("a", jaxinit.normal()), ("b", _FailsWhenRun())]
    with pytest.raises(RuntimeError, match="fails at run time"):
        jaxinit.reinit(tree, rules, key=KEY, donate=True)
    assert not tree["a"].is_deleted() and not tree["b"].is_deleted()
    np.testing.assert_array_equal(tree["a"], np.ones((64, 64)))


def test_donate_deletes_the_replaced_originals_on_success():
    tree = {"a": jnp.ones((64, 64)), "b": jnp.ones(3)}
    out = jaxinit.reinit(tree, [("a", jaxinit.normal())], key=KEY, donate=True)
    assert tree["a"].is_deleted() and out["b"] is tree["b"]


# ----------------------------------------------------------------------------
# Rules that are not initializers


@pytest.mark.parametrize(
    "builder, name",
    [
        (jax.nn.initializers.lecun_normal, "jax.nn.initializers.lecun_normal"),
        (jax.nn.initializers.normal, "jax.nn.initializers.normal"),
        (nn.initializers.glorot_uniform, "jax.nn.initializers.glorot_uniform"),
    ],
)
def test_an_uncalled_foreign_builder_in_rules_is_named(builder, name):
    with pytest.raises(
        TypeError, match=rf"{name} is a builder .* call it: \('\*kernel', {name}\(\)\)"
    ):
        jaxinit.reinit({"kernel": jnp.zeros((3, 3))}, [("*kernel", builder)], key=KEY)


def test_a_called_foreign_initializer_is_accepted():
    out = jaxinit.reinit(
        {"kernel": jnp.zeros((3, 3))},
        [("*kernel", jax.nn.initializers.lecun_normal())],
        key=KEY,
    )
    assert out["kernel"].shape == (3, 3)


# ----------------------------------------------------------------------------
# TORCH_DEFAULTS covers Equinox from the one registry, as torch initializes


def _eqx_model(key):
    k = jax.random.split(key, 7)
    return {
        "fc": eqx.nn.Linear(12, 7, key=k[0]),
        "conv": eqx.nn.Conv2d(3, 8, 3, key=k[1]),
        "up": eqx.nn.ConvTranspose2d(8, 4, 2, key=k[2]),
        "emb": eqx.nn.Embedding(20, 9, key=k[3]),
        "norm": eqx.nn.LayerNorm(9),
        "attn": eqx.nn.MultiheadAttention(2, 8, use_query_bias=True, key=k[4]),
        "gru": eqx.nn.GRUCell(5, 64, key=k[5]),
        "lstm": eqx.nn.LSTMCell(5, 64, key=k[6]),
    }


def test_torch_defaults_cover_every_equinox_leaf():
    model = _eqx_model(KEY)
    out = jaxinit.reinit(model, jaxinit.TORCH_DEFAULTS, key=KEY, unmatched="error")
    np.testing.assert_array_equal(out["norm"].weight, np.ones(9))
    np.testing.assert_array_equal(out["attn"].query_proj.bias, np.zeros(8))


def _pooled(draw, seeds):
    return np.concatenate([np.ravel(np.asarray(draw(s))) for s in range(seeds)])


def _torch(make, pick):
    def draw(seed):
        torch.manual_seed(seed)
        with torch.no_grad():
            return pick(make()).numpy()

    return draw


# (Equinox leaf, torch's layer and the tensor it stands for)
EQX_VS_TORCH = {
    # Equinox's GRU bias rows r, z stand for torch's b_ih + b_hh; rows n for b_in alone;
    # bias_n is b_hn.
    "gru.bias[r,z]": (
        lambda m: m["gru"].bias[:128],
        _torch(lambda: torch.nn.GRUCell(5, 64), lambda c: (c.bias_ih + c.bias_hh)[:128]),
    ),
    "gru.bias[n]": (
        lambda m: m["gru"].bias[128:],
        _torch(lambda: torch.nn.GRUCell(5, 64), lambda c: c.bias_ih[128:]),
    ),
    "gru.bias_n": (
        lambda m: m["gru"].bias_n,
        _torch(lambda: torch.nn.GRUCell(5, 64), lambda c: c.bias_hh[128:]),
    ),
    "lstm.bias": (
        lambda m: m["lstm"].bias,
        _torch(lambda: torch.nn.LSTMCell(5, 64), lambda c: c.bias_ih + c.bias_hh),
    ),
    "up.weight": (
        lambda m: m["up"].weight,
        _torch(lambda: torch.nn.ConvTranspose2d(8, 4, 2), lambda c: c.weight),
    ),
    "attn.query_proj.weight": (
        lambda m: m["attn"].query_proj.weight,
        _torch(lambda: torch.nn.MultiheadAttention(8, 2), lambda c: c.in_proj_weight[:8]),
    ),
    "fc.bias": (
        lambda m: m["fc"].bias,
        _torch(lambda: torch.nn.Linear(12, 7), lambda c: c.bias),
    ),
}


@pytest.mark.parametrize("name", sorted(EQX_VS_TORCH))
def test_equinox_leaves_follow_torch(name):
    """Two-sample KS over 60 seeds each side; false-failure odds 1e-4."""
    pick, torch_draw = EQX_VS_TORCH[name]
    model = _eqx_model(KEY)
    ours = _pooled(
        lambda s: pick(jaxinit.reinit(model, jaxinit.TORCH_DEFAULTS, key=jax.random.key(s))),
        60,
    )
    theirs = _pooled(torch_draw, 60)
    p = scipy.stats.ks_2samp(ours, theirs).pvalue
    assert p > 1e-4, f"{name}: KS p = {p:.2e}"


def test_flax_init_inside_jit_equals_eager():
    """No mesh can be read inside jax.jit: the draw is the same, placed by jit."""
    x = jnp.ones((1, 5))
    rules = jaxinit.flax.TORCH_DEFAULTS
    jitted = jax.jit(lambda k: jaxinit.flax.init(nn.Dense(3), k, x, rules=rules))(KEY)
    eager = jaxinit.flax.init(nn.Dense(3), KEY, x, rules=rules)
    for a, b in zip(jax.tree_util.tree_leaves(jitted), jax.tree_util.tree_leaves(eager)):
        np.testing.assert_array_equal(a, b)
