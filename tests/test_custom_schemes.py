"""A user's own scheme, end to end: jaxinit.scheme on jaxinit's families.

The examples of docs/custom_schemes.md: GPT-2's residual-scaled projection (a
builder call), a muP-style normal whose std depends on the fan-in (a
``jaxinit.scheme``) and an embedding with a zero padding row (a builder call).
Each has a Distribution, shows in explain, is checked by jaxinit.testing,
takes part in flat drawing, and draws what torch draws for the same formula.
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
import torch.nn.init as tinit

import jaxinit
import jaxinit.flax
from jaxinit._src.tree import draw
from jaxinit.testing import assert_follows, assert_tree_follows

BASE_STD, BASE_FAN_IN = 0.02, 256


@jaxinit.scheme(jaxinit.normal())
def mup_normal(shape, layout, base_std: float = BASE_STD, base_fan_in: int = BASE_FAN_IN):
    """muP-style: N(0, (base_std * sqrt(base_fan_in / fan_in))^2)."""
    fan_in, _ = jaxinit.calculate_fan_in_and_fan_out(shape, layout)
    return jaxinit.normal(std=base_std * math.sqrt(base_fan_in / fan_in))


def _mup_std(fan_in: int, base_std: float = BASE_STD) -> float:  # the stated math
    return base_std * math.sqrt(BASE_FAN_IN / fan_in)


def test_a_scheme_is_a_builder_with_a_python_repr_and_a_distribution():
    init = mup_normal(base_std=0.04)
    # the module it was defined in, then the call that builds it
    assert repr(init) == f"{mup_normal.__module__}.mup_normal(base_std=0.04)"
    assert repr(mup_normal()) == f"{mup_normal.__module__}.mup_normal()"
    d = init.distribution((128, 1024))  # torch layout: fan_in 1024
    assert d.family.name == "normal" and d.std == pytest.approx(_mup_std(1024, 0.04))
    assert init.distribution((1024, 128), None).std == pytest.approx(_mup_std(128, 0.04))
    # the layout of the context: a flax kernel (in, out) reads fan_in from axis 0
    assert init.with_layout("flax").distribution((1024, 128)).std == pytest.approx(
        _mup_std(1024, 0.04)
    )


def test_a_scheme_draws_what_torch_draws_for_the_same_formula():
    shape = (512, 2048)
    jax_w = np.asarray(mup_normal()(jax.random.key(0), shape), np.float64).ravel()
    torch.manual_seed(0)
    torch_w = tinit.normal_(torch.empty(shape), 0.0, _mup_std(2048)).numpy().ravel()
    # two-sample KS at alpha 1e-6 (a correct scheme fails with odds 1e-6), std to 5 SE
    assert scipy.stats.ks_2samp(jax_w, torch_w).pvalue > 1e-6
    se = math.sqrt(0.5 * (1 / jax_w.size + 1 / torch_w.size))  # normal: kappa = 3
    assert abs(jax_w.std() / torch_w.std() - 1) < 5 * se


def test_gpt2_residual_projection_and_padded_embedding_are_builder_calls():
    n_layer = 12
    proj = jaxinit.normal(std=0.02 / math.sqrt(2 * n_layer))
    w = proj(jax.random.key(1), (768, 3072))
    assert_follows(w, proj)
    torch.manual_seed(1)
    t = tinit.normal_(torch.empty(768, 3072), 0.0, 0.02 / math.sqrt(2 * n_layer)).numpy()
    assert scipy.stats.ks_2samp(np.asarray(w).ravel(), t.ravel()).pvalue > 1e-6
    emb = jaxinit.normal(std=0.02, padding_idx=0)
    table = emb(jax.random.key(2), (1000, 64))
    assert repr(emb.distribution((1000, 64))) == "N(mean=0, std=0.02), row 0 zero"
    assert_follows(table, emb)
    np.testing.assert_array_equal(np.asarray(table[0]), 0.0)
    with pytest.raises(AssertionError, match="padding row 0"):
        assert_follows(np.asarray(table) + 1e-3, emb)


def test_a_scheme_shows_in_explain_and_is_checked_by_jaxinit_testing():
    tree = {"fc": {"weight": jnp.zeros((64, 512)), "bias": jnp.zeros(64)}}
    rules = [("*/weight", mup_normal()), ("*/bias", jaxinit.zeros())]
    text = str(jaxinit.explain(tree, rules))
    assert "mup_normal()" in text and f"N(mean=0, std={_mup_std(512):.6g})" in text
    out = jaxinit.reinit(tree, rules, key=jax.random.key(3))
    assert_tree_follows(out, rules)
    assert_tree_follows(out, rules, key=jax.random.key(3))
    wrong = jax.tree_util.tree_map(lambda v: v * 1.2, out)
    with pytest.raises(AssertionError, match="fc/weight"):
        assert_tree_follows(wrong, rules)


def test_a_scheme_is_drawn_flat_with_the_same_bits(monkeypatch):
    tree = {f"l{i}": {"weight": jnp.zeros((32, 16 * (i + 1)))} for i in range(4)}
    rules = [("*/weight", mup_normal())]
    flat = jaxinit.reinit(tree, rules, key=jax.random.key(4))
    monkeypatch.setattr(draw, "FLAT", False)
    per_leaf = jaxinit.reinit(tree, rules, key=jax.random.key(4))
    jax.tree_util.tree_map(np.testing.assert_array_equal, flat, per_leaf)
    assert mup_normal().family.elementwise


def test_a_scheme_in_a_flax_layer_takes_the_layer_layout():
    layer = nn.Dense(64, kernel_init=mup_normal())
    kernel = layer.init(jax.random.key(5), jnp.ones((1, 1024)))["params"]["kernel"]
    assert kernel.shape == (1024, 64)
    assert_follows(kernel, mup_normal(), layout="flax")  # fan_in 1024, not 64
    with pytest.raises(AssertionError):
        assert_follows(kernel, mup_normal())  # read in torch's layout: fan_in 64


def test_a_scheme_returning_another_family_is_refused():
    @jaxinit.scheme(jaxinit.normal())
    def wrong(shape, layout):
        return jaxinit.uniform(-1.0, 1.0)

    with pytest.raises(TypeError, match=r"wrong: a scheme on the normal family.*U|uniform"):
        wrong()(jax.random.key(0), (3, 4))
    with pytest.raises(TypeError, match="expected a jaxinit initializer naming the family"):
        jaxinit.scheme(jax.nn.initializers.normal())  # type: ignore[arg-type]
