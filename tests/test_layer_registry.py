"""The registry of layer kinds, seen through every door: the same builder reads the same fans.

For each kind, a layout-less ``kaiming_uniform`` (``mode`` fan_in and fan_out)
is applied to the layer's kernel through each door that can reach it: the
layer's own ``kernel_init`` (Linen and NNX), ``jaxinit.flax.init`` and
``jaxinit.flax.reinit(model=)`` (Linen), ``jaxinit.flax.init``/``reinit``
(NNX), ``jaxinit.reinit`` (Equinox), and ``explain``. The oracle is torch:
the fans ``torch.nn.init._calculate_fan_in_and_fan_out`` reads on the
equivalent torch layer's weight, giving the bound ``b = sqrt(2) * sqrt(3 /
fan)``. The kernels have thousands of entries, so the largest |value| is
within 1% of ``b`` (P(max < 0.99 b) = 0.99**n < 1e-20 for n >= 4608) and
none exceeds it; a swapped reading changes ``b`` by 22% or more.

The port door reads the same axes: a torch weight moved by ``from_torch``
into the target has, in the registry's layout, torch's fans.
"""

from __future__ import annotations

import math
import warnings

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx

import jaxinit
import jaxinit.flax
import jaxinit.port
from jaxinit._src.layers.registry import KINDS, kind_of, layer_layout

KEY = jax.random.key(0)
MODES = ("fan_in", "fan_out")


def _builder(mode):
    return jaxinit.kaiming_uniform(a=0.0, mode=mode, nonlinearity="relu")


def _torch_bound(weight, mode):
    fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(weight)
    fan = fan_in if mode == "fan_in" else fan_out
    return math.sqrt(2.0) * math.sqrt(3.0 / fan)


def _check(values, bound, door):
    v = np.abs(np.asarray(values, np.float64))
    assert v.size >= 4608, f"{door}: too few values ({v.size}) for the bound check"
    assert v.max() <= bound * (1 + 1e-6), f"{door}: max {v.max():.5f} > torch's bound {bound:.5f}"
    assert v.max() >= 0.99 * bound, f"{door}: max {v.max():.5f} < 0.99 * torch's bound {bound:.5f}"


# One row per kind: torch layer, Linen layer + input, NNX factory, Equinox factory.
CASES = {
    "dense": (
        lambda: torch.nn.Linear(64, 96),
        lambda init: nn.Dense(96, kernel_init=init),
        jnp.ones((1, 64)),
        lambda init, rngs: nnx.Linear(64, 96, kernel_init=init, rngs=rngs),
        lambda k: eqx.nn.Linear(64, 96, key=k),
    ),
    "conv": (
        lambda: torch.nn.Conv2d(32, 48, 3),
        lambda init: nn.Conv(48, (3, 3), kernel_init=init),
        jnp.ones((1, 8, 8, 32)),
        lambda init, rngs: nnx.Conv(32, 48, (3, 3), kernel_init=init, rngs=rngs),
        lambda k: eqx.nn.Conv2d(32, 48, 3, key=k),
    ),
    "conv_transpose": (
        lambda: torch.nn.ConvTranspose2d(32, 48, 3),
        lambda init: nn.ConvTranspose(48, (3, 3), kernel_init=init),
        jnp.ones((1, 8, 8, 32)),
        lambda init, rngs: nnx.ConvTranspose(32, 48, (3, 3), kernel_init=init, rngs=rngs),
        lambda k: eqx.nn.ConvTranspose2d(32, 48, 3, key=k),
    ),
    "embed": (
        lambda: torch.nn.Embedding(160, 48),
        lambda init: nn.Embed(160, 48, embedding_init=init),
        jnp.zeros((1, 3), jnp.int32),
        lambda init, rngs: nnx.Embed(160, 48, embedding_init=init, rngs=rngs),
        lambda k: eqx.nn.Embedding(160, 48, key=k),
    ),
    "dense_general": (
        lambda: torch.nn.Linear(64, 96),
        lambda init: nn.DenseGeneral((8, 12), kernel_init=init),
        jnp.ones((1, 64)),
        lambda init, rngs: nnx.LinearGeneral(64, (8, 12), kernel_init=init, rngs=rngs),
        None,
    ),
    "einsum": (
        lambda: torch.nn.Linear(64, 96),
        lambda init: nn.Einsum((64, 96), "bi,io->bo", kernel_init=init),
        jnp.ones((2, 64)),
        lambda init, rngs: nnx.Einsum("...i,io->...o", (64, 96), kernel_init=init, rngs=rngs),
        None,
    ),
}

