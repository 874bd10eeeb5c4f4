"""Sharded init in one call: jaxinit.flax.init / reinit / from_torch with mesh= (or jax.set_mesh).

Oracles: the shardings are Flax's own (``nn.get_partition_spec`` and
``nn.logical_to_mesh_sharding`` on the model's boxes; for NNX an eager build
under the mesh); the values are the unsharded init's, bit for bit; loaded
values and forward outputs are torch's. That no device holds a whole leaf it
does not own is read from the per-device buffers and from the compiled
programs' memory analysis.
"""

from __future__ import annotations

import math
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.torch
import torch
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxinit
import jaxinit.port as port
from jaxinit._src.port.files import sources
from tests.sharded_models import (
    AXIS_RULES,
    LAYERS,
    MODEL,
    RULES,
    TOKENS,
    NNXNet,
    V,
    W,
    make_mesh,
)
from tests.test_port import close, randomize, run_torch


class TBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln = torch.nn.LayerNorm(W)
        self.fc = torch.nn.Linear(W, 4 * W)
        self.proj = torch.nn.Linear(4 * W, W)

    def forward(self, x):
        return x + self.proj(torch.nn.functional.gelu(self.fc(self.ln(x)), approximate="tanh"))


class TGPT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Embedding(V, W)
        self.h = torch.nn.ModuleList([TBlock() for _ in range(LAYERS)])
        self.head = torch.nn.Linear(W, V)

    def forward(self, tokens):
        x = self.wte(tokens)
        for block in self.h:
            x = block(x)
        return self.head(x)


def _flax_shardings(mesh):
    """Flax's own answer, box by box: ``get_sharding`` for mesh axes, ``logical_to_mesh_axes``
    for logical names, replicated for a leaf without a box (as ``nn.get_sharding`` does)."""
    abstract = jax.eval_shape(MODEL.init, jax.random.key(0), TOKENS)

    def sharding(x):
        if isinstance(x, nn.LogicallyPartitioned):
            return NamedSharding(mesh, nn.logical_to_mesh_axes(x.names, AXIS_RULES))
        if isinstance(x, nn.Partitioned):
            return x.get_sharding(mesh)
        return NamedSharding(mesh, P())

    boxed = lambda x: isinstance(x, nn.meta.AxisMetadata)  # noqa: E731
    return jax.tree_util.tree_map(sharding, abstract, is_leaf=boxed), abstract


def _check_layout(variables, mesh):
    want, _ = _flax_shardings(mesh)
    got = nn.unbox(variables)
    for (path, x), s in zip(
        jax.tree_util.tree_leaves_with_path(got), jax.tree_util.tree_leaves(want)
    ):
        assert x.sharding.is_equivalent_to(s, x.ndim), (path, x.sharding, s)
        for shard in x.addressable_shards:  # each device holds exactly its own block
            assert shard.data.shape == s.shard_shape(x.shape), path


def _assert_same_values(a, b):
    la, lb = jax.tree_util.tree_leaves(nn.unbox(a)), jax.tree_util.tree_leaves(nn.unbox(b))
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ----------------------------------------------------------------------------
# Linen


@pytest.mark.parametrize("kind", ["auto", "explicit"])
def test_linen_init_with_mesh_lays_out_each_leaf_with_the_unsharded_values(kind):
    mesh = make_mesh(kind)
    plain = jaxinit.flax.init(MODEL, jax.random.key(0), TOKENS, rules=RULES)
    sharded = jaxinit.flax.init(
        MODEL, jax.random.key(0), TOKENS, rules=RULES, mesh=mesh, axis_rules=AXIS_RULES
    )
    _assert_same_values(plain, sharded)
    _check_layout(sharded, mesh)
    assert isinstance(sharded["params"]["head"]["kernel"], nn.Partitioned)


def test_linen_init_under_set_mesh_and_axis_rules_context():
    mesh = make_mesh()
    plain = jaxinit.flax.init(MODEL, jax.random.key(0), TOKENS, rules=RULES)
    with jax.set_mesh(mesh), nn.logical_axis_rules(AXIS_RULES):
        sharded = jaxinit.flax.init(MODEL, jax.random.key(0), TOKENS, rules=RULES)
    _assert_same_values(plain, sharded)
    _check_layout(sharded, mesh)


