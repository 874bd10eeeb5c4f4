"""jaxinit.port.to_torch, and round trips: JAX -> torch -> JAX is bit-exact; torch -> JAX ->
torch has bit-exact weights (summed recurrent biases moved into ``b_ih``) and the same outputs.

torch computes the outputs the JAX model's weights must give once loaded into it.
"""

from __future__ import annotations

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

import jaxinit.port as port
from tests.test_port import abstract_init, close, eqx_call, nnx_call, rand, randomize, run_torch
from tests.test_port_names import ENet, NNet, TNet, X, random_like


class TAll(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 8)
        self.attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)
        self.lstm = torch.nn.LSTM(8, 8, batch_first=True)
        self.gru = torch.nn.GRU(8, 8, batch_first=True)
        self.conv = torch.nn.Conv1d(8, 8, 3, padding=1, groups=2)
        self.bn = torch.nn.BatchNorm1d(8)
        self.up = torch.nn.ConvTranspose1d(8, 4, 2, stride=2)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, tokens):
        x = self.embed(tokens)
        x = x + self.attn(x, x, x, need_weights=False)[0]
        x = self.gru(self.lstm(x)[0])[0].transpose(1, 2)
        x = self.up(torch.relu(self.bn(self.conv(x))))
        return self.head(x.transpose(1, 2))


class LAll(nn.Module):
    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(10, 8, name="embed")(tokens)
        x = x + nn.MultiHeadDotProductAttention(2, name="attn")(x, x)
        x = nn.RNN(nn.GRUCell(8, name="gru"))(nn.RNN(nn.LSTMCell(8, name="lstm"))(x))
        x = nn.Conv(8, (3,), padding=1, feature_group_count=2, name="conv")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=True, epsilon=1e-5, name="bn")(x))
        x = nn.ConvTranspose(4, (2,), strides=(2,), padding="VALID", name="up")(x)
        return nn.Dense(3, name="head")(x)


TOKENS = np.array([[1, 4, 9, 0, 2], [3, 3, 7, 8, 5]], np.int32)
MODEL = LAll()
APPLY = jax.jit(MODEL.apply)


def _random_variables(seed: int = 0):
    """Random values in every leaf (numpy: no per-shape compiles)."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(MODEL.init, jax.random.key(0), TOKENS)
    variables = jax.tree_util.tree_map(
        lambda a: (rng.standard_normal(a.shape) * 0.5).astype(a.dtype), shapes
    )
    variables["batch_stats"]["bn"]["var"] = np.abs(variables["batch_stats"]["bn"]["var"]) + 0.5
    variables["params"]["lstm"]["hi"]["bias"][0] = -0.0  # a negative zero survives the round trip
    return jax.tree_util.tree_map(jnp.asarray, variables)


def _run_torch_model(tmod):
    return run_torch(tmod.eval(), TOKENS.astype(np.int64))


def test_jax_to_torch_gives_the_same_outputs_and_comes_back_bit_exact():
    variables = _random_variables()
    tmod = port.to_torch(variables, TAll(), model=MODEL, args=(TOKENS,))
    close(_run_torch_model(tmod), APPLY(variables, TOKENS), rtol=1e-4, atol=1e-5)
    # b_hh holds zero where Flax has one summed bias; GRU's b_hn is kept.
    np.testing.assert_array_equal(tmod.lstm.bias_hh_l0.detach().numpy(), 0)
    np.testing.assert_array_equal(tmod.gru.bias_hh_l0.detach().numpy()[:16], 0)
    np.testing.assert_array_equal(
        tmod.gru.bias_hh_l0.detach().numpy()[16:], variables["params"]["gru"]["hn"]["bias"]
    )
    back = port.from_torch(
        tmod, jax.eval_shape(MODEL.init, jax.random.key(5), TOKENS), model=MODEL, args=(TOKENS,)
    )
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_array_equal(
            np.asarray(a).view(np.uint32), np.asarray(b).view(np.uint32)
        ),
        back,
        variables,
    )


def test_torch_to_jax_to_torch_keeps_weights_and_outputs():
    tmod = randomize(TAll())
    variables = port.from_torch(
        tmod, jax.eval_shape(MODEL.init, jax.random.key(0), TOKENS), model=MODEL, args=(TOKENS,)
    )
    want = _run_torch_model(tmod)
    close(APPLY(variables, TOKENS), want, rtol=1e-4, atol=1e-5)
    state = port.to_torch(variables, tmod.state_dict(), model=MODEL, args=(TOKENS,))
    original = tmod.state_dict()
    assert list(state) == list(original)
    for key, t in original.items():
        got = state[key]
        assert got.dtype == t.dtype and got is not t, key
        if key.startswith(("lstm.bias", "gru.bias")):
            continue
        torch.testing.assert_close(got, t, rtol=0, atol=0, msg=key)
    for name, gates in (("lstm", 4), ("gru", 2)):
        b_ih, b_hh = original[f"{name}.bias_ih_l0"], original[f"{name}.bias_hh_l0"]
        n = 8 * gates
        torch.testing.assert_close(state[f"{name}.bias_ih_l0"][:n], b_ih[:n] + b_hh[:n])
        assert not state[f"{name}.bias_hh_l0"][:n].any()
    torch.testing.assert_close(state["gru.bias_hh_l0"][16:], original["gru.bias_hh_l0"][16:])
    torch.testing.assert_close(state["gru.bias_ih_l0"][16:], original["gru.bias_ih_l0"][16:])
    again = TAll()
    again.load_state_dict(state)
    close(_run_torch_model(again), want, rtol=1e-5, atol=1e-6)


def test_nnx_and_equinox_to_torch_give_the_same_outputs():
    fmod = random_like(nnx.eval_shape(lambda: NNet(nnx.Rngs(0))))
    for block in fmod.layer1:  # running variances must be positive
        block.bn1.var[...] = jnp.abs(block.bn1.var[...]) + 0.5
    tmod = port.to_torch(fmod, TNet())
    close(run_torch(tmod.eval(), X), nnx_call(fmod, np.moveaxis(X, 1, -1)))
    emod = random_like(eqx.filter_eval_shape(ENet, jax.random.key(4)), seed=1)
    tmod = port.to_torch(emod, TNet("gn"))
    close(run_torch(tmod.eval(), X), eqx_call(emod, X, vmap=True))


def test_grouped_conv_transpose_round_trip_and_non_block_diagonal_kernel():
    tmod = randomize(torch.nn.ConvTranspose2d(4, 6, 3, groups=2))
    fmod = nn.ConvTranspose(6, (3, 3), padding="VALID")
    x = rand(1, 3, 3, 4)
    variables = port.from_torch(tmod, abstract_init(fmod, x))
    back = port.to_torch(variables, torch.nn.ConvTranspose2d(4, 6, 3, groups=2))
    torch.testing.assert_close(back.weight, tmod.weight, rtol=0, atol=0)
    dense = jax.tree_util.tree_map(lambda a: a + 1.0, variables)
    with pytest.raises(ValueError, match="block-diagonal in 2 groups"):
        port.to_torch(dense, torch.nn.ConvTranspose2d(4, 6, 3, groups=2))
