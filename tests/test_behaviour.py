"""Behaviour every initializer keeps (DESIGN.md section 4): validation at build
time, the bad-input table, dtypes, empty shapes, jit/vmap/eval_shape,
determinism, keys, compile-once, sharding, and the ``X_`` helpers."""

from __future__ import annotations

import functools
import logging
import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.init as tinit
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxinit
import jaxinit.flax
from jaxinit._src.core.family import Family
from jaxinit._src.schemes import fill, iid, structured, torch_defaults
from jaxinit._src.schemes import trunc_normal as truncated
from tests import records as R
from tests.records import ALL, Scheme

LAYOUTS = ("torch", "flax")
STRUCTURED = ("eye", "dirac", "orthogonal", "sparse")


def scheme_layouts(schemes=ALL):
    """``(scheme, layout)`` parameters. ``_shape`` gives the iid schemes square
    shapes, on which both layouts have the same fans and draw with the same
    program, so their flax case repeats the torch one: it runs with ``-m slow``."""
    return [
        pytest.param(
            s,
            layout,
            id=f"{s.id}-{layout}",
            marks=pytest.mark.slow if layout == "flax" and s.kind not in STRUCTURED else (),
        )
        for s in schemes
        for layout in LAYOUTS
    ]


KEY = jax.random.key(42)


def _ids(s: Scheme) -> str:
    return s.id


def _shape(scheme: Scheme, layout: str = "torch", conv: tuple[int, ...] | None = None):
    """A small shape the scheme accepts, divisible by a (4, 2) mesh in both layouts.

    2-D where the scheme takes 2-D (N-D draws compile slower on XLA:CPU, and the
    behaviour tested with it does not depend on the rank), else 3-D; ``conv``
    asks for that conv shape instead, where the scheme takes its rank.
    """
    if conv is not None and len(conv) in scheme.ranks:
        torch_shape = conv
    else:
        # square: the iid schemes (whose compile key has no layout) compile once for both layouts
        torch_shape = (8, 8) if 2 in scheme.ranks else (8, 4, 4)
    return R.layout_shape(torch_shape, layout)


def _key(scheme: Scheme):
    return KEY if scheme.random else None


def _np(x) -> np.ndarray:
    x = jnp.asarray(x)
    return np.asarray(x.astype(jnp.float32) if x.dtype in (jnp.bfloat16,) else x)


# ----------------------------------------------------------------------------
# Bad inputs. Builder rows must fail when the builder is called (before any key
# or shape exists): they take no key/shape at all.


