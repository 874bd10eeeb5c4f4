"""The port says what it cannot do: abstract leaves it would leave, a wrong compare_init argument,
structure inside a random leaf that compare_init must see; and BatchNorm without affine loads.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

import jaxinit
import jaxinit.flax
import jaxinit.port as port
from jaxinit._src.port.compare import fixed_slices
from tests.test_port import (
    abstract_init,
    channels_last,
    close,
    nnx_call,
    rand,
    randomize,
    run_torch,
)

# ----------------------------------------------------------------------------
# abstract targets


class TFc(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(x)


class NDrop(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.fc = nnx.Linear(4, 3, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)  # holds RNG state

    def __call__(self, x):
        return self.drop(self.fc(x))


def test_an_abstract_nnx_module_with_rng_state_is_refused_up_front():
    fmod = nnx.eval_shape(lambda: NDrop(nnx.Rngs(0)))
    with pytest.raises(ValueError) as info:
        port.from_torch(TFc(), fmod)
    msg = str(info.value)
    assert "leaves that would stay abstract" in msg and "drop/rngs/key" in msg
    assert "Build the module concretely" in msg
    assert isinstance(fmod.fc.kernel.get_value(), jax.ShapeDtypeStruct)  # nothing changed
    # built concretely, it ports, and computes torch's function (dropout off)
    tmod = randomize(TFc())
    fmod = NDrop(nnx.Rngs(0))
    port.from_torch(tmod, fmod)
    fmod.eval()
    x = rand(2, 4)
    close(nnx_call(fmod, x), run_torch(tmod, x))


def test_strict_false_into_an_abstract_linen_target_names_the_leaves_left_abstract():
    class Two(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(2, name="extra")(nn.Dense(3, name="fc")(x))

    x = rand(2, 4)
    shapes = abstract_init(Two(), x)
    with pytest.warns(UserWarning, match="params/extra/kernel"):
        port.from_torch(randomize(TFc()), shapes, strict=False)
    concrete = Two().init(jax.random.key(0), x)
    port.from_torch(randomize(TFc()), concrete, strict=False)  # nothing abstract: quiet


# ----------------------------------------------------------------------------
# BatchNorm(affine=False): only batch_stats


def test_batchnorm_without_affine_loads_into_linen_and_nnx():
    tmod = randomize(torch.nn.BatchNorm1d(6, affine=False))
    assert set(tmod.state_dict()) == {"running_mean", "running_var", "num_batches_tracked"}
    x = rand(3, 6)
    want = run_torch(tmod, x)
    fmod = nn.BatchNorm(use_running_average=True, use_scale=False, use_bias=False, epsilon=1e-5)
    variables = abstract_init(fmod, x)
    assert set(variables) == {"batch_stats"}
    for model in (None, fmod):
        new = port.from_torch(tmod, variables, model=model, args=(x,) if model else ())
        close(fmod.apply(new, x), want)
    nmod = nnx.eval_shape(
        lambda: nnx.BatchNorm(
            6, use_running_average=True, use_scale=False, use_bias=False, rngs=nnx.Rngs(0)
        )
    )
    port.from_torch(tmod, nmod)
    close(nnx_call(nmod, x), want)


# ----------------------------------------------------------------------------
# compare_init


class TEmb(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(64, 64, padding_idx=0)


class LEmb(nn.Module):
    @nn.compact
    def __call__(self, t):
        return nn.Embed(64, 64, name="embed")(t)


TOK = jnp.zeros((1, 2), jnp.int32)


def _jax_init(zero_row: bool):
    def init(key):
        v = jaxinit.flax.init(LEmb(), key, TOK, rules=jaxinit.flax.TORCH_DEFAULTS)
        if zero_row:
            table = v["params"]["embed"]["embedding"]
            v["params"]["embed"]["embedding"] = table.at[0].set(0.0)
        return v

    return jax.jit(init)


def test_compare_init_sees_a_padding_row_that_torch_fixes_every_seed():
    """The padding row is 64 of 4096 values: the pooled statistics alone cannot see it.

    With ``false_failure=1e-6`` per check a correct port fails with probability
    about 3e-6 (three checks on one random leaf); the missing zero row is
    caught with certainty (an exact comparison).
    """
    report = port.compare_init(TEmb, _jax_init(zero_row=False), model=LEmb(), args=(TOK,))
    assert not report.ok
    (row,) = report.rows
    assert row.fixed == [(0, 0)]
    (failure,) = row.failures
    assert "index 0 along axis 0 is all 0.0 in torch for every seed" in failure
    assert "padding_idx" in failure
    report = port.compare_init(TEmb, _jax_init(zero_row=True), model=LEmb(), args=(TOK,))
    assert report.ok, str(report)


def test_fixed_slices_are_structure_not_coincidence():
    # torch's own sparse_ (sparsity 0.9): zeros move from seed to seed; nothing is fixed
    draws = []
    for s in range(8):
        torch.manual_seed(s)
        w = torch.empty(40, 3)
        torch.nn.init.sparse_(w, 0.9)
        draws.append(w.numpy())
    assert fixed_slices(np.stack(draws), 1e-6) == []
    # rows set to 1 (a gate block set by hand) are structure; so is a (10, 6) padding row
    rng = np.random.default_rng(0)
    w = rng.standard_normal((8, 20, 6)).astype(np.float32)
    w[:, 5:10] = 1.0
    assert fixed_slices(w, 1e-6) == [(0, i) for i in range(5, 10)]
    e = rng.standard_normal((8, 10, 6)).astype(np.float32)
    e[:, 0] = 0.0
    assert fixed_slices(e, 1e-6) == [(0, 0)]
    # a single element is never told from chance
    b = rng.standard_normal((8, 20)).astype(np.float32)
    b[:, 3] = 1.0
    assert fixed_slices(b, 1e-6) == []


def test_compare_init_says_what_it_expected_when_given_instances():
    with pytest.raises(TypeError, match="got an instance of TEmb; pass the class"):
        port.compare_init(TEmb(), _jax_init(zero_row=True))
    variables = LEmb().init(jax.random.key(0), TOK)
    with pytest.raises(TypeError, match="jax_init must be a function key -> the initialized"):
        port.compare_init(TEmb, variables)
    with pytest.raises(TypeError, match="got a Linen module"):
        port.compare_init(TEmb, LEmb())
    with pytest.raises(TypeError, match=r"torch_factory\(\) returned OrderedDict, expected"):
        port.compare_init(lambda: TEmb().state_dict(), _jax_init(zero_row=True))


def test_compare_init_notes_hyperparameters_that_differ():
    class TLn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln = torch.nn.LayerNorm(8)

    class LLn(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.LayerNorm(name="ln")(x)  # eps 1e-6: the init is the same

    x = jnp.ones((1, 8))
    init = jax.jit(lambda k: jaxinit.flax.init(LLn(), k, x, rules=jaxinit.flax.TORCH_DEFAULTS))
    report = port.compare_init(TLn, init, model=LLn(), args=(x,))
    assert report.ok
    assert report.notes and "eps 1e-05 in torch, 1e-06 in JAX" in report.notes[0]
    assert "note: torch ln (LayerNorm)" in str(report)


def test_conv_in_channels_last_still_ports():  # a guard that the checks leave plain cases alone
    tmod = randomize(torch.nn.Conv2d(3, 4, 3, padding=1))
    fmod = nn.Conv(4, (3, 3), padding=1)
    x = rand(1, 3, 5, 5)
    new = port.from_torch(
        tmod, abstract_init(fmod, channels_last(x)), model=fmod, args=(channels_last(x),)
    )
    close(fmod.apply(new, channels_last(x)), channels_last(run_torch(tmod, x)))
