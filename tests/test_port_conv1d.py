"""transformers' Conv1D (GPT-2) in a bare state_dict: never silently transposed.

transformers is not needed: a small replica of ``GPT2LMHeadModel`` with its
real state_dict names (``transformer.h.0.attn.c_attn.weight``, ...) and
Conv1D's ``(in, out)`` weights, whose forward pass is the oracle.
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxinit.port as port
from tests.test_port import Conv1D, abstract_init, close, randomize, run_torch

E, HEADS, LAYERS, VOCAB, POS = 8, 2, 2, 16, 6
TOKENS = np.array([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]], np.int32)


def _causal_attention(q, k, v, lib):
    """GPT-2's attention on split q, k, v (torch or jax.numpy arrays)."""
    b, t, _ = q.shape
    heads = [lib.reshape(x, (b, t, HEADS, E // HEADS)) for x in (q, k, v)]
    if lib is torch:
        q, k, v = (x.permute(0, 2, 1, 3) for x in heads)
        scores = q @ k.transpose(-1, -2) / math.sqrt(E // HEADS)
        mask = torch.from_numpy(np.tril(np.ones((1, 1, t, t), bool)))
        weights = torch.softmax(torch.where(mask, scores, -1e9), -1)
        return (weights @ v).permute(0, 2, 1, 3).reshape(b, t, E)
    q, k, v = (x.transpose(0, 2, 1, 3) for x in heads)
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(E // HEADS)
    mask = np.tril(np.ones((1, 1, t, t), bool))
    weights = jax.nn.softmax(jnp.where(mask, scores, -1e9), -1)
    return (weights @ v).transpose(0, 2, 1, 3).reshape(b, t, E)


class TBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = torch.nn.LayerNorm(E), torch.nn.LayerNorm(E)
        self.attn = torch.nn.Module()
        self.attn.c_attn, self.attn.c_proj = Conv1D(3 * E, E), Conv1D(E, E)
        self.mlp = torch.nn.Module()
        self.mlp.c_fc, self.mlp.c_proj = Conv1D(4 * E, E), Conv1D(E, 4 * E)

    def forward(self, x):
        q, k, v = self.attn.c_attn(self.ln_1(x)).split(E, dim=-1)
        x = x + self.attn.c_proj(_causal_attention(q, k, v, torch))
        h = torch.nn.functional.gelu(self.mlp.c_fc(self.ln_2(x)), approximate="tanh")
        return x + self.mlp.c_proj(h)


class TGPT2LMHeadModel(torch.nn.Module):
    """GPT2LMHeadModel's structure and state_dict names, in miniature."""

    def __init__(self):
        super().__init__()
        self.transformer = torch.nn.Module()
        self.transformer.wte = torch.nn.Embedding(VOCAB, E)
        self.transformer.wpe = torch.nn.Embedding(POS, E)
        self.transformer.h = torch.nn.ModuleList(TBlock() for _ in range(LAYERS))
        self.transformer.ln_f = torch.nn.LayerNorm(E)
        self.lm_head = torch.nn.Linear(E, VOCAB, bias=False)
        self.lm_head.weight = self.transformer.wte.weight

    def forward(self, tokens):
        x = self.transformer.wte(tokens) + self.transformer.wpe(torch.arange(tokens.shape[1]))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


class Block(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.LayerNorm(epsilon=1e-5, name="ln_1")(x)
        q, k, v = jnp.split(nn.Dense(3 * E, name="attn_c_attn")(h), 3, axis=-1)
        x = x + nn.Dense(E, name="attn_c_proj")(_causal_attention(q, k, v, jnp))
        h = nn.gelu(nn.Dense(4 * E, name="mlp_c_fc")(nn.LayerNorm(epsilon=1e-5, name="ln_2")(x)))
        return x + nn.Dense(E, name="mlp_c_proj")(h)


class FlaxGPT2(nn.Module):
    @nn.compact
    def __call__(self, tokens):
        wte = nn.Embed(VOCAB, E, name="transformer_wte")
        pos = nn.Embed(POS, E, name="transformer_wpe")(jnp.arange(tokens.shape[1]))
        x = wte(tokens) + pos[None]
        for i in range(LAYERS):
            x = Block(name=f"transformer_h_{i}")(x)
        return wte.attend(nn.LayerNorm(epsilon=1e-5, name="transformer_ln_f")(x))


APPLY = jax.jit(FlaxGPT2().apply)


def _doc_torch_types() -> dict[str, str]:
    """The ``torch_types`` of docs/porting.md's GPT-2 example, as the page shows it."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "porting.md").read_text()
    section = page[page.index("### Bare state_dicts") :]
    return ast.literal_eval(re.search(r"torch_types=(\{[^}]*\})", section).group(1))


# what the docs recommend: globs that match both GPT2LMHeadModel's keys (transformer.h.0...)
# and a bare GPT2Model checkpoint's (h.0...)
DOC_TYPES = _doc_torch_types()


@pytest.fixture(scope="module")
def gpt2():
    tmod = randomize(TGPT2LMHeadModel())
    state = {k: v.numpy() for k, v in tmod.state_dict().items()}  # lm_head: a view of wte
    variables = abstract_init(FlaxGPT2(), TOKENS)
    return tmod, state, variables, run_torch(tmod, TOKENS.astype(np.int64))


def test_the_replica_has_gpt2_lm_head_model_key_names(gpt2):
    tmod, _, _, _ = gpt2
    keys = list(tmod.state_dict())
    assert keys[:4] == [
        "transformer.wte.weight",
        "transformer.wpe.weight",
        "transformer.h.0.ln_1.weight",
        "transformer.h.0.ln_1.bias",
    ]
    assert "transformer.h.0.attn.c_attn.weight" in keys and keys[-1] == "lm_head.weight"
    assert tuple(tmod.state_dict()["transformer.h.0.attn.c_attn.weight"].shape) == (E, 3 * E)


def test_the_docs_globs_port_gpt2_exactly(gpt2):
    tmod, state, variables, want = gpt2
    assert DOC_TYPES == {"*.c_attn": "Conv1D", "*.c_fc": "Conv1D", "*.c_proj": "Conv1D"}
    # ... and on a GPT2Model checkpoint's keys (no "transformer." prefix)
    bare = {k.removeprefix("transformer."): v for k, v in state.items() if k != "lm_head.weight"}
    assert "h.0.attn.c_attn.weight" in bare
    port.from_torch(bare, variables, torch_types=DOC_TYPES, rename=[("*", "transformer_*")])
    new = port.from_torch(state, variables, torch_types=DOC_TYPES)
    close(APPLY(new, TOKENS), want)
    # the torch module itself needs no torch_types: Conv1D is recognized by its class
    close(APPLY(port.from_torch(tmod, variables), TOKENS), want)


def test_without_torch_types_the_error_names_conv1d_and_the_square_weights(gpt2):
    _, state, variables, _ = gpt2
    with pytest.raises(ValueError) as info:
        port.from_torch(state, variables)
    msg = str(info.value)
    assert "weights that fit only read as transformers Conv1D (in, out)" in msg
    assert "transformer.h.0.attn.c_attn.weight (8, 24)" in msg
    # the square c_proj would have loaded transposed: it is named too, with the fix
    assert "transformer.h.0.attn.c_proj.weight (8, 8)" in msg
    assert "torch_types={'transformer.h.*.attn.c_attn': 'Conv1D'" in msg
    assert "'transformer.h.*.attn.c_proj': 'Conv1D'" in msg


def test_declaring_only_the_non_square_weights_is_not_enough(gpt2):
    """What a user following a shapes-only error does: the square attn.c_proj stays a guess."""
    _, state, variables, want = gpt2
    partial = {"*.c_attn": "Conv1D", "*.c_fc": "Conv1D", "*.mlp.c_proj": "Conv1D"}
    with pytest.raises(ValueError) as info:
        port.from_torch(state, variables, torch_types=partial)
    msg = str(info.value)
    assert "square weights read as Linear (out, in) by assumption" in msg
    assert "transformer.h.0.attn.c_proj.weight (8, 8)" in msg
    assert "transformer.h.1.attn.c_proj.weight (8, 8)" in msg
    assert "'transformer.h.*.attn.c_proj': 'Conv1D'" in msg
    with pytest.warns(UserWarning, match=r"transformer\.h\.0\.attn\.c_proj\.weight"):
        wrong = port.from_torch(state, variables, torch_types=partial, strict=False)
    # and the guess is wrong: the outputs are off (this is what the error prevents)
    assert np.abs(np.asarray(APPLY(wrong, TOKENS)) - want).max() > 1e-3
    # declaring the square one as a Linear is accepted: the user said so
    port.from_torch(state, variables, torch_types={**partial, "*.attn.c_proj": "Linear"})


def test_a_torch_types_glob_that_matches_nothing_is_an_error_naming_nearby_modules(gpt2):
    _, state, variables, _ = gpt2
    with pytest.raises(ValueError) as info:
        port.from_torch(state, variables, torch_types={"h.*.attn.c_*": "Conv1D"})
    msg = str(info.value)
    assert "torch_types['h.*.attn.c_*'] matches no torch module" in msg
    assert "did you mean '*.h.*.attn.c_*'? it matches transformer.h.0.attn.c_attn" in msg


def test_a_state_dict_without_conv1d_stays_quiet_about_square_linears():
    tmod = randomize(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)))
    fmod = nn.Sequential([nn.Dense(4), nn.Dense(4)])
    x = np.ones((1, 4), np.float32)
    state = {k: v.numpy() for k, v in tmod.state_dict().items()}
    close(fmod.apply(port.from_torch(state, abstract_init(fmod, x)), x), run_torch(tmod, x))