BUILD_ERRORS = [
    (
        "kaiming_normal mode",
        lambda: jaxinit.kaiming_normal(mode="fanin"),
        ValueError,
        re.escape("Mode fanin not supported, please use one of ['fan_in', 'fan_out']"),
    ),
    (
        "kaiming_uniform mode",
        lambda: jaxinit.kaiming_uniform(mode="fan_avg"),
        ValueError,
        re.escape("Mode fan_avg not supported, please use one of ['fan_in', 'fan_out']"),
    ),
    (
        "kaiming_normal mode type",
        lambda: jaxinit.kaiming_normal(mode=3),
        ValueError,
        "Mode 3 not supported",
    ),
    (
        "kaiming_normal nonlinearity",
        lambda: jaxinit.kaiming_normal(nonlinearity="gelu"),
        ValueError,
        "Unsupported nonlinearity gelu",
    ),
    (
        "kaiming_uniform nonlinearity",
        lambda: jaxinit.kaiming_uniform(nonlinearity=None),
        ValueError,
        "Unsupported nonlinearity None",
    ),
    (
        "kaiming a not a number",
        lambda: jaxinit.kaiming_normal(a="x"),
        TypeError,
        "a must be a real number",
    ),
    (
        "kaiming a bool",
        lambda: jaxinit.kaiming_uniform(a=True),
        TypeError,
        "a must be a real number",
    ),
    (
        "sparse sparsity < 0",
        lambda: jaxinit.sparse(-0.1),
        ValueError,
        r"sparsity must be in \[0, 1\]",
    ),
    (
        "sparse sparsity > 1",
        lambda: jaxinit.sparse(1.5),
        ValueError,
        r"sparsity must be in \[0, 1\]",
    ),
    ("sparse std < 0", lambda: jaxinit.sparse(0.5, std=-1.0), ValueError, "std must be >= 0"),
    (
        "normal std < 0",
        lambda: jaxinit.normal(std=-1),
        ValueError,
        re.escape("normal expects std >= 0.0, but found std -1"),
    ),
    (
        "uniform a > b",
        lambda: jaxinit.uniform(1, 0),
        ValueError,
        re.escape("uniform_ expects to return a [from, to) range, but found from=1"),
    ),
    (
        "trunc_normal a > b",
        lambda: jaxinit.trunc_normal(a=2.0, b=1.0),
        ValueError,
        re.escape("uniform_ expects to return a [from, to) range, but found from=2.0 > to=1.0"),
    ),
    ("trunc_normal a nan", lambda: jaxinit.trunc_normal(a=float("nan")), ValueError, "a number"),
    ("trunc_normal std 0", lambda: jaxinit.trunc_normal(std=0.0), ValueError, "std must be > 0"),
    ("trunc_normal std < 0", lambda: jaxinit.trunc_normal(std=-1.0), ValueError, "std must be > 0"),
    ("dirac groups 0", lambda: jaxinit.dirac(groups=0), ValueError, "groups must be >= 1"),
    ("dirac groups -1", lambda: jaxinit.dirac(-1), ValueError, "groups must be >= 1"),
    ("dirac groups float", lambda: jaxinit.dirac(groups=1.5), TypeError, "groups must be an int"),
    ("xavier gain < 0", lambda: jaxinit.xavier_uniform(gain=-1.0), ValueError, "gain must be >= 0"),
    (
        "xavier_normal gain nan",
        lambda: jaxinit.xavier_normal(gain=float("nan")),
        ValueError,
        "finite",
    ),
    ("constant str", lambda: jaxinit.constant("1"), TypeError, "val must be a number"),
    (
        "constant 1-d value",
        lambda: jaxinit.constant(torch.tensor([2.5])),
        TypeError,
        "takes hyperparameters, not an array",
    ),
    (
        "normal std nan",
        lambda: jaxinit.normal(std=float("nan")),
        ValueError,
        "std must be a number",
    ),
    (
        "uniform bound inf",
        lambda: jaxinit.uniform(0.0, float("inf")),
        ValueError,
        "b must be finite",
    ),
    ("bad layout", lambda: jaxinit.kaiming_normal(layout="keras"), ValueError, "layout must be"),
    # torch's deprecated non-underscore form: an array where a hyperparameter goes.
    (
        "array to kaiming_normal",
        lambda: jaxinit.kaiming_normal(jnp.ones((3, 4))),
        TypeError,
        r"jaxinit\.kaiming_normal_\(array",
    ),
    (
        "numpy array to xavier_uniform",
        lambda: jaxinit.xavier_uniform(np.ones((3, 4))),
        TypeError,
        r"xavier_uniform_\(",
    ),
    (
        "torch tensor to uniform",
        lambda: jaxinit.uniform(torch.ones(3, 4)),
        TypeError,
        r"uniform_\(",
    ),
    (
        "array kwarg to sparse",
        lambda: jaxinit.sparse(sparsity=jnp.ones(3)),
        TypeError,
        r"sparse_\(",
    ),
    (
        "array to flax kaiming_normal",
        lambda: jaxinit.flax.kaiming_normal(jnp.ones((3, 4))),
        TypeError,
        r"kaiming_normal_\(",
    ),
]


@pytest.mark.parametrize("name,build,exc,match", BUILD_ERRORS, ids=[r[0] for r in BUILD_ERRORS])
def test_builder_rejects_at_build_time(name, build, exc, match):
    with pytest.raises(exc, match=match):
        build()


def test_torch_accepts_what_we_accept_and_a_equals_b():
    # uniform a == b is allowed (a constant), as in torch
    t = torch.empty(3)
    torch.nn.init.uniform_(t, 2.0, 2.0)
    chex.assert_trees_all_equal(np.asarray(jaxinit.uniform(2.0, 2.0)(KEY, (3,))), t.numpy())


