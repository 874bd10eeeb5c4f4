"""``from_torch(..., model=)`` traces a Linen model once per configuration and input signature.

The cache must never answer for another configuration: a ConvTranspose with
``transpose_kernel=True`` and one with ``False`` have the same kernel shape
when in == out, and only the module says which conversion is right; torch's
outputs decide.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import pytest
import torch

import jaxinit._src.flax.trace as flax_trace
import jaxinit.port as port
from jaxinit._src.port import trace as port_trace
from tests.test_port import abstract_init, channels_last, close, rand, randomize, run_torch


@pytest.fixture
def traces(monkeypatch):
    """Counts the abstract traces of ``model.init`` (the cache starts empty)."""
    port_trace.clear_trace_cache()
    count = [0]
    real = flax_trace._trace

    def counting(*a, **kw):
        count[0] += 1
        return real(*a, **kw)

    monkeypatch.setattr(flax_trace, "_trace", counting)
    yield count
    port_trace.clear_trace_cache()


def test_a_repeated_call_does_not_trace_again(traces):
    tmod = randomize(torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Linear(6, 3)))

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3, name="1")(nn.Dense(6, name="0")(x))

    x = rand(2, 4)
    variables = abstract_init(Net(), x)
    for _ in range(3):
        new = port.from_torch(tmod, variables, model=Net(), args=(x,))  # an equal instance
    assert traces[0] == 1
    close(Net().apply(new, x), run_torch(tmod, x))
    port.from_torch(tmod, variables, model=Net(), args=(rand(5, 4),))  # another input shape
    assert traces[0] == 2
    port.from_torch(tmod, variables, model=Net(), args=(rand(1, 5, 4),))  # another rank
    assert traces[0] == 3


def test_another_configuration_is_traced_again_and_converted_by_its_own_module(traces):
    x = rand(1, 4, 5, 5)
    for transpose_kernel in (True, False, True):
        tmod = randomize(torch.nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1))
        fmod = nn.ConvTranspose(
            4, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)), transpose_kernel=transpose_kernel
        )
        xf = channels_last(x)
        new = port.from_torch(tmod, abstract_init(fmod, xf), model=fmod, args=(xf,))
        close(jax.jit(fmod.apply)(new, xf), channels_last(run_torch(tmod, x)))
    assert traces[0] == 2  # the third is the first configuration again


def test_a_module_with_an_unhashable_field_is_keyed_by_identity_and_fields(traces):
    tmod = randomize(torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh()))
    x = rand(2, 4)
    layers = [nn.Dense(6), nn.tanh]
    fmod = nn.Sequential(layers)  # a list field: not hashable
    variables = abstract_init(fmod, x)
    port.from_torch(tmod, variables, model=fmod, args=(x,))
    port.from_torch(tmod, variables, model=fmod, args=(x,))
    assert traces[0] == 1
    port.from_torch(tmod, variables, model=nn.Sequential([nn.Dense(6), nn.tanh]), args=(x,))
    assert traces[0] == 2  # another instance: traced again
    layers.append(nn.tanh)  # mutated in place: its repr changes, so does the key
    new = port.from_torch(tmod, variables, model=fmod, args=(x,))
    assert traces[0] == 3
    close(fmod.apply(new, x), np.tanh(np.tanh(run_torch(tmod[0], x))), rtol=1e-5, atol=1e-6)


def test_the_cache_is_bounded(traces):
    tmod = randomize(torch.nn.Linear(4, 3))
    x = rand(1, 4)
    variables = abstract_init(nn.Dense(3), x)
    for i in range(flax_trace._TRACE_CACHE_SIZE + 4):
        port.from_torch(tmod, variables, model=nn.Dense(3, name=f"d{i}"), args=(x,))
    assert len(flax_trace._TRACE_CACHE) == flax_trace._TRACE_CACHE_SIZE
