"""jaxinit.port name pairing, rename rules, strict errors, and what a port keeps of the target.

Forward outputs of real torch are the oracle: a wrong pairing (two layers
swapped) changes them.
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
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as PS

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

# ----------------------------------------------------------------------------
# One small network, written as torch, Linen (two name styles), NNX and Equinox


class TBlock(torch.nn.Module):
    def __init__(self, c: int, norm: str):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(c) if norm == "bn" else torch.nn.GroupNorm(2, c)

    def forward(self, x):
        return torch.relu(self.bn1(self.conv1(x))) + x


class TNet(torch.nn.Module):
    def __init__(self, norm: str = "bn"):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.layer1 = torch.nn.Sequential(TBlock(4, norm), TBlock(4, norm))
        self.head = torch.nn.Linear(4, 5)

    def forward(self, x):
        return self.head(self.layer1(self.stem(x)).mean((2, 3)))


class LBlock(nn.Module):
    named: bool = True

    @nn.compact
    def __call__(self, x):
        kw = (lambda n: {"name": n}) if self.named else (lambda n: {})
        y = nn.Conv(4, (3, 3), padding=1, use_bias=False, **kw("conv1"))(x)
        y = nn.BatchNorm(use_running_average=True, epsilon=1e-5, **kw("bn1"))(y)
        return nn.relu(y) + x


class LNet(nn.Module):
    """Named like torch (``layer1_0``), or with Flax's automatic names (``named=False``)."""

    named: bool = True
    head: str = "head"
    features: int = 5

    @nn.compact
    def __call__(self, x):
        kw = (lambda n: {"name": n}) if self.named else (lambda n: {})
        x = nn.Conv(4, (3, 3), padding=1, **kw("stem"))(x)
        for i in range(2):
            x = LBlock(self.named, **kw(f"layer1_{i}"))(x)
        return nn.Dense(self.features, **kw(self.head))(x.mean((1, 2)))


