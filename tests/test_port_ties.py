"""Tied torch tensors (GPT-2's ``lm_head.weight`` is ``wte.weight``): counted once, written once.

torch is the oracle: a torch model whose tied weight holds a value computes
with it through both layers, so its outputs say which value was written.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import pytest
import torch

import jaxinit.port as port
from tests.test_port import abstract_init, close, randomize, run_torch

TOKENS = np.array([[1, 5, 10, 0]], np.int32)


class TLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Embedding(11, 4)
        self.lm_head = torch.nn.Linear(4, 11, bias=False)
        self.lm_head.weight = self.wte.weight  # tied, as GPT-2

    def forward(self, t):
        return self.lm_head(self.wte(t))


class Tied(nn.Module):
    """The port as GPT-2's authors would write it: one embedding, attended."""

    @nn.compact
    def __call__(self, t):
        embed = nn.Embed(11, 4, name="wte")
        return embed.attend(embed(t))


class Untied(nn.Module):
    """A port that keeps both leaves (which may then differ)."""

    @nn.compact
    def __call__(self, t):
        return nn.Dense(11, use_bias=False, name="lm_head")(nn.Embed(11, 4, name="wte")(t))


def _untied_variables(equal: bool):
    v = Untied().init(jax.random.key(0), TOKENS)
    if equal:  # the Dense kernel (in, out) is the embedding transposed, as torch ties them
        v["params"]["lm_head"]["kernel"] = v["params"]["wte"]["embedding"].T
    return v


def _torch_logits(state_or_module) -> np.ndarray:
    if isinstance(state_or_module, torch.nn.Module):
        return run_torch(state_or_module, TOKENS.astype(np.int64))
    fresh = TLM()
    fresh.load_state_dict(state_or_module)
    return run_torch(fresh.eval(), TOKENS.astype(np.int64))


@pytest.mark.parametrize("as_state_dict", [False, True])
def test_from_torch_counts_a_tie_once_for_modules_and_state_dicts(as_state_dict):
    tmod = randomize(TLM())
    source = tmod.state_dict() if as_state_dict else tmod
    variables = port.from_torch(source, abstract_init(Tied(), TOKENS))  # strict: only wte
    close(Tied().apply(variables, TOKENS), run_torch(tmod, TOKENS.astype(np.int64)))
    # numpy arrays of a state_dict (views of one storage) are ties too
    arrays = {k: v.numpy() for k, v in tmod.state_dict().items()}
    variables = port.from_torch(arrays, abstract_init(Tied(), TOKENS))
    close(Tied().apply(variables, TOKENS), run_torch(tmod, TOKENS.astype(np.int64)))


@pytest.mark.parametrize("as_state_dict", [False, True])
def test_to_torch_refuses_tied_tensors_given_different_values(as_state_dict):
    tmod = randomize(TLM())
    before = tmod.wte.weight.detach().clone()
    target = tmod.state_dict() if as_state_dict else tmod
    variables = _untied_variables(equal=False)
    with pytest.raises(ValueError) as info:
        port.to_torch(variables, target)
    msg = str(info.value)
    assert "nothing was changed" in msg and "tied torch tensors given different values" in msg
    assert "wte.weight (from params/wte/embedding) and lm_head.weight" in msg
    diff = np.abs(
        np.asarray(variables["params"]["wte"]["embedding"])
        - np.asarray(variables["params"]["lm_head"]["kernel"]).T
    ).max()
    assert f"max |diff| {diff:.3g}" in msg
    torch.testing.assert_close(tmod.wte.weight.detach(), before, rtol=0, atol=0)


@pytest.mark.parametrize("as_state_dict", [False, True])
def test_to_torch_non_strict_writes_the_first_tied_key_and_says_so(as_state_dict):
    tmod = randomize(TLM())
    target = tmod.state_dict() if as_state_dict else tmod
    variables = _untied_variables(equal=False)
    with pytest.warns(UserWarning, match="wrote wte.weight's value, from params/wte/embedding"):
        out = port.to_torch(variables, target, strict=False)
    if as_state_dict:
        assert out["lm_head.weight"] is out["wte.weight"]  # still one tensor
    # torch computes with the embedding's value through both tied layers
    wte = np.asarray(variables["params"]["wte"]["embedding"])
    want = wte[TOKENS] @ wte.T
    close(_torch_logits(out), want)


@pytest.mark.parametrize("as_state_dict", [False, True])
def test_to_torch_equal_tied_values_and_a_one_leaf_port_write_the_tie(as_state_dict):
    tmod = randomize(TLM())
    for variables, model in ((_untied_variables(True), Untied()), (None, Tied())):
        if variables is None:
            variables = Tied().init(jax.random.key(3), TOKENS)
        target = tmod.state_dict() if as_state_dict else tmod
        out = port.to_torch(variables, target)  # strict: the tie is filled through wte
        close(_torch_logits(out), model.apply(variables, TOKENS))
        if as_state_dict:
            # the returned state_dict keeps the tie: lm_head is not left with the old values
            assert out["lm_head.weight"] is out["wte.weight"]
