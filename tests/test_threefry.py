"""Threefry-2x32 written out (``jaxinit._src.core.threefry``) is jax's threefry, bit for bit.

Every scheme draws its random bits through :func:`threefry.random_bits`, so
its values are defined by ``jax.random.bits``: these tests check the block
function against published known answers and the draws against
``jax.random.bits`` for each bit width, shape, key kind and transformation,
and that a draw compiles without jax's rolled loop (the reason it exists).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxinit._src.core import threefry
from jaxinit._src.core.family import drawing_flat
from jaxinit._src.schemes.sampling import random_bits, uniform_bits

SHAPES = [(), (1,), (7,), (3, 5), (4, 1, 6), (2, 3, 2, 5), (0, 4), (5, 0, 3)]
BIT_WIDTHS = [jnp.uint8, jnp.uint16, jnp.uint32]


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    np.testing.assert_array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8))


def test_block_matches_the_published_known_answers():
    """Threefry-2x32, 20 rounds: Random123's known-answer vectors (kat_vectors), in numpy and jax."""
    vectors = [  # key, counter, result
        ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
        ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
        ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
    ]
    for key, counter, want in vectors:
        args = [np.full((1,), w, np.uint32) for w in (*key, *counter)]
        assert tuple(int(w[0]) for w in threefry.block(*args)) == want
        assert tuple(int(w[0]) for w in jax.jit(threefry.block)(*args)) == want


@pytest.mark.parametrize("flat", [True, False], ids=["flat", "n-d"])
@pytest.mark.parametrize("dtype", BIT_WIDTHS, ids=lambda d: jnp.dtype(d).name)
def test_every_bit_width_and_shape_is_jax_random_bits(dtype, flat):
    for key in (jax.random.key(11), jax.random.PRNGKey(11)):
        for shape in SHAPES:
            with drawing_flat(flat):
                ours = jax.jit(lambda k, s=shape: random_bits(k, s, dtype))(key)
            _same(ours, jax.random.bits(key, shape, dtype))


def test_64_bit_words_are_jax_random_bits(x64):
    key = jax.random.key(12)
    for shape in [(5,), (3, 4, 2)]:
        _same(threefry.random_bits(key, shape, jnp.uint64), jax.random.bits(key, shape, jnp.uint64))


def test_vmapped_keys_draw_jax_random_bits():
    keys = jax.random.split(jax.random.key(15), 4)
    ours = jax.vmap(lambda k: threefry.random_bits(k, (3, 6), jnp.uint32))(keys)
    _same(ours, jax.vmap(lambda k: jax.random.bits(k, (3, 6)))(keys))


def test_draws_jax_computes_otherwise_are_left_to_jax():
    key = jax.random.key(13)
    with jax.threefry_partitionable(False):  # counters depend on the draw's size there
        _same(threefry.random_bits(key, (3, 5), jnp.uint32), jax.random.bits(key, (3, 5)))
    rbg = jax.random.key(13, impl="rbg")
    _same(threefry.random_bits(rbg, (3, 5), jnp.uint32), jax.random.bits(rbg, (3, 5)))


def test_a_threefry_draw_compiles_without_a_rolled_loop():
    """The point of writing the rounds out: no loop over arrays the size of the draw.

    jax's own CPU lowering of the same draw has one (the comparison keeps the
    test able to fail: were jax to unroll it too, this module could go).
    """
    key = jax.random.key(14)
    ours = jax.jit(lambda k: uniform_bits(k, (64, 32), jnp.float32, 0.0, 1.0)).lower(key)
    theirs = jax.jit(lambda k: jax.random.uniform(k, (64, 32))).lower(key)
    assert "while" not in ours.compile().as_text()
    assert "while" in theirs.compile().as_text()
    _same(
        jax.jit(lambda k: uniform_bits(k, (64, 32), jnp.float32, 0.0, 1.0))(key),
        jax.random.uniform(key, (64, 32)),
    )


@settings(deadline=None, max_examples=25, derandomize=True)
@given(
    shape=st.lists(st.integers(0, 9), min_size=0, max_size=4).map(tuple),
    seed=st.integers(0, 2**32 - 1),
    dtype=st.sampled_from(BIT_WIDTHS),
    typed=st.booleans(),
)
def test_any_shape_and_key_draws_jax_random_bits(shape, seed, dtype, typed):
    """Random shapes (empty, unit and odd axes), keys and widths: the N-D counters are jax's."""
    key = jax.random.key(seed) if typed else jax.random.PRNGKey(seed)
    _same(threefry.random_bits(key, shape, dtype), jax.random.bits(key, shape, dtype))
