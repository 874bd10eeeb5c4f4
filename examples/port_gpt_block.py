"""Port a transformers-style GPT-2 model to Flax: init report, weight loading, logits check.

The torch model below is written the way ``transformers``' ``modeling_gpt2``
writes it (without needing that package): ``Conv1D`` layers with ``(in, out)``
weights for ``c_attn``/``c_proj``/``c_fc``, ``wte``/``wpe`` embeddings, a
``lm_head`` tied to ``wte``, and GPT-2's init (``normal(0, 0.02)`` weights,
``c_proj`` scaled by ``1/sqrt(2 * n_layer)``, zero biases, LayerNorm 1/0).
The Flax port uses the same module names, so ``jaxinit.port`` pairs
``h.0.attn.c_attn.weight`` with ``params/h_0/attn/c_attn/kernel`` by itself
and knows from the torch class that a ``Conv1D`` weight is not transposed.

The script prints:
1. ``jaxinit.port.compare_init``: the Flax model initialized by
   ``jaxinit.flax.init`` with GPT-2's init as rules, against torch's, leaf by
   leaf over ``--seeds`` seeds (8 by default);
2. the logits check: torch's weights loaded with ``jaxinit.port.from_torch``
   give torch's logits;
3. the way back: ``jaxinit.port.to_torch`` of the Flax weights into a fresh
   torch model gives the same logits, and the round trip is bit-exact.

Run: ``python examples/port_gpt_block.py`` (seconds on a CPU). Exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import torch

import jaxinit
import jaxinit.flax
import jaxinit.port

VOCAB, POSITIONS, WIDTH, HEADS, LAYERS = 128, 32, 64, 4, 2
EPS = 1e-5

# ----------------------------------------------------------------------------
# torch, as transformers writes GPT-2


class Conv1D(torch.nn.Module):
    """transformers.pytorch_utils.Conv1D: a Linear whose weight is stored (in, out)."""

    def __init__(self, nf: int, nx: int):
        super().__init__()
        self.nf = nf
        self.weight = torch.nn.Parameter(torch.empty(nx, nf))
        self.bias = torch.nn.Parameter(torch.zeros(nf))
        torch.nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        out = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return out.view(*x.shape[:-1], self.nf)


class Attention(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = Conv1D(3 * WIDTH, WIDTH)
        self.c_proj = Conv1D(WIDTH, WIDTH)

    def forward(self, x):
        b, t, e = x.shape
        q, k, v = self.c_attn(x).split(e, dim=2)
        q, k, v = (a.view(b, t, HEADS, e // HEADS).transpose(1, 2) for a in (q, k, v))
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, e))


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c_fc = Conv1D(4 * WIDTH, WIDTH)
        self.c_proj = Conv1D(WIDTH, 4 * WIDTH)

    def forward(self, x):
        return self.c_proj(torch.nn.functional.gelu(self.c_fc(x), approximate="tanh"))


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(WIDTH, eps=EPS)
        self.attn = Attention()
        self.ln_2 = torch.nn.LayerNorm(WIDTH, eps=EPS)
        self.mlp = MLP()

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Embedding(VOCAB, WIDTH)
        self.wpe = torch.nn.Embedding(POSITIONS, WIDTH)
        self.h = torch.nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln_f = torch.nn.LayerNorm(WIDTH, eps=EPS)
        self.lm_head = torch.nn.Linear(WIDTH, VOCAB, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled residual projections
            if name.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * LAYERS))

    def _init_weights(self, module):
        if isinstance(module, torch.nn.Embedding):
            torch.nn.init.normal_(module.weight, std=0.02)
        elif isinstance(module, torch.nn.LayerNorm):
            torch.nn.init.ones_(module.weight)
            torch.nn.init.zeros_(module.bias)

    def forward(self, tokens):
        pos = torch.arange(tokens.shape[1])
        x = self.wte(tokens) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


# ----------------------------------------------------------------------------
# The Flax port: the same names; nothing but shapes in the modules


class FlaxAttention(nn.Module):
    @nn.compact
    def __call__(self, x):
        b, t, e = x.shape
        q, k, v = jnp.split(nn.Dense(3 * e, name="c_attn")(x), 3, axis=-1)
        q, k, v = (a.reshape(b, t, HEADS, e // HEADS) for a in (q, k, v))
        y = nn.dot_product_attention(q, k, v, mask=nn.make_causal_mask(jnp.ones((b, t))))
        return nn.Dense(e, name="c_proj")(y.reshape(b, t, e))


class FlaxBlock(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = x + FlaxAttention(name="attn")(nn.LayerNorm(epsilon=EPS, name="ln_1")(x))
        h = nn.LayerNorm(epsilon=EPS, name="ln_2")(x)
        h = nn.gelu(nn.Dense(4 * WIDTH, name="c_fc")(h), approximate=True)
        return x + nn.Dense(WIDTH, name="c_proj")(h)


class FlaxGPT2(nn.Module):
    @nn.compact
    def __call__(self, tokens):
        wte = nn.Embed(VOCAB, WIDTH, name="wte")
        x = wte(tokens) + nn.Embed(POSITIONS, WIDTH, name="wpe")(jnp.arange(tokens.shape[1]))
        for i in range(LAYERS):
            x = FlaxBlock(name=f"h_{i}")(x)
        return wte.attend(nn.LayerNorm(epsilon=EPS, name="ln_f")(x))  # tied lm_head


# The MLP's c_fc/c_proj sit in torch's ``h.N.mlp``; the port has them in the block.
RENAME = [("h.*.mlp.c_fc", "h_*/c_fc"), ("h.*.mlp.c_proj", "h_*/c_proj")]

# GPT-2's init, as rules (first match wins).
GPT2_INIT = [
    ("*/c_proj/kernel", jaxinit.flax.normal(0.0, 0.02 / math.sqrt(2 * LAYERS))),
    ("*/kernel", jaxinit.flax.normal(0.0, 0.02)),
    ("*/embedding", jaxinit.flax.normal(0.0, 0.02)),
    ("*/bias", jaxinit.flax.zeros()),
    ("*/scale", jaxinit.flax.ones()),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Writes no file. Exits 1 if any check fails.",
    )
    parser.add_argument(
        "--seeds", type=int, default=8, help="torch seeds / jax keys pooled per leaf (default 8)"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    model = FlaxGPT2()
    tokens = jnp.zeros((1, POSITIONS), jnp.int32)
    init = jax.jit(lambda key: jaxinit.flax.init(model, key, tokens, rules=GPT2_INIT))
    report = jaxinit.port.compare_init(
        GPT2, init, model=model, args=(tokens,), rename=RENAME, seeds=args.seeds
    )
    print(
        f"GPT-2-style model: vocab {VOCAB}, width {WIDTH}, {HEADS} heads, {LAYERS} layers; "
        f"torch {torch.__version__}, jax {jax.__version__}\n"
    )
    print("1. jaxinit.flax.init(model, key, tokens, rules=GPT2_INIT)  vs  torch's GPT-2 init")
    print(report, end="\n\n")

    # 2. torch's weights in the Flax model give torch's logits.
    torch.manual_seed(0)
    reference = GPT2().eval()
    with torch.no_grad():  # a "trained" model: no zero biases or unit scales left
        for p in reference.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    text = torch.randint(0, VOCAB, (2, 16))
    with torch.no_grad():
        want = reference(text).numpy()
    shapes = jax.eval_shape(model.init, jax.random.key(0), tokens)
    variables = jaxinit.port.from_torch(
        reference, shapes, model=model, args=(tokens,), rename=RENAME
    )
    got = np.asarray(jax.jit(model.apply)(variables, jnp.asarray(text.numpy(), jnp.int32)))
    err = float(np.abs(got - want).max() / np.abs(want).max())
    logits_ok = err < 1e-4
    print(
        "2. jaxinit.port.from_torch(torch_model, ...): the Flax model gives torch's logits "
        f"(max relative difference {err:.1e}): {'ok' if logits_ok else 'FAIL'}"
    )

    # 3. and back: the Flax weights in a fresh torch model.
    back = jaxinit.port.to_torch(variables, GPT2(), model=model, args=(tokens,), rename=RENAME)
    with torch.no_grad():
        again = back.eval()(text).numpy()
    exact = all(
        torch.equal(a, b)
        for a, b in zip(back.state_dict().values(), reference.state_dict().values())
    )
    back_ok = exact and np.array_equal(again, want)
    print(
        "3. jaxinit.port.to_torch(variables, GPT2(), ...): bit-exact weights and logits: "
        + ("ok" if back_ok else "FAIL")
    )
    print(f"done in {time.perf_counter() - start:.1f} s")
    failures = (
        report.failures + ([] if logits_ok else ["logits"]) + ([] if back_ok else ["to_torch"])
    )
    if failures:
        print(f"\n{len(failures)} FAILED:", *failures, sep="\n  ")
        return 1
    print("the port starts as torch does, and computes what torch computes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