_NAMES = {"embed": "embedding"}


def _kernel_name(kind):
    return _NAMES.get(kind, "kernel")


def _leaf(tree, name):
    found = [
        v
        for p, v in jax.tree_util.tree_leaves_with_path(tree)
        if name in [str(getattr(k, "key", getattr(k, "name", k))) for k in p] and np.ndim(v) >= 2
    ]
    assert len(found) == 1, f"{len(found)} leaves named {name!r}"
    return found[0]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", sorted(CASES))
def test_every_door_reads_torchs_fans(kind, mode):
    make_torch, linen, x, make_nnx, make_eqx = CASES[kind]
    bound = _torch_bound(make_torch().weight, mode)
    init = _builder(mode)
    name = _kernel_name(kind)
    rules = [(f"*{name}", init)]

    # 1. kernel_init, Linen and NNX
    _check(_leaf(linen(init).init(KEY, x), name), bound, "Linen kernel_init")
    _check(_leaf(nnx.state(make_nnx(init, nnx.Rngs(0))), name), bound, "NNX kernel_init")
    # 2. the Linen tree tools
    model = linen(nn.initializers.zeros)
    _check(_leaf(jaxinit.flax.init(model, KEY, x, rules=rules), name), bound, "flax.init")
    variables = model.init(KEY, x)
    new = jaxinit.flax.reinit(variables, rules, key=KEY, model=model, args=(x,))
    _check(_leaf(new, name), bound, "flax.reinit(model=)")
    # 3. NNX tree tools
    built = jaxinit.flax.init(lambda rngs: make_nnx(nn.initializers.zeros, rngs), KEY, rules=rules)
    _check(_leaf(nnx.state(built), name), bound, "NNX flax.init")
    module = make_nnx(nn.initializers.zeros, nnx.Rngs(0))
    _check(_leaf(nnx.state(jaxinit.flax.reinit(module, rules, key=KEY)), name), bound, "NNX reinit")
    # 4. explain: the distribution it reports has torch's bound
    (row,) = [r for r in jaxinit.flax.explain(model, rules, x) if r.path.endswith(name)]
    assert math.isclose(row.distribution.params["high"], bound, rel_tol=1e-6), "explain"
    # 5. Equinox
    if make_eqx is not None:
        layer = jaxinit.reinit(make_eqx(KEY), [("weight", init)], key=KEY)
        _check(layer.weight, bound, "Equinox reinit")


@pytest.mark.parametrize("kind", ["dense", "conv", "conv_transpose", "embed"])
def test_the_port_moves_axes_as_the_registry_reads_them(kind):
    make_torch, linen, x, make_nnx, make_eqx = CASES[kind]
    layer = make_torch()
    torch_fans = torch.nn.init._calculate_fan_in_and_fan_out(layer.weight)
    name = _kernel_name(kind)
    model = linen(nn.initializers.zeros)
    target = model.init(KEY, x)
    ported = jaxinit.port.from_torch(layer.state_dict(), target, model=model, args=(x,))
    kernel = np.asarray(_leaf(ported, name))
    module = model.bind(target)
    assert jaxinit.calculate_fan_in_and_fan_out(
        kernel.shape, layer_layout(module, kernel.shape)
    ) == tuple(torch_fans)
    if make_eqx is not None:
        eq = jaxinit.port.from_torch(layer.state_dict(), make_eqx(KEY))
        fans = jaxinit.calculate_fan_in_and_fan_out(
            eq.weight.shape, layer_layout(eq, eq.weight.shape)
        )
        assert fans == tuple(torch_fans)


