"""Layer hyperparameters that change the function are compared when both models hold them.

torch is the oracle twice: a matching configuration must give torch's
outputs (so the comparison's normal forms are right), and a refused one,
forced through with ``check_hyperparameters=False``, must not (so the
refusal is about a real difference).
"""

from __future__ import annotations

import equinox as eqx
import flax.linen as nn
import jax
import numpy as np
import pytest
import torch
from flax import nnx

import jaxinit.port as port
from tests.test_port import (
    abstract_init,
    channels_last,
    close,
    eqx_call,
    nnx_call,
    rand,
    randomize,
    run_torch,
)


def _linen(tmod, fmod, *xs, **kw):
    return port.from_torch(tmod, abstract_init(fmod, *xs), model=fmod, args=xs, **kw)


def _nnx(make):
    """An NNX module of shapes only (drawing its default init would only cost time)."""
    return nnx.eval_shape(lambda: make(rngs=nnx.Rngs(0)))


def _eqx(cls, *args, **kw):
    return eqx.filter_eval_shape(cls, *args, key=jax.random.key(0), **kw)


def _off(got, want) -> float:
    return float(np.abs(np.asarray(got) - want).max())


# ----------------------------------------------------------------------------
# attention heads


def test_attention_heads_are_compared_linen_with_and_without_model():
    tmod = randomize(torch.nn.MultiheadAttention(16, 4, batch_first=True))
    q = rand(2, 5, 16)
    want = run_torch(tmod, q, q, q)
    for heads in (2, 8):
        fmod = nn.MultiHeadDotProductAttention(num_heads=heads, qkv_features=16, out_features=16)
        with pytest.raises(
            ValueError, match=rf"num_heads 4 in torch, {heads} in JAX; set num_heads=4"
        ):
            _linen(tmod, fmod, q, q, q)
        with pytest.raises(ValueError, match="num_heads 4 in torch"):  # heads from the shapes
            port.from_torch(tmod, abstract_init(fmod, q, q, q))
        forced = _linen(tmod, fmod, q, q, q, check_hyperparameters=False)
        assert _off(jax.jit(fmod.apply)(forced, q, q, q), want) > 0.05  # a different function


