"""jaxinit.port.from_torch / to_torch: forward-pass parity with real torch, layer kind by layer kind.

Every test loads a torch module whose tensors are all random (so no zero
bias or unit scale can hide a mistake) into the JAX port and compares the
port's outputs with torch's on the same input, to float32 tolerance.

Padding conventions used (where Flax and torch agree):
- Conv: torch ``padding=p`` is Flax ``padding=p`` (``((p, p),)`` per axis).
- ConvTranspose: torch ``padding=p`` (dilation 1) is Flax's explicit
  ``((k - 1 - p, k - 1 - p),)`` per axis; torch ``padding=0`` with
  ``stride <= k`` is also Flax's ``"VALID"``.
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

RTOL, ATOL = 1e-5, 1e-5


def randomize(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every float tensor random; running variances positive."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                r = torch.randn(t.shape, generator=g, dtype=torch.float32).to(t.dtype) * 0.5
                t.copy_(r.abs() + 0.5 if name.endswith("running_var") else r)
    return module.eval()


def rand(*shape: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def run_torch(module: torch.nn.Module, *xs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = module(*(torch.from_numpy(x) for x in xs))
    if isinstance(out, tuple):
        out = out[0]
    return out.numpy()


def close(got, want, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(got), want, rtol=rtol, atol=atol)


def channels_last(x: np.ndarray) -> np.ndarray:
    return np.moveaxis(x, 1, -1)


def nnx_call(module, *xs):
    return nnx.jit(lambda m, *a: m(*a))(module, *xs)


def eqx_call(module, *xs, vmap=False):
    if vmap:
        return eqx.filter_jit(lambda m, *a: jax.vmap(m)(*a))(module, *xs)
    return eqx.filter_jit(lambda m, *a: m(*a))(module, *xs)


# ----------------------------------------------------------------------------
# Linen: one layer at the root, every simple kind


def abstract_init(fmod, *xs):
    """The variables' shapes and dtypes: ``from_torch`` fills them, no init is computed."""
    return jax.eval_shape(fmod.init, jax.random.key(0), *xs)


def _linen_case(tmod, fmod, x_torch, x_flax, out_to_torch=channels_last):
    randomize(tmod)
    variables = abstract_init(fmod, x_flax)
    got = jax.jit(fmod.apply)(port.from_torch(tmod, variables, model=fmod, args=(x_flax,)), x_flax)
    want = run_torch(tmod, x_torch)
    close(got, out_to_torch(want) if out_to_torch else want)


CONV_CASES = {
    "conv1d": (
        lambda: torch.nn.Conv1d(4, 6, 3, padding=1),
        lambda: nn.Conv(6, (3,), padding=1),
        (2, 4, 9),
    ),
    "conv2d-groups-stride": (
        lambda: torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2),
        lambda: nn.Conv(6, (3, 3), strides=2, padding=1, feature_group_count=2),
        (2, 4, 7, 7),
    ),
    "conv3d-nobias": (
        lambda: torch.nn.Conv3d(2, 4, (2, 3, 3), padding=(0, 1, 1), bias=False),
        lambda: nn.Conv(4, (2, 3, 3), padding=((0, 0), (1, 1), (1, 1)), use_bias=False),
        (1, 2, 3, 5, 5),
    ),
    "convT1d-valid-False": (
        lambda: torch.nn.ConvTranspose1d(4, 6, 3, stride=2),
        lambda: nn.ConvTranspose(6, (3,), strides=(2,), padding="VALID"),
        (2, 4, 5),
    ),
    "convT2d-pad-True": (
        lambda: torch.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1),
        lambda: nn.ConvTranspose(
            6, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), transpose_kernel=True
        ),
        (2, 4, 5, 5),
    ),
    "convT2d-pad-False": (
        lambda: torch.nn.ConvTranspose2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0)),
        lambda: nn.ConvTranspose(6, (3, 2), strides=(2, 1), padding=((1, 1), (1, 1))),
        (2, 4, 5, 4),
    ),
    "convT2d-groups": (
        lambda: torch.nn.ConvTranspose2d(4, 6, 3, groups=2),
        lambda: nn.ConvTranspose(6, (3, 3), padding="VALID", transpose_kernel=True),
        (1, 4, 4, 4),
    ),
    "convT3d-groups-False": (
        lambda: torch.nn.ConvTranspose3d(4, 2, 2, stride=2, groups=2),
        lambda: nn.ConvTranspose(2, (2, 2, 2), strides=(2, 2, 2), padding="VALID"),
        (1, 4, 2, 3, 2),
    ),
}


