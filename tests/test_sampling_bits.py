"""jaxinit's flat draws are jax.random's draws, bit for bit, compiled faster.

``uniform_bits``, ``normal_bits`` and ``random_bits`` draw threefry bits flat
(one counter per row-major index) and reshape; the values must be those of
``jax.random.uniform``/``normal``/``bits`` for every shape, dtype, threefry
mode, key kind and transformation, since every scheme's values are defined by
them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit
from jaxinit._src.core.family import drawing_flat
from jaxinit._src.schemes.sampling import normal_bits, random_bits, uniform_bits

SHAPES = [(), (1,), (7,), (3, 5), (4, 1, 6), (2, 3, 2, 5), (0, 4), (5, 0, 3)]


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    np.testing.assert_array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8))


def _pairs(key, shape, dtype):
    """(ours, jax's) for each draw, ours traced flat (as an eager kernel call is)."""
    with drawing_flat(True):
        yield from _pairs_as_traced(key, shape, dtype)


def _pairs_as_traced(key, shape, dtype):
    low, high = np.array(-0.3, dtype), np.array(1.7, dtype)
    yield (
        uniform_bits(key, shape, dtype, low, high),
        jax.random.uniform(key, shape, dtype, low, high),
    )
    yield normal_bits(key, shape, dtype), jax.random.normal(key, shape, dtype)
    uint = jnp.uint32 if dtype == jnp.float32 else jnp.uint64
    yield random_bits(key, shape, uint), jax.random.bits(key, shape, uint)


@pytest.mark.parametrize("partitionable", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_float32_draws_are_jax_random(shape, partitionable):
    with jax.threefry_partitionable(partitionable):
        for key in (jax.random.key(3), jax.random.PRNGKey(3)):  # typed, legacy raw
            for ours, theirs in _pairs(key, shape, jnp.float32):
                _same(ours, theirs)


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, 4)], ids=str)
def test_float64_draws_are_jax_random(shape, x64):
    for ours, theirs in _pairs(jax.random.key(4), shape, jnp.float64):
        _same(ours, theirs)


def test_under_jit_vmap_and_with_traced_bounds():
    keys = jax.random.split(jax.random.key(5), 3)
    shape = (4, 3, 2)

    def ours(k, lo, hi):
        with drawing_flat(True):
            return uniform_bits(k, shape, jnp.float32, lo, hi), normal_bits(k, shape, jnp.float32)

    def theirs(k, lo, hi):
        return jax.random.uniform(k, shape, jnp.float32, lo, hi), jax.random.normal(k, shape)

    lo, hi = jnp.float32(-2.0), jnp.float32(0.5)
    for a, b in zip(jax.jit(jax.vmap(ours, (0, None, None)))(keys, lo, hi),
                    jax.vmap(theirs, (0, None, None))(keys, lo, hi)):  # fmt: skip
        _same(a, b)


def test_other_prngs_are_left_to_jax():
    key = jax.random.key(6, impl="rbg")
    for ours, theirs in _pairs(key, (3, 4, 5), jnp.float32):
        _same(ours, theirs)


def test_the_comparison_can_fail():
    """Another key gives other bits: the equality above is not vacuous."""
    a = uniform_bits(jax.random.key(1), (3, 4), jnp.float32, 0.0, 1.0)
    b = jax.random.uniform(jax.random.key(2), (3, 4), jnp.float32, 0.0, 1.0)
    with pytest.raises(AssertionError):
        _same(a, b)


def test_eager_calls_draw_flat_and_traced_ones_n_d():
    """An eager call's result is unsharded: flat; inside a caller's jit it may be sharded: N-D."""
    init, shape = jaxinit.kaiming_uniform(), (6, 4, 3)
    key = jax.random.key(9)
    eager = init.family.kernel.lower(
        key,
        *init.params(shape, init.resolved_layout(shape), jnp.dtype(jnp.float32)),
        shape=shape,
        dtype=jnp.dtype(jnp.float32),
        layout=None,
        out_sharding=None,
        flat=True,
    ).as_text()
    traced = jax.jit(lambda k: init(k, shape)).lower(key).as_text()
    assert eager.count("iota") < traced.count("iota"), (eager.count("iota"), traced.count("iota"))
    _same(init(key, shape), jax.jit(lambda k: init(k, shape))(key))
