"""Golden models for the restructure guard: a GPT-shaped and a ResNet-shaped model
initialized through every door, and ported from torch.

``python tests/golden.py --write`` records the sha256 of every leaf each door
produces in ``tests/golden/digests.json``; ``tests/test_golden.py`` checks
that the code still produces exactly those bits. The digests are a regression
guard for moving code, not a reference: correctness is tested against torch
elsewhere. A change of drawn values that is made on purpose (recorded in
CHANGELOG.md) rewrites the file with ``--write`` in the same commit.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jaxinit
import jaxinit.flax
import jaxinit.port

GOLDEN = os.path.join(os.path.dirname(__file__), "golden", "digests.json")
VOCAB, POS, WIDTH, HEADS, LAYERS = 64, 16, 32, 4, 2


# ---------------------------------------------------------------------------
# Linen


class LinenBlock(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.LayerNorm(epsilon=1e-5, name="ln_1")(x)
        x = x + nn.MultiHeadDotProductAttention(HEADS, name="attn")(h, h)
        h = nn.LayerNorm(epsilon=1e-5, name="ln_2")(x)
        h = nn.Dense(4 * WIDTH, name="fc")(h)
        return x + nn.Dense(WIDTH, name="proj")(nn.gelu(h))


class LinenGPT(nn.Module):
    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(VOCAB, WIDTH, name="wte")(tokens)
        x = x + nn.Embed(POS, WIDTH, name="wpe")(jnp.arange(tokens.shape[1]))[None]
        for i in range(LAYERS):
            x = LinenBlock(name=f"h_{i}")(x)
        return nn.Dense(VOCAB, use_bias=False, name="head")(nn.LayerNorm(name="ln_f")(x))


class LinenResBlock(nn.Module):
    features: int
    stride: int = 1

    @nn.compact
    def __call__(self, x):
        h = nn.Conv(self.features, (3, 3), self.stride, use_bias=False, name="conv1")(x)
        h = nn.relu(nn.BatchNorm(use_running_average=True, name="bn1")(h))
        h = nn.Conv(self.features, (3, 3), use_bias=False, name="conv2")(h)
        h = nn.BatchNorm(use_running_average=True, name="bn2")(h)
        if x.shape[-1] != self.features or self.stride != 1:
            x = nn.Conv(self.features, (1, 1), self.stride, use_bias=False, name="down")(x)
            x = nn.BatchNorm(use_running_average=True, name="down_bn")(x)
        return nn.relu(x + h)


class LinenResNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(8, (3, 3), use_bias=False, name="stem")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=True, name="stem_bn")(x))
        x = LinenResBlock(8, name="layer1")(x)
        x = LinenResBlock(16, 2, name="layer2")(x)
        x = nn.ConvTranspose(4, (2, 2), name="up")(x)
        return nn.Dense(10, name="fc")(x.mean(axis=(1, 2)))


class KernelInitNet(nn.Module):
    """The kernel_init door: layout-less jaxinit builders inside Flax layers."""

    @nn.compact
    def __call__(self, x, tokens):
        h = nn.Conv(6, (3, 3), kernel_init=jaxinit.kaiming_normal(mode="fan_out"))(x)
        h = nn.ConvTranspose(5, (2, 2), kernel_init=jaxinit.xavier_uniform())(h)
        e = nn.Embed(VOCAB, 5, embedding_init=jaxinit.kaiming_uniform())(tokens)
        d = nn.DenseGeneral((2, 3), kernel_init=jaxinit.xavier_normal())(h.mean(axis=(1, 2)))
        o = nn.Dense(7, kernel_init=jaxinit.orthogonal(), bias_init=jaxinit.zeros())(e)
        return d.sum() + o.sum()


# ---------------------------------------------------------------------------
# NNX


class NNXGPT(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.wte = nnx.Embed(VOCAB, WIDTH, rngs=rngs)
        self.ln = nnx.LayerNorm(WIDTH, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(HEADS, WIDTH, decode=False, rngs=rngs)
        self.fc = nnx.Linear(WIDTH, 4 * WIDTH, rngs=rngs)
        self.proj = nnx.Linear(4 * WIDTH, WIDTH, rngs=rngs)
        self.conv = nnx.Conv(WIDTH, 8, (3,), rngs=rngs)
        self.cell = nnx.LSTMCell(8, 6, rngs=rngs)


# ---------------------------------------------------------------------------
# Equinox


def eqx_model(key: jax.Array) -> Any:
    keys = jax.random.split(key, 6)
    return {
        "fc": eqx.nn.Linear(12, 7, key=keys[0]),
        "conv": eqx.nn.Conv2d(3, 8, 3, key=keys[1]),
        "emb": eqx.nn.Embedding(VOCAB, 9, key=keys[2]),
        "norm": eqx.nn.LayerNorm(9),
        "attn": eqx.nn.MultiheadAttention(2, 8, key=keys[3]),
        "gru": eqx.nn.GRUCell(5, 6, key=keys[4]),
    }


EQX_RULES = [
    ((eqx.nn.LayerNorm, "*"), jaxinit.constant(0.5)),
    ((eqx.nn.Conv2d, "weight"), jaxinit.kaiming_normal(mode="fan_out", nonlinearity="relu")),
    ("*weight", jaxinit.xavier_uniform()),
    ("*bias", jaxinit.uniform(-0.1, 0.1)),
]


# ---------------------------------------------------------------------------
# torch originals for the port (imported only when the port door runs)


def torch_models() -> tuple[Any, Any]:
    import torch

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = torch.nn.LayerNorm(WIDTH)
            self.fc = torch.nn.Linear(WIDTH, 4 * WIDTH)
            self.proj = torch.nn.Linear(4 * WIDTH, WIDTH)

    class GPT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = torch.nn.Embedding(VOCAB, WIDTH)
            self.h = torch.nn.ModuleList([Block() for _ in range(LAYERS)])
            self.head = torch.nn.Linear(WIDTH, VOCAB, bias=False)

    class ResNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 8, 3, bias=False)
            self.stem_bn = torch.nn.BatchNorm2d(8)
            self.up = torch.nn.ConvTranspose2d(8, 4, 2)
            self.fc = torch.nn.Linear(4, 10)

    torch.manual_seed(0)
    gpt, res = GPT(), ResNet()
    with torch.no_grad():  # trained-like: no unit scales or zero biases left
        for p in [*gpt.parameters(), *res.parameters()]:
            p.add_(torch.randn_like(p) * 0.1)
    return gpt, res


class PortGPT(nn.Module):
    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(VOCAB, WIDTH, name="wte")(tokens)
        for i in range(LAYERS):
            h = nn.LayerNorm(epsilon=1e-5, name=f"h_{i}_ln_1")(x)
            x = x + nn.Dense(WIDTH, name=f"h_{i}_proj")(nn.Dense(4 * WIDTH, name=f"h_{i}_fc")(h))
        return nn.Dense(VOCAB, use_bias=False, name="head")(x)


class PortResNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.Conv(8, (3, 3), padding="VALID", use_bias=False, name="stem")(x)
        x = nn.BatchNorm(use_running_average=True, epsilon=1e-5, name="stem_bn")(x)
        x = nn.ConvTranspose(4, (2, 2), padding="VALID", name="up")(x)
        return nn.Dense(10, name="fc")(x.mean(axis=(1, 2)))


# ---------------------------------------------------------------------------
# the doors


def _tokens():
    return jnp.zeros((1, POS), jnp.int32)


def _image():
    return jnp.zeros((1, 8, 8, 3), jnp.float32)


def doors() -> dict[str, Callable[[], Any]]:
    """name -> a function returning the tree of arrays that door produces."""
    key = jax.random.key(1234)
    rules = jaxinit.flax.TORCH_DEFAULTS

    def linen_init(model, *args):
        return lambda: jaxinit.flax.init(model, key, *args, rules=rules)

    def linen_reinit(model, *args):
        def run():
            variables = model.init(jax.random.key(7), *args)
            return jaxinit.flax.reinit(variables, rules, key=key, model=model, args=args)

        return run

    def nnx_init():
        return nnx.state(jaxinit.flax.init(NNXGPT, key, rules=rules))

    def nnx_reinit():
        module = NNXGPT(rngs=nnx.Rngs(7))
        return nnx.state(jaxinit.flax.reinit(module, rules, key=key))

    def kernel_init():
        return KernelInitNet().init(key, _image(), _tokens())

    def equinox():
        model = jaxinit.reinit(eqx_model(jax.random.key(7)), EQX_RULES, key=key)
        return eqx.filter(model, eqx.is_inexact_array)

    def plain_dict():
        tree = {"w": jnp.zeros((16, 8, 3)), "b": jnp.zeros(16), "e": jnp.zeros((5, 5))}
        rules = [("w", jaxinit.kaiming_uniform()), ("b", jaxinit.normal()), ("e", jaxinit.eye())]
        return jaxinit.reinit(tree, rules, key=key)

    def port(which):
        def run():
            gpt, res = torch_models()
            if which == "gpt":
                model, args = PortGPT(), (_tokens(),)
                rename = [("h.*.ln_1", "h_*_ln_1"), ("h.*.fc", "h_*_fc"), ("h.*.proj", "h_*_proj")]
                src = gpt
            else:
                model, args, rename, src = PortResNet(), (_image(),), None, res
            shapes = jax.eval_shape(model.init, jax.random.key(0), *args)
            return jaxinit.port.from_torch(src, shapes, model=model, args=args, rename=rename)

        return run

    return {
        "linen_init_gpt": linen_init(LinenGPT(), _tokens()),
        "linen_init_resnet": linen_init(LinenResNet(), _image()),
        "linen_reinit_gpt": linen_reinit(LinenGPT(), _tokens()),
        "linen_reinit_resnet": linen_reinit(LinenResNet(), _image()),
        "nnx_init": nnx_init,
        "nnx_reinit": nnx_reinit,
        "kernel_init": kernel_init,
        "equinox_reinit": equinox,
        "plain_dict_reinit": plain_dict,
        "port_gpt": port("gpt"),
        "port_resnet": port("resnet"),
    }


# Leaves computed through a LAPACK factorization (orthogonal's QR): its last
# bits depend on the CPU (an Intel and an AMD EPYC machine differ in the last
# bit of some entries), so these are recorded as values and compared to a
# float32 rounding tolerance; a change of key or algorithm moves them by O(1).
FACTORIZED = {"kernel_init": {"['params']['Dense_0']['kernel']"}}
FACTORIZED_RTOL, FACTORIZED_ATOL = 1e-5, 1e-6


def digests(tree: Any, factorized: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    """path -> sha256 of dtype, shape and bytes, for every array leaf.

    A path in ``factorized`` maps to ``{"dtype", "shape", "values"}`` instead.
    """
    out: dict[str, Any] = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if not hasattr(leaf, "dtype"):
            continue
        a = np.asarray(leaf)
        name = jax.tree_util.keystr(path)
        if name in factorized:
            out[name] = {
                "dtype": str(a.dtype),
                "shape": list(a.shape),
                "values": a.ravel().tolist(),
            }
            continue
        h = hashlib.sha256(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
        out[name] = h.hexdigest()[:32]
    return out


def changed(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """The paths whose recorded bits (or, for factorized leaves, values) differ."""
    out = []
    for path, w in want.items():
        g = got[path]
        if isinstance(w, dict):
            same = (
                isinstance(g, dict)
                and (g["dtype"], g["shape"]) == (w["dtype"], w["shape"])
                and np.allclose(g["values"], w["values"], FACTORIZED_RTOL, FACTORIZED_ATOL)
            )
        else:
            same = g == w
        if not same:
            out.append(path)
    return out


def door_digests(name: str) -> dict[str, Any]:
    """The digests of one door's result, its factorized leaves as values."""
    return digests(doors()[name](), FACTORIZED.get(name, set()))


def main() -> None:
    if "--write" not in sys.argv:
        raise SystemExit("usage: python tests/golden.py --write")
    record = {name: door_digests(name) for name in doors()}
    os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
    with open(GOLDEN, "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write("\n")
    print(f"wrote {sum(map(len, record.values()))} digests for {len(record)} doors to {GOLDEN}")


if __name__ == "__main__":
    main()