@pytest.mark.parametrize("case", list(CONV_CASES))
def test_linen_conv_and_conv_transpose_match_torch(case):
    tmod, fmod, shape = CONV_CASES[case]
    x = rand(*shape)
    _linen_case(tmod(), fmod(), x, channels_last(x))


NORM_CASES = {
    "layernorm": (lambda: torch.nn.LayerNorm(6), lambda: nn.LayerNorm(epsilon=1e-5)),
    "rmsnorm": (lambda: torch.nn.RMSNorm(6, eps=1e-6), lambda: nn.RMSNorm(epsilon=1e-6)),
    "groupnorm": (
        lambda: torch.nn.GroupNorm(2, 6),
        lambda: nn.GroupNorm(num_groups=2, epsilon=1e-5),
    ),
    "linear": (lambda: torch.nn.Linear(6, 5), lambda: nn.Dense(5)),
    "linear-nobias": (
        lambda: torch.nn.Linear(6, 5, bias=False),
        lambda: nn.Dense(5, use_bias=False),
    ),
}


@pytest.mark.parametrize("case", list(NORM_CASES))
def test_linen_linear_and_norms_match_torch(case):
    tmod, fmod = NORM_CASES[case]
    x = rand(3, 4, 6)
    if case == "groupnorm":  # torch's GroupNorm is channels-first
        _linen_case(tmod(), fmod(), np.moveaxis(x, -1, 1), x)
    else:
        _linen_case(tmod(), fmod(), x, x, out_to_torch=None)


def test_linen_batchnorm_fills_batch_stats_and_drops_num_batches_tracked():
    tmod = randomize(torch.nn.BatchNorm2d(6))
    fmod = nn.BatchNorm(use_running_average=True, epsilon=1e-5)
    x = rand(2, 6, 3, 3)
    variables = abstract_init(fmod, channels_last(x))
    assert set(variables) == {"params", "batch_stats"}
    new = port.from_torch(tmod, variables)
    np.testing.assert_array_equal(new["batch_stats"]["mean"], tmod.running_mean.numpy())
    np.testing.assert_array_equal(new["batch_stats"]["var"], tmod.running_var.numpy())
    close(fmod.apply(new, channels_last(x)), channels_last(run_torch(tmod, x)))


def test_linen_embedding_matches_torch():
    tmod = randomize(torch.nn.Embedding(10, 6))
    fmod = nn.Embed(10, 6)
    tokens = np.array([[1, 2, 9], [0, 3, 3]], np.int32)
    got = fmod.apply(port.from_torch(tmod, abstract_init(fmod, tokens)), tokens)
    close(got, run_torch(tmod, tokens.astype(np.int64)))


class Conv1D(torch.nn.Module):
    """transformers.pytorch_utils.Conv1D, as GPT-2 uses it: weight (in, out)."""

    def __init__(self, nf: int, nx: int):
        super().__init__()
        self.nf = nf
        self.weight = torch.nn.Parameter(torch.randn(nx, nf) * 0.02)
        self.bias = torch.nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.size(-1)), self.weight).reshape(
            *x.shape[:-1], self.nf
        )


def test_transformers_conv1d_weight_is_not_transposed():
    tmod = randomize(Conv1D(7, 5))
    fmod = nn.Dense(7)
    x = rand(2, 5)
    variables = abstract_init(fmod, x)
    close(fmod.apply(port.from_torch(tmod, variables), x), run_torch(tmod, x))
    # From a bare state_dict the layout must be told: torch_types.
    sd = {k: v.numpy() for k, v in tmod.state_dict().items()}
    got = port.from_torch(sd, variables, torch_types={"": "Conv1D"})
    close(fmod.apply(got, x), run_torch(tmod, x))
    with pytest.raises(ValueError, match=r"\(5, 7\)"):
        port.from_torch(sd, variables)  # read as Linear (out, in): the shapes disagree