def test_every_kernel_kind_with_a_torch_counterpart_is_in_the_matrix():
    kinds = {row.kind for row in KINDS if row.layout is not None and not row.kind.startswith("eqx")}
    assert kinds - set(CASES) <= {"conv_local"}, sorted(kinds - set(CASES))


def test_einsum_equation_given_at_call_time_is_read():
    init = _builder("fan_in")
    bound = _torch_bound(torch.nn.Linear(64, 96).weight, "fan_in")
    layer = nn.Einsum((64, 96), kernel_init=init)
    _check(layer.init(KEY, jnp.ones((2, 64)), "bi,io->bo")["params"]["kernel"], bound, "call")
    model = nn.Einsum((64, 96), kernel_init=nn.initializers.zeros)
    out = jaxinit.flax.init(model, KEY, jnp.ones((2, 64)), "bi,io->bo", rules=[("*kernel", init)])
    _check(out["params"]["kernel"], bound, "flax.init with a call-time equation")


def test_equinox_grouped_conv_transpose_is_refused_not_guessed():
    layer = eqx.nn.ConvTranspose2d(8, 12, 3, groups=2, key=KEY)
    with pytest.raises(ValueError, match="layout of 1 leaf"):
        jaxinit.reinit(layer, [("weight", _builder("fan_in"))], key=KEY)
    with pytest.warns(jaxinit.LayoutWarning, match="weight"):
        jaxinit.reinit(layer, [("weight", _builder("fan_in"))], key=KEY, strict=False)


def test_linen_dict_without_model_reads_embedding_by_name_and_refuses_a_guess():
    bound = _torch_bound(torch.nn.Embedding(160, 48).weight, "fan_in")
    params = nn.Embed(160, 48).init(KEY, jnp.zeros((1, 3), jnp.int32))
    new = jaxinit.flax.reinit(params, [("*embedding", _builder("fan_in"))], key=KEY)
    _check(new["params"]["embedding"], bound, "reinit without model=")
    conv = nn.ConvTranspose(48, (3, 3)).init(KEY, jnp.ones((1, 8, 8, 32)))
    with pytest.raises(ValueError, match=r"layout of 1 leaf.*params/kernel.*model="):
        jaxinit.flax.reinit(conv, [("*kernel", _builder("fan_in"))], key=KEY)
    # a layout-free scheme needs no layout: nothing to say
    jaxinit.flax.reinit(conv, [("*kernel", jaxinit.normal())], key=KEY)


class _UserModule(nn.Module):
    @nn.compact
    def __call__(self, x):
        return x @ self.param("w", jaxinit.kaiming_normal(), (x.shape[-1], 7))


class _UserModuleExplicit(nn.Module):
    @nn.compact
    def __call__(self, x):
        return x @ self.param("w", jaxinit.kaiming_normal(layout="flax"), (x.shape[-1], 7))


def test_user_module_param_with_a_layoutless_builder_warns_once():
    x = jnp.ones((1, 5))
    with pytest.warns(jaxinit.LayoutWarning, match=r"_UserModule.*'w'.*layout="):
        _UserModule().init(KEY, x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _UserModule().init(KEY, x)  # once per (class, parameter)
        _UserModuleExplicit().init(KEY, x)  # layout given: nothing to say


class _NNXUser(nnx.Module):
    def __init__(self, rngs):
        self.w = nnx.Param(jaxinit.kaiming_normal()(rngs.params(), (5, 9)))


def test_nnx_user_module_with_a_layoutless_builder_warns():
    with pytest.warns(jaxinit.LayoutWarning, match="_NNXUser"):
        _NNXUser(nnx.Rngs(0))


def test_registry_rows_resolve_and_classify():
    for row in KINDS:
        for cls in row.resolve():
            assert kind_of(cls) is not None, row.label
    assert kind_of(nn.Dense).kind == "dense" and kind_of(nnx.Linear).kind == "dense"
    assert kind_of(eqx.nn.Conv2d).kind == "eqx_conv"
    assert kind_of(object) is None
