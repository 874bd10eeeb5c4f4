"""``jaxinit.X`` built without ``layout=`` and passed to a Flax built-in layer takes the
layer's kernel layout: the literal ``nn.Dense(kernel_init=jaxinit.kaiming_normal(mode="fan_out"))``
draws what torch's ``kaiming_normal_(mode="fan_out")`` draws on the equivalent torch layer.

The oracle is real torch: every layer kind is compared (KS + std, sample sizes from
``tests/records.py``) with torch's ``X_`` on the weight of the equivalent torch layer,
on non-square shapes where the torch and flax layouts disagree. Transforms and
contexts are checked bit for bit against the same model built with the explicit
``layout=`` the layer implies.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.init as tinit
from flax import nnx

import jaxinit
import jaxinit.flax
from tests import records as R

KEY = jax.random.key(0)
FAN_OUT = dict(mode="fan_out", nonlinearity="relu")


def _torch_weights(torch_shape: tuple[int, ...], n: int, fn=tinit.kaiming_normal_, **kw):
    torch.manual_seed(0)
    out = []
    for _ in range(n):
        w = torch.empty(torch_shape)
        fn(w, **kw)
        out.append(w.numpy())
    return np.stack(out)


def _compare(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    R.assert_ks(ours, theirs, what)
    std = float(np.std(theirs))
    R.assert_moments(ours, R.Moments(0.0, std, 3.0), what)


# ----------------------------------------------------------------------------
# Every built-in layer kind, Linen and NNX, against the equivalent torch layer.
# (name, kernel factory: key -> kernel array, torch weight shape)


def _linen(module: nn.Module, x_shape: tuple[int, ...], path: tuple[str, ...], dtype=jnp.float32):
    """keys -> the stacked kernels of ``module.init`` (vmapped: one trace for all keys)."""

    def one(key: jax.Array) -> jax.Array:
        args = (
            [_ones(a, dtype) for a in x_shape]
            if isinstance(x_shape[0], tuple)
            else [_ones(x_shape, dtype)]
        )
        params = module.init(key, *args)["params"]
        for p in path:
            params = params[p]
        return params

    return lambda keys: np.asarray(jax.vmap(one)(keys))


def _ones(spec: Any, dtype: Any) -> Any:
    """Ones of a shape, or a tuple of them for a tuple of shapes (an LSTM carry)."""
    if all(isinstance(d, int) for d in spec):
        return jnp.ones(spec, dtype)
    return tuple(_ones(s, dtype) for s in spec)


def _nnx(build: Callable[[nnx.Rngs], Any], path: tuple[str, ...]):
    """keys -> the stacked kernels of NNX layers built eagerly, one per key."""

    def one(key: jax.Array) -> np.ndarray:
        module = build(nnx.Rngs(params=key))
        for p in path:
            module = getattr(module, p)
        return np.asarray(module[...])

    return lambda keys: np.stack([one(k) for k in keys])


INIT = jaxinit.kaiming_normal(**FAN_OUT)  # no layout=: the literal users write

LAYERS = [
    # torch Linear(48, 80): weight (80, 48)
    ("linen Dense", _linen(nn.Dense(80, kernel_init=INIT), (1, 48), ("kernel",)), (80, 48)),
    (
        "nnx Linear",
        _nnx(lambda r: nnx.Linear(48, 80, kernel_init=INIT, rngs=r), ("kernel",)),
        (80, 48),
    ),
    # DenseGeneral to (4, 5) features: torch Linear(24, 20)
    (
        "linen DenseGeneral",
        _linen(nn.DenseGeneral((4, 5), kernel_init=INIT), (1, 24), ("kernel",)),
        (20, 24),
    ),
    (
        "nnx LinearGeneral",
        _nnx(lambda r: nnx.LinearGeneral(24, (4, 5), kernel_init=INIT, rngs=r), ("kernel",)),
        (20, 24),
    ),
    # Conv2d(16, 32, 3): weight (32, 16, 3, 3)
    (
        "linen Conv",
        _linen(nn.Conv(32, (3, 3), kernel_init=INIT), (1, 8, 8, 16), ("kernel",)),
        (32, 16, 3, 3),
    ),
    (
        "nnx Conv",
        _nnx(lambda r: nnx.Conv(16, 32, (3, 3), kernel_init=INIT, rngs=r), ("kernel",)),
        (32, 16, 3, 3),
    ),
    # Conv1d(12, 8, 5, groups=2): weight (8, 6, 5)
    (
        "linen Conv grouped",
        _linen(nn.Conv(8, (5,), feature_group_count=2, kernel_init=INIT), (1, 9, 12), ("kernel",)),
        (8, 6, 5),
    ),
    # ConvTranspose2d(16, 32, 3): weight (16, 32, 3, 3), torch's fan_in reads dim 1
    (
        "linen ConvTranspose",
        _linen(nn.ConvTranspose(32, (3, 3), kernel_init=INIT), (1, 6, 6, 16), ("kernel",)),
        (16, 32, 3, 3),
    ),
    (
        "linen ConvTranspose transpose_kernel",
        _linen(
            nn.ConvTranspose(32, (3, 3), transpose_kernel=True, kernel_init=INIT),
            (1, 6, 6, 16),
            ("kernel",),
        ),
        (16, 32, 3, 3),
    ),
    (
        "nnx ConvTranspose",
        _nnx(lambda r: nnx.ConvTranspose(16, 32, (3, 3), kernel_init=INIT, rngs=r), ("kernel",)),
        (16, 32, 3, 3),
    ),
    (
        "nnx ConvTranspose transpose_kernel",
        _nnx(
            lambda r: nnx.ConvTranspose(
                16, 32, (3, 3), transpose_kernel=True, kernel_init=INIT, rngs=r
            ),
            ("kernel",),
        ),
        (16, 32, 3, 3),
    ),
    # Embedding(100, 24): weight (100, 24), fan_out = 100
    (
        "linen Embed",
        _linen(nn.Embed(100, 24, embedding_init=INIT), (1, 3), ("embedding",), jnp.int32),
        (100, 24),
    ),
    (
        "nnx Embed",
        _nnx(lambda r: nnx.Embed(100, 24, embedding_init=INIT, rngs=r), ("embedding",)),
        (100, 24),
    ),
    # Einsum 'abc,cde->abde' kernel (16, 4, 5): contracted c is in, d e are out: Linear(16, 20)
    (
        "linen Einsum",
        _linen(nn.Einsum((16, 4, 5), "abc,cde->abde", kernel_init=INIT), (2, 3, 16), ("kernel",)),
        (20, 16),
    ),
    (
        "nnx Einsum",
        _nnx(
            lambda r: nnx.Einsum("abc,cde->abde", (16, 4, 5), kernel_init=INIT, rngs=r), ("kernel",)
        ),
        (20, 16),
    ),
    # LoRA A (in=24, rank=6) is peft's Linear(24, 6): weight (6, 24)
    (
        "nnx LoRA a",
        _nnx(lambda r: nnx.LoRA(24, 6, 40, a_initializer=INIT, rngs=r), ("lora_a",)),
        (6, 24),
    ),
    # attention projections: query Linear(24, 32), out Linear(32, 24)
    (
        "linen attention query",
        _linen(
            nn.MultiHeadDotProductAttention(4, qkv_features=32, kernel_init=INIT),
            (1, 5, 24),
            ("query", "kernel"),
        ),
        (32, 24),
    ),
    (
        "linen attention out",
        _linen(
            nn.MultiHeadDotProductAttention(4, qkv_features=32, kernel_init=INIT),
            (1, 5, 24),
            ("out", "kernel"),
        ),
        (24, 32),
    ),
    (
        "nnx attention query",
        _nnx(
            lambda r: nnx.MultiHeadAttention(4, 24, 32, kernel_init=INIT, decode=False, rngs=r),
            ("query", "kernel"),
        ),
        (32, 24),
    ),
    # an LSTM cell's input projection: Linear(12, 20)
    (
        "linen LSTMCell",
        _linen(nn.LSTMCell(20, kernel_init=INIT), (((1, 20), (1, 20)), (1, 12)), ("ii", "kernel")),
        (20, 12),
    ),
    (
        "nnx LSTMCell",
        _nnx(lambda r: nnx.LSTMCell(12, 20, kernel_init=INIT, rngs=r), ("ii", "kernel")),
        (20, 12),
    ),
]


@pytest.mark.parametrize("name,make,torch_shape", LAYERS, ids=[c[0] for c in LAYERS])
def test_layer_gives_its_layout_to_an_initializer_without_one(name, make, torch_shape):
    n = R.n_draws(torch_shape)
    ours = make(jax.random.split(KEY, n))
    assert math.prod(ours.shape[1:]) == math.prod(torch_shape)
    theirs = _torch_weights(torch_shape, n, **FAN_OUT)
    _compare(ours, theirs, name)


def test_conv_local_reads_each_position_as_a_matrix():
    # No torch layer: each output position has its own (k*in, out) matrix, so
    # kaiming fan_out is `features` (the position axes are batch axes).
    module = nn.ConvLocal(12, (3,), kernel_init=INIT)
    kernels = [
        np.asarray(module.init(k, jnp.ones((1, 10, 5)))["params"]["kernel"])
        for k in jax.random.split(KEY, 40)
    ]
    assert kernels[0].shape == (10, 15, 12)  # 10 positions ('SAME'), 3*5 in, 12 out
    std = math.sqrt(2.0) / math.sqrt(12)
    R.assert_moments(np.stack(kernels), R.Moments(0.0, std, 3.0), "ConvLocal")


# ----------------------------------------------------------------------------
# An explicit layout wins; bare calls keep their default


def test_explicit_layout_wins_in_a_layer():
    explicit = jaxinit.kaiming_normal(**FAN_OUT, layout="torch")
    kernel = nn.Dense(4, kernel_init=explicit).init(KEY, jnp.ones((1, 300)))["params"]["kernel"]
    # Read as torch reads (out, in), the (300, 4) kernel's fan_out is 300: std sqrt(2/300),
    # where the Dense layout would give sqrt(2/4). 1200 values: 5 standard errors of the
    # std are 5 * sqrt(2 / (4 * 1200)) = 10% of it.
    std = float(np.std(np.asarray(kernel)))
    assert abs(std - math.sqrt(2.0 / 300)) < 0.10 * math.sqrt(2.0 / 300)


def test_bare_calls_keep_their_default():
    shape = (300, 4)
    bare = jaxinit.kaiming_normal(**FAN_OUT)(KEY, shape)
    torch_layout = jaxinit.kaiming_normal(**FAN_OUT, layout="torch")(KEY, shape)
    np.testing.assert_array_equal(np.asarray(bare), np.asarray(torch_layout))
    flax_bare = jaxinit.flax.kaiming_normal(**FAN_OUT)(KEY, shape)
    flax_explicit = jaxinit.kaiming_normal(**FAN_OUT, layout="flax")(KEY, shape)
    np.testing.assert_array_equal(np.asarray(flax_bare), np.asarray(flax_explicit))


def test_custom_module_param_keeps_the_builder_default():
    class Custom(nn.Module):
        @nn.compact
        def __call__(self, x):
            return self.param("w", jaxinit.kaiming_normal(**FAN_OUT), (300, 4))

    class CustomNNX(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            self.w = nnx.Param(jaxinit.kaiming_normal(**FAN_OUT)(rngs.params(), (300, 4)))

    bare = jaxinit.kaiming_normal(**FAN_OUT)
    # not a layer jaxinit knows: the builder's default (torch) layout, and a LayoutWarning
    with pytest.warns(jaxinit.LayoutWarning, match="Custom for 'w'"):
        linen_w = Custom().init(KEY, jnp.ones(1))["params"]["w"]
    # torch's reading of (300, 4): fan_out 300, std sqrt(2/300) (within 5 standard errors)
    std = float(np.std(np.asarray(linen_w)))
    assert abs(std - math.sqrt(2.0 / 300)) < 0.10 * math.sqrt(2.0 / 300)
    rngs = nnx.Rngs(params=KEY)
    expected = bare(nnx.Rngs(params=KEY).params(), (300, 4))
    with pytest.warns(jaxinit.LayoutWarning, match="CustomNNX"):
        built = CustomNNX(rngs)
    np.testing.assert_array_equal(np.asarray(built.w[...]), np.asarray(expected))


# ----------------------------------------------------------------------------
# Structured schemes through a layer equal torch's, moved to the flax layout


def test_eye_through_dense_is_torchs_transposed():
    kernel = nn.Dense(6, kernel_init=jaxinit.eye(), use_bias=False).init(KEY, jnp.ones((1, 4)))
    want = tinit.eye_(torch.empty(6, 4)).numpy().T
    np.testing.assert_array_equal(np.asarray(kernel["params"]["kernel"]), want)
    nnx_kernel = nnx.Linear(4, 6, kernel_init=jaxinit.eye(), rngs=nnx.Rngs(0)).kernel[...]
    np.testing.assert_array_equal(np.asarray(nnx_kernel), want)


@pytest.mark.parametrize("groups", [1, 2])
def test_dirac_through_conv_is_torchs_moved(groups):
    module = nn.Conv(
        4, (3, 3), feature_group_count=groups, use_bias=False, kernel_init=jaxinit.dirac(groups)
    )
    kernel = module.init(KEY, jnp.ones((1, 5, 5, 4)))["params"]["kernel"]
    torch_w = torch.empty(4, 4 // groups, 3, 3)
    tinit.dirac_(torch_w, groups)
    np.testing.assert_array_equal(np.asarray(kernel), R.torch_to_flax(torch_w.numpy()))


def test_dirac_through_conv_transpose_is_torchs_moved():
    # torch's ConvTranspose2d(6, 4, 3) weight is (6, 4, 3, 3); flax's kernel (3, 3, 6, 4)
    module = nn.ConvTranspose(4, (3, 3), use_bias=False, kernel_init=jaxinit.dirac())
    kernel = module.init(KEY, jnp.ones((1, 5, 5, 6)))["params"]["kernel"]
    torch_w = torch.empty(6, 4, 3, 3)
    tinit.dirac_(torch_w)
    np.testing.assert_array_equal(np.asarray(kernel), np.transpose(torch_w.numpy(), (2, 3, 0, 1)))


def test_orthogonal_and_sparse_through_dense_use_torchs_axes():
    dense = nn.Dense(24, kernel_init=jaxinit.orthogonal(), use_bias=False)
    kernel = np.asarray(dense.init(KEY, jnp.ones((1, 40)))["params"]["kernel"])  # (in=40, out=24)
    # torch's rows = out: the 24 rows of the torch weight (kernel.T) are orthonormal
    np.testing.assert_allclose(kernel.T @ kernel, np.eye(24), atol=1e-5)
    sparse = nn.Dense(24, kernel_init=jaxinit.sparse(0.25), use_bias=False)
    kernel = np.asarray(sparse.init(KEY, jnp.ones((1, 40)))["params"]["kernel"])
    # ceil(0.25 * out) zeros per input unit (a row of the flax kernel)
    assert ((kernel == 0).sum(axis=1) == math.ceil(0.25 * 24)).all()


# ----------------------------------------------------------------------------
# Contexts and transforms: bit for bit the explicit-layout model


def _same(build: Callable[[Any], nn.Module], x: jax.Array, **init_kw: Any) -> Any:
    """The model with the implicit layout equals the one with the layer's layout, bit for bit."""
    implicit = build(jaxinit.kaiming_normal(**FAN_OUT))
    explicit = build(jaxinit.kaiming_normal(**FAN_OUT, layout="flax"))
    a = jax.jit(implicit.init)(KEY, x, **init_kw)
    b = jax.jit(explicit.init)(KEY, x, **init_kw)
    jax.tree.map(lambda u, v: np.testing.assert_array_equal(np.asarray(u), np.asarray(v)), a, b)
    return a