CALL_ERRORS = [
    # 1-D (and 0-D) shapes for fan schemes
    *[
        (
            f"{n} {s}",
            lambda n=n, s=s: getattr(jaxinit, n)()(KEY, s),
            ValueError,
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions",
        )
        for n in ("kaiming_normal", "kaiming_uniform", "xavier_normal", "xavier_uniform")
        for s in ((5,), ())
    ],
    (
        "orthogonal 1-D",
        lambda: jaxinit.orthogonal()(KEY, (5,)),
        ValueError,
        "Only tensors with 2 or more dimensions are supported",
    ),
    (
        "eye 3-D",
        lambda: jaxinit.eye()(None, (3, 3, 3)),
        ValueError,
        "Only tensors with 2 dimensions are supported",
    ),
    (
        "eye 1-D",
        lambda: jaxinit.eye()(None, (3,)),
        ValueError,
        "Only tensors with 2 dimensions are supported",
    ),
    (
        "sparse 3-D",
        lambda: jaxinit.sparse(0.1)(KEY, (3, 3, 3)),
        ValueError,
        "Only tensors with 2 dimensions are supported",
    ),
    (
        "sparse 1-D",
        lambda: jaxinit.sparse(0.1)(KEY, (3,)),
        ValueError,
        "Only tensors with 2 dimensions are supported",
    ),
    (
        "dirac 2-D",
        lambda: jaxinit.dirac()(None, (3, 3)),
        ValueError,
        "Only tensors with 3, 4, or 5 dimensions are supported",
    ),
    (
        "dirac 6-D",
        lambda: jaxinit.dirac()(None, (2,) * 6),
        ValueError,
        "Only tensors with 3, 4, or 5 dimensions are supported",
    ),
    (
        "dirac out % groups",
        lambda: jaxinit.dirac(2)(None, (3, 3, 3)),
        ValueError,
        "dim 0 must be divisible by groups",
    ),
    (
        "flax dirac out % groups",
        lambda: jaxinit.dirac(2, layout="flax")(None, (3, 4, 3)),
        ValueError,
        "dim 0 must be divisible by groups",
    ),
    (
        "kaiming bad layout axis",
        lambda: jaxinit.kaiming_normal(layout=jaxinit.Layout(0, 3))(KEY, (3, 4)),
        ValueError,
        "out of range",
    ),
    # dtypes
    *[
        (
            f"{s.name} int32",
            lambda s=s: s.make()(_key(s), _shape(s), jnp.int32),
            TypeError,
            "not implemented for 'Int'",
        )
        for s in ALL
        if s.random
    ],
    *[
        (
            f"{s.name} bool",
            lambda s=s: s.make()(_key(s), _shape(s), bool),
            TypeError,
            "not implemented for 'Bool'",
        )
        for s in ALL
        if s.random
    ],
    (
        "orthogonal complex",
        lambda: jaxinit.orthogonal()(KEY, (3, 4), jnp.complex64),
        TypeError,
        "complex",
    ),
    (
        "trunc_normal complex",
        lambda: jaxinit.trunc_normal()(KEY, (3, 4), jnp.complex64),
        TypeError,
        "complex",
    ),
    ("builder dtype int", lambda: jaxinit.normal(dtype=jnp.int8)(KEY, (3,)), TypeError, "floating"),
    # values the dtype cannot hold (torch raises too)
    (
        "uniform from out of bounds",
        lambda: jaxinit.uniform(-1e5, 1e5)(KEY, (3,), jnp.float16),
        ValueError,
        "from is out of bounds for float16",
    ),
    (
        "uniform to out of bounds",
        lambda: jaxinit.uniform(0.0, 7e4)(KEY, (3,), jnp.float16),
        ValueError,
        "to is out of bounds for float16",
    ),
    (
        "uniform to-from overflows",
        lambda: jaxinit.uniform(-2e38, 2e38)(KEY, (3,)),
        ValueError,
        "to-from",
    ),
    (
        "xavier_uniform bound overflows",
        lambda: jaxinit.xavier_uniform(gain=1e300)(KEY, (3, 4)),
        ValueError,
        "out of bounds for float32",
    ),
    (
        "constant overflows",
        lambda: jaxinit.constant(7e4)(None, (3,), jnp.float16),
        ValueError,
        "without overflow",
    ),
    # keys
    (
        "batched typed key",
        lambda: jaxinit.normal()(jax.random.split(KEY, 2), (3,)),
        ValueError,
        "single PRNG key",
    ),
    (
        "batched legacy key",
        lambda: jaxinit.kaiming_uniform()(jax.random.split(jax.random.PRNGKey(0), 2), (3, 4)),
        ValueError,
        "single PRNG key",
    ),
    (
        "batched key, deterministic",
        lambda: jaxinit.zeros()(jax.random.split(KEY, 2), (3,)),
        ValueError,
        "single PRNG key",
    ),
    ("no key", lambda: jaxinit.normal()(None, (3,)), TypeError, "PRNG key is required"),
    ("int key", lambda: jaxinit.uniform()(0, (3,)), TypeError, "expected a PRNG key"),
    (
        "float array key",
        lambda: jaxinit.sparse(0.5)(jnp.zeros(2), (3, 3)),
        TypeError,
        "expected a PRNG key",
    ),
    # shapes
    ("negative dim", lambda: jaxinit.normal()(KEY, (3, -1)), ValueError, "non-negative"),
    ("float dim", lambda: jaxinit.normal()(KEY, (3, 2.0)), TypeError, "sequence of concrete ints"),
]


