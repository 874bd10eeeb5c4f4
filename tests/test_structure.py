"""Structural properties, not timed: compile counts, shardings, sparse's exact counts.

- Compilation: a scheme compiles once per shape; changing a numeric
  hyperparameter (or the key) never recompiles. Counted with the public
  ``jax.monitoring`` backend-compile event.
- Sharding: every scheme initializes directly into a ``NamedSharding`` on a
  (4, 2) mesh of host devices, each device holding 1/8 of the array, and the
  values do not depend on the sharding (jax's partitionable threefry).
- sparse: exactly ``ceil(sparsity * rows)`` zeros per column on many shapes,
  drawn without a sort.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxinit
from jaxinit._src.schemes.structured import sparse_mask
from tests import records
from tests.helpers import count_compiles

# Other hyperparameters for the same scheme: none of them may recompile.
CHANGED = {
    "uniform": {"a": -3.0, "b": 5.0},
    "normal": {"mean": 1.0, "std": 3.0},
    "trunc_normal": {"mean": 0.5, "std": 2.0, "a": -1.0, "b": 3.0},
    "constant": {"val": 7.0},
    "xavier_uniform": {"gain": 3.0},
    "xavier_normal": {"gain": 3.0},
    "kaiming_uniform": {"a": math.sqrt(5.0), "mode": "fan_out", "nonlinearity": "relu"},
    "kaiming_normal": {"a": 0.2, "mode": "fan_out", "nonlinearity": "leaky_relu"},
    "orthogonal": {"gain": 2.0},
    "sparse": {"sparsity": 0.7, "std": 1.0},
    "dirac": {"groups": 4},
}


def _scheme_id(scheme: records.Scheme) -> str:
    return scheme.id


def _shape(scheme: records.Scheme) -> tuple[int, ...]:
    """A torch-layout shape the scheme accepts whose first two dims split over (4, 2)."""
    return (8, 8, 3, 3) if 4 in scheme.ranks else (16, 8)


def _key(scheme: records.Scheme) -> jax.Array | None:
    return jax.random.key(0) if scheme.random else None


# ----------------------------------------------------------------------------
# Compilation


@pytest.mark.parametrize("scheme", records.ALL, ids=_scheme_id)
def test_compiles_once_per_shape_and_dtype_not_per_hyperparameter(scheme):
    # A shape no other test uses, so that its first call must compile (where clearing
    # jax's caches would make every later test in this process compile again).
    base = _shape(scheme)
    shape = (base[0] * (31 + 2 * records.ALL.index(scheme)), *base[1:])
    key = jax.random.key(0)
    other_key = jax.random.key(1)
    init = scheme.make()
    changed = scheme.make(**CHANGED.get(scheme.name, {}))
    with count_compiles() as first:
        jax.block_until_ready(init(key, shape))
    with count_compiles() as again:
        jax.block_until_ready(init(other_key, shape))
        jax.block_until_ready(changed(other_key, shape))
        jax.block_until_ready(scheme.make()(key, shape))  # a new builder call, same program
    with count_compiles() as other_shape:
        jax.block_until_ready(changed(key, (shape[0] * 2, *shape[1:])))
        jax.block_until_ready(init(key, (shape[0] * 2, *shape[1:])))
    with count_compiles() as other_dtype:
        jax.block_until_ready(init(key, shape, jnp.bfloat16))
        jax.block_until_ready(changed(other_key, shape, jnp.bfloat16))
    assert first[0] == 1, f"{scheme.name}: first call compiled {first[0]} programs"
    assert again[0] == 0, f"{scheme.name}: a new key or hyperparameter recompiled ({again[0]})"
    assert other_shape[0] == 1, f"{scheme.name}: a new shape compiled {other_shape[0]} programs"
    assert other_dtype[0] == 1, f"{scheme.name}: a new dtype compiled {other_dtype[0]} programs"


# ----------------------------------------------------------------------------
# Sharding

needs_8_devices = pytest.mark.skipif(
    len(jax.devices()) < 8,
    reason="needs 8 devices (the root conftest.py sets "
    "XLA_FLAGS=--xla_force_host_platform_device_count=8 before jax starts)",
)


def _mesh(axis_type: AxisType) -> jax.sharding.Mesh:
    return jax.make_mesh((4, 2), ("x", "y"), axis_types=(axis_type, axis_type))


def _spec(ndim: int, *axes: str | None) -> P:
    return P(*axes, *([None] * (ndim - len(axes))))


@needs_8_devices
@pytest.mark.parametrize("axis_type", [AxisType.Auto, AxisType.Explicit], ids=["auto", "explicit"])
@pytest.mark.parametrize("scheme", records.ALL, ids=_scheme_id)
def test_each_device_holds_one_eighth(scheme, axis_type):
    shape = _shape(scheme)
    sharding = NamedSharding(_mesh(axis_type), _spec(len(shape), "x", "y"))
    out = scheme.make()(_key(scheme), shape, jnp.float32, sharding)
    assert out.shape == shape
    assert out.sharding.is_equivalent_to(sharding, out.ndim)
    shards = out.addressable_shards
    assert len(shards) == 8
    assert len({s.device for s in shards}) == 8
    expected = (shape[0] // 4, shape[1] // 2, *shape[2:])
    for s in shards:
        assert s.data.shape == expected
        assert s.data.size * 8 == out.size


@needs_8_devices
@pytest.mark.parametrize(
    "scheme,layout",
    [
        pytest.param(
            scheme,
            layout,
            id=f"{_scheme_id(scheme)}-{layout}",
            # the flax layout is tested sharded by test_behaviour.py::test_out_sharding
            marks=pytest.mark.slow if layout == "flax" else (),
        )
        for scheme in records.ALL
        for layout in ("torch", "flax")
    ],
)
def test_values_do_not_depend_on_sharding(scheme, layout):
    torch_shape = _shape(scheme)
    shape = records.layout_shape(torch_shape, layout)
    init = scheme.make(layout)
    key = _key(scheme)
    reference = np.asarray(init(key, shape))
    mesh = _mesh(AxisType.Auto)
    ndim = len(shape)
    specs = [
        _spec(ndim, "x", "y"),
        _spec(ndim, ("x", "y")),
        _spec(ndim),  # replicated
    ]
    for spec in specs:
        out = init(key, shape, None, NamedSharding(mesh, spec))
        np.testing.assert_array_equal(np.asarray(out), reference, err_msg=f"{scheme.id} {spec}")


@needs_8_devices
def test_sharded_sparse_keeps_exact_counts():
    sharding = NamedSharding(_mesh(AxisType.Auto), P("x", "y"))
    w = np.asarray(jaxinit.sparse(0.25, std=1.0)(jax.random.key(3), (64, 32), None, sharding))
    np.testing.assert_array_equal((w == 0).sum(axis=0), np.full(32, 16))


# ----------------------------------------------------------------------------
# sparse: exact counts, without a sort

SPARSE_SHAPES = [(1, 1), (1, 7), (7, 1), (5, 3), (65, 64), (1000, 40)]
SPARSITIES = [0.0, 0.01, 0.1, 0.3, 0.5, 0.51, 0.9, 0.99, 1.0]


@pytest.mark.parametrize("shape", SPARSE_SHAPES, ids=str)
def test_sparse_zeros_per_column_are_exact(shape):
    key = jax.random.key(11)
    for sparsity in SPARSITIES:
        k = math.ceil(sparsity * shape[0])  # torch's count
        # std=1: no sampled value rounds to zero, so zeros are exactly the mask.
        w = np.asarray(jaxinit.sparse(sparsity, std=1.0)(key, shape))
        np.testing.assert_array_equal(
            (w == 0).sum(axis=0), np.full(shape[1], k), err_msg=f"{sparsity}"
        )
        wf = np.asarray(jaxinit.sparse(sparsity, std=1.0, layout="flax")(key, shape[::-1]))
        np.testing.assert_array_equal(wf, w.T)


def test_sparse_mask_every_k_exact_with_one_compile():
    rows, cols = 37, 129
    mask_fn = jax.jit(sparse_mask, static_argnums=(1, 2))
    keys = list(jax.random.split(jax.random.key(5), rows + 1))  # split outside the count
    with count_compiles() as n:
        masks = [np.asarray(mask_fn(keys[k], rows, cols, np.int32(k))) for k in range(rows + 1)]
    assert n[0] == 1  # k is traced
    for k, mask in enumerate(masks):
        assert mask.shape == (rows, cols) and mask.dtype == np.bool_
        np.testing.assert_array_equal(mask.sum(axis=0), np.full(cols, k), err_msg=f"k={k}")


def test_sparse_mask_large_column_counts():
    rows, cols, k = 2048, 256, 205
    mask = np.asarray(sparse_mask(jax.random.key(0), rows, cols, jnp.int32(k)))
    np.testing.assert_array_equal(mask.sum(axis=0), np.full(cols, k))
    # Positions are uniform over rows: a row's count is Binomial(cols, k / rows)
    # (mean 25.6, std 4.8); some row beyond 6 std happens by chance with odds
    # ~ 2048 * 2e-9 (and the fixed seed makes the test deterministic).
    p = k / rows
    per_row = mask.sum(axis=1)
    assert np.all(np.abs(per_row - cols * p) < 6 * math.sqrt(cols * p * (1 - p)))


def test_sparse_uses_no_sort():
    jaxpr = jax.make_jaxpr(lambda k: jaxinit.sparse(0.1)(k, (64, 32)))(jax.random.key(0))
    used = set(re.findall(r"\b([a-z_]+)\[", str(jaxpr)))  # primitive names, sub-jaxprs included
    assert "scatter" in used  # the jaxpr is the one we think it is
    assert not used & {"sort", "top_k", "approx_top_k"}, used