def test_leaves_no_rule_selects_come_from_flax_init_laid_out_as_flaxs_recipe():
    mesh = make_mesh()
    only_heads = [("*/head/kernel", jaxinit.flax.zeros())]
    sharded = jaxinit.flax.init(
        MODEL, jax.random.key(0), TOKENS, rules=only_heads, mesh=mesh, axis_rules=AXIS_RULES
    )
    _check_layout(sharded, mesh)
    # Flax's own recipe for a sharded init gives the same values for every other leaf
    shardings, abstract = _flax_shardings(mesh)
    boxes = jax.tree_util.tree_map(
        lambda b, s: b.replace_boxed(s) if isinstance(b, nn.meta.AxisMetadata) else s,
        abstract,
        shardings,
        is_leaf=lambda x: isinstance(x, nn.meta.AxisMetadata),
    )
    with nn.logical_axis_rules(AXIS_RULES):
        recipe = jax.jit(MODEL.init, out_shardings=boxes)(jax.random.key(0), TOKENS)
    recipe["params"]["head"]["kernel"] = recipe["params"]["head"]["kernel"].replace_boxed(
        jnp.zeros((W, V))
    )
    _assert_same_values(sharded, recipe)


def test_no_device_holds_a_whole_leaf_it_does_not_own():
    mesh = make_mesh()
    before = {id(a) for a in jax.live_arrays()}
    sharded = jaxinit.flax.init(
        MODEL, jax.random.key(0), TOKENS, rules=RULES, mesh=mesh, axis_rules=AXIS_RULES
    )
    shardings = {
        x.shape: x.sharding for x in jax.tree_util.tree_leaves(nn.unbox(sharded))
    }  # shape -> sharding (shapes here are distinct per layout)
    for a in jax.live_arrays():  # every buffer init left behind is a shard, not a whole leaf
        if id(a) in before or a.shape not in shardings:
            continue
        for shard in a.addressable_shards:
            assert shard.data.shape == shardings[a.shape].shard_shape(a.shape)


_SPECS = {"rows+cols": P("data", "model"), "rows": P(("data", "model")), "cols": P(None, "model")}


@pytest.mark.parametrize(
    "scheme, spec",
    [(scheme, spec) for scheme in ["normal", "trunc_normal", "kaiming_uniform"] for spec in _SPECS],
)
def test_draw_programs_compute_only_their_shard(scheme, spec):
    """The compiled draw of a sharded leaf: its output is the device's block, and no buffer of
    its per-device program is as big as the leaf (threefry may draw a block twice as wide)."""
    mesh, shape = make_mesh(), (1024, 512)
    init = {
        "normal": jaxinit.flax.normal(0.02),
        "trunc_normal": jaxinit.flax.trunc_normal(std=0.02),
        "kaiming_uniform": jaxinit.flax.kaiming_uniform(),
    }[scheme]

    def compile(sharding):
        fn = jax.jit(lambda k: init(k, shape, jnp.float32, sharding))
        return fn.lower(jax.random.key(0)).compile()

    whole = compile(None).memory_analysis()
    sharding = NamedSharding(mesh, _SPECS[spec])
    compiled = compile(sharding)
    ma = compiled.memory_analysis()
    n = math.prod(shape) // math.prod(sharding.shard_shape(shape))  # distinct blocks
    assert compiled.output_shardings.is_equivalent_to(sharding, 2)
    assert ma.output_size_in_bytes * n == whole.output_size_in_bytes
    buffers = [
        math.prod(int(d) for d in dims.split(","))
        for dims in re.findall(r"[fu]32\[([\d,]+)\]", compiled.as_text())
    ]
    assert max(buffers) < math.prod(shape), max(buffers)


def test_reinit_with_mesh_draws_an_abstract_tree_into_its_shardings():
    mesh = make_mesh()
    abstract = jax.eval_shape(MODEL.init, jax.random.key(0), TOKENS)
    plain = jaxinit.flax.init(MODEL, jax.random.key(0), TOKENS, rules=RULES)
    with nn.logical_axis_rules(AXIS_RULES):
        drawn = jaxinit.flax.reinit(
            abstract, RULES, key=jax.random.key(0), model=MODEL, args=(TOKENS,), mesh=mesh
        )
    _assert_same_values(plain, drawn)
    _check_layout(drawn, mesh)


def test_reinit_with_mesh_keeps_the_sharding_of_leaves_without_metadata():
    mesh = make_mesh()
    variables = MODEL.init(jax.random.key(1), TOKENS)
    own = NamedSharding(mesh, P("data"))
    ln = variables["params"]["h_0"]["ln"]
    ln["scale"] = jax.device_put(ln["scale"], own)  # no box: its sharding is its own
    drawn = jaxinit.flax.reinit(
        variables,
        RULES,
        key=jax.random.key(0),
        model=MODEL,
        args=(TOKENS,),
        mesh=mesh,
        axis_rules=AXIS_RULES,
    )
    assert drawn["params"]["h_0"]["ln"]["scale"].sharding == own
    fc = drawn["params"]["h_0"]["fc"]["kernel"]
    assert fc.value.sharding.is_equivalent_to(NamedSharding(mesh, P("data", "model")), 2)
    plain = jaxinit.flax.init(MODEL, jax.random.key(0), TOKENS, rules=RULES)
    _assert_same_values(plain, drawn)


