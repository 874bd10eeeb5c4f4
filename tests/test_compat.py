"""The private and unstable APIs of jaxinit._src.compat: each still has the shape jaxinit reads.

A failure here names the Flax/JAX version that changed it; the fallback in
compat.py keeps jaxinit correct meanwhile (slower, or refusing what it cannot do).
"""

from __future__ import annotations

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxinit
from jaxinit._src import compat
from jaxinit._src.tree.keys import THREEFRY, fold_in_words, path_words

VERSIONS = f"flax {flax.__version__}, jax {jax.__version__}"


def test_flax_linen_module_stack_is_readable():
    assert compat.linen_stack_is_readable(nn), (
        f"{VERSIONS}: flax.linen.module._context.module_stack is gone; the calling "
        "layer is found from the call stack instead (slower)"
    )


def test_the_module_stack_fallback_finds_the_same_layer(monkeypatch):
    seen = []

    def spy(key, shape, dtype=jnp.float32):
        seen.append(compat.linen_module_stack_top(nn))
        return jnp.zeros(shape, dtype)

    nn.Dense(3, kernel_init=spy).init(jax.random.key(0), jnp.ones((1, 2)))
    monkeypatch.setattr(compat, "_stack_of", lambda linen: None)
    nn.Dense(3, kernel_init=spy).init(jax.random.key(0), jnp.ones((1, 2)))
    (inside, first), (inside_fb, second) = seen
    assert inside and inside_fb
    assert type(first) is type(second) is nn.Dense


def test_jax_extend_core_has_what_nnx_init_uses():
    import jax.extend.core as core

    for name in ("ClosedJaxpr", "Var", "jaxpr_as_fun"):
        assert hasattr(core, name), f"{VERSIONS}: jax.extend.core.{name} is gone (NNX init)"
    closed = jax.make_jaxpr(lambda x: (x + 1, x * 2))(1.0)
    pruned = compat.prune_jaxpr(closed, [1])
    assert len(pruned.jaxpr.eqns) == 1
    assert compat.jaxpr_as_fun(pruned)(3.0) == [6.0]


def test_zero_fan_patch_target_exists():
    assert compat.compute_fans_is_patchable(), (
        f"{VERSIONS}: jax._src.nn.initializers._compute_fans is gone: zero-width layers "
        "fail in jaxinit.flax.init as they do in Flax"
    )
    with compat.empty_defaults_tolerated():
        x = jax.nn.initializers.lecun_normal()(jax.random.key(0), (0, 4))
    assert x.shape == (0, 4)
    # outside the context, jax is untouched
    with pytest.raises(ZeroDivisionError):
        jax.nn.initializers.lecun_normal()(jax.random.key(0), (0, 4))


def test_host_threefry_equals_jax_fold_in():
    """The numpy Threefry-2x32 copy (tree/keys.py) word for word against jax.random."""
    assert str(jax.config.jax_default_prng_impl) == THREEFRY
    key = jax.random.key(1234)
    words = path_words([f"layer_{i}/kernel" for i in range(50)])
    host = fold_in_words(key, words)
    assert host is not None
    for w, got in zip(words, host):
        want = jax.random.fold_in(jax.random.fold_in(key, int(w[0])), int(w[1]))
        np.testing.assert_array_equal(got, np.asarray(jax.random.key_data(want)), VERSIONS)


def test_nnx_frames_find_the_layer_under_construction():
    seen = []

    def spy(key, shape, dtype=jnp.float32):
        from jaxinit._src.layers import context

        seen.append(context.calling_layer_layout(tuple(shape)))
        return jnp.zeros(shape, dtype)

    nnx.Linear(2, 3, kernel_init=spy, rngs=nnx.Rngs(0))
    nnx.Embed(2, 3, embedding_init=spy, rngs=nnx.Rngs(0))
    assert seen == [jaxinit.FLAX, jaxinit.Layout(in_axis=-1, out_axis=-2)], VERSIONS
    assert jaxinit.LayoutWarning.__mro__[1] is UserWarning
