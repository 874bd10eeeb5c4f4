"""``jaxinit.flax.init`` traces a Linen model once per configuration, input signature and axis rules.

The cache must never answer for another configuration (another field, input
shape, static argument or logical axis rules), and a cached answer must give
the same values, bit for bit, as a fresh trace.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit
import jaxinit._src.flax.trace as flax_trace

RULES = jaxinit.flax.TORCH_DEFAULTS


@pytest.fixture
def traces(monkeypatch):
    """Counts the abstract traces of ``model.init`` (the cache starts empty)."""
    flax_trace.clear_trace_cache()
    count = [0]
    real = flax_trace._trace

    def counting(*a, **kw):
        count[0] += 1
        return real(*a, **kw)

    monkeypatch.setattr(flax_trace, "_trace", counting)
    yield count
    flax_trace.clear_trace_cache()


class Net(nn.Module):
    width: int = 6

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Dense(self.width)(x)
        if train:  # a static argument that changes the structure
            x = nn.Dense(self.width, name="extra")(x)
        return nn.Dense(3)(nn.relu(x))


def _equal(a, b):
    jax.tree.map(lambda u, v: np.testing.assert_array_equal(np.asarray(u), np.asarray(v)), a, b)
    assert jax.tree.structure(a) == jax.tree.structure(b)


def test_a_repeated_init_traces_once_and_draws_the_same_values(traces):
    x = jnp.ones((2, 4))
    first = jaxinit.flax.init(Net(), jax.random.key(1), x, rules=RULES)
    again = jaxinit.flax.init(Net(), jax.random.key(1), x, rules=RULES)  # an equal instance
    other_key = jaxinit.flax.init(Net(), jax.random.key(2), x, rules=RULES)
    assert traces[0] == 1
    _equal(first, again)
    with pytest.raises(AssertionError):
        _equal(first, other_key)  # the key's value is not part of the trace
    flax_trace.clear_trace_cache()
    _equal(first, jaxinit.flax.init(Net(), jax.random.key(1), x, rules=RULES))  # a fresh trace
    # and what reinit of Flax's own init gives (the drop-in's contract)
    expected = jaxinit.flax.reinit(
        Net().init(jax.random.key(1), x), RULES, key=jax.random.key(1), model=Net(), args=(x,)
    )
    _equal(first, expected)


def test_another_configuration_or_input_is_traced_again(traces):
    key = jax.random.key(0)
    shapes = lambda v: jax.tree.map(jnp.shape, v["params"])  # noqa: E731
    a = jaxinit.flax.init(Net(), key, jnp.ones((2, 4)), rules=RULES)
    b = jaxinit.flax.init(Net(width=5), key, jnp.ones((2, 4)), rules=RULES)  # another field
    c = jaxinit.flax.init(Net(), key, jnp.ones((2, 7)), rules=RULES)  # another input shape
    d = jaxinit.flax.init(Net(), key, jnp.ones((2, 4)), train=True, rules=RULES)  # static kwarg
    e = jaxinit.flax.init(Net(), key, jnp.ones((3, 2, 4)), rules=RULES)  # another rank
    raw = jax.random.key_data(key)  # a raw uint32 key: another key type
    jaxinit.flax.init(Net(), raw, jnp.ones((2, 4)), rules=RULES)
    assert traces[0] == 6
    assert shapes(a)["Dense_0"]["kernel"] == (4, 6)
    assert shapes(b)["Dense_0"]["kernel"] == (4, 5)
    assert shapes(c)["Dense_0"]["kernel"] == (7, 6)
    assert "extra" in d["params"] and "extra" not in a["params"]
    assert shapes(e) == shapes(a)
    jaxinit.flax.init(Net(), key, jnp.ones((2, 4)), train=True, rules=RULES)
    assert traces[0] == 6  # each of them is cached


def test_logical_axis_rules_are_part_of_the_key(traces):
    x = jnp.ones((2, 4))
    jaxinit.flax.init(Net(), jax.random.key(0), x, rules=RULES)
    with nn.logical_axis_rules((("embed", None),)):
        jaxinit.flax.init(Net(), jax.random.key(0), x, rules=RULES)
        jaxinit.flax.init(Net(), jax.random.key(0), x, rules=RULES)
    assert traces[0] == 2


def test_reinit_and_explain_share_the_trace(traces):
    x = jnp.ones((2, 4))
    variables = jaxinit.flax.init(Net(), jax.random.key(0), x, rules=RULES)
    jaxinit.flax.reinit(variables, RULES, key=jax.random.key(3), model=Net(), args=(x,))
    assert traces[0] == 1


def test_the_cache_keeps_no_tracers_and_the_call_time_einsum_equation():
    class Mixer(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Einsum((64, 96))(x, "bi,io->bo")  # the equation given at call time

    flax_trace.clear_trace_cache()
    x = jnp.ones((2, 64))
    _, modules = flax_trace.record_modules(Mixer(), jax.random.key(0), (x,), {})
    (call,) = modules.calls.values()
    assert not any(isinstance(v, jax.core.Tracer) for v in call.values())
    assert call["inputs"] == jax.ShapeDtypeStruct((2, 64), jnp.float32)
    assert call["einsum_str"] == "bi,io->bo"
    # torch Linear(64, 96): kaiming_uniform(a=sqrt(5)) bound 1/sqrt(fan_in) = 1/8; read as
    # (out, in) the bound would be 1/sqrt(96) < 0.103, which 6144 draws exceed almost surely
    rules = [("*kernel", jaxinit.kaiming_uniform(a=np.sqrt(5)))]
    for _ in range(2):  # a fresh trace, then the cached one
        kernel = jaxinit.flax.init(Mixer(), jax.random.key(0), x, rules=rules)["params"]
        kernel = np.asarray(kernel["Einsum_0"]["kernel"])
        assert np.abs(kernel).max() <= 1 / 8
        assert np.abs(kernel).max() > 1 / np.sqrt(96)


def test_the_cache_is_bounded(traces):
    x = jnp.ones((1, 4))
    for i in range(flax_trace._TRACE_CACHE_SIZE + 4):
        jaxinit.flax.init(Net(width=i + 1), jax.random.key(0), x, rules=RULES)
    assert len(flax_trace._TRACE_CACHE) == flax_trace._TRACE_CACHE_SIZE
    jaxinit.flax.init(Net(width=1), jax.random.key(0), x, rules=RULES)  # evicted: traced again
    assert traces[0] == flax_trace._TRACE_CACHE_SIZE + 5