# ----------------------------------------------------------------------------
# NNX (issue 15)


def _nnx_leaves(module):
    return [(p, v) for p, v in nnx.iter_graph(module) if isinstance(v, nnx.Variable)]


@pytest.mark.parametrize("kind", ["auto", "explicit"])
@pytest.mark.parametrize("how", ["set_mesh", "mesh="])
def test_nnx_init_under_a_mesh_equals_eager_build_and_reinit(kind, how):
    mesh = make_mesh(kind)
    rules = jaxinit.flax.TORCH_DEFAULTS
    with jax.set_mesh(mesh), nn.logical_axis_rules(AXIS_RULES):
        eager = jaxinit.flax.reinit(NNXNet(nnx.Rngs(0)), rules, key=jax.random.key(0))
    if how == "mesh=":
        built = jaxinit.flax.init(
            NNXNet, jax.random.key(0), rules=rules, mesh=mesh, axis_rules=AXIS_RULES
        )
    else:
        with jax.set_mesh(mesh), nn.logical_axis_rules(AXIS_RULES):
            built = jaxinit.flax.init(NNXNet, jax.random.key(0), rules=rules)
    got, want = _nnx_leaves(built), _nnx_leaves(eager)
    assert [p for p, _ in got] == [p for p, _ in want]
    for (path, a), (_, b) in zip(got, want):
        x, y = a.get_value(), b.get_value()
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=str(path))
        assert x.sharding.is_equivalent_to(y.sharding, x.ndim), (path, x.sharding, y.sharding)
    kernel = built.a.kernel.get_value()
    assert kernel.sharding.spec == P(None, "model")
    assert {s.data.shape for s in kernel.addressable_shards} == {(64, 64)}
    assert built.b.kernel.get_value().sharding.spec == P("data", "model")


def test_nnx_trace_cache_follows_themake_mesh():
    def build(mesh, rules=AXIS_RULES):
        return jaxinit.flax.init(
            NNXNet,
            jax.random.key(0),
            rules=jaxinit.flax.TORCH_DEFAULTS,
            mesh=mesh,
            axis_rules=rules,
        )

    first = build(make_mesh())
    other = build(jax.make_mesh((2, 4), ("data", "model")))
    swapped = build(make_mesh(), (("embed", "model"), ("mlp", "data")))
    assert {s.data.shape for s in first.a.kernel.get_value().addressable_shards} == {(64, 64)}
    assert {s.data.shape for s in other.a.kernel.get_value().addressable_shards} == {(64, 32)}
    assert swapped.b.kernel.get_value().sharding.spec == P("model", "data")
    np.testing.assert_array_equal(first.a.kernel.get_value(), other.a.kernel.get_value())


# ----------------------------------------------------------------------------
# from_torch of a checkpoint into a sharded target


def test_checkpoint_into_a_sharded_target_reads_each_block_once(tmp_path, monkeypatch):
    tmod = randomize(TGPT())
    path = tmp_path / "gpt.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in tmod.state_dict().items()}, path)
    log: list[tuple[str, int]] = []
    read = sources.Checkpoint.read

    def recording(self, name, box):
        out = read(self, name, box)
        log.append((name, out.nbytes))
        return out

    monkeypatch.setattr(sources.Checkpoint, "read", recording)
    mesh = make_mesh()
    abstract = jax.eval_shape(MODEL.init, jax.random.key(0), TOKENS)
    loaded = port.from_torch(path, abstract, mesh=mesh, axis_rules=AXIS_RULES)
    _check_layout(loaded, mesh)
    _assert_same_values(loaded, port.from_torch(tmod, abstract))
    close(
        jax.jit(MODEL.apply)(loaded, TOKENS),
        run_torch(tmod, TOKENS.astype(np.int64)),
        rtol=2e-5,
        atol=2e-5,
    )
    # each tensor read exactly once in all (a replicated block is read once, not 8 times)
    state = tmod.state_dict()
    total: dict[str, int] = {}
    for name, nbytes in log:
        total[name] = total.get(name, 0) + nbytes
    assert total == {k: v.numpy().nbytes for k, v in state.items()}
    # and a sharded leaf in blocks no bigger than one device's shard
    kernel_bytes = state["head.weight"].numpy().nbytes
    assert max(n for name, n in log if name == "head.weight") == kernel_bytes // 2
    fc_bytes = state["h.0.fc.weight"].numpy().nbytes
    assert max(n for name, n in log if name == "h.0.fc.weight") == fc_bytes // 8