def test_attention_heads_are_compared_nnx_and_equinox():
    tmod = randomize(torch.nn.MultiheadAttention(16, 4, batch_first=True))
    fmod = nnx.eval_shape(lambda: nnx.MultiHeadAttention(8, 16, 16, decode=False, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="num_heads 4 in torch, 8 in JAX"):
        port.from_torch(tmod, fmod)
    emod = eqx.filter_eval_shape(
        eqx.nn.MultiheadAttention,
        2,
        16,
        use_query_bias=True,
        use_key_bias=True,
        use_value_bias=True,
        use_output_bias=True,
        key=jax.random.key(0),
    )
    with pytest.raises(ValueError, match="num_heads 4 in torch, 2 in JAX"):
        port.from_torch(tmod, emod)
    q = rand(5, 16)
    forced = port.from_torch(tmod, emod, check_hyperparameters=False)
    assert _off(eqx_call(forced, q, q, q), run_torch(tmod, q[None], q[None], q[None])[0]) > 0.05


# ----------------------------------------------------------------------------
# norms


def test_layernorm_eps_is_compared_linen_nnx_equinox():
    tmod = randomize(torch.nn.LayerNorm(6))
    x = rand(3, 6) * 1e-3  # a small variance: eps matters
    want = run_torch(tmod, x)
    fmod = nn.LayerNorm()  # Flax's default epsilon is 1e-6, torch's 1e-5
    with pytest.raises(ValueError) as info:
        _linen(tmod, fmod, x)
    assert "eps 1e-05 in torch, 1e-06 in JAX; set epsilon=1e-05" in str(info.value)
    assert "check_hyperparameters=False" in str(info.value)
    with pytest.warns(UserWarning, match="layer hyperparameters that differ"):
        forced = _linen(tmod, fmod, x, strict=False)
    assert _off(fmod.apply(forced, x), want) > 0.1
    close(nn.LayerNorm(epsilon=1e-5).apply(_linen(tmod, nn.LayerNorm(epsilon=1e-5), x), x), want)
    nmod = _nnx(lambda rngs: nnx.LayerNorm(6, rngs=rngs))
    with pytest.raises(ValueError, match="eps 1e-05 in torch, 1e-06 in JAX"):
        port.from_torch(tmod, nmod)
    emod = port.from_torch(tmod, eqx.filter_eval_shape(eqx.nn.LayerNorm, 6))  # torch's eps
    close(eqx_call(emod, x, vmap=True), want)


def test_a_bare_state_dict_has_no_eps_so_nothing_is_said():
    tmod = randomize(torch.nn.LayerNorm(6))
    state = {k: v.numpy() for k, v in tmod.state_dict().items()}
    port.from_torch(state, _nnx(lambda rngs: nnx.LayerNorm(6, rngs=rngs)))  # no error, no warning


def test_rmsnorm_default_eps_is_torch_finfo_eps():
    tmod = randomize(torch.nn.RMSNorm(6))  # eps=None: torch.finfo(float32).eps
    x = rand(3, 6) * 1e-3
    eps = float(np.finfo(np.float32).eps)
    with pytest.raises(ValueError, match=r"eps 1\.19\d*e-07 in torch, 1e-06 in JAX"):
        _linen(tmod, nn.RMSNorm(), x)
    fmod = nn.RMSNorm(epsilon=eps)
    close(fmod.apply(_linen(tmod, fmod, x), x), run_torch(tmod, x))


def test_groupnorm_groups_and_norm_types_are_compared():
    tmod = randomize(torch.nn.GroupNorm(2, 6))
    x = rand(2, 6, 4)
    with pytest.raises(ValueError, match="num_groups 2 in torch, 3 in JAX; set num_groups=2"):
        _linen(tmod, nn.GroupNorm(num_groups=3, epsilon=1e-5), np.moveaxis(x, 1, -1))
    nmod = _nnx(lambda rngs: nnx.GroupNorm(6, num_groups=3, epsilon=1e-5, rngs=rngs))
    with pytest.raises(ValueError, match="num_groups 2 in torch, 3 in JAX"):
        port.from_torch(tmod, nmod)
    with pytest.raises(ValueError, match="groups=2"):
        port.from_torch(tmod, eqx.filter_eval_shape(eqx.nn.GroupNorm, 3, 6))
    # a LayerNorm without bias loads into an RMSNorm by shapes alone: another function
    ln = randomize(torch.nn.LayerNorm(6, bias=False))
    with pytest.raises(ValueError, match="type 'LayerNorm' in torch, 'RMSNorm' in JAX"):
        _linen(ln, nn.RMSNorm(epsilon=1e-5), rand(3, 6))


# ----------------------------------------------------------------------------
# convolutions


def test_conv_stride_padding_dilation_groups_are_compared():
    x = rand(1, 4, 9, 9)
    xf = channels_last(x)
    tmod = randomize(torch.nn.Conv2d(4, 6, 3))  # padding 0; Flax's default padding is 'SAME'
    with pytest.raises(ValueError) as info:
        _linen(tmod, nn.Conv(6, (3, 3)), xf)
    msg = str(info.value)
    assert "padding ((0, 0), (0, 0)) in torch, ((1, 1), (1, 1)) in JAX" in msg
    assert "set padding=((0, 0), (0, 0))" in msg
    forced = _linen(tmod, nn.Conv(6, (3, 3)), xf, check_hyperparameters=False)
    assert nn.Conv(6, (3, 3)).apply(forced, xf).shape != channels_last(run_torch(tmod, x)).shape
    tmod = randomize(torch.nn.Conv2d(4, 6, 3, stride=2, dilation=2, padding=2))
    with pytest.raises(ValueError) as info:
        _linen(tmod, nn.Conv(6, (3, 3), padding=2), xf)
    msg = str(info.value)
    assert "stride (2, 2) in torch, (1, 1) in JAX; set strides=(2, 2)" in msg
    assert "dilation (2, 2) in torch, (1, 1) in JAX; set kernel_dilation=(2, 2)" in msg
    fmod = nn.Conv(6, (3, 3), strides=2, kernel_dilation=2, padding=2)
    close(fmod.apply(_linen(tmod, fmod, xf), xf), channels_last(run_torch(tmod, x)))
    # groups: the same kernel shape with fewer input channels
    tmod = randomize(torch.nn.Conv2d(4, 6, 3, groups=2, padding=1))
    nmod = _nnx(lambda rngs: nnx.Conv(2, 6, (3, 3), padding=1, rngs=rngs))
    with pytest.raises(ValueError, match="groups 2 in torch, 1 in JAX; set feature_group_count=2"):
        port.from_torch(tmod, nmod)
    emod = _eqx(eqx.nn.Conv2d, 4, 6, 3, groups=2)  # padding 0
    with pytest.raises(ValueError, match=r"padding \(\(1, 1\), \(1, 1\)\) in torch, \(\(0, 0\)"):
        port.from_torch(tmod, emod)
    emod = port.from_torch(tmod, _eqx(eqx.nn.Conv2d, 4, 6, 3, groups=2, padding=1))
    close(eqx_call(emod, x, vmap=True), run_torch(tmod, x))


def test_conv_padding_modes_and_flax_padding_strings():
    x = rand(1, 4, 8)
    tmod = randomize(torch.nn.Conv1d(4, 6, 3, padding=1, padding_mode="circular"))
    with pytest.raises(ValueError, match="padding_mode 'circular' in torch, 'zeros' in JAX"):
        _linen(tmod, nn.Conv(6, (3,), padding=1), channels_last(x))
    fmod = nn.Conv(6, (3,), padding="CIRCULAR")
    got = fmod.apply(_linen(tmod, fmod, channels_last(x)), channels_last(x))
    close(got, channels_last(run_torch(tmod, x)))
    tmod = randomize(torch.nn.Conv1d(4, 6, 3, padding="same"))
    fmod = nn.Conv(6, (3,), padding="SAME")
    close(
        fmod.apply(_linen(tmod, fmod, channels_last(x)), channels_last(x)),
        channels_last(run_torch(tmod, x)),
    )
    tmod = randomize(torch.nn.Conv1d(4, 6, 3, stride=2, padding=1))
    fmod = nn.Conv(6, (3,), strides=2, padding="SAME")  # depends on the input size: not compared
    _linen(tmod, fmod, channels_last(x))


def test_conv_transpose_padding_is_compared_as_lax_pads():
    x = rand(1, 4, 5, 5)
    xf = channels_last(x)
    tmod = randomize(torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1))
    fmod = nn.ConvTranspose(6, (3, 3), strides=(2, 2), padding="SAME", transpose_kernel=True)
    with pytest.raises(ValueError) as info:
        _linen(tmod, fmod, xf)
    assert "padding ((1, 1), (1, 1)) in torch, ((2, 1), (2, 1)) in JAX" in str(info.value)
    assert "set padding=((1, 1), (1, 1))" in str(info.value)
    # k=4, s=2, p=1 is exactly Flax's 'SAME'
    tmod = randomize(torch.nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1))
    fmod = nn.ConvTranspose(6, (4, 4), strides=(2, 2), padding="SAME", transpose_kernel=True)
    close(fmod.apply(_linen(tmod, fmod, xf), xf), channels_last(run_torch(tmod, x)))
    # Equinox: torch's own padding and output_padding
    tmod = randomize(torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1))
    make = lambda **kw: _eqx(eqx.nn.ConvTranspose2d, 4, 6, 3, stride=2, padding=1, **kw)  # noqa: E731
    with pytest.raises(ValueError, match="output_padding=\\(1, 1\\)"):
        port.from_torch(tmod, make())
    emod = port.from_torch(tmod, make(output_padding=1))
    close(eqx_call(emod, x, vmap=True), run_torch(tmod, x))


