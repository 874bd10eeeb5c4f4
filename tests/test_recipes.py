"""docs/recipes.md runs: every recipe's code, exactly as the page shows it, against torch.

The page's code blocks are marked ``<!-- recipe NAME: PART -->``. Blocks whose
part is ``given`` load real checkpoints (transformers, timm, torchvision):
they are not run; the test supplies the names they bind, built from the small
replicas of ``tests/torch_replicas.py`` (same ``state_dict`` keys, same init),
with trained-like weights. Every other block runs, in page order, in one
namespace. Torch is the oracle throughout:

- ``compare_init`` (the page asserts ``report.ok``) over 8 seeds, plus the
  entries torch draws identically for every seed (a padding row, a zeroed
  BatchNorm scale) equal in the port for every key, and the other way round;
- the port loaded by ``from_torch`` computes torch's outputs on inputs drawn
  here (relative error < 1e-4), independently of the page's own check;
- GPT-2: ``to_torch`` gives torch's weights back bit for bit, and JAX -> torch
  -> JAX is bit-exact;
- each recipe's jaxinit block is at most 20 lines of code.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxinit.flax
import jaxinit.port
from tests import torch_replicas as R

PAGE = Path(__file__).resolve().parent.parent / "docs" / "recipes.md"
_BLOCK = re.compile(
    r"^<!-- recipe ([\w-]+): (\w+) -->\n```py[^\n]*\n(.*?)^```\n", re.MULTILINE | re.DOTALL
)
MAX_JAXINIT_LINES = 20


def page_blocks() -> dict[tuple[str, str], str]:
    text = PAGE.read_text(encoding="utf-8")
    blocks: dict[tuple[str, str], str] = {}
    for recipe, part, code in _BLOCK.findall(text):
        assert (recipe, part) not in blocks, f"two blocks marked 'recipe {recipe}: {part}'"
        blocks[recipe, part] = code
    # Every marker is followed by a ```py block the pattern above took.
    assert len(blocks) == text.count("<!-- recipe "), (
        "a recipe marker not followed by a ```py block"
    )
    return blocks


BLOCKS = page_blocks()


def bound_names(code: str) -> set[str]:
    """The names a block's top-level statements bind (imports, assignments, defs)."""
    names: set[str] = set()
    for node in ast.parse(code).body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def code_lines(code: str) -> int:
    return sum(
        1 for line in code.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )


def run_page(
    parts: list[tuple[str, str]],
    given: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ns: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Runs the page's blocks ``parts`` in order (in ``ns``, or a new namespace).

    A ``given`` block is not run: ``given(namespace)`` supplies what it binds.
    """
    ns = {"__name__": "docs_recipes"} if ns is None else ns
    for recipe, part in parts:
        code = BLOCKS[recipe, part]
        if part == "given":
            assert given is not None, f"'{recipe}: given' needs a supplier"
            supplied = given(ns)
            unknown = set(supplied) - bound_names(code)
            assert not unknown, f"the tests supply {unknown}, which '{recipe}: given' does not bind"
            ns.update(supplied)
        else:
            where = f"docs/recipes.md [recipe {recipe}: {part}]"
            # dont_inherit: not this file's ``from __future__ import annotations``
            exec(compile(code, where, "exec", dont_inherit=True), ns)
    return ns


def all_parts(recipe: str) -> list[tuple[str, str]]:
    return [key for key in BLOCKS if key[0] == recipe]


def trained(model: torch.nn.Module, seed: int = 1234) -> torch.nn.Module:
    """``model`` with trained-like weights: no zero bias, unit scale or fresh statistics left."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():  # tied parameters are listed (and moved) once
            # about 1/sqrt(fan_in): activations of order 1, where GELU's two forms differ
            scale = (p.shape[0] / p.numel()) ** 0.5 if p.ndim > 1 else 0.1
            p.add_(torch.randn(p.shape, generator=g) * scale)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1, generator=g)
                m.running_var.uniform_(0.5, 1.5, generator=g)
    return model.eval()


def assert_fixed_entries_agree(report: jaxinit.port.InitReport) -> None:
    """Entries torch draws identically for every seed equal torch's in the port, for every key.

    ``compare_init`` checks whole leaves: a leaf with a few fixed entries (an
    embedding's padding row) is "random" to it, and its pooled tests cannot
    see one row among thousands. Here each entry is checked, both ways: an
    entry fixed in torch is the same in the port, and an entry the port keeps
    fixed is fixed in torch too. (A random entry repeats over 8 seeds with
    probability about 0.)
    """
    problems = []
    for row in report.rows:
        t, j = row.torch_values, row.jax_values
        fixed_t = (t == t[:1]).all(axis=0)
        fixed_j = (j == j[:1]).all(axis=0)
        if not (j[:, fixed_t] == t[:1, fixed_t]).all():
            problems.append(f"{row.path}: entries torch keeps fixed differ in the port")
        if (fixed_j & ~fixed_t).any():
            problems.append(
                f"{row.path}: {int((fixed_j & ~fixed_t).sum())} entries fixed in the port only"
            )
    assert not problems, "\n".join(problems)


