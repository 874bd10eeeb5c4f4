"""Small sharded Flax models shared by the sharded-init and multi-host tests.

``GPT`` mixes ``nn.Partitioned`` boxes (mesh axes), ``nn.LogicallyPartitioned``
boxes (logical names, :data:`AXIS_RULES`) and leaves without a box; its
parameter names follow the torch ``TGPT`` of ``tests/test_sharded_init.py``.
No torch here: the multi-host workers import this without it.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
from flax import nnx

import jaxinit

V, W, LAYERS = 64, 32, 2
AXIS_RULES = (("embed", "data"), ("mlp", "model"))
RULES = [("*/head/kernel", jaxinit.flax.zeros()), *jaxinit.flax.TORCH_DEFAULTS]
TOKENS = np.arange(16, dtype=np.int32).reshape(2, 8) % V


def make_mesh(kind: str = "auto"):
    """A 4 x 2 ("data", "model") mesh of the 8 host devices, Auto or Explicit axes."""
    types = jax.sharding.AxisType.Explicit if kind == "explicit" else jax.sharding.AxisType.Auto
    return jax.make_mesh((4, 2), ("data", "model"), axis_types=(types, types))


def _part(names):
    return nn.with_partitioning(nn.initializers.lecun_normal(), names)


def _logical(names, init=None):
    return nn.with_logical_partitioning(init or nn.initializers.lecun_normal(), names)


class Block(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.LayerNorm(epsilon=1e-5, name="ln")(x)
        h = nn.Dense(
            4 * W,
            kernel_init=_logical(("embed", "mlp")),
            bias_init=_logical(("mlp",), nn.initializers.zeros),
            name="fc",
        )(h)
        return x + nn.Dense(W, kernel_init=_logical(("mlp", "embed")), name="proj")(nn.gelu(h))


class GPT(nn.Module):
    """Partitioned (mesh axes) and logically partitioned boxes, and leaves without a box."""

    @nn.compact
    def __call__(self, tokens):
        embed = nn.with_partitioning(nn.initializers.normal(1.0), ("model", None))
        x = nn.Embed(V, W, embedding_init=embed, name="wte")(tokens)
        for i in range(LAYERS):
            x = Block(name=f"h_{i}")(x)
        return nn.Dense(V, kernel_init=_part((None, "model")), name="head")(x)


MODEL = GPT()


class NNXNet(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        kernel = nnx.with_partitioning(nnx.initializers.lecun_normal(), (None, "model"))
        logical = nnx.with_partitioning(nnx.initializers.lecun_normal(), ("embed", "mlp"))
        self.a = nnx.Linear(64, 128, kernel_init=kernel, rngs=rngs)
        self.b = nnx.Linear(
            128,
            64,
            kernel_init=logical,
            bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("embed",)),
            rngs=rngs,
        )
        self.norm = nnx.LayerNorm(64, rngs=rngs)
        self.drop = nnx.Dropout(0.1, rngs=rngs)
