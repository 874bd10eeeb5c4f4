"""``TORCH_DEFAULTS`` and the torch-default builders against torch's own ``reset_parameters``.

The oracle is real torch. One model mixes every layer family ``TORCH_DEFAULTS``
knows; it is built three times with equivalent shapes: in torch (``nn.Linear``,
``nn.ConvNd``, ...), in Flax Linen and in Flax NNX. A table maps every Flax
leaf to its torch parameter (or a slice of it); for each pair the test checks

* the shape correspondence (flax leaf moved to torch layout == torch slice);
* the distribution: two-sample Kolmogorov-Smirnov test of the Flax values
  (pooled over many jax keys) against the torch values (pooled over many torch
  seeds), at least ``N_MIN`` values a side, ``p > P_MIN``;
* the support, exactly: ``max|w| <= bound`` with the bound computed here from
  torch's formulas (``1/sqrt(fan_in)`` with torch's own
  ``_calculate_fan_in_and_fan_out``, ``1/sqrt(hidden)``, xavier on the packed
  ``(3E, E)`` weight), and ``max|w| >= 0.98 bound`` (a too-narrow range);
* constants exactly: norm scales / running vars 1, norm biases / running
  means / attention biases 0.

Seeds are fixed, so every run is the same run; under the null hypothesis a
given KS comparison fails with probability ``P_MIN`` = 1e-3, i.e. about 0.12
expected false failures over the ~120 comparisons had the seeds been drawn
fresh (the fixed ones pass). The ``max|w| >= 0.98 bound`` check fails by
chance with probability ``0.98**N_MIN`` < 1e-17.

The builders (``torch_linear_weight``, ``torch_linear_bias``,
``torch_conv_transpose_weight``, ``torch_embedding``, ``torch_rnn``,
``torch_mha_in_proj``, both layouts) get the same KS and bound checks against
the torch module whose ``reset_parameters`` they stand for, and
``jaxinit.flax.init`` is checked against ``reinit(model.init(...))``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import torch
from flax import nnx

import jaxinit

P_MIN = 1e-3  # KS p-value threshold (false-failure odds per comparison)
N_MIN = 2000  # minimum pooled values per side of a KS comparison
N_TORCH = 6000  # torch values pooled per parameter
N_CAP = 20000  # at most this many values a side (KS power is plenty by then)
K_LINEN = 256  # jax keys pooled (vmapped) for the Linen model
K_NNX = 160  # jax keys pooled (looped) for the NNX model

# Widths: IN input features, H hidden, E attention embedding (NH heads), KV the
# key/value width of the cross-attention (torch's kdim = vdim).
IN, H, E, NH, KV = 10, 16, 16, 4, 6


# ----------------------------------------------------------------------------
# The three equivalent models

TORCH_MODULES: dict[str, Callable[[], torch.nn.Module]] = {
    "dense": lambda: torch.nn.Linear(12, 64),
    "dense_general": lambda: torch.nn.Linear(3 * 8, 4 * 5),
    "conv1": lambda: torch.nn.Conv1d(4, 16, 3),
    "conv2": lambda: torch.nn.Conv2d(6, 24, 3, groups=3),
    "conv3": lambda: torch.nn.Conv3d(3, 16, 2),
    "convt": lambda: torch.nn.ConvTranspose2d(4, 16, 3),
    "convt_t": lambda: torch.nn.ConvTranspose2d(4, 16, 3),
    "embed": lambda: torch.nn.Embedding(50, 8),
    "ln": lambda: torch.nn.LayerNorm(8),
    "rms": lambda: torch.nn.RMSNorm(8),
    "gn": lambda: torch.nn.GroupNorm(3, 6),
    "bn": lambda: torch.nn.BatchNorm2d(6),
    "attn": lambda: torch.nn.MultiheadAttention(E, NH),
    "xattn": lambda: torch.nn.MultiheadAttention(E, NH, kdim=KV, vdim=KV),
    "lstm": lambda: torch.nn.LSTMCell(IN, H),
    "olstm": lambda: torch.nn.LSTMCell(IN, H),
    "gru": lambda: torch.nn.GRUCell(IN, H),
    "rnn": lambda: torch.nn.RNNCell(IN, H),
}


class LinenMixed(nn.Module):
    """Every layer family, named as in ``TORCH_MODULES``; inputs made inside."""

    @nn.compact
    def __call__(self, x):
        b = x.shape[0]
        ones = lambda *s: jnp.ones((b, *s))  # noqa: E731
        nn.Dense(64, name="dense")(x)
        nn.DenseGeneral((4, 5), axis=(-2, -1), name="dense_general")(ones(3, 8))
        nn.Conv(16, (3,), name="conv1")(ones(9, 4))
        nn.Conv(24, (3, 3), feature_group_count=3, name="conv2")(ones(5, 5, 6))
        nn.Conv(16, (2, 2, 2), name="conv3")(ones(3, 3, 3, 3))
        nn.ConvTranspose(16, (3, 3), name="convt")(ones(4, 4, 4))
        nn.ConvTranspose(16, (3, 3), transpose_kernel=True, name="convt_t")(ones(4, 4, 4))
        nn.Embed(50, 8, name="embed")(jnp.zeros((b,), jnp.int32))
        nn.LayerNorm(name="ln")(ones(8))
        nn.RMSNorm(name="rms")(ones(8))
        nn.GroupNorm(num_groups=3, name="gn")(ones(4, 4, 6))
        nn.BatchNorm(use_running_average=False, name="bn")(ones(4, 4, 6))
        nn.MultiHeadDotProductAttention(num_heads=NH, qkv_features=E, name="attn")(ones(3, E))
        nn.MultiHeadDotProductAttention(num_heads=NH, qkv_features=E, name="xattn")(
            ones(3, E), ones(5, KV)
        )
        h = jnp.zeros((b, H))
        nn.LSTMCell(H, name="lstm")((h, h), ones(IN))
        nn.OptimizedLSTMCell(H, name="olstm")((h, h), ones(IN))
        nn.GRUCell(H, name="gru")(h, ones(IN))
        nn.SimpleCell(H, name="rnn")(h, ones(IN))
        return x


class NNXMixed(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.dense = nnx.Linear(12, 64, rngs=rngs)
        self.dense_general = nnx.LinearGeneral((3, 8), (4, 5), axis=(-2, -1), rngs=rngs)
        self.conv1 = nnx.Conv(4, 16, (3,), rngs=rngs)
        self.conv2 = nnx.Conv(6, 24, (3, 3), feature_group_count=3, rngs=rngs)
        self.conv3 = nnx.Conv(3, 16, (2, 2, 2), rngs=rngs)
        self.convt = nnx.ConvTranspose(4, 16, (3, 3), rngs=rngs)
        self.convt_t = nnx.ConvTranspose(4, 16, (3, 3), transpose_kernel=True, rngs=rngs)
        self.embed = nnx.Embed(50, 8, rngs=rngs)
        self.ln = nnx.LayerNorm(8, rngs=rngs)
        self.rms = nnx.RMSNorm(8, rngs=rngs)
        self.gn = nnx.GroupNorm(6, num_groups=3, rngs=rngs)
        self.bn = nnx.BatchNorm(6, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(num_heads=NH, in_features=E, decode=False, rngs=rngs)
        self.xattn = nnx.MultiHeadAttention(
            num_heads=NH, in_features=E, in_kv_features=KV, decode=False, rngs=rngs
        )
        self.lstm = nnx.LSTMCell(IN, H, rngs=rngs)
        self.olstm = nnx.OptimizedLSTMCell(IN, H, rngs=rngs)
        self.gru = nnx.GRUCell(IN, H, rngs=rngs)
        self.rnn = nnx.SimpleCell(IN, H, rngs=rngs)


# ----------------------------------------------------------------------------
# The table: flax leaf <-> torch parameter


@dataclasses.dataclass(frozen=True)
class Pair:
    """One flax leaf and the torch parameter (slice) it must match.

    ``to_torch`` moves one flax draw into the torch parameter's layout; the
    test checks it lands on exactly the torch slice's shape.
    """

    flax: str  # path below the collection ("dense/kernel", "bn/mean")
    module: str  # key of TORCH_MODULES
    param: str  # torch parameter or buffer name
    rows: tuple[int, int] | None  # slice of dim 0 of the torch tensor
    to_torch: Callable[[np.ndarray], np.ndarray]
    kind: str  # "uniform", "sum" (of two uniforms), "normal", "ones" or "zeros"
    collection: str = "params"
    part: tuple[int, int] | None = None  # slice of the flax leaf's last axis

    @property
    def id(self) -> str:
        return self.flax if self.part is None else f"{self.flax}[{self.part[0]}:{self.part[1]}]"


T = lambda w: w.T  # noqa: E731  dense kernel (in, out) -> torch weight (out, in)
SAME = lambda w: w  # noqa: E731


def conv_to_torch(w):  # (*k, in/g, out) -> (out, in/g, *k)
    return np.moveaxis(w, (-1, -2), (0, 1))


def conv_t_to_torch(w):  # flax ConvTranspose (*k, in, out) -> torch (in, out, *k)
    return np.moveaxis(w, (-2, -1), (0, 1))


def conv_tt_to_torch(w):  # flax ConvTranspose(transpose_kernel=True) (*k, out, in) -> (in, out, *k)
    return np.moveaxis(w, (-1, -2), (0, 1))


def heads_in(w):  # attention q/k/v kernel (E_in, heads, head_dim) -> torch rows (E, E_in)
    return w.reshape(w.shape[0], -1).T


def heads_out(w):  # attention out kernel (heads, head_dim, E) -> torch (E, heads*head_dim)
    return w.reshape(-1, w.shape[-1]).T


def flat(b):
    return b.reshape(-1)


def _gates(n: int) -> list[tuple[int, int]]:
    return [(g * H, (g + 1) * H) for g in range(n)]


def _common() -> list[Pair]:
    u, z, o = "uniform", "zeros", "ones"
    pairs = [
        Pair("dense/kernel", "dense", "weight", None, T, u),
        Pair("dense/bias", "dense", "bias", None, SAME, u),
        Pair(
            "dense_general/kernel",
            "dense_general",
            "weight",
            None,
            lambda w: w.reshape(24, 20).T,
            u,
        ),
        Pair("dense_general/bias", "dense_general", "bias", None, flat, u),
        Pair("embed/embedding", "embed", "weight", None, SAME, "normal"),
        Pair("ln/scale", "ln", "weight", None, SAME, o),
        Pair("ln/bias", "ln", "bias", None, SAME, z),
        Pair("rms/scale", "rms", "weight", None, SAME, o),
        Pair("gn/scale", "gn", "weight", None, SAME, o),
        Pair("gn/bias", "gn", "bias", None, SAME, z),
        Pair("bn/scale", "bn", "weight", None, SAME, o),
        Pair("bn/bias", "bn", "bias", None, SAME, z),
        Pair("convt/kernel", "convt", "weight", None, conv_t_to_torch, u),
        Pair("convt/bias", "convt", "bias", None, SAME, u),
        Pair("convt_t/kernel", "convt_t", "weight", None, conv_tt_to_torch, u),
        Pair("convt_t/bias", "convt_t", "bias", None, SAME, u),
    ]
    for name in ("conv1", "conv2", "conv3"):
        pairs.append(Pair(f"{name}/kernel", name, "weight", None, conv_to_torch, u))
        pairs.append(Pair(f"{name}/bias", name, "bias", None, SAME, u))
    for i, proj in enumerate(("query", "key", "value")):
        rows = (i * E, (i + 1) * E)
        pairs.append(Pair(f"attn/{proj}/kernel", "attn", "in_proj_weight", rows, heads_in, u))
        pairs.append(Pair(f"attn/{proj}/bias", "attn", "in_proj_bias", rows, flat, z))
    pairs.append(Pair("attn/out/kernel", "attn", "out_proj.weight", None, heads_out, u))
    pairs.append(Pair("attn/out/bias", "attn", "out_proj.bias", None, SAME, z))
    # kdim = vdim != E: torch keeps three separate weights, each xavier_uniform_ by itself
    for i, proj in enumerate(("query", "key", "value")):
        rows = (i * E, (i + 1) * E)
        pairs.append(
            Pair(f"xattn/{proj}/kernel", "xattn", f"{proj[0]}_proj_weight", None, heads_in, u)
        )
        pairs.append(Pair(f"xattn/{proj}/bias", "xattn", "in_proj_bias", rows, flat, z))
    pairs.append(Pair("xattn/out/kernel", "xattn", "out_proj.weight", None, heads_out, u))
    pairs.append(Pair("xattn/out/bias", "xattn", "out_proj.bias", None, SAME, z))
    return pairs


# A Flax bias that stands for torch's b_ih + b_hh (the cell adds its input and
# hidden projections before the gate) is compared with torch's effective bias,
# the sum "bias_ih+bias_hh" of the torch module's two parameters.
SUMMED = "bias_ih+bias_hh"


def _linen_cells() -> list[Pair]:
    u = "uniform"
    pairs = []
    for cell in ("lstm", "olstm"):  # Linen's OptimizedLSTMCell keeps LSTMCell's names
        for gate, rows in zip("ifgo", _gates(4)):
            pairs.append(Pair(f"{cell}/i{gate}/kernel", cell, "weight_ih", rows, T, u))
            pairs.append(Pair(f"{cell}/h{gate}/kernel", cell, "weight_hh", rows, T, u))
            pairs.append(Pair(f"{cell}/h{gate}/bias", cell, SUMMED, rows, SAME, "sum"))
    for gate, rows in zip("rzn", _gates(3)):
        pairs.append(Pair(f"gru/i{gate}/kernel", "gru", "weight_ih", rows, T, u))
        pairs.append(Pair(f"gru/h{gate}/kernel", "gru", "weight_hh", rows, T, u))
    # r, z: sigma(W_i x + b_i + W_h h + b_h) -> the sum; n keeps b_in and b_hn apart
    for gate, rows in zip("rz", _gates(2)):
        pairs.append(Pair(f"gru/i{gate}/bias", "gru", SUMMED, rows, SAME, "sum"))
    pairs.append(Pair("gru/in/bias", "gru", "bias_ih", _gates(3)[2], SAME, u))
    pairs.append(Pair("gru/hn/bias", "gru", "bias_hh", _gates(3)[2], SAME, u))
    pairs.append(Pair("rnn/i/kernel", "rnn", "weight_ih", None, T, u))
    pairs.append(Pair("rnn/i/bias", "rnn", SUMMED, None, SAME, "sum"))
    pairs.append(Pair("rnn/h/kernel", "rnn", "weight_hh", None, T, u))
    return pairs


def _nnx_cells() -> list[Pair]:
    u = "uniform"
    pairs = []
    for gate, rows in zip(("i", "f_", "g", "o"), _gates(4)):  # nnx names the f gate "if_"
        pairs.append(Pair(f"lstm/i{gate}/kernel", "lstm", "weight_ih", rows, T, u))
        pairs.append(Pair(f"lstm/h{gate[0]}/kernel", "lstm", "weight_hh", rows, T, u))
        pairs.append(Pair(f"lstm/h{gate[0]}/bias", "lstm", SUMMED, rows, SAME, "sum"))
    # nnx OptimizedLSTMCell / GRUCell / SimpleCell pack the gates (i, f, g, o / r, z, n)
    # along the output axis, in torch's order.
    for cell in ("olstm", "gru", "rnn"):
        pairs.append(Pair(f"{cell}/dense_i/kernel", cell, "weight_ih", None, T, u))
        pairs.append(Pair(f"{cell}/dense_h/kernel", cell, "weight_hh", None, T, u))
    pairs.append(Pair("olstm/dense_h/bias", "olstm", SUMMED, None, SAME, "sum"))
    # nnx GRUCell: one input bias (r, z, n); r and z stand for sums, n for b_in
    # (nnx's GRU has no b_hn at all).
    rz, n = (0, 2 * H), (2 * H, 3 * H)
    pairs.append(Pair("gru/dense_i/bias", "gru", SUMMED, rz, SAME, "sum", part=rz))
    pairs.append(Pair("gru/dense_i/bias", "gru", "bias_ih", n, SAME, u, part=n))
    pairs.append(Pair("rnn/dense_i/bias", "rnn", SUMMED, None, SAME, "sum"))
    return pairs


_STATS = [
    Pair("bn/mean", "bn", "running_mean", None, SAME, "zeros", "batch_stats"),
    Pair("bn/var", "bn", "running_var", None, SAME, "ones", "batch_stats"),
]
LINEN_PAIRS = _common() + _linen_cells() + _STATS
NNX_PAIRS = _common() + _nnx_cells() + _STATS


# ----------------------------------------------------------------------------
# torch's side: bounds from torch's formulas, pooled draws


def torch_bound(pair: Pair) -> float:
    """The bound of a uniform torch parameter, from torch's own formulas."""
    module = TORCH_MODULES[pair.module]()
    fan = torch.nn.init._calculate_fan_in_and_fan_out
    if isinstance(module, torch.nn.RNNCellBase):
        terms = 2 if pair.param == SUMMED else 1
        return terms / math.sqrt(module.hidden_size)
    if isinstance(module, torch.nn.MultiheadAttention):
        if pair.param.endswith("proj_weight"):
            # xavier_uniform_ (gain 1) on the packed (3E, E) in_proj_weight, or on each
            # of q/k/v_proj_weight (E, E), (E, kdim), (E, vdim) when kdim/vdim != E
            fan_in, fan_out = fan(getattr(module, pair.param))
            return math.sqrt(6.0 / (fan_in + fan_out))
        fan_in, _ = fan(module.out_proj.weight)
        return 1.0 / math.sqrt(fan_in)
    # Linear / ConvNd / ConvTransposeNd: kaiming_uniform_(a=sqrt(5)) on the weight
    # and U(±1/sqrt(fan_in)) on the bias, fan_in from the weight as torch reads it.
    fan_in, _ = fan(module.weight)
    if pair.param == "weight":
        gain = torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5))
        return gain * math.sqrt(3.0 / fan_in)
    return 1.0 / math.sqrt(fan_in)