class NBlock(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(4, 4, (3, 3), padding=1, use_bias=False, rngs=rngs)
        self.bn1 = nnx.BatchNorm(4, use_running_average=True, epsilon=1e-5, rngs=rngs)

    def __call__(self, x):
        return nnx.relu(self.bn1(self.conv1(x))) + x


class NNet(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.stem = nnx.Conv(3, 4, (3, 3), padding=1, rngs=rngs)
        self.layer1 = nnx.List([NBlock(rngs), NBlock(rngs)])
        self.head = nnx.Linear(4, 5, rngs=rngs)

    def __call__(self, x):
        for block in self.layer1:
            x = block(self.stem(x) if block is self.layer1[0] else x)
        return self.head(x.mean((1, 2)))


class EBlock(eqx.Module):
    conv1: eqx.nn.Conv2d
    bn1: eqx.nn.GroupNorm

    def __init__(self, key):
        self.conv1 = eqx.nn.Conv2d(4, 4, 3, padding=1, use_bias=False, key=key)
        self.bn1 = eqx.nn.GroupNorm(2, 4)

    def __call__(self, x):
        return jax.nn.relu(self.bn1(self.conv1(x))) + x


class ENet(eqx.Module):
    stem: eqx.nn.Conv2d
    layer1: list
    head: eqx.nn.Linear

    def __init__(self, key):
        k = jax.random.split(key, 4)
        self.stem = eqx.nn.Conv2d(3, 4, 3, padding=1, key=k[0])
        self.layer1 = [EBlock(k[1]), EBlock(k[2])]
        self.head = eqx.nn.Linear(4, 5, key=k[3])

    def __call__(self, x):  # one image, channels first
        x = self.stem(x)
        for block in self.layer1:
            x = block(x)
        return self.head(x.mean((1, 2)))


X = rand(2, 3, 6, 6)


def abstract_nnet() -> NNet:
    """An NNet whose variables are shapes only (from_torch fills them)."""
    return nnx.eval_shape(lambda: NNet(nnx.Rngs(0)))


def random_like(module, seed: int = 0):
    """An NNX or Equinox module (maybe abstract) with every float leaf random (numpy)."""
    rng = np.random.default_rng(seed)

    def draw(a):
        if not jnp.issubdtype(a.dtype, jnp.floating):
            return a
        return jnp.asarray((rng.standard_normal(a.shape) * 0.5).astype(a.dtype))

    if isinstance(module, nnx.Module):
        nnx.update(module, jax.tree_util.tree_map(draw, nnx.state(module)))
        return module
    return jax.tree_util.tree_map(draw, module)


def _want(norm: str = "bn") -> tuple[TNet, np.ndarray]:
    tmod = randomize(TNet(norm))
    return tmod, run_torch(tmod, X)


def test_linen_torch_style_names_pair_automatically():
    tmod, want = _want()
    fmod = LNet()
    target = abstract_init(fmod, channels_last(X))  # never initialized
    variables = port.from_torch(tmod, target, model=fmod, args=(channels_last(X),))
    assert "layer1_0" in variables["params"]
    close(jax.jit(fmod.apply)(variables, channels_last(X)), want)


def test_linen_sequential_layers_n_pair_with_torch_sequential_items():
    tmod = randomize(
        torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    )
    fmod = nn.Sequential([nn.Dense(8), nn.tanh, nn.Dense(3)])
    x = rand(2, 4)
    variables = port.from_torch(tmod, abstract_init(fmod, x))
    assert set(variables["params"]) == {"layers_0", "layers_2"}
    close(jax.jit(fmod.apply)(variables, x), run_torch(tmod, x))


def test_nnx_list_names_pair_automatically_and_update_in_place():
    tmod, want = _want()
    fmod = abstract_nnet()
    assert port.from_torch(tmod, fmod) is fmod
    np.testing.assert_array_equal(fmod.layer1[1].bn1.mean[...], tmod.layer1[1].bn1.running_mean)
    close(nnx_call(fmod, channels_last(X)), want)


def test_equinox_keeps_torch_layout():
    tmod, want = _want("gn")
    emod = port.from_torch(tmod, eqx.filter_eval_shape(ENet, jax.random.key(0)))
    np.testing.assert_array_equal(emod.stem.weight, tmod.stem.weight.detach().numpy())
    close(eqx_call(emod, X, vmap=True), want)


def test_bare_state_dict_takes_the_layer_types_from_the_target():
    tmod, want = _want()
    state = {k: v.numpy().copy() for k, v in tmod.state_dict().items()}  # e.g. safetensors
    fmod = abstract_nnet()
    port.from_torch(state, fmod)
    close(nnx_call(fmod, channels_last(X)), want)
    # A Linen dict without model=: kinds from the leaf names (kernel -> moved as a conv).
    lmod = LNet()
    variables = port.from_torch(state, abstract_init(lmod, channels_last(X)))
    close(jax.jit(lmod.apply)(variables, channels_last(X)), want)


# ----------------------------------------------------------------------------
# rename


AUTO_NAMES = [
    ("stem", "Conv_0"),
    ("layer1.*.conv1", "LBlock_*/Conv_0"),
    ("layer1.*.bn1", "LBlock_*/BatchNorm_0"),
    ("head", "Dense_0"),
]


def test_rename_globs_pair_flax_automatic_names():
    tmod, want = _want()
    fmod = LNet(named=False)
    variables = abstract_init(fmod, channels_last(X))
    with pytest.raises(ValueError, match="Conv_0"):
        port.from_torch(tmod, variables, model=fmod, args=(channels_last(X),))
    new = port.from_torch(tmod, variables, model=fmod, args=(channels_last(X),), rename=AUTO_NAMES)
    close(jax.jit(fmod.apply)(new, channels_last(X)), want)


def test_rename_callable_and_single_tensor_rules():
    class TViT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, 4))
            self.proj = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.proj(torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1))

    class LViT(nn.Module):
        @nn.compact
        def __call__(self, x):
            cls = self.param("cls", nn.initializers.zeros, (1, 1, 4))
            x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, 4)), x], 1)
            return nn.Dense(4, name="Dense_0")(x)

    tmod, fmod = randomize(TViT()), LViT()
    x = rand(2, 3, 4)
    variables = abstract_init(fmod, x)

    def rename(name: str) -> str | None:
        return {"proj": "Dense_0", "cls_token": "cls"}.get(name)

    for rules in (rename, [("proj", "Dense_0"), ("cls_token", "cls")]):
        new = port.from_torch(tmod, variables, rename=rules)
        close(fmod.apply(new, x), run_torch(tmod, x))


def test_rename_rules_are_checked():
    with pytest.raises(TypeError, match="pair of strings"):
        port.from_torch(TNet(), {"params": {}}, rename=[("a",)])
    with pytest.raises(ValueError, match="more '\\*'"):
        port.from_torch(TNet(), {"params": {}}, rename=[("a", "b_*")])


