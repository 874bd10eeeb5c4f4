"""What the fast drawing path must keep: the values, and fewer programs. Not timed.

``jaxinit.flax.init``/``reinit`` draw the leaves of elementwise families flat,
one program per element count, keys folded in on the host
(:mod:`jaxinit._src.tree.flat`, :mod:`jaxinit._src.tree.keys`). The values are defined
by the plain call ``init(leaf_key(key, path), shape, dtype)`` of
each leaf's initializer: every test here compares against that, bit for bit,
in float32, bfloat16, float16, float64 and complex, sharded and not, and with
the flat path turned off (``draw.FLAT = False``, the per-leaf kernels).
Compile counts are checked in fresh processes (the in-process caches would
hide them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxinit
import jaxinit.flax
from jaxinit._src.flax.linen import linen_leaves
from jaxinit._src.flax.trace import record_modules
from jaxinit._src.tree import draw, flat
from jaxinit._src.tree.keys import fold_in_words, path_words
from jaxinit._src.tree.plan import plan
from jaxinit._src.tree.rules import as_rules

KEY = jax.random.key(7)
ROOT = Path(__file__).resolve().parents[1]


def _bits(x) -> np.ndarray:
    """The bytes of an array, so that -0.0 != 0.0 and nan payloads count."""
    return np.asarray(x).reshape(-1).view(np.uint8)


def assert_bitwise_equal(got, want, path=""):
    assert got.shape == want.shape and got.dtype == want.dtype, (path, got, want)
    np.testing.assert_array_equal(_bits(got), _bits(want), err_msg=path)


def by_definition(jobs, key):
    """Each job's leaf as its initializer's plain call defines it."""
    out = {}
    for job in jobs:
        leaf_key = jaxinit.leaf_key(key, job.path)
        out[job.path] = job.init(leaf_key, job.shape, job.dtype, job.sharding)
    return out


# ----------------------------------------------------------------------------
# Keys folded in on the host


@pytest.mark.parametrize(
    "key",
    [jax.random.key(0), jax.random.key(2**31 - 1), jax.random.PRNGKey(12345), KEY],
    ids=["key0", "key_max", "raw_key", "key7"],
)
def test_host_fold_in_is_jax_fold_in(key):
    edges = [0, 1, 2, 255, 2**16, 2**31 - 1, 2**32 - 1]
    data = np.array([(a, b) for a in edges for b in edges[::2]], np.uint32)
    data = np.concatenate([data, path_words(["params/Dense_0/kernel", "a/b/c", ""])])
    want = [
        np.asarray(jax.random.key_data(jax.random.fold_in(jax.random.fold_in(key, hi), lo)))
        for hi, lo in data
    ]
    np.testing.assert_array_equal(fold_in_words(key, data), np.stack(want))


def test_other_prng_implementations_are_left_to_jax():
    key = jax.random.key(0, impl="rbg")
    assert fold_in_words(key, np.zeros((1, 2), np.uint32)) is None
    tree = {"w": jnp.zeros((64, 32)), "b": jnp.zeros((32,))}
    rules = [("w", jaxinit.kaiming_uniform()), ("b", jaxinit.normal())]
    out = jaxinit.reinit(tree, rules, key=key)
    jobs = plan_tree(tree, rules)
    for path, want in by_definition(jobs, key).items():
        assert_bitwise_equal(out[path], want, path)


# ----------------------------------------------------------------------------
# Buckets


def test_large_leaves_get_their_own_size_and_small_ones_are_pooled():
    big = flat.SMALL + 1
    sizes = [big, big, 3 * big, 768, 768, 3072, 32000, 1]
    assert flat.size_buckets(sizes, pool=True) == {
        big: big,
        3 * big: 3 * big,
        32000: 32768,
        3072: 32768,
        768: 32768,
        1: 1,  # a one-element program compiles its float math differently
    }
    assert flat.size_buckets(sizes, pool=False) == {n: n for n in sizes}


def test_pooling_stops_where_it_would_draw_too_many_extra_values():
    # 2000 leaves of 64 values pooled with one of 2^16 would draw ~1.3e8 values
    # for ~2e5 needed: they open their own bucket at 64.
    sizes = [flat.SMALL] + [64] * 2000
    assert flat.size_buckets(sizes, pool=True) == {flat.SMALL: flat.SMALL, 64: 64}
    # a few of them join the big bucket
    assert flat.size_buckets([flat.SMALL, 64, 64], pool=True)[64] == flat.SMALL


# ----------------------------------------------------------------------------
# Values: bit for bit the definition, and the per-leaf path


def plan_tree(tree, rules, layout="torch"):
    leaves_flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    from jaxinit._src.layers.leaf import key_name, make_leaves

    paths = [tuple(key_name(k) for k in kp) for kp, _ in leaves_flat]
    values = [v for _, v in leaves_flat]
    lay = jaxinit.Layout(1, 0) if layout == "torch" else jaxinit.FLAX
    leaves = make_leaves(paths, values, lambda i: (), lambda p, v, o: (lay, False))
    return plan(leaves, as_rules(rules), True)


def _schemes_tree(dtype, big: int):
    """Leaves of every elementwise scheme, small (pooled) and large, same sizes in two shapes."""
    shapes = {
        "tall": (big, 4),
        "wide": (4, big),  # same element count as tall: one program
        "cube": (2, big // 2, 4),
        "bias": (96,),
        "tiny": (1, 1),
        "odd": (7, 13),
    }
    return {
        f"{scheme}/{name}": jnp.zeros(shape, dtype)
        for scheme in ("u", "n", "t", "k", "x", "c", "one")
        for name, shape in shapes.items()
        if len(shape) >= 2 or scheme not in ("k", "x")  # fans need 2 dimensions
    }


_RULES = [
    ("u/*", jaxinit.uniform(-0.3, 0.7)),
    ("n/*", jaxinit.normal(0.5, 2.0)),
    ("t/*", jaxinit.trunc_normal(0.0, 1.0, -0.5, 1.5)),
    ("k/*", jaxinit.kaiming_uniform(a=0.1)),
    ("x/*", jaxinit.xavier_normal(gain=1.3)),
    ("c/*", jaxinit.constant(0.3)),
    ("one/*", jaxinit.ones()),
]


# The families, once each (kaiming and xavier are uniform and normal with other
# parameters): what the other dtypes, keys and threefry modes are checked with.
_FAMILIES = ("u/*", "n/*", "t/*", "c/*")


def _rules_for(dtype, every_scheme=True, families=_FAMILIES):
    rules = [r for r in _RULES if every_scheme or r[0] in families]
    if jnp.issubdtype(dtype, jnp.complexfloating):  # trunc_normal is real only, as torch
        rules = [r for r in rules if r[0] != "t/*"]
    return rules


def _tree_for(dtype, big, every_scheme=True, families=_FAMILIES):
    tree = _schemes_tree(dtype, big)
    if not every_scheme:
        tree = {k: v for k, v in tree.items() if f"{k.split('/')[0]}/*" in families}
    if jnp.issubdtype(dtype, jnp.complexfloating):
        tree = {k: v for k, v in tree.items() if not k.startswith("t/")}
    return tree


def _check_reinit(dtype, big, key=KEY, every_scheme=False, families=_FAMILIES):
    tree = _tree_for(dtype, big, every_scheme, families)
    rules = _rules_for(dtype, every_scheme, families)
    got = jaxinit.reinit(tree, rules, key=key)
    want = by_definition(plan_tree(tree, rules), key)
    for path, w in want.items():
        assert_bitwise_equal(got[path], w, path)


@pytest.mark.parametrize(
    "dtype",
    [
        jnp.float32,
        jnp.bfloat16,
        # the 16-bit and complex paths are bfloat16's and float32's: in the slow run
        pytest.param(jnp.float16, marks=pytest.mark.slow),
        pytest.param(jnp.complex64, marks=pytest.mark.slow),
    ],
    ids=lambda d: d.__name__,
)
def test_every_elementwise_scheme_is_bitwise_the_definition(dtype):
    # "big" leaves of 4 * big > SMALL; every scheme in float32, every family in the others
    _check_reinit(dtype, big=flat.SMALL // 4 + 8, every_scheme=dtype == jnp.float32)


@pytest.mark.slow
def test_every_elementwise_scheme_is_bitwise_the_definition_in_float64(x64):
    _check_reinit(jnp.float64, big=flat.SMALL // 4 + 8)
    _check_reinit(jnp.complex128, big=flat.SMALL // 4 + 8)


def test_the_original_threefry_is_bitwise_the_definition_too():
    # Without the partitionable threefry a counter depends on the draw's size:
    # no pooling then, only shared element counts.
    with jax.threefry_partitionable(False):
        _check_reinit(jnp.float32, big=flat.SMALL // 4 + 8, families=("u/*", "t/*"))


def test_a_legacy_raw_key_is_bitwise_the_definition():
    key = jax.random.PRNGKey(3)
    _check_reinit(jnp.float32, big=flat.SMALL // 4 + 8, key=key, families=("u/*", "n/*"))


def test_sharded_leaves_are_drawn_into_their_sharding_and_equal_the_definition():
    mesh = jax.make_mesh((4, 2), ("x", "y"))
    sharding = NamedSharding(mesh, P("x", "y"))
    tree = {
        "w": jax.device_put(jnp.zeros((64, 32)), sharding),
        "v": jnp.zeros((64, 32)),  # the same size, unsharded: the flat path
        "b": jax.device_put(jnp.zeros((8, 4)), sharding),
    }
    rules = [("*", jaxinit.kaiming_normal())]
    got = jaxinit.reinit(tree, rules, key=KEY)
    for path, w in by_definition(plan_tree(tree, rules), KEY).items():
        assert_bitwise_equal(got[path], w, path)
    assert got["w"].sharding == sharding and got["b"].sharding == sharding
    assert {s.data.shape for s in got["w"].addressable_shards} == {(16, 16)}


# ----------------------------------------------------------------------------
# A GPT-shaped model (small) through jaxinit.flax.init, in three dtypes

VOCAB, WIDTH, HEADS, HIDDEN, DEPTH = 1100, 64, 4, 1280, 2  # embed/head/MLP kernels > SMALL


def gpt(dtype):
    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.LayerNorm(param_dtype=dtype)(x)
            x = x + nn.MultiHeadDotProductAttention(num_heads=HEADS, param_dtype=dtype)(h, h)
            h = nn.LayerNorm(param_dtype=dtype)(x)
            h = nn.gelu(nn.Dense(HIDDEN, param_dtype=dtype)(h))
            return x + nn.Dense(WIDTH, param_dtype=dtype)(h)

    class GPT(nn.Module):
        @nn.compact
        def __call__(self, tokens):
            x = nn.Embed(VOCAB, WIDTH, param_dtype=dtype)(tokens)
            for _ in range(DEPTH):
                x = Block()(x)
            return nn.Dense(VOCAB, param_dtype=dtype)(nn.LayerNorm(param_dtype=dtype)(x))

    return GPT()


def _by_path(variables):
    return {
        "/".join(str(k.key) for k in path): x
        for path, x in jax.tree_util.tree_leaves_with_path(variables)
    }


def _check_gpt(dtype, per_leaf=False):
    model, tokens = gpt(dtype), jnp.zeros((1, 8), jnp.int32)
    rules = jaxinit.flax.TORCH_DEFAULTS
    # (flax's LayerNorm promotes bfloat16 with float32 itself)
    with jax.numpy_dtype_promotion("standard"):
        got = _by_path(jaxinit.flax.init(model, KEY, tokens, rules=rules))
        abstract, modules = record_modules(model, KEY, (tokens,), {})
    _, _, leaves = linen_leaves(abstract, modules, collections=True)
    jobs = plan(leaves, as_rules(rules), True)
    assert len(jobs) == len(got)  # TORCH_DEFAULTS covers every leaf
    want = by_definition(jobs, KEY)
    for path, w in want.items():
        assert_bitwise_equal(got[path], w, path)
    if per_leaf:  # the per-leaf kernels (the path before flat drawing) agree too
        draw.FLAT = False
        try:
            with jax.numpy_dtype_promotion("standard"):
                old = _by_path(jaxinit.flax.init(model, KEY, tokens, rules=rules))
        finally:
            draw.FLAT = True
        for path, w in want.items():
            assert_bitwise_equal(old[path], w, path)


@pytest.mark.parametrize(
    "dtype",
    [jnp.float32, pytest.param(jnp.bfloat16, marks=pytest.mark.slow)],
    ids=lambda d: d.__name__,
)
def test_gpt_init_is_bitwise_the_definition(dtype):
    _check_gpt(dtype, per_leaf=dtype == jnp.float32)


@pytest.mark.slow
def test_gpt_init_is_bitwise_the_definition_in_float64(x64):
    _check_gpt(jnp.float64)


# ----------------------------------------------------------------------------
# Donation: every program is compiled before the first buffer is deleted


def test_donation_compiles_every_flat_program_before_the_first_deletion(monkeypatch):
    events: list[str] = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            events.append("compile")

    real_call = draw._Drawer.__call__

    def drawing(self, key):
        events.append("draw")
        return real_call(self, key)

    monkeypatch.setattr(draw._Drawer, "__call__", drawing)
    # sizes no other test uses, so that every program compiles here
    tree = {"w": jnp.zeros((331, 223)), "v": jnp.zeros((223, 331)), "b": jnp.zeros((229,))}
    jax.block_until_ready(tree)
    rules = [("w", jaxinit.kaiming_uniform()), ("v", jaxinit.uniform()), ("b", jaxinit.normal())]
    want = by_definition(plan_tree(tree, rules), KEY)
    old = dict(tree)
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        got = jaxinit.reinit(tree, rules, key=KEY, donate=True)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert "compile" in events and "draw" in events
    first_draw = events.index("draw")
    assert "compile" not in events[first_draw:], events
    assert all(a.is_deleted() for a in old.values())
    for path, w in want.items():
        assert_bitwise_equal(got[path], w, path)


# ----------------------------------------------------------------------------
# Compile counts, in fresh processes

_COUNT = textwrap.dedent(
    """
    import json, logging, sys
    import jax, jax.numpy as jnp
    import jaxinit, jaxinit.flax
    from jaxinit._src.tree import draw
    from tests.test_draw_perf_invariants import gpt
    draw.FLAT = sys.argv[1] == "flat"
    names = []

    class Names(logging.Handler):
        def emit(self, record):
            message = record.getMessage()
            if message.startswith("Finished XLA compilation of "):
                names.append(message.split(" ")[4])

    for logger in ("jax._src.dispatch", "jax._src.interpreters.pxla"):
        logging.getLogger(logger).addHandler(Names(logging.WARNING))
    model, tokens, key = gpt(jnp.float32), jnp.zeros((1, 8), jnp.int32), jax.random.key(0)
    jax.block_until_ready((tokens, key))
    rules = jaxinit.flax.TORCH_DEFAULTS
    with jax.log_compiles(True):  # (the worker thread compiling the programs logs too)
        before = len(names)
        jax.block_until_ready(jaxinit.flax.init(model, key, tokens, rules=rules))
        first = names[before:]
        before = len(names)
        jax.block_until_ready(jaxinit.flax.init(model, key, tokens, rules=rules))
        second = names[before:]
    print(json.dumps({"first": first, "second": second}))
    """
)


def _compiled(mode: str) -> dict[str, list[str]]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", _COUNT, mode],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_flat_drawing_compiles_one_sampling_program_per_element_count():
    flat_run, per_leaf = _compiled("flat"), _compiled("per_leaf")
    # Per leaf: a sampling program per distinct (scheme, shape): normal (embed),
    # uniform (head kernel and bias, the MLP kernels and biases, the attention
    # kernels in and out), and the fills of (64,) and (4, 16).
    leaf_draws = [n for n in per_leaf["first"] if n in ("jit(_draw_leaf)", "jit(run)")]
    assert len(leaf_draws) == 11, per_leaf
    # Flat: one per (family, element count): normal 70400 (embed), uniform
    # 70400 (head), uniform 81920 (the MLP kernels, both shapes), uniform
    # 4096 (the small leaves, pooled: attention kernels (64, 4, 16) and
    # (4, 16, 64), biases of 1280, 1100 and 64), and the fill of 64
    # (LayerNorms, attention biases (4, 16)) ...
    draws = [n for n in flat_run["first"] if n == "jit(_draw)"]
    assert len(draws) == 5, flat_run
    # ... and nothing else but the reshapes and cuts (a few ms each to compile)
    rest = [n for n in flat_run["first"] if n != "jit(_draw)"]
    assert set(rest) <= {"jit(_reshape)", "jit(_cut)"}, flat_run
    # a second call (the same model) compiles nothing
    assert flat_run["second"] == [] and per_leaf["second"] == []
