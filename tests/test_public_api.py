"""The public surface: exactly what __all__ says, re-exported from jaxinit._src."""

import inspect
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import pytest

import jaxinit
import jaxinit.flax
import jaxinit.port
import jaxinit.testing
from tests.records import SCHEME_NAMES

SCHEMES = list(SCHEME_NAMES)
TORCH_DEFAULT_BUILDERS = [
    "torch_linear_weight",
    "torch_linear_bias",
    "torch_conv_transpose_weight",
    "torch_embedding",
    "torch_rnn",
    "torch_mha_in_proj",
]


def _public(module: types.ModuleType) -> set[str]:
    return {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType) and n != "annotations"
    }


@pytest.mark.parametrize(
    "module",
    [jaxinit, jaxinit.flax, jaxinit.port, jaxinit.testing],
    ids=["jaxinit", "jaxinit.flax", "jaxinit.port", "jaxinit.testing"],
)
def test_all_is_sorted_and_exactly_the_public_surface(module):
    assert list(module.__all__) == sorted(module.__all__)
    assert set(module.__all__) == _public(module) - {"Any", "__version__"}


def test_every_scheme_has_builder_and_helper_in_both_namespaces():
    for ns in (jaxinit, jaxinit.flax):
        for name in SCHEMES + TORCH_DEFAULT_BUILDERS:
            assert callable(getattr(ns, name)), (ns, name)
        for name in SCHEMES:
            assert callable(getattr(ns, name + "_")), (ns, name)
    for name in (
        "calculate_gain",
        "calculate_fan_in_and_fan_out",
        "calculate_correct_fan",
        "Layout",
        "TORCH",
        "FLAX",
        "reinit",
        "Rule",
        "stable_hash",
    ):
        assert hasattr(jaxinit, name)
    for name in ("reinit", "init", "TORCH_DEFAULTS"):
        assert hasattr(jaxinit.flax, name)


def test_builders_keep_torch_parameter_names_order_and_defaults():
    torch_init = pytest.importorskip("torch.nn.init")
    for name in SCHEMES:
        ours = inspect.signature(getattr(jaxinit, name)).parameters
        theirs = inspect.signature(getattr(torch_init, name + "_")).parameters
        expected = [
            (p.name, p.default) for p in theirs.values() if p.name not in ("tensor", "generator")
        ]
        got = [
            (p.name, p.default)
            for p in ours.values()
            if p.kind is not inspect.Parameter.KEYWORD_ONLY
        ]
        assert [n for n, _ in got] == [n for n, _ in expected], name
        assert [d for _, d in got] == [d for _, d in expected], name
        assert {"layout", "dtype"} <= set(ours), name


def test_builders_satisfy_the_jax_initializer_protocol():
    for name in ["uniform", "kaiming_normal", "orthogonal", "eye"]:
        init = getattr(jaxinit, name)()
        assert isinstance(init, jax.nn.initializers.Initializer)
        assert init(jax.random.key(0), (4, 4), jnp.float32, None).shape == (4, 4)


def test_importing_jaxinit_does_not_import_flax():
    code = "import sys, jaxinit; assert 'flax' not in sys.modules, 'flax imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_port_surface_and_lazy_torch():
    assert jaxinit.port.__all__ == [
        "InitReport",
        "LeafReport",
        "compare_init",
        "from_torch",
        "to_torch",
    ]
    for name in ("from_torch", "to_torch"):
        params = inspect.signature(getattr(jaxinit.port, name)).parameters
        assert list(params)[:2] == (
            ["source", "target"] if name == "from_torch" else ["source", "torch_target"]
        )
        assert {"model", "rename", "strict"} <= set(params)
    params = inspect.signature(jaxinit.port.compare_init).parameters
    assert params["seeds"].default == 8 and params["false_failure"].default == 1e-6
    code = (
        "import sys, jaxinit.port; "
        "assert 'torch' not in sys.modules and 'flax' not in sys.modules, 'imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_modules_only_reexport():
    for module in (jaxinit, jaxinit.flax, jaxinit.port, jaxinit.testing):
        for name in module.__all__:
            obj = getattr(module, name)
            origin = getattr(obj, "__module__", None) or ""
            if callable(obj) and not isinstance(obj, type):
                assert origin.startswith("jaxinit"), (name, origin)


def test_explain_testing_and_nnx_init_surface():
    assert {"explain", "Explanation", "ExplainRow", "Distribution"} <= set(jaxinit.__all__)
    assert "explain" in jaxinit.flax.__all__
    assert jaxinit.testing.__all__ == ["assert_follows", "assert_tree_follows", "ks_pvalue"]
    params = inspect.signature(jaxinit.explain).parameters
    assert list(params) == ["tree", "rules", "layout"] and params["layout"].default == "torch"
    params = inspect.signature(jaxinit.flax.explain).parameters
    assert list(params)[:3] == ["target", "rules", "args"] and params["key"].default is None
    params = inspect.signature(jaxinit.testing.assert_follows).parameters
    assert list(params)[:2] == ["array", "initializer_or_distribution"]
    assert params["layout"].default is None and params["false_failure"].default == 1e-6
    assert all(
        params[n].kind is inspect.Parameter.KEYWORD_ONLY for n in ("layout", "false_failure")
    )
    params = inspect.signature(jaxinit.testing.assert_tree_follows).parameters
    assert params["key"].default is None and params["false_failure"].default == 1e-6
    for fn in (jaxinit.reinit, jaxinit.flax.reinit, jaxinit.flax.init):
        assert inspect.signature(fn).parameters["unmatched"].default == "keep"
    assert "padding_idx" in inspect.signature(jaxinit.torch_embedding).parameters


def test_testing_is_lazy_and_imports_neither_flax_nor_scipy():
    code = (
        "import sys, jax, jax.numpy as jnp, jaxinit\n"
        "assert 'jaxinit.testing' not in sys.modules\n"
        "t = jaxinit.testing\n"
        "import jaxinit.testing as u\n"
        "assert t is u\n"
        "rules = [('*', jaxinit.kaiming_uniform())]\n"
        "tree = jaxinit.reinit({'w': jnp.zeros((64, 64))}, rules, key=jax.random.key(0))\n"
        "t.assert_tree_follows(tree, rules)\n"
        "t.assert_follows(tree['w'], jaxinit.kaiming_uniform())\n"
        "bad = [m for m in ('flax', 'scipy', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
