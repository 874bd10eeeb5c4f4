"""jaxinit.port.to_torch into a .safetensors file: torch reads what it writes.

torch is the oracle: the written file must load into the torch model with
``load_state_dict`` (or, with ties, ``safetensors.torch.load_model``) and run
like the JAX model it came from.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch

import jaxinit.port as port
from tests.test_checkpoint_files import (
    TALL,
    TALL_ARGS,
    _assert_trees_identical,
    _save,
    _tall_target,
)
from tests.test_port import abstract_init, close, randomize, run_torch
from tests.test_port_roundtrip import APPLY, TOKENS, TAll


def test_to_torch_writes_a_file_torch_loads_and_that_runs_like_the_jax_model(tmp_path):
    variables = port.from_torch(TALL, _tall_target(), **TALL_ARGS)
    variables = jax.tree_util.tree_map(lambda a: a * 1.5, variables)  # not torch's values
    path = port.to_torch(
        variables, tmp_path / "out" / "model.safetensors", template=TAll(), **TALL_ARGS
    )
    assert path == tmp_path / "out" / "model.safetensors"
    fresh = TAll().eval()
    result = fresh.load_state_dict(safetensors.torch.load_file(str(path)))
    assert result.missing_keys == [] and result.unexpected_keys == []
    close(run_torch(fresh, TOKENS.astype(np.int64)), np.asarray(APPLY(variables, TOKENS)))
    # the same tensors as to_torch into a module, bit for bit
    into_module = port.to_torch(variables, TAll(), **TALL_ARGS).state_dict()
    for k, v in fresh.state_dict().items():
        torch.testing.assert_close(v, into_module[k], rtol=0, atol=0)
    # and reading it back is the identity
    _assert_trees_identical(port.from_torch(path, _tall_target(), **TALL_ARGS), variables)


def test_to_torch_template_can_be_a_state_dict_or_a_checkpoint_file(tmp_path):
    variables = port.from_torch(TALL, _tall_target(), **TALL_ARGS)
    like = _save(TAll(), tmp_path / "like.safetensors")
    a = port.to_torch(variables, tmp_path / "a.safetensors", template=like, **TALL_ARGS)
    b = port.to_torch(
        variables, tmp_path / "b.safetensors", template=TAll().state_dict(), **TALL_ARGS
    )
    fa, fb = safetensors.numpy.load_file(str(a)), safetensors.numpy.load_file(str(b))
    assert fa.keys() == fb.keys()
    for k in fa:
        np.testing.assert_array_equal(fa[k], fb[k])


class _TiedLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Embedding(11, 4)
        self.ln = torch.nn.LayerNorm(4)
        self.lm_head = torch.nn.Linear(4, 11, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as GPT-2

    def forward(self, t):
        return self.lm_head(self.ln(self.wte(t)))


class _LinenTied(nn.Module):
    @nn.compact
    def __call__(self, t):
        embed = nn.Embed(11, 4, name="wte")
        return embed.attend(nn.LayerNorm(epsilon=1e-5, name="ln")(embed(t)))


class _LinenUntied(nn.Module):
    @nn.compact
    def __call__(self, t):
        x = nn.LayerNorm(epsilon=1e-5, name="ln")(nn.Embed(11, 4, name="wte")(t))
        return nn.Dense(11, use_bias=False, name="lm_head")(x)


def test_ties_are_written_once_and_load_back_into_the_tied_model(tmp_path):
    tmod = randomize(_TiedLM())
    tokens = np.array([[1, 5, 10]], np.int32)
    variables = port.from_torch(tmod, abstract_init(_LinenTied(), tokens))
    path = port.to_torch(variables, tmp_path / "tied.safetensors", template=_TiedLM())
    stored = safetensors.numpy.load_file(str(path))
    assert set(stored) == {"wte.weight", "ln.weight", "ln.bias"}  # one name per storage
    back = _TiedLM().eval()
    safetensors.torch.load_model(back, str(path))  # safetensors' own tie-aware loader
    assert back.lm_head.weight is back.wte.weight
    close(run_torch(back, tokens.astype(np.int64)), run_torch(tmod, tokens.astype(np.int64)))
    plain = _TiedLM()
    missing, unexpected = plain.load_state_dict(
        safetensors.torch.load_file(str(path)), strict=False
    )
    assert missing == ["lm_head.weight"] and unexpected == []


def test_tied_names_with_different_values_are_an_error_or_a_warning(tmp_path):
    tmod = randomize(_TiedLM())
    tokens = np.array([[1, 5, 10]], np.int32)
    fmod = _LinenUntied()
    variables = port.from_torch(tmod, abstract_init(fmod, tokens), strict=False)
    variables["params"]["lm_head"]["kernel"] = variables["params"]["lm_head"]["kernel"] + 1.0
    path = tmp_path / "conflict.safetensors"
    with pytest.raises(ValueError, match="share storage .* different values"):
        port.to_torch(variables, path, template=_TiedLM())
    assert not path.exists()
    with pytest.warns(UserWarning, match="share storage .* different values"):
        port.to_torch(variables, path, template=_TiedLM(), strict=False)
    stored = safetensors.numpy.load_file(str(path))
    np.testing.assert_array_equal(stored["wte.weight"], variables["params"]["wte"]["embedding"])


def test_to_torch_file_errors(tmp_path):
    variables = port.from_torch(TALL, _tall_target(), **TALL_ARGS)
    with pytest.raises(TypeError, match="pass template="):
        port.to_torch(variables, tmp_path / "m.safetensors", **TALL_ARGS)
    with pytest.raises(ValueError, match="writes .safetensors files"):
        port.to_torch(variables, tmp_path / "m.bin", template=TAll(), **TALL_ARGS)


def test_a_failed_write_leaves_no_file(tmp_path):
    tmod = randomize(torch.nn.ConvTranspose2d(4, 6, 3, groups=2))
    fmod = nn.ConvTranspose(6, (3, 3), padding="VALID")
    variables = port.from_torch(tmod, abstract_init(fmod, np.ones((1, 3, 3, 4), np.float32)))
    dense = jax.tree_util.tree_map(lambda a: a + 1.0, variables)  # not block-diagonal
    path = tmp_path / "convt.safetensors"
    with pytest.raises(ValueError, match="block-diagonal in 2 groups"):
        port.to_torch(dense, path, template=torch.nn.ConvTranspose2d(4, 6, 3, groups=2))
    assert list(tmp_path.iterdir()) == []