def test_linen_compact_and_setup():
    class Compact(nn.Module):
        init_fn: Any

        @nn.compact
        def __call__(self, x):
            return nn.Dense(4, kernel_init=self.init_fn)(nn.Dense(7, kernel_init=self.init_fn)(x))

    class Setup(nn.Module):
        init_fn: Any

        def setup(self):
            self.a = nn.Dense(7, kernel_init=self.init_fn)
            self.b = nn.Dense(4, kernel_init=self.init_fn)

        def __call__(self, x):
            return self.b(self.a(x))

    x = jnp.ones((2, 30))
    got = _same(lambda f: Compact(f), x)
    _same(lambda f: Setup(f), x)
    # not vacuous: the torch-layout reading of these non-square kernels differs
    torch_read = Compact(jaxinit.kaiming_normal(**FAN_OUT, layout="torch")).init(KEY, x)
    assert not np.array_equal(
        np.asarray(got["params"]["Dense_0"]["kernel"]),
        np.asarray(torch_read["params"]["Dense_0"]["kernel"]),
    )


def test_linen_scan_vmap_remat_and_partitioning():
    class Block(nn.Module):
        init_fn: Any

        @nn.compact
        def __call__(self, x, _):
            h = nn.Dense(9, kernel_init=self.init_fn)(x)  # non-square kernels: (30, 9), (9, 30)
            return nn.Dense(30, kernel_init=self.init_fn)(h), None

    class Scanned(nn.Module):
        init_fn: Any

        @nn.compact
        def __call__(self, x):
            stack = nn.scan(
                nn.remat(Block),
                variable_axes={"params": 0},
                split_rngs={"params": True},
                length=3,
            )
            return stack(self.init_fn, name="layers")(x, None)[0]

    class Vmapped(nn.Module):
        init_fn: Any

        @nn.compact
        def __call__(self, x):
            dense = nn.vmap(
                nn.Dense,
                variable_axes={"params": 0},
                split_rngs={"params": True},
                in_axes=0,
            )
            return dense(9, kernel_init=self.init_fn)(x)

    class Partitioned(nn.Module):
        init_fn: Any

        @nn.compact
        def __call__(self, x):
            init = nn.with_partitioning(self.init_fn, (None, "model"))
            return nn.Dense(9, kernel_init=init)(x)

    _same(lambda f: Scanned(f), jnp.ones((2, 30)))
    _same(lambda f: Vmapped(f), jnp.ones((3, 2, 30)))
    _same(lambda f: Partitioned(f), jnp.ones((2, 30)))


def test_nnx_eager_eval_shape_jit_and_partitioning():
    def build(init_fn: Any, rngs: nnx.Rngs) -> nnx.Module:
        return nnx.Sequential(
            nnx.Linear(30, 7, kernel_init=init_fn, rngs=rngs),
            nnx.Linear(
                7, 4, kernel_init=nnx.with_partitioning(init_fn, (None, "model")), rngs=rngs
            ),
        )

    implicit = jaxinit.kaiming_normal(**FAN_OUT)
    explicit = jaxinit.kaiming_normal(**FAN_OUT, layout="flax")
    mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
    with jax.set_mesh(mesh):
        want = nnx.state(build(explicit, nnx.Rngs(0)), nnx.Param)
        eager = nnx.state(build(implicit, nnx.Rngs(0)), nnx.Param)
        jitted = nnx.state(nnx.jit(lambda: build(implicit, nnx.Rngs(0)))(), nnx.Param)
        abstract = nnx.eval_shape(lambda: build(implicit, nnx.Rngs(0)))
    for got in (eager, jitted):
        jax.tree.map(
            lambda u, v: np.testing.assert_array_equal(np.asarray(u), np.asarray(v)), got, want
        )
    assert abstract.layers[0].kernel.shape == (30, 7)