def relative_error(got: Any, want: torch.Tensor) -> float:
    w = want.detach().numpy()
    return float(np.abs(np.asarray(got) - w).max() / np.abs(w).max())


def same_tree(a: Any, b: Any) -> bool:
    """Bit-exact equality of two pytrees of arrays."""
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    return ta == tb and all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb))


def test_every_recipe_is_tested_and_short():
    recipes = {r for r, _ in BLOCKS}
    assert recipes == {"gpt2", "bert", "vit", "resnet", "lstm", "lstm-equinox"}
    for recipe in recipes:
        n = code_lines(BLOCKS[recipe, "jaxinit"])
        assert n <= MAX_JAXINIT_LINES, f"recipe {recipe}: {n} lines of jaxinit code"


# ----------------------------------------------------------------------------
# GPT-2


def gpt2_given(ns: dict[str, Any]) -> dict[str, Any]:
    config = R.GPT2Config(vocab_size=96, n_positions=16, n_embd=32, n_layer=2, n_head=4)
    # ``small`` has another depth: the rules must read n_layer from the config they get
    small = R.GPT2Config(vocab_size=64, n_positions=8, n_embd=32, n_layer=3, n_head=4)
    return {
        "GPT2LMHeadModel": R.GPT2LMHeadModel,
        "config": config,
        "small": small,
        "torch_model": trained(R.GPT2LMHeadModel(config)),
    }


@pytest.fixture(scope="module")
def gpt2() -> dict[str, Any]:
    return run_page([p for p in all_parts("gpt2") if p[1] != "state"], gpt2_given)


def test_gpt2_starts_as_transformers(gpt2):
    assert gpt2["report"].ok
    assert_fixed_entries_agree(gpt2["report"])
    # the residual projections are the ones torch draws with the smaller std
    stds = {r.path: r.torch_std for r in gpt2["report"].rows if r.path.endswith("kernel")}
    scaled = {p for p, s in stds.items() if s < 0.015}
    assert scaled == {p for p in stds if p.endswith("c_proj/kernel")}
    assert len(scaled) == 2 * gpt2["small"].n_layer


def test_gpt2_port_computes_torch_logits(gpt2):
    ns = gpt2
    tokens = torch.randint(
        0, ns["config"].vocab_size, (2, 16), generator=torch.Generator().manual_seed(7)
    )
    got = jax.jit(ns["model"].apply)(ns["params"], jnp.asarray(tokens.numpy()))
    assert relative_error(got, ns["torch_model"](tokens).logits) < 1e-4


def test_gpt2_round_trips_bit_exactly(gpt2):
    ns = gpt2
    want, back = ns["torch_model"].state_dict(), ns["back"].state_dict()
    assert list(back) == list(want)
    assert all(torch.equal(back[k], want[k]) for k in want)  # torch -> JAX -> torch
    again = jaxinit.port.from_torch(ns["back"], ns["shapes"])  # JAX -> torch -> JAX
    assert same_tree(again, ns["params"])


def test_gpt2_from_a_state_dict_is_the_same_port(gpt2):
    ns = run_page([("gpt2", "state")], ns=dict(gpt2))
    assert ns["params"] is not gpt2["params"]
    assert same_tree(ns["params"], gpt2["params"])


def test_gpt2_compare_init_sees_the_c_proj_scaling(gpt2):
    """The oracle is not vacuous: against a GPT-2 without its c_proj scaling, the port fails there."""
    ns = gpt2

    def unscaled() -> torch.nn.Module:
        model = ns["GPT2LMHeadModel"](ns["small"])
        for name, p in model.named_parameters():
            if name.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, std=ns["small"].initializer_range)
        return model

    report = jaxinit.port.compare_init(unscaled, ns["gpt2_init"](ns["small"]))
    failed = {r.path for r in report.rows if r.failures}
    assert failed == {r.path for r in report.rows if r.path.endswith("c_proj/kernel")}


# ----------------------------------------------------------------------------
# BERT


def bert_given(ns: dict[str, Any]) -> dict[str, Any]:
    config = R.BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=24,
    )
    small = dataclasses.replace(config, vocab_size=64, num_hidden_layers=1, hidden_size=16)
    return {
        "BertModel": R.BertModel,
        "config": config,
        "small": small,
        "torch_model": trained(R.BertModel(config)),
    }


@pytest.fixture(scope="module")
def bert() -> dict[str, Any]:
    return run_page(all_parts("bert"), bert_given)


def test_bert_starts_as_transformers(bert):
    assert bert["report"].ok
    assert_fixed_entries_agree(bert["report"])  # the padding row included


def test_bert_port_computes_torch_outputs(bert):
    ns = bert
    g = torch.Generator().manual_seed(7)
    tokens = torch.randint(0, ns["config"].vocab_size, (2, 16), generator=g)
    types = torch.randint(0, 2, tokens.shape, generator=g)
    mask = torch.ones_like(tokens)
    mask[0, 12:] = 0
    got = jax.jit(ns["model"].apply)(
        ns["params"], *(jnp.asarray(a.numpy()) for a in (tokens, types, mask))
    )
    want = ns["torch_model"](tokens, types, mask)
    assert relative_error(got[0], want.last_hidden_state) < 1e-4
    assert relative_error(got[1], want.pooler_output) < 1e-4


