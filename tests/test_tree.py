"""The rules engine: selectors, rule order, strictness, what is kept, keys, and bad rules.

Most tests mark which rule initialized which leaf with ``jaxinit.constant(v)``
(one compiled kernel, the value traced), so they read as tables: path -> rule.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import subprocess
import sys

import chex
import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxinit

KEY = jax.random.key(42)
C = jaxinit.constant  # constant(v) marks "rule v initialized this leaf"


def paths_of(tree) -> dict[str, np.ndarray]:
    """``/``-joined path -> value (boxes unboxed)."""
    flat = jax.tree_util.tree_leaves_with_path(
        tree, is_leaf=lambda x: isinstance(x, nn.Partitioned)
    )
    out = {}
    for kp, v in flat:
        v = v.value if isinstance(v, nn.Partitioned) else v
        out[
            "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in kp)
        ] = v
    return out


def marks(new, old) -> dict[str, float | None]:
    """Path -> the constant a rule wrote there, or None where the leaf is the old object."""
    old_p, out = paths_of(old), {}
    for path, v in paths_of(new).items():
        if v is old_p[path]:
            out[path] = None
        else:
            vals = np.unique(np.asarray(v))
            assert vals.size == 1, (path, vals)
            out[path] = float(vals[0])
    return out


def nnx_values(module) -> dict[str, jax.Array]:
    return {"/".join(map(str, p)): v.get_value() for p, v in nnx.to_flat_state(nnx.state(module))}


# A plain dict with paths that tell the globs apart.
def make_params():
    z = jnp.zeros
    return {
        "Conv_0": {"kernel": z((3, 3, 2, 4)), "bias": z((4,))},
        "encoder": {
            "Conv_1": {"kernel": z((3, 3, 4, 4)), "bias": z((4,))},
            "bn1": {"scale": z((4,)), "bias": z((4,))},
            "mlp": {"kernel": z((4, 8))},
        },
        "bn": {"scale": z((8,))},
        "head": {"kernel": z((8, 2)), "bias": z((2,))},
    }


# ----------------------------------------------------------------------------
# Globs: fnmatch over the whole path, `*` crosses `/`


def test_glob_selectors_match_whole_path_and_star_crosses_slash():
    params = make_params()
    got = marks(
        jaxinit.reinit(
            params,
            [
                ("*/Conv_*/kernel", C(1.0)),  # needs a segment before Conv_: not Conv_0/kernel
                ("*bn*/scale", C(2.0)),  # bn/scale and encoder/bn1/scale
                ("*kernel", C(3.0)),  # any remaining kernel, at any depth
            ],
            key=KEY,
        ),
        params,
    )
    assert got == {
        "Conv_0/kernel": 3.0,
        "Conv_0/bias": None,
        "encoder/Conv_1/kernel": 1.0,
        "encoder/Conv_1/bias": None,
        "encoder/bn1/scale": 2.0,
        "encoder/bn1/bias": None,
        "encoder/mlp/kernel": 3.0,
        "bn/scale": 2.0,
        "head/kernel": 3.0,
        "head/bias": None,
    }


def test_glob_is_anchored_and_case_sensitive():
    params = make_params()
    got = marks(
        jaxinit.reinit(
            params,
            [
                ("head", C(1.0)),  # a module path, not a leaf: matches nothing
                ("*KERNEL", C(2.0)),  # case-sensitive
                ("head/bias", C(3.0)),
            ],
            key=KEY,
            strict=False,
        ),
        params,
    )
    assert {p for p, v in got.items() if v is not None} == {"head/bias"}


def test_first_match_wins():
    params = make_params()
    a = marks(jaxinit.reinit(params, [("head/*", C(1.0)), ("*kernel", C(2.0))], key=KEY), params)
    b = marks(jaxinit.reinit(params, [("*kernel", C(2.0)), ("head/*", C(1.0))], key=KEY), params)
    assert a["head/kernel"] == 1.0 and a["head/bias"] == 1.0 and a["Conv_0/kernel"] == 2.0
    assert b["head/kernel"] == 2.0 and b["head/bias"] == 1.0 and b["Conv_0/kernel"] == 2.0


def test_dict_of_rules_is_an_ordered_sequence_of_pairs():
    params = make_params()
    rules = {"head/*": C(1.0), "*kernel": C(2.0), "*bias": C(3.0)}
    got = jaxinit.reinit(params, rules, key=KEY)
    chex.assert_trees_all_equal(got, jaxinit.reinit(params, list(rules.items()), key=KEY))
    assert marks(got, params)["head/kernel"] == 1.0


def test_predicate_selector_gets_path_and_array():
    params = make_params()
    seen = []

    def small_vectors(path, leaf):
        seen.append((path, leaf.shape))
        return leaf.ndim == 1 and leaf.shape[0] <= 4

    got = marks(jaxinit.reinit(params, [(small_vectors, C(5.0))], key=KEY), params)
    assert ("head/bias", (2,)) in seen and ("Conv_0/kernel", (3, 3, 2, 4)) in seen
    assert {p for p, v in got.items() if v == 5.0} == {
        "Conv_0/bias",
        "encoder/Conv_1/bias",
        "encoder/bn1/scale",
        "encoder/bn1/bias",
        "head/bias",
    }


def test_rule_objects_and_pairs_mix():
    params = make_params()
    rules = [jaxinit.Rule("head/kernel", C(1.0)), ("*bias", C(2.0))]
    got = marks(jaxinit.reinit(params, rules, key=KEY), params)
    assert got["head/kernel"] == 1.0 and got["head/bias"] == 2.0
    assert jaxinit.flax.Rule is jaxinit.Rule


# ----------------------------------------------------------------------------
# Strictness and optional rules


def test_strict_rule_matching_nothing_is_an_error_naming_the_rule():
    params = make_params()
    with pytest.raises(ValueError, match=r"rule 1 \('\*/nope/\*'"):
        jaxinit.reinit(params, [("*kernel", C(1.0)), ("*/nope/*", C(2.0))], key=KEY)
    # strict=False: fine
    out = jaxinit.reinit(params, [("*kernel", C(1.0)), ("*/nope/*", C(2.0))], key=KEY, strict=False)
    assert marks(out, params)["head/kernel"] == 1.0


def test_a_rule_shadowed_by_an_earlier_one_matches_nothing():
    params = make_params()
    with pytest.raises(ValueError, match="head/kernel"):  # first match wins: rule 1 gets nothing
        jaxinit.reinit(params, [("*kernel", C(1.0)), ("head/kernel", C(2.0))], key=KEY)


def test_optional_rules_may_match_nothing_under_strict():
    params = make_params()
    rule = jaxinit.Rule("*/nope/*", C(2.0), optional=True)
    out = jaxinit.reinit(params, [("*kernel", C(1.0)), rule], key=KEY, strict=True)
    assert marks(out, params)["head/kernel"] == 1.0
    assert all(r.optional for r in jaxinit.flax.TORCH_DEFAULTS)


def test_torch_defaults_apply_under_strict_to_a_model_with_few_layer_kinds():
    model = nn.Dense(3)
    x = jnp.ones((1, 4))
    out = jaxinit.flax.init(model, KEY, x, rules=jaxinit.flax.TORCH_DEFAULTS, strict=True)
    assert np.abs(np.asarray(out["params"]["kernel"])).max() <= np.float32(0.5)


def test_no_rule_matches_returns_the_tree_itself():
    params = make_params()
    assert jaxinit.reinit(params, [("*/nope", C(1.0))], key=KEY, strict=False) is params


# ----------------------------------------------------------------------------
# What is kept: unmatched leaves, non-float leaves, boxes, shardings


def test_unmatched_leaves_are_the_same_objects():
    params = make_params()
    out = jaxinit.reinit(params, [("*kernel", C(1.0))], key=KEY)
    assert jax.tree.structure(out) == jax.tree.structure(params)
    for path, v in paths_of(out).items():
        if not path.endswith("kernel"):
            assert v is paths_of(params)[path], path


def test_int_and_non_array_leaves_are_never_touched():
    tree = {
        "w": jnp.zeros((3, 2)),
        "step": jnp.zeros((), jnp.int32),
        "count": jnp.arange(4, dtype=jnp.uint32),
        "mask": jnp.ones((3,), bool),
        "n": 7,
        "name": "layer",
        "np": np.zeros((2, 2), np.float32),
    }
    out = jaxinit.reinit(tree, [("*", C(1.0))], key=KEY)
    for k in ("step", "count", "mask", "n", "name"):
        assert out[k] is tree[k], k
    np.testing.assert_array_equal(out["w"], 1.0)
    np.testing.assert_array_equal(out["np"], 1.0)  # a float numpy leaf is a candidate
    # a rule that selects only integer leaves matches nothing
    with pytest.raises(ValueError, match="matched no leaf"):
        jaxinit.reinit(tree, [("step", C(1.0))], key=KEY)
    with pytest.raises(ValueError, match="matched no leaf"):
        jaxinit.reinit(tree, [(lambda path, leaf: path == "count", C(1.0))], key=KEY)


def test_dtypes_and_shapes_are_kept():
    tree = {
        "a": jnp.zeros((4, 3), jnp.bfloat16),
        "b": jnp.zeros((5,), jnp.float16),
        "c": jnp.zeros((2, 2), jnp.float32),
        "z": jnp.zeros((2, 2), jnp.complex64),
        "e": jnp.zeros((0, 3), jnp.float32),
        "s": jnp.zeros((), jnp.float32),
    }
    out = jaxinit.reinit(tree, [("*", jaxinit.uniform(0.5, 1.0))], key=KEY)
    chex.assert_trees_all_equal_dtypes(out, tree)
    chex.assert_trees_all_equal_shapes(out, tree)
    for name in ("a", "b", "c", "s"):
        assert np.all(np.asarray(out[name], np.float32) >= 0.5), name
    assert np.all(np.asarray(out["z"]).real >= 0.5) and np.all(np.asarray(out["z"]).imag >= 0.5)


def test_float64_leaves_under_x64(x64):
    tree = {"w": jnp.zeros((6, 5), jnp.float64), "b": jnp.zeros((5,), jnp.float32)}
    out = jaxinit.reinit(tree, [("w", jaxinit.kaiming_normal()), ("b", jaxinit.normal())], key=KEY)
    assert out["w"].dtype == jnp.float64 and out["b"].dtype == jnp.float32
    lkey = jaxinit.leaf_key(KEY, "w")
    np.testing.assert_array_equal(out["w"], jaxinit.kaiming_normal()(lkey, (6, 5), jnp.float64))


def test_reinit_inside_jit_equals_eager():
    tree = {
        "a": {"kernel": jnp.zeros((8, 4)), "bias": jnp.zeros((4,))},
        "n": {"scale": jnp.zeros(4)},
    }
    rules = [
        ("*kernel", jaxinit.kaiming_uniform()),
        ("*bias", jaxinit.uniform(-0.1, 0.1)),
        ("*scale", jaxinit.ones()),
    ]
    eager = jaxinit.reinit(tree, rules, key=KEY)
    jitted = jax.jit(lambda t, k: jaxinit.reinit(t, rules, key=k))(tree, KEY)
    chex.assert_trees_all_equal(jitted, eager)
    shapes = jax.eval_shape(lambda t, k: jaxinit.reinit(t, rules, key=k), tree, KEY)
    chex.assert_trees_all_equal_shapes_and_dtypes(shapes, tree)
    batched = jax.vmap(lambda k: jaxinit.reinit(tree, rules, key=k))(jax.random.split(KEY, 3))
    chex.assert_trees_all_equal(
        jax.tree.map(lambda x: x[1], batched),
        jaxinit.reinit(tree, rules, key=jax.random.split(KEY, 3)[1]),
    )


class Boxed(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Dense(
            8,
            kernel_init=nn.with_partitioning(nn.initializers.lecun_normal(), ("embed", "mlp")),
            name="dense",
        )(x)
        return nn.Dense(2, name="head")(x)


def test_partitioned_boxes_are_kept():
    model, x = Boxed(), jnp.ones((1, 4))
    variables = model.init(KEY, x)
    box = variables["params"]["dense"]["kernel"]
    assert isinstance(box, nn.Partitioned)
    rules = [("*/dense/kernel", jaxinit.flax.torch_linear_weight()), ("*head/bias", C(3.0))]
    for out in (
        jaxinit.flax.reinit(variables, rules, key=KEY),
        jaxinit.flax.init(model, KEY, x, rules=rules),
    ):
        new = out["params"]["dense"]["kernel"]
        assert isinstance(new, nn.Partitioned) and new.names == box.names
        assert new.value.shape == box.value.shape and new.value.dtype == box.value.dtype
        assert not np.array_equal(new.value, box.value)
        assert np.abs(np.asarray(new.value)).max() <= np.float32(0.5)  # U(±1/sqrt(in=4))
        np.testing.assert_array_equal(out["params"]["head"]["bias"], 3.0)
        # still usable by Flax's own box tools
        assert nn.get_partition_spec(out)["params"]["dense"]["kernel"] == P("embed", "mlp")
    a = jaxinit.flax.reinit(variables, rules, key=KEY)
    b = jaxinit.flax.init(model, KEY, x, rules=rules)
    np.testing.assert_array_equal(
        a["params"]["dense"]["kernel"].value, b["params"]["dense"]["kernel"].value
    )


def _meshes():
    devices = np.array(jax.devices()[:8]).reshape(4, 2)
    return {
        "auto": Mesh(devices, ("x", "y")),
        "explicit": jax.make_mesh(
            (4, 2), ("x", "y"), axis_types=(jax.sharding.AxisType.Explicit,) * 2
        ),
    }


@pytest.mark.parametrize("mesh_kind", ["auto", "explicit"])
def test_shardings_are_kept_and_values_do_not_depend_on_them(mesh_kind):
    assert len(jax.devices()) >= 8, "conftest.py asks for 8 host CPU devices"
    mesh = _meshes()[mesh_kind]
    params = {
        "a": {"kernel": jnp.zeros((16, 8)), "bias": jnp.zeros((8,))},
        "b": {"kernel": jnp.zeros((8, 4)), "bias": jnp.zeros((4,))},
        "c": {"scale": jnp.zeros((8,))},
    }
    specs = {
        "a": {"kernel": P("x", "y"), "bias": P("y")},
        "b": {"kernel": P(None, "x"), "bias": P()},
        "c": {"scale": P("x")},
    }
    sharded = jax.tree.map(lambda a, s: jax.device_put(a, NamedSharding(mesh, s)), params, specs)
    rules = [
        ("b/kernel", jax.nn.initializers.normal(0.1)),  # a plain jax initializer
        ("c/*", jaxinit.ones()),  # a deterministic one
        ("*kernel", jaxinit.kaiming_uniform()),
        ("*bias", jaxinit.uniform(-1.0, 1.0)),
    ]
    out = jaxinit.reinit(sharded, rules, key=KEY)
    ref = jaxinit.reinit(params, rules, key=KEY)
    for path, v in paths_of(out).items():
        old = paths_of(sharded)[path].sharding
        assert isinstance(v.sharding, NamedSharding) and v.sharding.mesh == old.mesh, path
        assert v.sharding.is_equivalent_to(old, v.ndim), (path, v.sharding, old)
        np.testing.assert_array_equal(np.asarray(v), np.asarray(paths_of(ref)[path]), err_msg=path)


# ----------------------------------------------------------------------------
# Keys: leaf_key(key, path), stable under tree and rule changes


def test_stable_hash_is_the_documented_sha256_prefix():
    for path in ["params/Dense_0/kernel", "", "conv/kernel", "ünïcode/ß", "a" * 1000]:
        digest = hashlib.sha256(path.encode("utf-8")).digest()
        want = int.from_bytes(digest[:8], "big")
        assert jaxinit.stable_hash(path) == want
        assert 0 <= want < 2**64


def test_stable_hash_is_the_same_in_another_process():
    paths = ["params/Dense_0/kernel", "encoder/layers_3/attn/query/kernel"]
    code = f"import jaxinit; print([jaxinit.stable_hash(p) for p in {paths!r}])"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=120,
    )
    assert out.stdout.strip() == str([jaxinit.stable_hash(p) for p in paths])


@pytest.mark.parametrize(
    "init",
    [
        jaxinit.kaiming_uniform(),
        jaxinit.normal(0.0, 0.02),
        jaxinit.orthogonal(),
        jax.nn.initializers.lecun_normal(),
    ],
    ids=["kaiming_uniform", "normal", "orthogonal", "jax_lecun_normal"],
)
def test_leaf_value_is_the_initializer_on_the_folded_key(init):
    params = {"enc": {"l1": {"weight": jnp.zeros((6, 5))}}}
    out = jaxinit.reinit(params, [("*weight", init)], key=KEY)
    leaf_key = jaxinit.leaf_key(KEY, "enc/l1/weight")
    want = init(leaf_key, (6, 5), jnp.float32)
    np.testing.assert_array_equal(out["enc"]["l1"]["weight"], want)


def _stack(n_layers: int, first: int = 0):
    return {
        f"layer{i}": {"weight": jnp.zeros((8, 6)), "bias": jnp.zeros((8,))}
        for i in range(first, first + n_layers)
    }


RULES = [("*weight", jaxinit.kaiming_uniform()), ("*bias", jaxinit.uniform(-0.1, 0.1))]


def test_adding_a_layer_does_not_change_the_others():
    small = jaxinit.reinit(_stack(3), RULES, key=KEY)
    bigger = jaxinit.reinit(
        {"layer_new": {"weight": jnp.zeros((8, 6))}, **_stack(4)}, RULES, key=KEY
    )
    for name in small:
        chex.assert_trees_all_equal(small[name], bigger[name])


def test_prepending_a_rule_does_not_change_the_others():
    tree = _stack(3)
    base = jaxinit.reinit(tree, RULES, key=KEY)
    more = jaxinit.reinit(tree, [("layer1/bias", jaxinit.zeros()), *RULES], key=KEY)
    np.testing.assert_array_equal(more["layer1"]["bias"], 0.0)
    for path, v in paths_of(base).items():
        if path != "layer1/bias":
            np.testing.assert_array_equal(paths_of(more)[path], v, err_msg=path)


def test_reinit_of_a_subset_draws_what_the_full_reinit_draws():
    tree = _stack(3)
    full = jaxinit.reinit(tree, RULES, key=KEY)
    only = jaxinit.reinit(tree, [("layer2/weight", RULES[0][1])], key=KEY)
    np.testing.assert_array_equal(only["layer2"]["weight"], full["layer2"]["weight"])
    assert only["layer0"]["weight"] is tree["layer0"]["weight"]


def test_different_keys_and_paths_give_different_values():
    tree = _stack(2)
    a = jaxinit.reinit(tree, RULES, key=KEY)
    b = jaxinit.reinit(tree, RULES, key=jax.random.key(43))
    assert not np.array_equal(a["layer0"]["weight"], b["layer0"]["weight"])
    assert not np.array_equal(a["layer0"]["weight"], a["layer1"]["weight"])
    chex.assert_trees_all_equal(a, jaxinit.reinit(tree, RULES, key=KEY))  # deterministic


def test_legacy_uint32_key_works_like_typed_key():
    tree = _stack(1)
    a = jaxinit.reinit(tree, RULES, key=jax.random.PRNGKey(7))
    b = jaxinit.reinit(tree, RULES, key=jax.random.wrap_key_data(jax.random.PRNGKey(7)))
    chex.assert_trees_all_equal(a, b)


# ----------------------------------------------------------------------------
# Class selectors (Linen, NNX, Equinox) and inner-layer reach


class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.Conv(4, (3,), name="conv")(x[..., None]).reshape(x.shape[0], -1)
        h = nn.Dense(6, name="dense")(h)
        carry = (jnp.zeros((x.shape[0], 5)),) * 2
        _, h = nn.LSTMCell(5, name="cell")(carry, h)
        h = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=4, name="attn")(
            h[:, None, :4]
        )
        return nn.Dense(2, name="head")(h)


NET_X = jnp.ones((2, 3))


@pytest.fixture(scope="module")
def net_variables():
    return Net().init(KEY, NET_X)


def _linen_marks(rules, variables, **kw):
    out = jaxinit.flax.reinit(variables, rules, key=KEY, model=Net(), args=(NET_X,), **kw)
    return {p.removeprefix("params/"): v for p, v in marks(out, variables).items()}


def test_class_selector_matches_every_leaf_of_that_class(net_variables):
    got = _linen_marks([(nn.Conv, C(1.0))], net_variables)
    assert {p for p, v in got.items() if v is not None} == {"conv/kernel", "conv/bias"}


def test_class_selector_reaches_inner_layers(net_variables):
    got = _linen_marks([((nn.LSTMCell, "kernel"), C(1.0))], net_variables)
    hit = {p for p, v in got.items() if v is not None}
    assert hit == {f"cell/{g}/kernel" for g in ("ii", "if", "ig", "io", "hi", "hf", "hg", "ho")}
    # the inner Dense layers are also nn.Dense: the composite's rule must come first
    got = _linen_marks(
        [((nn.LSTMCell, "kernel"), C(1.0)), ((nn.Dense, "kernel"), C(2.0))], net_variables
    )
    assert got["cell/ii/kernel"] == 1.0 and got["head/kernel"] == 2.0 and got["dense/kernel"] == 2.0
    assert got["attn/query/kernel"] is None  # DenseGeneral is not Dense


def test_class_and_pattern_below_the_module(net_variables):
    got = _linen_marks(
        [
            ((nn.MultiHeadDotProductAttention, "out/*"), C(1.0)),
            ((nn.MultiHeadDotProductAttention, "bias"), C(2.0)),
        ],
        net_variables,
    )
    assert got["attn/out/kernel"] == 1.0 and got["attn/out/bias"] == 1.0
    assert got["attn/query/bias"] == 2.0 and got["attn/query/kernel"] is None


def test_class_name_pair_and_tuple_of_classes(net_variables):
    got = _linen_marks([((nn.Conv, "bias"), C(1.0)), ((nn.Conv, nn.Dense), C(2.0))], net_variables)
    assert got["conv/bias"] == 1.0 and got["conv/kernel"] == 2.0
    assert got["head/kernel"] == 2.0 and got["dense/bias"] == 2.0
    assert got["cell/ii/kernel"] == 2.0  # inner Dense of the cell is a Dense
    got = _linen_marks([(((nn.Conv, nn.LSTMCell), "bias"), C(3.0))], net_variables)
    assert {p for p, v in got.items() if v is not None} == {"conv/bias"} | {
        f"cell/h{g}/bias" for g in "ifgo"
    }


def test_class_selectors_on_a_params_dict_with_model(net_variables):
    params = net_variables["params"]
    out = jaxinit.flax.reinit(
        params, [((nn.Conv, "kernel"), C(1.0))], key=KEY, model=Net(), args=(NET_X,)
    )
    assert set(out) == set(params)
    np.testing.assert_array_equal(out["conv"]["kernel"], 1.0)
    assert out["conv"]["bias"] is params["conv"]["bias"]
    # paths in a params dict have no "params/" prefix
    out = jaxinit.flax.reinit(params, [("conv/bias", C(2.0))], key=KEY)
    np.testing.assert_array_equal(out["conv"]["bias"], 2.0)


def test_class_selectors_on_a_linen_dict_need_the_model(net_variables):
    with pytest.raises(ValueError, match="model="):
        jaxinit.flax.reinit(net_variables, [(nn.Conv, C(1.0))], key=KEY)


def test_composing_with_torch_defaults(net_variables):
    rules = [("*/head/kernel", jaxinit.zeros()), *jaxinit.flax.TORCH_DEFAULTS]
    out = jaxinit.flax.init(Net(), KEY, NET_X, rules=rules)
    np.testing.assert_array_equal(out["params"]["head"]["kernel"], 0.0)
    bound = np.float32(1 / math.sqrt(4))  # head's bias: U(±1/sqrt(in=4))
    head_bias = np.asarray(out["params"]["head"]["bias"])
    assert np.abs(head_bias).max() <= bound and np.abs(head_bias).max() > 0


class NNXNet(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(1, 4, (3,), rngs=rngs)
        self.dense = nnx.Linear(12, 6, rngs=rngs)
        self.cell = nnx.LSTMCell(6, 5, rngs=rngs)
        self.bn = nnx.BatchNorm(5, rngs=rngs)
        self.drop = nnx.Dropout(0.1, rngs=rngs)  # holds an RNG key and an int counter
        self.head = nnx.Linear(5, 2, rngs=rngs)


def test_nnx_is_updated_in_place():
    model = NNXNet(nnx.Rngs(0))
    scale_var, ii_var = model.bn.scale, model.cell.ii.kernel
    before = nnx_values(model)
    out = jaxinit.flax.reinit(
        model,
        [
            ((nnx.LSTMCell, "kernel"), C(1.0)),
            ((nnx.Conv, nnx.Linear), C(2.0)),
            ("bn/scale", C(3.0)),
        ],
        key=KEY,
    )
    assert out is model
    after = nnx_values(model)
    assert set(after) == set(before)
    hit = {}
    for path, v in after.items():
        if v is before[path]:
            hit[path] = None
        else:
            hit[path] = float(np.unique(np.asarray(v))[0])
    assert hit["cell/ii/kernel"] == 1.0 and hit["cell/hf/kernel"] == 1.0
    assert hit["cell/hf/bias"] == 2.0  # inner nnx.Linear
    assert hit["conv/kernel"] == 2.0 and hit["head/bias"] == 2.0 and hit["bn/scale"] == 3.0
    for untouched in ("bn/bias", "bn/mean", "bn/var"):
        assert hit[untouched] is None
    assert all(hit[p] is None for p in after if p.startswith("drop"))
    # the Variable objects are the same ones (updated, not replaced)
    assert model.bn.scale is scale_var and model.cell.ii.kernel is ii_var
    np.testing.assert_array_equal(scale_var[...], 3.0)
    np.testing.assert_array_equal(ii_var[...], 1.0)


def test_nnx_paths_have_no_collection_prefix():
    model = NNXNet(nnx.Rngs(0))
    seen = []
    jaxinit.flax.reinit(
        model, [(lambda p, leaf: seen.append(p) or False, C(1.0))], key=KEY, strict=False
    )
    assert "conv/kernel" in seen and "bn/mean" in seen and "cell/ii/kernel" in seen


def test_nnx_torch_defaults_on_a_module_with_rngs():
    model = NNXNet(nnx.Rngs(0))
    jaxinit.flax.reinit(model, jaxinit.flax.TORCH_DEFAULTS, key=KEY)
    assert np.abs(np.asarray(model.dense.kernel[...])).max() <= np.float32(1 / math.sqrt(12))
    assert np.abs(np.asarray(model.cell.ii.kernel[...])).max() <= np.float32(1 / math.sqrt(5))
    np.testing.assert_array_equal(model.bn.var[...], 1.0)


class EqxNet(eqx.Module):
    conv: eqx.nn.Conv2d
    lin: eqx.nn.Linear
    head: eqx.nn.Linear
    scale: jax.Array
    steps: int = 0

    def __init__(self, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.conv = eqx.nn.Conv2d(3, 8, 3, key=k1)
        self.lin = eqx.nn.Linear(72, 16, key=k2)
        self.head = eqx.nn.Linear(16, 2, key=k3)
        self.scale = jnp.ones((16,))


def test_equinox_by_class_in_torch_layout():
    model = EqxNet(jax.random.key(0))
    rules = [
        ((eqx.nn.Conv2d, "weight"), jaxinit.kaiming_uniform()),
        ((eqx.nn.Linear, "weight"), jaxinit.torch_linear_weight()),
        ((eqx.nn.Conv2d, "bias"), jaxinit.zeros()),
    ]
    out = jaxinit.reinit(model, rules, key=KEY)
    assert isinstance(out, EqxNet) and out.steps == 0
    # torch layout: the Conv2d weight (out=8, in=3, 3, 3) has fan_in 27
    w = np.asarray(out.conv.weight)
    bound = np.float32(math.sqrt(6 / 27))  # kaiming_uniform(a=0): gain sqrt(2) * sqrt(3/fan_in)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    want = jaxinit.kaiming_uniform()(jaxinit.leaf_key(KEY, "conv/weight"), (8, 3, 3, 3))
    np.testing.assert_array_equal(w, want)
    np.testing.assert_array_equal(out.conv.bias, 0.0)
    for name, fan_in in (("lin", 72), ("head", 16)):
        w = np.asarray(getattr(out, name).weight)
        assert np.abs(w).max() <= np.float32(1 / math.sqrt(fan_in))
        assert getattr(out, name).bias is getattr(model, name).bias  # no rule: same object
    assert out.scale is model.scale


# ----------------------------------------------------------------------------
# Layout inheritance


def test_initializer_without_layout_inherits_the_context():
    kernel = jnp.zeros((12, 64))  # flax (in, out)
    lkey = jaxinit.leaf_key(KEY, "dense/kernel")
    flax_ref = jaxinit.kaiming_uniform(layout="flax")(lkey, (12, 64))
    torch_ref = jaxinit.kaiming_uniform(layout="torch")(lkey, (12, 64))
    assert not np.array_equal(flax_ref, torch_ref)
    tree = {"dense": {"kernel": kernel}}

    def run(tool, init, **kw):
        return np.asarray(tool(tree, [("dense/kernel", init)], key=KEY, **kw)["dense"]["kernel"])

    # no layout: the context decides
    np.testing.assert_array_equal(run(jaxinit.flax.reinit, jaxinit.kaiming_uniform()), flax_ref)
    np.testing.assert_array_equal(run(jaxinit.reinit, jaxinit.kaiming_uniform()), torch_ref)
    np.testing.assert_array_equal(
        run(jaxinit.reinit, jaxinit.kaiming_uniform(), layout="flax"), flax_ref
    )
    np.testing.assert_array_equal(
        run(jaxinit.flax.reinit, jaxinit.flax.kaiming_uniform()), flax_ref
    )
    np.testing.assert_array_equal(run(jaxinit.reinit, jaxinit.flax.kaiming_uniform()), torch_ref)
    # an explicit layout wins
    np.testing.assert_array_equal(
        run(jaxinit.flax.reinit, jaxinit.kaiming_uniform(layout="torch")), torch_ref
    )
    np.testing.assert_array_equal(
        run(jaxinit.reinit, jaxinit.kaiming_uniform(layout="flax")), flax_ref
    )
    np.testing.assert_array_equal(
        run(jaxinit.reinit, jaxinit.kaiming_uniform(layout=jaxinit.Layout(in_axis=0, out_axis=1))),
        flax_ref,
    )
    # bounds, to be sure which fan was used: flax fan_in 12, torch fan_in 64
    assert np.abs(flax_ref).max() > np.float32(math.sqrt(6 / 64))


def test_structured_scheme_follows_the_context_layout():
    conv = {"k": jnp.zeros((3, 4, 4))}  # flax (k, in, out) / torch (out, in, k)
    # no layer owns "k": the flax layout is a guess, refused under strict, warned otherwise
    with pytest.raises(ValueError, match="layout of 1 leaf"):
        jaxinit.flax.reinit(conv, [("k", jaxinit.dirac())], key=KEY)
    with pytest.warns(jaxinit.LayoutWarning, match="'k' \\(3, 4, 4\\)"):
        out = jaxinit.flax.reinit(conv, [("k", jaxinit.dirac())], key=KEY, strict=False)
    in_flax = np.asarray(out["k"])
    in_torch = np.asarray(jaxinit.reinit(conv, [("k", jaxinit.dirac())], key=KEY)["k"])
    np.testing.assert_array_equal(in_flax, np.asarray(jaxinit.flax.dirac()(None, (3, 4, 4))))
    np.testing.assert_array_equal(in_torch, np.asarray(jaxinit.dirac()(None, (3, 4, 4))))
    assert not np.array_equal(in_flax, in_torch)
    # flax dirac on (k, in, out) is torch's dirac_ on (out, in, k) moved to that layout
    np.testing.assert_array_equal(in_flax[1], np.eye(4))


# ----------------------------------------------------------------------------
# donate=True


def test_donate_deletes_old_buffers_and_gives_the_same_result():
    def fresh():
        return {
            "a": {"kernel": jnp.zeros((32, 16)), "bias": jnp.zeros((16,))},
            "b": {"kernel": jnp.zeros((16, 4))},
        }

    rules = [("*kernel", jaxinit.kaiming_uniform()), ("a/bias", jaxinit.uniform(-1.0, 1.0))]
    want = jaxinit.reinit(fresh(), rules, key=KEY)
    tree = fresh()
    old = paths_of(tree)
    out = jaxinit.reinit(tree, rules, key=KEY, donate=True)
    chex.assert_trees_all_equal(out, want)
    for path in ("a/kernel", "a/bias", "b/kernel"):
        assert old[path].is_deleted(), path


def test_donate_with_flax_and_nnx():
    model, x = Boxed(), jnp.ones((1, 4))
    rules = [("*kernel", jaxinit.flax.torch_linear_weight())]
    want = jaxinit.flax.reinit(model.init(KEY, x), rules, key=KEY)
    variables = model.init(KEY, x)
    old_kernel = variables["params"]["head"]["kernel"]
    old_bias = variables["params"]["head"]["bias"]
    out = jaxinit.flax.reinit(variables, rules, key=KEY, donate=True)
    chex.assert_trees_all_equal(out, want)
    assert old_kernel.is_deleted() and not old_bias.is_deleted()
    assert out["params"]["head"]["bias"] is old_bias

    m = NNXNet(nnx.Rngs(0))
    old = m.head.kernel.get_value()
    jaxinit.flax.reinit(m, [("head/kernel", C(1.0))], key=KEY, donate=True)
    assert old.is_deleted()
    np.testing.assert_array_equal(m.head.kernel[...], 1.0)


# ----------------------------------------------------------------------------
# Bad rules: clear errors, target untouched


@pytest.mark.parametrize("selector", [3, (1, 2), None, 2.5, ("kernel", nn.Dense), (nn.Dense, 3)])
def test_selector_of_the_wrong_type(selector):
    params = make_params()
    with pytest.raises(TypeError, match=r"rule 1.*selector"):
        jaxinit.reinit(params, [("*kernel", C(1.0)), (selector, C(2.0))], key=KEY)
    with pytest.raises(TypeError, match="selector"):
        jaxinit.Rule(selector, C(1.0))


@pytest.mark.parametrize("init", ["zeros", 1.0, None])
def test_initializer_that_is_not_callable(init):
    params = make_params()
    with pytest.raises(TypeError, match=r"rule 0.*'\*bias'.*callable"):
        jaxinit.reinit(params, [("*bias", init)], key=KEY)


@pytest.mark.parametrize("rules", [None, "*kernel", 3, [("*kernel",)], [("*kernel", C(1.0), True)]])
def test_malformed_rules(rules):
    with pytest.raises(TypeError, match="rule"):
        jaxinit.reinit(make_params(), rules, key=KEY)


def wrong_shape(key, shape, dtype=None):
    return jnp.zeros((2,), dtype)


def wrong_dtype(key, shape, dtype=None):
    return jnp.zeros(shape, jnp.float16)


def raises_inside(key, shape, dtype=None):
    raise ValueError("this initializer is broken")


BAD = {
    "wrong_shape": (wrong_shape, r"shape \(2,\)"),
    "wrong_dtype": (wrong_dtype, "float16"),
    "raises": (raises_inside, "this initializer is broken"),
    "eye_on_4d": (jaxinit.eye(), "eye"),  # a jaxinit scheme that cannot take the shape
}


def _copy(a) -> np.ndarray:
    if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        a = jax.random.key_data(a)
    return np.array(a, copy=True)


def _snapshot(tree):
    return jax.tree.map(lambda a: np.array(a, copy=True), tree)


@pytest.mark.parametrize("bad", sorted(BAD))
@pytest.mark.parametrize("donate", [False, True])
def test_bad_initializer_names_rule_and_path_and_leaves_the_tree_untouched(bad, donate):
    init, what = BAD[bad]
    params = make_params()
    params = jax.tree.map(lambda a: a + 0.5, params)  # non-zero, so any write would show
    before = _snapshot(params)
    leaves_before = jax.tree.leaves(params)
    # rule 0 is fine and would write the biases; rule 1 is the bad one
    rules = [("*bias", C(1.0)), ("*/Conv_1/kernel", init)]
    with pytest.raises((ValueError, TypeError)) as err:
        jaxinit.reinit(params, rules, key=KEY, donate=donate)
    # the rule and the path travel as a note on the original exception
    msg = "\n".join([str(err.value), *getattr(err.value, "__notes__", [])])
    assert "rule 1" in msg and "encoder/Conv_1/kernel" in msg, msg
    assert re.search(what, msg), msg
    # untouched: same objects, not deleted, same values
    for a, b in zip(jax.tree.leaves(params), leaves_before):
        assert a is b and not a.is_deleted()
    chex.assert_trees_all_equal(_snapshot(params), before)


@pytest.mark.parametrize("bad", ["wrong_shape", "wrong_dtype", "raises"])
def test_bad_initializer_leaves_an_nnx_module_untouched(bad):
    init, what = BAD[bad]
    model = NNXNet(nnx.Rngs(0))
    before = nnx_values(model)
    copies = {p: _copy(v) for p, v in before.items()}
    with pytest.raises((ValueError, TypeError), match=r"rule 1.*head/kernel|head/kernel.*rule 1"):
        jaxinit.flax.reinit(model, [("*bias", C(1.0)), ("head/kernel", init)], key=KEY, donate=True)
    after = nnx_values(model)
    for p, v in after.items():
        assert v is before[p], p
        if hasattr(v, "is_deleted"):
            assert not v.is_deleted(), p
        np.testing.assert_array_equal(_copy(v), copies[p], err_msg=p)


def test_bad_initializer_in_a_linen_variables_dict():
    model, x = Boxed(), jnp.ones((1, 4))
    variables = model.init(KEY, x)
    before = _snapshot(
        jax.tree.map(lambda b: b, variables, is_leaf=lambda v: isinstance(v, nn.Partitioned))
    )
    with pytest.raises(ValueError, match="params/dense/kernel"):
        jaxinit.flax.reinit(
            variables, [("*bias", C(1.0)), ("*/dense/kernel", wrong_shape)], key=KEY
        )
    chex.assert_trees_all_equal(_snapshot(variables), before)
    with pytest.raises(ValueError, match="params/head/kernel"):
        jaxinit.flax.init(model, KEY, x, rules=[("*head/kernel", wrong_dtype)])


def test_predicate_that_raises_names_the_rule_and_path():
    def boom(path, leaf):
        raise KeyError("nope")

    with pytest.raises(KeyError, match=r"rule 0.*head/kernel|rule 0"):
        jaxinit.reinit({"head": {"kernel": jnp.zeros((2, 2))}}, [(boom, C(1.0))], key=KEY)


def test_a_batch_of_keys_is_rejected():
    with pytest.raises(ValueError, match="single PRNG key"):
        jaxinit.reinit(make_params(), [("*kernel", C(1.0))], key=jax.random.split(KEY, 2))


def test_single_device_placement_is_kept():
    device = jax.devices()[3]
    tree = {
        "w": jax.device_put(jnp.zeros((4, 3)), device),
        "b": jax.device_put(jnp.zeros(3), device),
        "s": jax.device_put(jnp.zeros(3), device),
    }
    out = jaxinit.reinit(
        tree,
        [
            ("w", jaxinit.kaiming_uniform()),
            ("b", jax.nn.initializers.normal()),
            ("s", jaxinit.ones()),
        ],
        key=KEY,
    )
    for name, v in out.items():
        assert v.sharding == tree[name].sharding, (name, v.sharding)
        assert v.devices() == {device}


def test_donate_never_deletes_an_array_the_result_still_holds():
    shared = jnp.zeros((4, 3))
    tree = {"a": shared, "b": shared, "c": jnp.zeros((2,))}  # tied: one array, two leaves
    out = jaxinit.reinit(tree, [("a", jaxinit.ones()), ("c", jaxinit.ones())], key=KEY, donate=True)
    assert out["b"] is shared and not shared.is_deleted()
    np.testing.assert_array_equal(out["b"], 0.0)
    np.testing.assert_array_equal(out["a"], 1.0)
    assert tree["c"].is_deleted()  # the others are still donated
    # both leaves replaced: donating the one array (twice) is fine
    shared = jnp.zeros((4, 3))
    out = jaxinit.reinit({"a": shared, "b": shared}, [("*", jaxinit.ones())], key=KEY, donate=True)
    np.testing.assert_array_equal(out["a"], 1.0)
    np.testing.assert_array_equal(out["b"], 1.0)


def test_donate_never_deletes_an_array_an_nnx_module_still_holds():
    model = NNXNet(nnx.Rngs(0))
    model.head.bias.set_value(model.bn.bias.get_value())  # two Variables, one array
    shared = model.bn.bias.get_value()
    jaxinit.flax.reinit(model, [("head/bias", C(1.0))], key=KEY, donate=True)
    assert model.bn.bias.get_value() is shared and not shared.is_deleted()
    np.testing.assert_array_equal(model.head.bias[...], 1.0)