@pytest.mark.parametrize("name,call,exc,match", CALL_ERRORS, ids=[r[0] for r in CALL_ERRORS])
def test_call_rejects(name, call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("scheme", ALL, ids=_ids)
def test_random_helpers_need_a_key(scheme: Scheme):
    helper = getattr(jaxinit, f"{scheme.name}_")
    w = jnp.zeros(_shape(scheme))
    if scheme.random:
        with pytest.raises(TypeError, match=rf"{scheme.name}_: a PRNG key is required"):
            helper(w, **scheme.kwargs)
    else:
        chex.assert_trees_all_equal(
            helper(w, **scheme.kwargs), scheme.make()(None, w.shape, w.dtype)
        )


def test_helpers_reject_dtype_and_non_arrays():
    with pytest.raises(TypeError, match="do not pass dtype"):
        jaxinit.normal_(jnp.zeros(3), key=KEY, dtype=jnp.float16)
    with pytest.raises(TypeError, match="expected an array first"):
        jaxinit.zeros_((3, 4))


# ----------------------------------------------------------------------------
# dtypes


def _x64_if(dtype: str, request) -> None:
    if dtype in ("float64", "complex128"):
        request.getfixturevalue("x64")


@pytest.mark.parametrize(
    "scheme,dtype,layout",
    [
        pytest.param(p.values[0], dtype, p.values[1], id=f"{p.id}-{dtype}", marks=p.marks)
        for p in scheme_layouts()
        for dtype in ("float32", "bfloat16", "float16", "float64", "complex64", "complex128")
        # complex only where torch has it (the rest are in the bad-input table)
        if p.values[0].complex_ok or not dtype.startswith("complex")
    ],
)
def test_dtypes(scheme: Scheme, dtype, layout, request):
    _x64_if(dtype, request)
    init = scheme.make(layout)
    shape = _shape(scheme, layout)
    dt = R.JAX_DTYPES[dtype]
    x = init(_key(scheme), shape, dt)
    chex.assert_shape(x, shape)
    assert x.dtype == dt
    assert np.isfinite(_np(x)).all()
    if dtype in ("bfloat16", "float16"):
        # 16-bit floats are float32 samples, cast (so tails and bounds are right)
        x32 = init(_key(scheme), shape, jnp.float32)
        chex.assert_trees_all_equal(x, x32.astype(dt))


@pytest.mark.parametrize("scheme", ALL, ids=_ids)
def test_default_dtype(scheme: Scheme, request):
    init = scheme.make()
    assert init(_key(scheme), _shape(scheme)).dtype == jnp.float32
    assert scheme.make(dtype=jnp.bfloat16)(_key(scheme), _shape(scheme)).dtype == jnp.bfloat16
    # an explicit dtype at the call wins over the builder's
    assert (
        scheme.make(dtype=jnp.bfloat16)(_key(scheme), _shape(scheme), jnp.float16).dtype
        == jnp.float16
    )
    request.getfixturevalue("x64")
    assert init(_key(scheme), _shape(scheme)).dtype == jnp.float64


# ----------------------------------------------------------------------------
# Empty shapes


def _empty_shapes(scheme: Scheme):
    if scheme.kind in ("eye", "sparse"):
        return [(0, 4), (4, 0), (0, 0)]
    if scheme.kind == "dirac":
        return [(0, 3, 3), (4, 0, 3, 3), (2, 2, 0, 3, 3)]
    out = [(0, 4), (4, 0), (8, 0, 3, 3), (0, 2, 3)]
    if 1 in scheme.ranks:
        out += [(0,)]
    return out


@pytest.mark.parametrize("scheme,layout", scheme_layouts())
def test_zero_element_shapes(scheme: Scheme, layout):
    init = scheme.make(layout)
    for torch_shape in _empty_shapes(scheme):
        shape = R.layout_shape(torch_shape, layout) if len(torch_shape) >= 2 else torch_shape
        for dt in (jnp.float32, jnp.bfloat16):
            x = init(_key(scheme), shape, dt)
            assert x.shape == shape and x.dtype == dt and x.size == 0
        x = jax.jit(lambda k, shape=shape: init(k, shape))(_key(scheme))
        assert x.shape == shape


# ----------------------------------------------------------------------------
# Purity: jit, vmap, eval_shape, determinism, keys


@pytest.mark.parametrize("scheme,layout", scheme_layouts())
def test_jit_vmap_eval_shape_determinism(scheme: Scheme, layout):
    init = scheme.make(layout)
    shape = _shape(
        scheme, layout, conv=(6, 4, 3) if scheme.kind in ("orthogonal", "dirac") else None
    )
    key = jax.random.key(1)
    x = init(key if scheme.random else None, shape)
    # determinism: same key, bitwise same
    chex.assert_trees_all_equal(x, init(key if scheme.random else None, shape))
    # jit == no jit, bitwise
    jitted = jax.jit(lambda k: init(k, shape, jnp.float32))(key)
    chex.assert_trees_all_equal(jitted, x)
    # eval_shape
    out = jax.eval_shape(lambda k: init(k, shape, jnp.bfloat16), key)
    assert out == jax.ShapeDtypeStruct(shape, jnp.bfloat16)
    out = jax.eval_shape(functools.partial(init, shape=shape), key)
    assert out == jax.ShapeDtypeStruct(shape, jnp.float32)
    # vmap over keys == stacking per-key calls
    keys = jax.random.split(key, 3)
    batched = jax.vmap(lambda k: init(k, shape))(keys)
    stacked = jnp.stack([init(k, shape) for k in keys])
    chex.assert_trees_all_equal(batched, stacked)
    if scheme.random:
        # different keys give different draws
        assert not np.array_equal(np.asarray(stacked[0]), np.asarray(stacked[1]))
    if scheme.random and layout == "torch":
        # legacy uint32 keys work and give the same draws as the typed key with the same bits
        legacy = jax.random.key_data(key)
        assert legacy.dtype == jnp.uint32 and legacy.shape == (2,)
        chex.assert_trees_all_equal(init(legacy, shape), x)
        chex.assert_trees_all_equal(
            init(jax.random.PRNGKey(7), shape), init(jax.random.key(7), shape)
        )
        chex.assert_trees_all_equal(jax.jit(lambda k: init(k, shape))(legacy), x)


def test_rbg_keys_work():
    key = jax.random.key(0, impl="rbg")
    for init in (
        jaxinit.normal(),
        jaxinit.sparse(0.5),
        jaxinit.orthogonal(),
        jaxinit.trunc_normal(),
    ):
        x = init(key, (6, 4))
        assert x.shape == (6, 4) and np.isfinite(np.asarray(x)).all()


def test_deterministic_schemes_ignore_the_key():
    for init in (jaxinit.zeros(), jaxinit.eye(), jaxinit.constant(0.5)):
        chex.assert_trees_all_equal(init(None, (3, 4)), init(KEY, (3, 4)))
    chex.assert_trees_all_equal(jaxinit.dirac()(None, (3, 4, 3)), jaxinit.dirac()(KEY, (3, 4, 3)))


# ----------------------------------------------------------------------------
# Compiled once per (scheme, shape, dtype, layout)


def _cache_sizes() -> dict[str, int]:
    families = [
        value
        for module in (iid, fill, truncated, structured, torch_defaults)
        for value in vars(module).values()
        if isinstance(value, Family)
    ]
    return {f"{f.name}:{id(f)}": f.kernel._cache_size() for f in families}


# (builder variants that must share one compiled kernel, a shape of their rank)
NO_RECOMPILE = [
    (
        "uniform",
        [jaxinit.uniform(), jaxinit.uniform(-3, 7.5), jaxinit.uniform(2, 2)],
        (13, 7, 3),
    ),  # shapes unique to this test
    ("normal", [jaxinit.normal(), jaxinit.normal(1.0, 0.02), jaxinit.normal(std=0)], (13, 7, 4)),
    (
        "trunc_normal",
        [
            jaxinit.trunc_normal(),
            jaxinit.trunc_normal(1, 2, -1, 3),
            jaxinit.trunc_normal(0, 0.02),
            jaxinit.trunc_normal(-1.0, 1.0, -3.0, 0.0),
        ],
        (13, 7, 5),
    ),
    (
        "xavier/kaiming uniform",
        [
            jaxinit.xavier_uniform(),
            jaxinit.xavier_uniform(gain=3.0),
            jaxinit.kaiming_uniform(),
            jaxinit.kaiming_uniform(a=math.sqrt(5), mode="fan_out"),
            jaxinit.kaiming_uniform(nonlinearity="tanh"),
            jaxinit.uniform(-1, 1),
        ],
        (13, 7, 6),
    ),
    (
        "xavier/kaiming normal",
        [
            jaxinit.xavier_normal(),
            jaxinit.xavier_normal(gain=0.1),
            jaxinit.kaiming_normal(),
            jaxinit.kaiming_normal(0.2, "fan_out", "leaky_relu"),
            jaxinit.kaiming_normal(nonlinearity="selu"),
        ],
        (13, 7, 7),
    ),
    (
        "orthogonal",
        [jaxinit.orthogonal(), jaxinit.orthogonal(gain=2.0), jaxinit.orthogonal(0.5)],
        (13, 7, 8),
    ),
    (
        "sparse",
        [
            jaxinit.sparse(0.1),
            jaxinit.sparse(0.5, std=2.0),
            jaxinit.sparse(0.0),
            jaxinit.sparse(1.0),
        ],
        (13, 9),
    ),
    (
        "constant",
        [jaxinit.constant(0.1), jaxinit.constant(-7.0), jaxinit.ones(), jaxinit.zeros()],
        (13, 7, 9),
    ),
    ("dirac", [jaxinit.dirac(), jaxinit.dirac(2), jaxinit.dirac(3)], (12, 7, 3)),
]


@pytest.mark.parametrize("name,inits,shape", NO_RECOMPILE, ids=[r[0] for r in NO_RECOMPILE])
def test_hyperparameters_do_not_recompile(name, inits, shape, caplog):
    def compiles() -> list[str]:
        return [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]

    first, *rest = inits
    caplog.set_level(logging.DEBUG)
    with jax.log_compiles(True):
        first(KEY, shape).block_until_ready()
    assert compiles(), "jax_log_compiles logged nothing: the check below would be vacuous"
    before = _cache_sizes()
    caplog.clear()
    with jax.log_compiles(True):
        for init in rest:
            init(KEY, shape).block_until_ready()
    assert compiles() == []  # nothing at all compiled, kernel or otherwise
    assert _cache_sizes() == before
    # ... while a new shape does compile: one kernel, once, for all of them.
    new_shape = (shape[0] + 6, *shape[1:])  # 6: keeps dirac's groups dividing the out channels
    for init in inits:
        init(KEY, new_shape).block_until_ready()
    grown = {k: v - before[k] for k, v in _cache_sizes().items() if v != before[k]}
    assert sum(grown.values()) == 1, grown


def test_layout_is_not_a_compile_key_for_iid_schemes():
    # fan-scaled iid schemes use the layout only to compute a traced std
    shape = (11, 5, 3)
    jaxinit.kaiming_normal()(KEY, shape)
    before = _cache_sizes()
    jaxinit.kaiming_normal(layout="flax")(KEY, shape)
    jaxinit.xavier_normal(layout=jaxinit.Layout((0, 1), 2))(KEY, shape)
    assert _cache_sizes() == before


# ----------------------------------------------------------------------------
# Sharding on 8 host CPU devices


@pytest.fixture(scope="module")
def mesh():
    assert jax.device_count() == 8, "conftest.py sets --xla_force_host_platform_device_count=8"
    return jax.make_mesh((4, 2), ("a", "b"))


def _same_sharding(x, sharding) -> bool:
    # P("a", "b") and P("a", "b", None, None) are the same placement
    return x.sharding.is_equivalent_to(sharding, x.ndim)


def _check_sharded(x, sharding, expected):
    assert _same_sharding(x, sharding), (x.sharding, sharding)
    chex.assert_trees_all_equal(x, expected)  # values do not depend on the sharding
    shard_shape = sharding.shard_shape(expected.shape)
    assert shard_shape[0] == expected.shape[0] // 4 and shard_shape[1] == expected.shape[1] // 2
    assert len(x.addressable_shards) == 8
    for shard in x.addressable_shards:
        assert shard.data.shape == shard_shape


@pytest.mark.parametrize("scheme,layout", scheme_layouts())
def test_out_sharding(scheme: Scheme, layout, mesh):
    init = scheme.make(layout)
    # conv shapes for the structured schemes, whose layout moves axes around
    shape = _shape(
        scheme, layout, conv=(8, 4, 4, 2) if scheme.kind in ("orthogonal", "dirac") else None
    )
    sharding = NamedSharding(mesh, P("a", "b"))
    key = _key(scheme)
    expected = init(key, shape, jnp.float32)
    _check_sharded(init(key, shape, jnp.float32, out_sharding=sharding), sharding, expected)
    # inside jit too
    x = jax.jit(lambda k: init(k, shape, jnp.float32, out_sharding=sharding))(key)
    _check_sharded(x, sharding, expected)
    # sharded from outside (jit's out_shardings, as a sharded model init does)
    x = jax.jit(lambda k: init(k, shape, jnp.float32), out_shardings=sharding)(key)
    _check_sharded(x, sharding, expected)
    if layout == "flax":
        return
    # bf16, and an Auto-axes mesh (with_sharding_constraint)
    auto = jax.make_mesh((4, 2), ("a", "b"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
    auto_sharding = NamedSharding(auto, P("a", "b"))
    x = init(key, shape, jnp.bfloat16, out_sharding=auto_sharding)
    _check_sharded(x, auto_sharding, expected.astype(jnp.bfloat16))


def test_out_sharding_partition_spec_under_mesh_context(mesh):
    sharding = NamedSharding(mesh, P("a", "b"))
    expected = jaxinit.kaiming_normal()(KEY, (8, 4, 3, 3))
    with jax.set_mesh(mesh):
        x = jaxinit.kaiming_normal()(KEY, (8, 4, 3, 3), out_sharding=P("a", "b"))
        y = jaxinit.orthogonal()(KEY, (8, 4), out_sharding=P("a", "b"))
    _check_sharded(x, sharding, expected)
    _check_sharded(y, sharding, jaxinit.orthogonal()(KEY, (8, 4)))


def test_empty_with_sharding(mesh):
    sharding = NamedSharding(mesh, P("a", "b"))
    x = jaxinit.normal()(KEY, (0, 4), out_sharding=sharding)
    assert x.shape == (0, 4) and _same_sharding(x, sharding)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("scheme", ALL, ids=_ids)
def test_helpers_keep_sharding_shape_dtype(scheme: Scheme, layout, mesh):
    helper = getattr(jaxinit if layout == "torch" else jaxinit.flax, f"{scheme.name}_")
    shape = _shape(scheme, layout)
    sharding = NamedSharding(mesh, P("a", "b"))
    w = jax.device_put(jnp.full(shape, 3.0, jnp.bfloat16), sharding)
    kwargs = {"key": KEY} if scheme.random else {}
    out = helper(w, **scheme.kwargs, **kwargs)
    assert out.shape == w.shape and out.dtype == w.dtype and _same_sharding(out, w.sharding)
    expected = scheme.make(layout)(_key(scheme), shape, jnp.bfloat16)
    chex.assert_trees_all_equal(out, expected)
    # the input is untouched
    chex.assert_trees_all_equal(w, jnp.full(shape, 3.0, jnp.bfloat16))
    # a single-device array stays where it is
    single = jax.device_put(jnp.zeros(shape), jax.devices()[3])
    out = helper(single, **scheme.kwargs, **kwargs)
    assert _same_sharding(out, single.sharding) and out.devices() == {jax.devices()[3]}


# ----------------------------------------------------------------------------
# The X_ helpers are the builders


def test_kaiming_normal_helper_equals_builder():
    k = jax.random.key(5)
    w = jnp.zeros((64, 32, 3, 3))
    out = jaxinit.kaiming_normal_(w, mode="fan_out", nonlinearity="relu", key=k)
    chex.assert_trees_all_equal(
        out, jaxinit.kaiming_normal(mode="fan_out", nonlinearity="relu")(k, w.shape, w.dtype)
    )
    # positional torch arguments too: kaiming_normal_(w, a, mode, nonlinearity)
    out = jaxinit.kaiming_normal_(w, 0.2, "fan_out", "leaky_relu", key=k)
    chex.assert_trees_all_equal(
        out, jaxinit.kaiming_normal(0.2, "fan_out", "leaky_relu")(k, w.shape, w.dtype)
    )


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("scheme", ALL, ids=_ids)
def test_every_helper_equals_its_builder(scheme: Scheme, layout):
    helper = getattr(jaxinit if layout == "torch" else jaxinit.flax, f"{scheme.name}_")
    assert helper.__name__ == f"{scheme.name}_"
    shape = _shape(scheme, layout)
    k = jax.random.key(9)
    for dt in (jnp.float32, jnp.float16):
        w = jnp.zeros(shape, dt)
        out = helper(w, **scheme.kwargs, key=k)  # deterministic helpers accept (and ignore) a key
        chex.assert_trees_all_equal(out, scheme.make(layout)(k, shape, dt))
    if scheme.kind in ("eye", "dirac", "orthogonal", "sparse") or scheme.name.startswith(
        ("kaiming", "xavier")
    ):
        # an explicit layout= on the torch helper gives the flax helper's result
        if layout == "flax":
            torch_helper = getattr(jaxinit, f"{scheme.name}_")
            w = jnp.zeros(shape)
            chex.assert_trees_all_equal(
                torch_helper(w, **scheme.kwargs, key=k, layout="flax"),
                helper(w, **scheme.kwargs, key=k),
            )


def test_helpers_work_on_numpy_arrays_and_under_jit():
    w = np.zeros((6, 4), np.float32)
    out = jaxinit.xavier_uniform_(w, key=KEY)
    assert isinstance(out, jax.Array) and out.shape == (6, 4) and out.dtype == jnp.float32
    jitted = jax.jit(lambda w, k: jaxinit.xavier_uniform_(w, key=k))(jnp.asarray(w), KEY)
    chex.assert_trees_all_equal(jitted, out)


def test_flax_builders_default_to_flax_layout():
    k = jax.random.key(3)
    shape = (3, 3, 16, 32)
    for name in ("kaiming_normal", "xavier_uniform", "orthogonal", "dirac", "eye"):
        flax_build = getattr(jaxinit.flax, name)
        s = shape if name != "eye" else (16, 32)
        chex.assert_trees_all_equal(flax_build()(k, s), getattr(jaxinit, name)(layout="flax")(k, s))
        # an explicit layout wins over the flax default
        chex.assert_trees_all_equal(
            flax_build(layout="torch")(k, s), getattr(jaxinit, name)()(k, s)
        )


# ----------------------------------------------------------------------------
# What torch accepts, jaxinit accepts, with torch's values


@pytest.mark.parametrize(
    "name, ours, theirs",
    [
        (
            "constant complex",
            lambda: jaxinit.constant(1 + 2j)(None, (3,), jnp.complex64),
            lambda t: tinit.constant_(t.to(torch.complex64), 1 + 2j),
        ),
        (
            "constant 0-d tensor",
            lambda: jaxinit.constant(torch.tensor(2.5))(None, (3,)),
            lambda t: tinit.constant_(t, torch.tensor(2.5)),
        ),
        (
            "constant 0-d jax array",
            lambda: jaxinit.constant(jnp.float32(2.5))(None, (3,)),
            lambda t: tinit.constant_(t, 2.5),
        ),
        (
            "constant complex, zero imaginary part, into float",
            lambda: jaxinit.constant(3 + 0j)(None, (3,)),
            lambda t: tinit.constant_(t, 3 + 0j),
        ),
        (
            "constant complex into bool",
            lambda: jaxinit.constant(1j)(None, (3,), jnp.bool_),
            lambda t: tinit.constant_(t.to(torch.bool), 1j),
        ),
        (
            "kaiming_uniform a=inf: gain 0, signed zeros",
            lambda: jaxinit.kaiming_uniform(a=math.inf)(KEY, (3, 4)),
            lambda t: tinit.kaiming_uniform_(torch.empty(3, 4), a=math.inf),
        ),
        (
            "kaiming_normal a=inf: gain 0",
            lambda: jaxinit.kaiming_normal(a=math.inf)(KEY, (3, 4)),
            lambda t: tinit.kaiming_normal_(torch.empty(3, 4), a=math.inf),
        ),
    ],
)
def test_accepts_what_torch_accepts_with_torch_values(name, ours, theirs):
    got = np.asarray(ours())
    want = theirs(torch.empty(3)).numpy()
    assert got.shape == want.shape or want.shape == (3,)
    np.testing.assert_array_equal(got, np.broadcast_to(want, got.shape) if want.ndim else want)
    # the sign of zero too (torch's uniform_(-0.0, 0.0) gives -0.0)
    np.testing.assert_array_equal(np.signbit(got.real), np.signbit(want.real))


def test_normal_std_inf_gives_infinities_as_torch():
    ours = np.asarray(jaxinit.normal(std=math.inf)(KEY, (1000,)))
    theirs = tinit.normal_(torch.empty(1000), std=math.inf).numpy()
    assert np.isinf(ours).all() and np.isinf(theirs).all()
    # both signs, each about half the time (binomial(1000, 1/2) within 6 sd: odds ~1e-9)
    assert abs(int((ours > 0).sum()) - 500) < 6 * math.sqrt(250)
    ours = np.asarray(jaxinit.normal(mean=math.inf)(KEY, (10,)))
    np.testing.assert_array_equal(ours, tinit.normal_(torch.empty(10), mean=math.inf).numpy())


def test_complex_fill_into_a_real_dtype_is_refused_with_torch_words():
    with pytest.raises(RuntimeError, match="cannot be converted to type float without overflow"):
        tinit.constant_(torch.empty(3), 1 + 2j)
    with pytest.raises(ValueError, match="cannot be converted to type float32 without overflow"):
        jaxinit.constant(1 + 2j)(None, (3,))


@pytest.mark.parametrize("dtype", [jnp.float8_e4m3fn, jnp.float8_e5m2])
def test_float8_random_schemes_refused_as_torch_fills_accepted(dtype):
    tdtype = getattr(torch, jnp.dtype(dtype).name)
    for init, torch_fn, words in [
        (jaxinit.uniform(), tinit.uniform_, "check_uniform_bounds"),
        (jaxinit.normal(), tinit.normal_, "normal_kernel_cpu"),
        (jaxinit.trunc_normal(), tinit.trunc_normal_, "normal_kernel_cpu"),
        (jaxinit.kaiming_uniform(), tinit.kaiming_uniform_, "check_uniform_bounds"),
        (jaxinit.orthogonal(), tinit.orthogonal_, "normal_kernel_cpu"),
    ]:
        with pytest.raises(NotImplementedError, match=words):
            torch_fn(torch.empty(4, 4, dtype=tdtype))
        with pytest.raises(TypeError, match=f'"{words}" not implemented for .Float8_'):
            init(KEY, (4, 4), dtype)
        with pytest.raises(TypeError, match="not implemented for .Float8_"):
            jaxinit.testing.assert_follows(jnp.zeros((4, 4), dtype), init)
    for init, torch_fn in [
        (jaxinit.constant(0.3), lambda t: tinit.constant_(t, 0.3)),
        (jaxinit.eye(), tinit.eye_),
        (jaxinit.zeros(), tinit.zeros_),
    ]:
        got = init(None, (4, 4), dtype)
        want = torch_fn(torch.empty(4, 4, dtype=tdtype)).float().numpy()
        np.testing.assert_array_equal(np.asarray(got, np.float32), want)
        jaxinit.testing.assert_follows(got, init)


def test_misuse_errors_say_what_came_and_what_is_expected():
    with pytest.raises(TypeError, match=r"expected a PRNG key first, got the shape \(3, 4\)"):
        jaxinit.normal()((3, 4), KEY)
    with pytest.raises(TypeError, match=r"expected a PRNG key first, got the shape \(3, 4\)"):
        jaxinit.zeros()((3, 4), KEY)
    for helper, builder in [("kaiming_normal_", "kaiming_normal"), ("zeros_", "zeros")]:
        with pytest.raises(
            TypeError, match=rf"{helper} is the in-place helper.*kernel_init=jaxinit.{builder}\(\)"
        ):
            getattr(jaxinit, helper)(KEY, (3, 4), jnp.float32)