def test_fixed_entry_check_catches_a_wrong_padding_row(bert):
    """A BERT port that zeroes the wrong row: compare_init and the entry check both catch it."""
    ns = bert
    wrong = dataclasses.replace(ns["small"], pad_token_id=1)
    report = jaxinit.port.compare_init(lambda: ns["BertModel"](ns["small"]), ns["bert_init"](wrong))
    assert not report.ok  # compare_init checks the slices torch draws identically every seed
    assert any("word_embeddings" in f for f in report.failures)
    with pytest.raises(AssertionError, match="word_embeddings") as e:
        assert_fixed_entries_agree(report)
    assert "fixed in the port only" in str(e.value)


# ----------------------------------------------------------------------------
# timm ViT


def vit_given(ns: dict[str, Any]) -> dict[str, Any]:
    vit_args = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4, num_classes=10)
    small_args = dict(img_size=16, patch_size=4, embed_dim=32, depth=1, num_heads=2)
    return {
        "VisionTransformer": R.VisionTransformer,
        "vit_args": vit_args,
        "small_args": small_args,
        "torch_model": trained(R.VisionTransformer(**vit_args)),
    }


def test_vit_starts_and_computes_as_timm():
    ns = run_page(all_parts("vit"), vit_given)
    assert ns["report"].ok
    assert_fixed_entries_agree(ns["report"])
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(7))
    got = jax.jit(ns["model"].apply)(ns["params"], jnp.asarray(x.numpy().transpose(0, 2, 3, 1)))
    assert relative_error(got, ns["torch_model"](x)) < 1e-4


# ----------------------------------------------------------------------------
# torchvision ResNet


def resnet_given(ns: dict[str, Any]) -> dict[str, Any]:
    resnet_args = dict(layers=(1, 1, 1, 1), num_classes=10, widths=(8, 16, 32, 64))

    def resnet18(**kwargs: Any) -> R.ResNet:
        return R.ResNet(R.BasicBlock, **resnet_args, **kwargs)

    return {"resnet18": resnet18, "resnet_args": resnet_args, "torch_model": trained(resnet18())}


def test_resnet_starts_and_computes_as_torchvision():
    ns = run_page(all_parts("resnet"), resnet_given)
    report = ns["report"]
    assert report.ok
    assert_fixed_entries_agree(report)
    zeroed = [
        r.path for r in report.rows if r.deterministic and r.torch_max == 0 and "scale" in r.path
    ]
    assert sorted(zeroed) == [f"params/layer{i}_0/bn2/scale" for i in range(1, 5)]
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    got = jax.jit(ns["model"].apply)(ns["variables"], jnp.asarray(x.numpy().transpose(0, 2, 3, 1)))
    assert relative_error(got, ns["torch_model"](x)) < 1e-4


# ----------------------------------------------------------------------------
# LSTM: Linen and Equinox


def lstm_given(ns: dict[str, Any]) -> dict[str, Any]:
    return {"torch_model": trained(ns["SequenceClassifier"]())}


def test_lstm_starts_and_computes_as_torch():
    ns = run_page(all_parts("lstm"), lstm_given)
    assert ns["report"].ok
    assert_fixed_entries_agree(ns["report"])
    x = torch.randn(3, 10, 16, generator=torch.Generator().manual_seed(7))
    got = jax.jit(ns["model"].apply)(ns["params"], jnp.asarray(x.numpy()))
    assert relative_error(got, ns["torch_model"](x)) < 1e-4
    # to_torch: each summed bias into b_ih, b_hh zero; JAX -> torch -> JAX bit-exact
    back = jaxinit.port.to_torch(ns["params"], ns["SequenceClassifier"]())
    assert all((getattr(back.lstm, f"bias_hh_l{i}") == 0).all() for i in range(2))
    assert same_tree(jaxinit.port.from_torch(back, ns["shapes"]), ns["params"])
    assert relative_error(back.eval()(x).detach().numpy(), ns["torch_model"](x)) < 1e-5


def test_lstm_equinox_starts_and_computes_as_torch():
    parts = [("lstm", "torch"), ("lstm", "given"), *all_parts("lstm-equinox")]
    ns = run_page(parts, lstm_given)
    assert ns["report"].ok
    assert_fixed_entries_agree(ns["report"])
    x = torch.randn(3, 10, 16, generator=torch.Generator().manual_seed(7))
    got = jax.vmap(ns["model"])(jnp.asarray(x.numpy()))
    assert relative_error(got, ns["torch_model"](x)) < 1e-4
    # What the page says: Equinox's own init differs from torch's in the LSTM biases only.
    report = jaxinit.port.compare_init(
        ns["SequenceClassifier"],
        lambda k: ns["EqxSequenceClassifier"](key=k),
        rename=ns["rename"],
        seeds=4,  # the summed bias is sqrt(2) wider: 4 seeds see it
    )
    assert {r.path for r in report.rows if r.failures} == {"lstm/0/bias", "lstm/1/bias"}