# ----------------------------------------------------------------------------
# bias, embeddings, recurrent nonlinearity


def test_bias_presence_is_compared_even_with_strict_false():
    tmod = randomize(torch.nn.Linear(4, 3, bias=False))
    x = rand(2, 4)
    fmod = nn.Dense(3)
    variables = fmod.init(jax.random.key(0), x)
    with pytest.warns(UserWarning, match="bias False in torch, True in JAX; set use_bias=False"):
        port.from_torch(tmod, variables, strict=False)


def test_embedding_max_norm_has_no_flax_counterpart():
    tmod = torch.nn.Embedding(10, 4, max_norm=1.0)
    with pytest.raises(ValueError, match="max_norm 1.0 in torch, None in JAX"):
        port.from_torch(tmod, _nnx(lambda rngs: nnx.Embed(10, 4, rngs=rngs)))


def test_rnn_nonlinearity_is_compared():
    class Torch(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.RNN(3, 5, nonlinearity="relu", batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0]

    tmod = randomize(Torch())
    cell = nnx.SimpleCell(3, 5, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="nonlinearity 'relu' in torch, 'tanh' in JAX"):
        port.from_torch(tmod, nnx.RNN(cell), rename=[("rnn", "cell")])
    fmod = nnx.RNN(nnx.SimpleCell(3, 5, activation_fn=nnx.relu, rngs=nnx.Rngs(0)))
    port.from_torch(tmod, fmod, rename=[("rnn", "cell")])
    x = rand(2, 4, 3)
    close(nnx_call(fmod, x), run_torch(tmod, x))
