"""``jaxinit.flax.init`` for NNX: equal to an eager build + ``reinit`` bit for bit, without
computing the replaced defaults, traced once per class and arguments.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit
import jaxinit.flax
from jaxinit._src.flax import nnx_init as flax_nnx_init
from jaxinit.testing import assert_tree_follows
from tests.helpers import count_compiles

KEY = jax.random.key(3)


def state_of(module: nnx.Module) -> dict[str, np.ndarray]:
    """Every state leaf (RNG keys as their data), by path."""
    out = {}
    for path, value in nnx.to_flat_state(nnx.state(module)):
        value = value.get_value()
        name = "/".join(map(str, path))
        if not isinstance(value, jax.Array):
            out[name] = value
            continue
        out[name + ":type"] = (type(value).__name__, str(jax.typeof(value)))  # weak types too
        if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
            value = jax.random.key_data(value)
        out[name] = np.asarray(value)
    return out


def assert_same(a: nnx.Module, b: nnx.Module) -> None:
    sa, sb = state_of(a), state_of(b)
    assert sa.keys() == sb.keys()
    differ = [
        p
        for p in sa
        if type(sa[p]) is not type(sb[p])
        or (isinstance(sa[p], tuple) and sa[p] != sb[p])
        or (hasattr(sa[p], "dtype") and sa[p].dtype != sb[p].dtype)
        or not np.array_equal(sa[p], sb[p])
    ]
    assert not differ, differ
    assert nnx.graphdef(a) == nnx.graphdef(b)


# ----------------------------------------------------------------------------
# Models


class Cnn(nnx.Module):
    """Conv + BatchNorm (batch stats) + Dropout (its own RNG stream) + Linear."""

    def __init__(self, channels: int, classes: int, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(3, channels, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(channels, rngs=rngs)
        self.drop = nnx.Dropout(0.2, rngs=rngs)
        self.head = nnx.Linear(channels, classes, rngs=rngs)


class Encoder(nnx.Module):
    """Embed + attention + LayerNorm + MLP in an nnx.List, a tied weight, stored Rngs."""

    def __init__(self, vocab: int, width: int, *, depth: int = 2, rngs: nnx.Rngs):
        self.embed = nnx.Embed(vocab, width, rngs=rngs)
        self.layers = nnx.List(
            [
                nnx.MultiHeadAttention(2, width, decode=False, rngs=rngs),
                nnx.LayerNorm(width, rngs=rngs),
                nnx.Linear(width, 2 * width, rngs=rngs),
                nnx.Linear(2 * width, width, rngs=rngs),
            ]
            * 1
            + [nnx.Linear(width, width, rngs=rngs) for _ in range(depth)]
        )
        self.tied = self.embed.embedding  # shared: one Variable, two attributes
        self.rngs = rngs


class Recurrent(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.cell = nnx.LSTMCell(4, 8, rngs=rngs)
        self.gru = nnx.GRUCell(8, 8, rngs=rngs)


MODELS = [
    (Cnn, (8, 3), {}),
    (Encoder, (50, 16), {"depth": 3}),
    (Recurrent, (), {}),
]
RULE_SETS = {
    "torch_defaults": jaxinit.flax.TORCH_DEFAULTS,
    # some leaves selected: the others (and the RNG state) are Flax's own defaults
    "partial": [
        ("*kernel", jaxinit.flax.orthogonal()),
        jaxinit.Rule("bn/scale", jaxinit.flax.constant(0.5), optional=True),
    ],
    "none": [],
}


# Two cases run by default (BatchNorm, Dropout and partial rules; attention, Embed, tied
# weights and the whole TORCH_DEFAULTS); the full matrix is slow.
FAST = {("Cnn", "partial"), ("Encoder", "torch_defaults")}


@pytest.mark.parametrize(
    "cls, args, kwargs, rules",
    [
        pytest.param(
            *model,
            rules,
            id=f"{model[0].__name__}-{name}",
            marks=() if (model[0].__name__, name) in FAST else pytest.mark.slow,
        )
        for model in MODELS
        for name, rules in RULE_SETS.items()
    ],
)
def test_equals_eager_build_and_reinit_bit_for_bit(cls, args, kwargs, rules):
    built = jaxinit.flax.init(cls, KEY, *args, rules=rules, **kwargs)
    eager = cls(*args, rngs=nnx.Rngs(KEY), **kwargs)
    reinit = jaxinit.flax.reinit(eager, rules, key=KEY)
    assert type(built) is cls
    assert_same(built, reinit)
    if not rules:  # nothing selected: exactly Flax's own default build
        assert_same(built, cls(*args, rngs=nnx.Rngs(KEY), **kwargs))


def test_unselected_params_are_flax_defaults_and_selected_follow_their_rules():
    rules = [("head/kernel", jaxinit.flax.zeros()), ("conv/*", jaxinit.flax.ones())]
    built = jaxinit.flax.init(Cnn, KEY, 8, 3, rules=rules)
    default = Cnn(8, 3, rngs=nnx.Rngs(KEY))
    assert (built.head.kernel[...] == 0).all() and (built.conv.kernel[...] == 1).all()
    for path in ("head/bias", "bn/scale", "bn/bias", "bn/mean", "bn/var", "drop/rngs/count"):
        assert np.array_equal(state_of(built)[path], state_of(default)[path]), path
    assert np.array_equal(state_of(built)["drop/rngs/key"], state_of(default)["drop/rngs/key"])
    assert_tree_follows(built, rules)


def test_shared_variables_stay_shared_and_the_module_works():
    module = jaxinit.flax.init(Encoder, KEY, 50, 16, rules=jaxinit.flax.TORCH_DEFAULTS)
    assert module.tied is module.embed.embedding
    x = module.embed(jnp.arange(4)[None])
    y = module.layers[0](x)
    assert y.shape == (1, 4, 16)
    # the stored Rngs is live: it draws fold_in(key, count) and advances its count
    count = int(module.rngs.default.count[...])
    drawn = module.rngs.default()
    assert int(module.rngs.default.count[...]) == count + 1
    assert np.array_equal(
        jax.random.key_data(drawn), jax.random.key_data(jax.random.fold_in(KEY, count))
    )


class Drop(nnx.Module):
    def __init__(self, width, *, rngs):
        self.fc = nnx.Linear(width, width, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)


def test_values_not_computed_by_jax_stay_what_they_are():
    class Plain(nnx.Module):
        def __init__(self, *, rngs):
            self.fc = nnx.Linear(2, 3, rngs=rngs)
            self.step = nnx.Variable(0)  # a Python int
            self.table = nnx.Variable(np.arange(3.0))  # a numpy array

    a = jaxinit.flax.init(Plain, KEY, rules=jaxinit.flax.TORCH_DEFAULTS)
    b = jaxinit.flax.init(Plain, KEY, rules=jaxinit.flax.TORCH_DEFAULTS)
    assert type(a.step.get_value()) is int and a.step.get_value() == 0
    assert type(a.table.get_value()) is np.ndarray
    assert a.table.get_value() is not b.table.get_value()  # each build has its own copy
    assert_same(
        a, jaxinit.flax.reinit(Plain(rngs=nnx.Rngs(KEY)), jaxinit.flax.TORCH_DEFAULTS, key=KEY)
    )


def test_dict_keys_factories_and_raw_keys():
    keys = {"params": jax.random.key(1), "dropout": jax.random.key(2)}
    rules = jaxinit.flax.TORCH_DEFAULTS
    built = jaxinit.flax.init(Drop, keys, 8, rules=rules)
    assert_same(built, jaxinit.flax.reinit(Drop(8, rngs=nnx.Rngs(**keys)), rules, key=keys))
    assert np.array_equal(  # the dropout stream forks from keys["dropout"]
        state_of(built)["drop/rngs/key"],
        jax.random.key_data(jax.random.fold_in(keys["dropout"], 0)),
    )
    # a factory: any callable taking the arguments and rngs=
    assert_same(
        jaxinit.flax.init(functools.partial(Drop, 8), KEY, rules=rules),
        jaxinit.flax.init(Drop, KEY, 8, rules=rules),
    )
    built = jaxinit.flax.init(lambda *, rngs: Drop(8, rngs=rngs), KEY, rules=rules)
    assert built.fc.kernel.shape == (8, 8)
    raw = jax.random.PRNGKey(5)  # a legacy uint32 key, as nnx.Rngs takes it
    assert_same(
        jaxinit.flax.init(Drop, raw, 8, rules=rules),
        jaxinit.flax.reinit(Drop(8, rngs=nnx.Rngs(raw)), rules, key=raw),
    )


def test_replaced_defaults_are_never_computed():
    # The rest of the module comes from the constructor's jaxpr cut down to the leaves no
    # rule selects: no equation of the cut jaxpr makes an array of the replaced kernel's shape.
    class Big(nnx.Module):
        def __init__(self, *, rngs):
            self.fc = nnx.Linear(1000, 999, rngs=rngs)
            self.norm = nnx.LayerNorm(999, rngs=rngs)

    rules = [("fc/*", jaxinit.flax.zeros())]
    module = jaxinit.flax.init(Big, KEY, rules=rules)
    traced = flax_nnx_init.trace_nnx(Big, KEY, (), {})
    assert len(traced.rest) == 1
    (pruned,) = traced.rest.values()
    full_shapes = {tuple(v.aval.shape) for e in traced.jaxpr.jaxpr.eqns for v in e.outvars}
    rest_shapes = {tuple(v.aval.shape) for e in pruned.jaxpr.eqns for v in e.outvars}
    assert (1000, 999) in full_shapes and (1000, 999) not in rest_shapes
    assert (module.fc.kernel[...] == 0).all() and (module.norm.scale[...] == 1).all()


def test_second_call_traces_and_compiles_nothing():
    calls = []

    class Counted(nnx.Module):
        def __init__(self, width, *, rngs):
            calls.append(width)
            self.a = nnx.Linear(width, width, rngs=rngs)
            self.b = nnx.Linear(width, 3, rngs=rngs)
            self.drop = nnx.Dropout(0.5, rngs=rngs)

    rules = [("a/*", jaxinit.flax.zeros()), *jaxinit.flax.TORCH_DEFAULTS]
    first = jaxinit.flax.init(Counted, KEY, 6, rules=rules)
    assert calls == [6]  # traced once; never run eagerly
    with count_compiles() as compiles:
        second = jaxinit.flax.init(Counted, jax.random.key(9), 6, rules=rules)
    assert calls == [6] and compiles[0] == 0
    assert second is not first and second.a.kernel is not first.a.kernel
    assert_same(
        second,
        jaxinit.flax.reinit(
            Counted(6, rngs=nnx.Rngs(jax.random.key(9))), rules, key=jax.random.key(9)
        ),
    )
    jaxinit.flax.init(Counted, KEY, 7, rules=rules)  # other arguments: another trace
    assert calls[-1] == 7


def test_errors():
    rules = jaxinit.flax.TORCH_DEFAULTS
    with pytest.raises(TypeError, match="pass its class .* to re-initialize an existing module"):
        jaxinit.flax.init(nnx.Linear(2, 3, rngs=nnx.Rngs(0)), KEY, rules=rules)
    with pytest.raises(TypeError, match="do not pass rngs="):
        jaxinit.flax.init(nnx.Linear, KEY, 2, 3, rules=rules, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="returned int, not an nnx.Module"):
        jaxinit.flax.init(lambda *, rngs: 3, KEY, rules=rules)
    with pytest.raises(ValueError, match="a dict of keys must have a 'params' entry"):
        jaxinit.flax.init(nnx.Linear, {"default": KEY}, 2, 3, rules=rules)
    with pytest.raises(ValueError, match=r"strict=True: these rules matched no leaf:\n  rule 0"):
        jaxinit.flax.init(nnx.Linear, KEY, 2, 3, rules=[("nope", jaxinit.flax.zeros())])
    with pytest.raises(ValueError, match=r"unmatched='error'.*'bias'"):
        jaxinit.flax.init(
            nnx.Linear, KEY, 2, 3, rules=[("kernel", jaxinit.flax.zeros())], unmatched="error"
        )
    with pytest.raises(ValueError, match=r"(?s)eye: Only tensors with 2 dimensions.*on 'kernel'"):
        jaxinit.flax.init(nnx.Conv, KEY, 2, 3, (3, 3), rules=[("kernel", jaxinit.flax.eye())])
    with pytest.raises(TypeError, match="expected a Linen module, an NNX module class"):
        jaxinit.flax.init(3, KEY, rules=rules)