# ----------------------------------------------------------------------------
# Attention: Linen, NNX, Equinox; packed and separate in-projections


@pytest.mark.parametrize("kv", ["packed", "kdim-vdim"])
def test_linen_attention_matches_torch(kv):
    packed = kv == "packed"
    kw = {} if packed else {"kdim": 8, "vdim": 12}
    tmod = randomize(torch.nn.MultiheadAttention(16, 4, batch_first=True, **kw))
    assert ("in_proj_weight" in tmod.state_dict()) is packed
    fmod = nn.MultiHeadDotProductAttention(num_heads=4, qkv_features=16, out_features=16)
    q, k, v = (
        rand(2, 5, 16),
        rand(2, 7, 16 if packed else 8, seed=2),
        rand(2, 7, 16 if packed else 12, seed=3),
    )
    variables = abstract_init(fmod, q, k, v)
    new = port.from_torch(tmod, variables, model=fmod, args=(q, k, v))
    assert new["params"]["query"]["kernel"].shape == (16, 4, 4)
    close(jax.jit(fmod.apply)(new, q, k, v), run_torch(tmod, q, k, v))


def test_nnx_attention_matches_torch_in_place():
    tmod = randomize(torch.nn.MultiheadAttention(16, 4, batch_first=True))
    fmod = nnx.eval_shape(lambda: nnx.MultiHeadAttention(4, 16, 16, decode=False, rngs=nnx.Rngs(0)))
    q = rand(2, 5, 16)
    assert port.from_torch(tmod, fmod) is fmod
    close(nnx_call(fmod, q, q, q), run_torch(tmod, q, q, q))


def test_equinox_attention_matches_torch():
    tmod = randomize(torch.nn.MultiheadAttention(16, 4, batch_first=True))
    emod = eqx.filter_eval_shape(
        eqx.nn.MultiheadAttention,
        4,
        16,
        use_query_bias=True,
        use_key_bias=True,
        use_value_bias=True,
        use_output_bias=True,
        key=jax.random.key(0),
    )
    q = rand(5, 16)
    new = port.from_torch(tmod, emod)
    close(eqx_call(new, q, q, q), run_torch(tmod, q[None], q[None], q[None])[0])


# ----------------------------------------------------------------------------
# Recurrent: multi-layer and bidirectional torch modules, per-cell Flax layers


class LinenLSTM(nn.Module):
    optimized: bool = False

    @nn.compact
    def __call__(self, x):
        cell = nn.OptimizedLSTMCell if self.optimized else nn.LSTMCell
        x = nn.RNN(cell(5, name="lstm_l0"))(x)
        return nn.RNN(cell(5, name="lstm_l1"))(x)


