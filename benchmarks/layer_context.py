"""What finding the calling Flax layer costs, next to one draw.

An initializer built without ``layout=`` asks which Flax built-in layer is
calling it (``jaxinit._src.layers.context.calling_layer_layout``): for Linen the
top of Flax's module stack, for NNX a walk up the Python call stack to the
nearest NNX ``__init__``. This script times that lookup where it happens
(inside ``nn.Dense.init`` / ``nnx.Linear(...)``, and in a bare call from a
deep stack, the walk's worst case) and compares it with one draw of a small
kernel (the cheapest a draw gets) and with building the layer.

    python benchmarks/layer_context.py
"""

from __future__ import annotations

import sys
import timeit

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import nnx

import jaxinit
from jaxinit._src.layers import context as flax_layouts

KEY = jax.random.key(0)
SHAPE = (64, 32)


def best(fn, number: int) -> float:
    """Seconds per call: the minimum over 7 repeats of ``number`` calls."""
    return min(timeit.repeat(fn, number=number, repeat=7)) / number


def main() -> None:
    init = jaxinit.kaiming_normal(mode="fan_out")
    init(KEY, SHAPE).block_until_ready()
    seen: dict[str, float] = {}

    class Probe:
        """Times the lookup at the moment the layer calls the initializer."""

        def __init__(self, label: str):
            self.label = label

        def __call__(self, key, shape, dtype=jnp.float32):
            seen[self.label] = best(lambda: flax_layouts.calling_layer_layout(tuple(shape)), 2000)
            return init(key, shape, dtype)

    nn.Dense(32, kernel_init=Probe("Linen nn.Dense (module stack)")).init(KEY, jnp.ones((1, 64)))
    nnx.Linear(64, 32, kernel_init=Probe("NNX nnx.Linear (frame walk)"), rngs=nnx.Rngs(0))

    def deep(n: int) -> float:  # a bare call under n extra Python frames: the walk's worst case
        if n:
            return deep(n - 1)
        return best(lambda: flax_layouts.calling_layer_layout(SHAPE), 2000)

    seen["bare call, 60 frames deep (NNX walk to the limit)"] = deep(60)
    draw = best(lambda: init(KEY, SHAPE).block_until_ready(), 200)
    build = best(lambda: nnx.Linear(64, 32, kernel_init=init, rngs=nnx.Rngs(0)), 50)

    print(f"python {sys.version.split()[0]}, jax {jax.__version__}")
    print(f"one draw of {SHAPE} (dispatch + sampling): {draw * 1e6:8.1f} us")
    print(f"building nnx.Linear(64, 32):                {build * 1e6:8.1f} us")
    for label, seconds in seen.items():
        print(f"lookup, {label:52s} {seconds * 1e6:6.2f} us = {seconds / draw:6.2%} of the draw")


if __name__ == "__main__":
    main()