# ----------------------------------------------------------------------------
# strict errors; nothing changes when it raises


def test_strict_lists_unpaired_names_on_both_sides_with_nearest_candidates():
    tmod = TNet()
    fmod = LNet(head="heads")
    variables = jax.tree_util.tree_map(jnp.zeros_like, abstract_init(fmod, channels_last(X)))
    with pytest.raises(ValueError) as info:
        port.from_torch(tmod, variables, model=fmod, args=(channels_last(X),))
    msg = str(info.value)
    assert "nothing was changed" in msg
    assert "head.weight (5, 4)  nearest target: params/heads/kernel" in msg
    assert "params/heads/kernel (4, 5)  nearest torch: head.weight" in msg
    # strict=False fills the rest and leaves the unpaired leaves as they were.
    new = port.from_torch(tmod, variables, model=fmod, args=(channels_last(X),), strict=False)
    assert new["params"]["heads"]["kernel"] is variables["params"]["heads"]["kernel"]
    np.testing.assert_array_equal(
        new["params"]["stem"]["kernel"], tmod.stem.weight.detach().numpy().transpose(2, 3, 1, 0)
    )


def test_shape_mismatch_names_both_shapes_and_nnx_target_is_untouched():
    tmod = TNet()
    fmod = abstract_nnet()
    fmod.head = nnx.Linear(4, 6, rngs=nnx.Rngs(1))
    before = jax.tree_util.tree_map(np.array, nnx.state(fmod))
    with pytest.raises(ValueError) as info:
        port.from_torch(tmod, fmod)
    msg = str(info.value)
    assert "head.weight (5, 4) -> head/kernel: converted (4, 5), target (4, 6)" in msg
    after = jax.tree_util.tree_map(np.array, nnx.state(fmod))
    jax.tree_util.tree_map(np.testing.assert_array_equal, before, after)


def test_tied_weights_count_once():
    class TLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = torch.nn.Embedding(11, 4)
            self.head = torch.nn.Linear(4, 11, bias=False)
            self.head.weight = self.wte.weight  # tied, as GPT-2

        def forward(self, t):
            return self.head(self.wte(t))

    class LLM(nn.Module):
        @nn.compact
        def __call__(self, t):
            embed = nn.Embed(11, 4, name="wte")
            return embed.attend(embed(t))

    tmod, fmod = randomize(TLM()), LLM()
    tokens = np.array([[1, 5, 10]], np.int32)
    variables = port.from_torch(tmod, abstract_init(fmod, tokens))
    close(fmod.apply(variables, tokens), run_torch(tmod, tokens.astype(np.int64)))


# ----------------------------------------------------------------------------
# what the target keeps: dtype, sharding, boxes; no aliasing of torch memory


def test_dtype_sharding_and_partitioned_boxes_are_kept():
    tmod = randomize(torch.nn.Linear(8, 16))
    fmod = nn.Dense(
        16,
        param_dtype=jnp.bfloat16,
        kernel_init=nn.with_partitioning(nn.initializers.lecun_normal(), (None, "model")),
    )
    mesh = jax.make_mesh((8,), ("model",))
    variables = fmod.init(jax.random.key(0), jnp.ones((1, 8), jnp.bfloat16))
    kernel_sharding = NamedSharding(mesh, PS(None, "model"))
    boxed = variables["params"]["kernel"]
    variables["params"]["kernel"] = boxed.replace_boxed(
        jax.device_put(boxed.value, kernel_sharding)
    )
    new = port.from_torch(tmod, variables)
    kernel = new["params"]["kernel"]
    assert isinstance(kernel, nn.Partitioned) and kernel.names == (None, "model")
    assert kernel.value.dtype == jnp.bfloat16 and new["params"]["bias"].dtype == jnp.bfloat16
    assert kernel.value.sharding.is_equivalent_to(kernel_sharding, 2)
    np.testing.assert_array_equal(kernel.value, tmod.weight.detach().numpy().T.astype(jnp.bfloat16))


def test_the_port_does_not_alias_torch_memory():
    tmod = randomize(torch.nn.LayerNorm(64))
    fmod = nn.LayerNorm()
    variables = port.from_torch(tmod, abstract_init(fmod, jnp.ones((1, 64))))
    saved = np.array(variables["params"]["scale"])
    with torch.no_grad():
        tmod.weight.add_(1.0)
    np.testing.assert_array_equal(variables["params"]["scale"], saved)