class TorchLSTM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(3, 5, num_layers=2, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[0]


@pytest.mark.parametrize("optimized", [False, True])
def test_linen_lstm_two_layers_matches_torch(optimized):
    tmod = randomize(TorchLSTM())
    fmod = LinenLSTM(optimized)
    x = rand(2, 4, 3)
    new = port.from_torch(tmod, abstract_init(fmod, x), model=fmod, args=(x,))
    close(jax.jit(fmod.apply)(new, x), run_torch(tmod, x))


class LinenBiGRU(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Bidirectional(
            nn.RNN(nn.GRUCell(5, name="gru_l0")), nn.RNN(nn.GRUCell(5, name="gru_l0_reverse"))
        )(x)


class TorchGRU(torch.nn.Module):
    def __init__(self, **kw):
        super().__init__()
        self.gru = torch.nn.GRU(3, 5, batch_first=True, **kw)

    def forward(self, x):
        return self.gru(x)[0]


def test_linen_bidirectional_gru_matches_torch():
    tmod = randomize(TorchGRU(bidirectional=True))
    fmod = LinenBiGRU()
    x = rand(2, 4, 3)
    # Without model=: the cells are recognized by their leaf names.
    close(jax.jit(fmod.apply)(port.from_torch(tmod, abstract_init(fmod, x)), x), run_torch(tmod, x))


def test_linen_simple_cell_matches_torch_rnn():
    class TorchRNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.RNN(3, 5, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0]

    class LinenRNN(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.RNN(nn.SimpleCell(5, name="rnn"))(x)

    tmod, fmod = randomize(TorchRNN()), LinenRNN()
    x = rand(2, 4, 3)
    new = port.from_torch(tmod, abstract_init(fmod, x), model=fmod, args=(x,))
    close(jax.jit(fmod.apply)(new, x), run_torch(tmod, x))


@pytest.mark.parametrize("cell", ["LSTMCell", "OptimizedLSTMCell", "GRUCell", "SimpleCell"])
def test_nnx_cells_match_torch(cell):
    torch_cls = {"GRUCell": torch.nn.GRU, "SimpleCell": torch.nn.RNN}.get(cell, torch.nn.LSTM)

    class Torch(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch_cls(3, 5, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0]

    class Port(nnx.Module):
        def __init__(self):
            # the RNN wrapper's ``cell`` is transparent: torch ``rnn`` pairs with ``rnn/cell``
            self.rnn = nnx.RNN(getattr(nnx, cell)(3, 5, rngs=nnx.Rngs(0)))

        def __call__(self, x):
            return self.rnn(x)

    tmod = randomize(Torch())
    if cell == "GRUCell":  # nnx.GRUCell has no b_hn: only a torch GRU with b_hn = 0 ports
        with torch.no_grad():
            tmod.rnn.bias_hh_l0[10:] = 0
    fmod = Port()  # (its RNG state must be real: no nnx.eval_shape here)
    x = rand(2, 4, 3)
    port.from_torch(tmod, fmod)
    close(nnx_call(fmod, x), run_torch(tmod, x))


def test_nnx_gru_with_nonzero_b_hn_is_refused():
    tmod = randomize(TorchGRU())
    fmod = nnx.RNN(nnx.GRUCell(3, 5, rngs=nnx.Rngs(0)))
    before = np.asarray(fmod.cell.dense_i.kernel[...])
    with pytest.raises(ValueError, match="b_hn"):
        port.from_torch(tmod, fmod, rename=[("gru", "cell")])
    np.testing.assert_array_equal(fmod.cell.dense_i.kernel[...], before)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_equinox_cells_match_torch(kind):
    cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
    tmod = randomize(cls(3, 5, batch_first=True))
    cls = eqx.nn.LSTMCell if kind == "lstm" else eqx.nn.GRUCell
    ecell = port.from_torch(tmod, eqx.filter_eval_shape(cls, 3, 5, key=jax.random.key(0)))
    x = rand(4, 3)

    @eqx.filter_jit
    def run(cell, x):
        def step(carry, xt):
            carry = cell(xt, carry)
            return carry, carry[0] if kind == "lstm" else carry  # Equinox: (h, c)

        init = (jnp.zeros(5), jnp.zeros(5)) if kind == "lstm" else jnp.zeros(5)
        return jax.lax.scan(step, init, x)[1]

    close(run(ecell, x), run_torch(tmod, x[None])[0])


def test_attention_spelled_out_as_linear_layers_fills_flax_attention():
    """BERT/ViT-style torch attention (separate query/key/value/out Linear layers)."""

    class TSelfAttention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.query, self.key, self.value, self.out = (torch.nn.Linear(16, 16) for _ in range(4))

        def forward(self, x):
            b, t, e = x.shape
            q, k, v = (
                f(x).view(b, t, 4, 4).transpose(1, 2) for f in (self.query, self.key, self.value)
            )
            y = torch.nn.functional.scaled_dot_product_attention(q, k, v)
            return self.out(y.transpose(1, 2).reshape(b, t, e))

    tmod = randomize(TSelfAttention())
    fmod = nn.MultiHeadDotProductAttention(num_heads=4)
    x = rand(2, 5, 16)
    new = port.from_torch(tmod, abstract_init(fmod, x, x), model=fmod, args=(x, x))
    assert new["params"]["query"]["kernel"].shape == (16, 4, 4)
    assert new["params"]["out"]["kernel"].shape == (4, 4, 16)
    close(jax.jit(fmod.apply)(new, x, x), run_torch(tmod, x))
    back = port.to_torch(new, TSelfAttention(), model=fmod, args=(x, x))
    torch.testing.assert_close(back.state_dict(), tmod.state_dict(), rtol=0, atol=0)