_TORCH_CACHE: dict[tuple[str, str, tuple[int, int] | None], np.ndarray] = {}


def torch_draws(pair: Pair) -> np.ndarray:
    """``(seeds, *shape)`` values of the torch parameter after torch's default init."""
    ck = (pair.module, pair.param, pair.rows)
    if ck not in _TORCH_CACHE:
        size = _torch_slice(TORCH_MODULES[pair.module](), pair).size
        random = pair.kind in ("uniform", "sum", "normal")
        seeds = max(4, -(-N_TORCH // size)) if random else 4
        out = []
        for seed in range(seeds):
            torch.manual_seed(1000 + seed)
            out.append(_torch_slice(TORCH_MODULES[pair.module](), pair))
        _TORCH_CACHE[ck] = np.stack(out)
    return _TORCH_CACHE[ck]


def _torch_slice(module: torch.nn.Module, pair: Pair) -> np.ndarray:
    tensors = {**dict(module.named_parameters()), **dict(module.named_buffers())}
    w = sum(tensors[name].detach().numpy() for name in pair.param.split("+"))
    return w if pair.rows is None else w[pair.rows[0] : pair.rows[1]]


# ----------------------------------------------------------------------------
# Flax's side: pooled draws


def _flat_paths(tree) -> dict[str, np.ndarray]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {"/".join(str(getattr(k, "key", k)) for k in kp): np.asarray(v) for kp, v in flat}


def _linen_init(key):
    return jaxinit.flax.init(
        LinenMixed(), key, jnp.ones((2, 12)), rules=jaxinit.flax.TORCH_DEFAULTS
    )


@pytest.fixture(scope="module")
def linen_draws() -> dict[str, np.ndarray]:
    """``collection/path -> (K_LINEN, *shape)`` from ``jaxinit.flax.init``, looped over keys.

    (A loop, as users call it: the model is traced once and its leaves drawn by
    the cached flat programs; ``test_linen_init_under_vmap_is_the_loop`` checks
    that the vmapped init, which takes the per-leaf path, gives the same bits.)
    """
    keys = jax.random.split(jax.random.key(20240), K_LINEN)
    draws = [_flat_paths(_linen_init(k)) for k in keys]
    return {path: np.stack([d[path] for d in draws]) for path in draws[0]}


def test_linen_init_under_vmap_is_the_loop():
    class Small(nn.Module):  # one layer per family of per-leaf kernels: the vmap path
        @nn.compact
        def __call__(self, x):
            h = nn.Dense(5, name="dense")(x)
            nn.Conv(4, (3,), name="conv")(x[..., None])
            nn.Embed(7, 3, name="embed")(jnp.zeros((2,), jnp.int32))
            nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=4, name="attn")(x[:, None])
            nn.GRUCell(3, name="gru")(jnp.zeros((2, 3)), h)
            return h

    x = jnp.ones((2, 6))
    keys = jax.random.split(jax.random.key(5), 3)
    init = lambda k: jaxinit.flax.init(Small(), k, x, rules=jaxinit.flax.TORCH_DEFAULTS)  # noqa: E731
    vmapped = _flat_paths(jax.vmap(init)(keys))
    looped = [_flat_paths(init(k)) for k in keys]
    assert sorted(vmapped) == sorted(looped[0])
    for path, v in vmapped.items():
        np.testing.assert_array_equal(v, np.stack([d[path] for d in looped]), err_msg=path)


@pytest.fixture(scope="module")
def nnx_draws() -> dict[str, np.ndarray]:
    """``path -> (K_NNX, *shape)`` from ``jaxinit.flax.reinit`` of one NNX model, looped over keys."""
    model = NNXMixed(nnx.Rngs(0))
    draws: dict[str, list[np.ndarray]] = {}
    for k in jax.random.split(jax.random.key(777), K_NNX):
        out = jaxinit.flax.reinit(model, jaxinit.flax.TORCH_DEFAULTS, key=k)
        assert out is model
        state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
        for path, var in nnx.to_flat_state(state):
            draws.setdefault("/".join(map(str, path)), []).append(np.asarray(var.get_value()))
    return {p: np.stack(v) for p, v in draws.items()}


def _pool(x: np.ndarray) -> np.ndarray:
    return x.reshape(-1)[:N_CAP]


def check_pair(pair: Pair, flax_draws: np.ndarray) -> None:
    if pair.part is not None:
        flax_draws = flax_draws[..., pair.part[0] : pair.part[1]]
    tdraws = torch_draws(pair)
    # 1. the table is right: one flax draw, moved to torch's layout, is the torch slice's shape
    assert pair.to_torch(flax_draws[0]).shape == tdraws.shape[1:], pair
    fx, tx = _pool(flax_draws), _pool(tdraws)
    assert fx.dtype == np.float32
    if pair.kind in ("ones", "zeros"):
        want = 1.0 if pair.kind == "ones" else 0.0
        np.testing.assert_array_equal(tx, want)  # the oracle agrees with the table
        np.testing.assert_array_equal(fx, want)
        return
    assert fx.size >= N_MIN and tx.size >= N_MIN, (fx.size, tx.size)
    ks = scipy.stats.ks_2samp(fx, tx)
    assert ks.pvalue > P_MIN, f"{pair.flax}: KS p={ks.pvalue:.2e} (stat {ks.statistic:.4f})"
    if pair.kind in ("uniform", "sum"):
        bound = np.float32(torch_bound(pair))
        assert np.abs(tx).max() <= bound  # our formula is torch's
        assert np.abs(fx).max() <= bound, (pair.flax, np.abs(fx).max(), bound)
    if pair.kind == "uniform":  # (a triangular sum rarely comes near its bound)
        assert np.abs(fx).max() >= 0.98 * bound, (pair.flax, np.abs(fx).max(), bound)
    if pair.kind == "sum":  # the sum's std, sqrt(2/3)/sqrt(H), tells it from one uniform
        std = math.sqrt(2.0 / 3.0) / math.sqrt(H)
        assert abs(fx.std() - std) < 6 * std / math.sqrt(fx.size), (fx.std(), std)
    if pair.kind == "normal":  # N(0, 1)
        assert abs(fx.mean()) < 6 / math.sqrt(fx.size)
        assert abs(fx.std() - 1.0) < 6 / math.sqrt(2 * fx.size)


# ----------------------------------------------------------------------------
# The parity tests


def test_linen_table_covers_every_leaf(linen_draws):
    assert sorted(linen_draws) == sorted({f"{p.collection}/{p.flax}" for p in LINEN_PAIRS})


def test_nnx_table_covers_every_leaf(nnx_draws):
    assert sorted(nnx_draws) == sorted({p.flax for p in NNX_PAIRS})


@pytest.mark.parametrize("pair", LINEN_PAIRS, ids=lambda p: p.id)
def test_linen_torch_defaults_parity(pair, linen_draws):
    check_pair(pair, linen_draws[f"{pair.collection}/{pair.flax}"])


@pytest.mark.parametrize("pair", NNX_PAIRS, ids=lambda p: p.id)
def test_nnx_torch_defaults_parity(pair, nnx_draws):
    check_pair(pair, nnx_draws[pair.flax])


# ----------------------------------------------------------------------------
# The public builders against torch modules' reset_parameters


def _torch_pool(make: Callable[[], torch.nn.Module], name: str, rows=None) -> np.ndarray:
    """torch's values of ``make().name`` (rows of dim 0), over enough seeds for ``N_TORCH``."""
    pair = Pair("-", "-", name, rows, SAME, "uniform")
    size = _torch_slice(make(), pair).size
    out = []
    for seed in range(max(4, -(-N_TORCH // size))):
        torch.manual_seed(5000 + seed)
        out.append(_torch_slice(make(), pair).reshape(-1))
    return np.concatenate(out)


def _jax_pool(init, shape, seed: int = 0) -> np.ndarray:
    """The initializer's values on ``shape``, over enough keys for ``N_TORCH``.

    A loop of eager calls (one compile, flat bits), not ``jax.vmap``: a vmapped
    draw of an odd 4-D shape takes XLA:CPU seconds to compile.
    """
    n = max(4, -(-N_TORCH // math.prod(shape)))
    keys = jax.random.split(jax.random.key(seed), n)
    out = np.stack([np.asarray(init(k, shape)) for k in keys])
    assert out.shape == (n, *shape) and out.dtype == np.float32
    return out.reshape(-1)


def _same_distribution(ours: np.ndarray, theirs: np.ndarray, bound: float | None) -> None:
    ks = scipy.stats.ks_2samp(ours[:N_CAP], theirs[:N_CAP])
    assert ks.pvalue > P_MIN, f"KS p={ks.pvalue:.2e} (stat {ks.statistic:.4f})"
    if bound is not None:
        b = np.float32(bound)
        assert np.abs(theirs).max() <= b
        assert 0.98 * b <= np.abs(ours).max() <= b, (np.abs(ours).max(), b)


def _fan_in(weight: torch.Tensor) -> int:
    return torch.nn.init._calculate_fan_in_and_fan_out(weight)[0]


BUILDER_CASES = {
    # id: (jaxinit initializer, jax shape, torch module, torch param, rows, bound from torch)
    "linear_weight": (
        jaxinit.torch_linear_weight(),
        (64, 12),
        lambda: torch.nn.Linear(12, 64),
        "weight",
        None,
        1 / math.sqrt(12),
    ),
    "linear_weight_flax": (
        jaxinit.flax.torch_linear_weight(),
        (12, 64),
        lambda: torch.nn.Linear(12, 64),
        "weight",
        None,
        1 / math.sqrt(12),
    ),
    "conv_weight_grouped": (
        jaxinit.torch_linear_weight(),
        (24, 2, 3, 3),
        lambda: torch.nn.Conv2d(6, 24, 3, groups=3),
        "weight",
        None,
        1 / math.sqrt(2 * 9),
    ),
    "conv_weight_grouped_flax": (
        jaxinit.flax.torch_linear_weight(),
        (3, 3, 2, 24),
        lambda: torch.nn.Conv2d(6, 24, 3, groups=3),
        "weight",
        None,
        1 / math.sqrt(2 * 9),
    ),
    "linear_bias": (
        jaxinit.torch_linear_bias(12),
        (64,),
        lambda: torch.nn.Linear(12, 64),
        "bias",
        None,
        1 / math.sqrt(12),
    ),
    "linear_bias_flax": (
        jaxinit.flax.torch_linear_bias(12),
        (64,),
        lambda: torch.nn.Linear(12, 64),
        "bias",
        None,
        1 / math.sqrt(12),
    ),
    "conv_bias": (
        jaxinit.torch_linear_bias(18),
        (24,),
        lambda: torch.nn.Conv2d(6, 24, 3, groups=3),
        "bias",
        None,
        1 / math.sqrt(18),
    ),
    # torch's ConvTranspose weight is (in, out/groups, *k) and its fan_in reads dim 1.
    "conv_transpose_weight": (
        jaxinit.torch_conv_transpose_weight(),
        (4, 16, 3, 3),
        lambda: torch.nn.ConvTranspose2d(4, 16, 3),
        "weight",
        None,
        1 / math.sqrt(16 * 9),
    ),
    "conv_transpose_weight_grouped": (
        jaxinit.torch_conv_transpose_weight(),
        (4, 8, 3, 3),
        lambda: torch.nn.ConvTranspose2d(4, 16, 3, groups=2),
        "weight",
        None,
        1 / math.sqrt(8 * 9),
    ),
    # ... and a flax ConvTranspose kernel is (*k, in, out): torch's fan_in is out * prod(k).
    "conv_transpose_weight_flax": (
        jaxinit.flax.torch_conv_transpose_weight(),
        (3, 3, 4, 16),
        lambda: torch.nn.ConvTranspose2d(4, 16, 3),
        "weight",
        None,
        1 / math.sqrt(16 * 9),
    ),
    "conv_transpose_bias": (
        jaxinit.torch_linear_bias(16 * 9),
        (16,),
        lambda: torch.nn.ConvTranspose2d(4, 16, 3),
        "bias",
        None,
        1 / math.sqrt(16 * 9),
    ),
    "embedding": (
        jaxinit.torch_embedding(),
        (50, 8),
        lambda: torch.nn.Embedding(50, 8),
        "weight",
        None,
        None,
    ),
    "embedding_flax": (
        jaxinit.flax.torch_embedding(),
        (50, 8),
        lambda: torch.nn.Embedding(50, 8),
        "weight",
        None,
        None,
    ),
    "rnn_weight_ih": (
        jaxinit.torch_rnn(H),
        (4 * H, IN),
        lambda: torch.nn.LSTM(IN, H),
        "weight_ih_l0",
        None,
        1 / math.sqrt(H),
    ),
    "rnn_weight_hh_flax": (
        jaxinit.flax.torch_rnn(H),
        (H, 3 * H),
        lambda: torch.nn.GRU(IN, H),
        "weight_hh_l0",
        None,
        1 / math.sqrt(H),
    ),
    "rnn_bias": (
        jaxinit.torch_rnn(H),
        (4 * H,),
        lambda: torch.nn.LSTMCell(IN, H),
        "bias_hh",
        None,
        1 / math.sqrt(H),
    ),
    # one (E, E) projection of the packed (3E, E) in_proj_weight: xavier on (3E, E)
    "mha_in_proj": (
        jaxinit.torch_mha_in_proj(),
        (E, E),
        lambda: torch.nn.MultiheadAttention(E, NH),
        "in_proj_weight",
        None,
        math.sqrt(6 / (E + 3 * E)),
    ),
    "mha_in_proj_flax": (
        jaxinit.flax.torch_mha_in_proj(),
        (E, E),
        lambda: torch.nn.MultiheadAttention(E, NH),
        "in_proj_weight",
        None,
        math.sqrt(6 / (E + 3 * E)),
    ),
    # a flax attention kernel (E_in, heads, head_dim): heads*head_dim is the output width
    "mha_in_proj_flax_heads": (
        jaxinit.flax.torch_mha_in_proj(layout=jaxinit.Layout(0, (1, 2))),
        (E, NH, E // NH),
        lambda: torch.nn.MultiheadAttention(E, NH),
        "in_proj_weight",
        (E, 2 * E),
        math.sqrt(6 / (E + 3 * E)),
    ),
    # kdim/vdim != embed_dim: torch draws each projection by itself (num_packed=1)
    "mha_in_proj_unpacked": (
        jaxinit.torch_mha_in_proj(1),
        (E, 6),
        lambda: torch.nn.MultiheadAttention(E, NH, kdim=6, vdim=6),
        "k_proj_weight",
        None,
        math.sqrt(6 / (E + 6)),
    ),
}


@pytest.mark.parametrize("case", sorted(BUILDER_CASES))
def test_builder_matches_torch_module(case):
    init, shape, make, name, rows, bound = BUILDER_CASES[case]
    theirs = _torch_pool(make, name, rows)
    if bound is not None:  # the expected bound is torch's formula on torch's own weight
        module = make()
        weight = dict(module.named_parameters())[name]
        if name == "weight" and not isinstance(module, torch.nn.Embedding):
            assert math.isclose(bound, 1 / math.sqrt(_fan_in(weight)), rel_tol=1e-12)
    _same_distribution(_jax_pool(init, shape), theirs, bound)


def test_builder_bounds_are_torch_formulas():
    """The table's bounds are what torch's reset_parameters compute."""
    lin = torch.nn.Linear(12, 64)
    gain = torch.nn.init.calculate_gain("leaky_relu", math.sqrt(5))
    assert math.isclose(gain * math.sqrt(3 / _fan_in(lin.weight)), 1 / math.sqrt(12), rel_tol=1e-12)
    convt = torch.nn.ConvTranspose2d(4, 16, 3)
    assert _fan_in(convt.weight) == 16 * 9  # the quirk: dim 1 of (in, out, *k)
    mha = torch.nn.MultiheadAttention(E, NH)
    fi, fo = torch.nn.init._calculate_fan_in_and_fan_out(mha.in_proj_weight)
    assert (fi, fo) == (E, 3 * E)


def test_linear_bias_fan_in_zero_is_zero_like_torch():
    with pytest.warns(UserWarning, match="zero-element"):  # torch's kaiming_uniform_ on (5, 0)
        torch_bias = torch.nn.Linear(0, 5).bias.detach().numpy()
    np.testing.assert_array_equal(torch_bias, 0.0)
    for build in (jaxinit.torch_linear_bias, jaxinit.flax.torch_linear_bias):
        b = build(0)(jax.random.key(0), (5,))
        np.testing.assert_array_equal(np.asarray(b), 0.0)
        assert b.dtype == jnp.float32


@pytest.mark.parametrize("bad", [-1, 1.5, True, None])
def test_linear_bias_rejects_bad_fan_in(bad):
    # a negative int is a ValueError; a float, bool or None a TypeError
    with pytest.raises((ValueError, TypeError), match="torch_linear_bias: fan_in must be"):
        jaxinit.torch_linear_bias(bad)


@pytest.mark.parametrize("bad", [0, -3, 2.0, False])
def test_rnn_rejects_bad_hidden(bad):
    with pytest.raises((ValueError, TypeError), match="torch_rnn: hidden_size must be"):
        jaxinit.torch_rnn(bad)


def test_mha_in_proj_num_packed_one_is_xavier_uniform():
    key = jax.random.key(3)
    a = jaxinit.torch_mha_in_proj(1)(key, (E, 6))
    b = jaxinit.xavier_uniform()(key, (E, 6))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ----------------------------------------------------------------------------
# jaxinit.flax.init: the drop-in for model.init


class Partial(nn.Module):
    """Covered layers, a parameter no rule covers, and non-params collections."""

    @nn.compact
    def __call__(self, x, train: bool = True):
        x = nn.Dense(8, name="dense")(x)
        x = nn.BatchNorm(use_running_average=not train, name="bn")(x)
        self.param("custom", nn.initializers.normal(0.5), (3, 4))  # no rule covers it
        self.variable("counters", "steps", lambda: jnp.zeros((), jnp.int32))
        self.variable("stats", "ema", lambda: jnp.full((8,), 0.25))  # float, no rule
        return x


class Covered(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Dense(8, name="dense")(x)
        x = nn.LayerNorm(name="ln")(x)
        return nn.Conv(4, (3,), name="conv")(x[..., None])


@pytest.mark.parametrize("model", [Partial(), Covered()], ids=["partial", "covered"])
def test_init_equals_reinit_of_model_init(model):
    key = jax.random.key(11)
    x = jnp.ones((2, 5))
    rules = jaxinit.flax.TORCH_DEFAULTS
    got = jaxinit.flax.init(model, key, x, rules=rules)
    reference = model.init(key, x)
    want = jaxinit.flax.reinit(reference, rules, key=key, model=model, args=(x,))
    assert jax.tree.structure(got) == jax.tree.structure(reference)
    chex.assert_trees_all_equal(got, want)  # bit for bit
    chex.assert_trees_all_equal_dtypes(got, reference)
    # the rules did run: the Dense kernel is not flax's lecun_normal any more
    assert not np.array_equal(
        got["params"]["dense"]["kernel"], reference["params"]["dense"]["kernel"]
    )
    assert np.abs(np.asarray(got["params"]["dense"]["kernel"])).max() <= np.float32(
        1 / math.sqrt(5)
    )


def test_init_keeps_uncovered_leaves_and_other_collections():
    model, key, x = Partial(), jax.random.key(12), jnp.ones((2, 5))
    got = jaxinit.flax.init(model, key, x, train=True, rules=jaxinit.flax.TORCH_DEFAULTS)
    reference = model.init(key, x, train=True)
    # the leaf no rule covers is model.init's own value, bit for bit
    np.testing.assert_array_equal(got["params"]["custom"], reference["params"]["custom"])
    # collections other than params come back as model.init returns them
    assert set(got) == set(reference) == {"params", "batch_stats", "counters", "stats"}
    for col in ("batch_stats", "counters", "stats"):
        chex.assert_trees_all_equal(got[col], reference[col])
        chex.assert_trees_all_equal_dtypes(got[col], reference[col])
    np.testing.assert_array_equal(got["batch_stats"]["bn"]["mean"], 0.0)
    np.testing.assert_array_equal(got["batch_stats"]["bn"]["var"], 1.0)


def test_init_with_dict_of_keys_uses_the_params_key():
    model, x = Covered(), jnp.ones((2, 5))
    k = jax.random.key(13)
    got = jaxinit.flax.init(
        model, {"params": k, "dropout": jax.random.key(99)}, x, rules=jaxinit.flax.TORCH_DEFAULTS
    )
    chex.assert_trees_all_equal(
        got, jaxinit.flax.init(model, k, x, rules=jaxinit.flax.TORCH_DEFAULTS)
    )


@pytest.mark.slow
def test_init_equals_reinit_on_the_mixed_model():
    """Every layer family at once: flax.init is reinit(model.init) bit for bit."""
    model, key, x = LinenMixed(), jax.random.key(21), jnp.ones((2, 12))
    got = jaxinit.flax.init(model, key, x, rules=jaxinit.flax.TORCH_DEFAULTS)
    want = jaxinit.flax.reinit(
        model.init(key, x), jaxinit.flax.TORCH_DEFAULTS, key=key, model=model, args=(x,)
    )
    chex.assert_trees_all_equal(got, want)


# ---------------------------------------------------------------------------
# Layers stacked by nn.scan: each layer gets its own torch fan, not the stack's.


class _ScanBlock(nn.Module):
    @nn.compact
    def __call__(self, x, _):
        h = nn.Dense(16)(x)
        h = nn.Conv(8, (3,))(h[..., None])[..., 0]
        q = x[:, None, :].repeat(3, 1)
        y = nn.MultiHeadDotProductAttention(num_heads=2)(q, q)[:, 0]
        return x + h[..., :8].sum(-1, keepdims=True) + y, None


class _Scanned(nn.Module):
    @nn.compact
    def __call__(self, x):
        stack = nn.scan(
            _ScanBlock,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            length=6,
        )
        return stack(name="blocks")(x, None)[0]


def test_scanned_layers_get_per_layer_torch_fans():
    # torch's bounds for one block: Linear(8, 16): 1/sqrt(8); Conv1d(1, 8, 3):
    # 1/sqrt(1 * 3); MultiheadAttention(8, 2): packed xavier sqrt(6 / (8 + 3 * 8))
    # for q/k/v, out_proj Linear(8, 8): 1/sqrt(8); attention biases 0.
    x = jnp.ones((2, 8))
    params = jaxinit.flax.init(_Scanned(), jax.random.key(3), x, rules=jaxinit.flax.TORCH_DEFAULTS)[
        "params"
    ]["blocks"]
    attn = params["MultiHeadDotProductAttention_0"]
    expected = {
        "Dense_0/kernel": (params["Dense_0"]["kernel"], 1 / math.sqrt(8)),
        "Dense_0/bias": (params["Dense_0"]["bias"], 1 / math.sqrt(8)),
        "Conv_0/kernel": (params["Conv_0"]["kernel"], 1 / math.sqrt(3)),
        "Conv_0/bias": (params["Conv_0"]["bias"], 1 / math.sqrt(3)),
        "query/kernel": (attn["query"]["kernel"], math.sqrt(6 / 32)),
        "key/kernel": (attn["key"]["kernel"], math.sqrt(6 / 32)),
        "value/kernel": (attn["value"]["kernel"], math.sqrt(6 / 32)),
        "out/kernel": (attn["out"]["kernel"], 1 / math.sqrt(8)),
    }
    for name, (leaf, bound) in expected.items():
        assert leaf.shape[0] == 6, name
        values = np.asarray(leaf, np.float64).ravel()
        assert np.abs(values).max() <= np.float32(bound), name
        # Exact uniform law U(-bound, bound): a wrong fan (the stack's) changes the scale.
        p = scipy.stats.kstest(values, scipy.stats.uniform(-bound, 2 * bound).cdf).pvalue
        assert p > 1e-3, (name, p)
    for name in ("query", "key", "value", "out"):
        assert not np.any(np.asarray(attn[name]["bias"])), name
