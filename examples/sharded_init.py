"""Sharded init in one call, on 8 emulated CPU devices: Linen and NNX, and a checkpoint load.

A small transformer MLP stack whose parameters carry Flax partitioning
metadata (logical names for Linen, ``out_sharding`` for NNX) is built with

    jaxinit.flax.init(model, key, x, rules=jaxinit.flax.TORCH_DEFAULTS,
                      mesh=mesh, axis_rules=AXIS_RULES)

Each leaf is drawn straight into the ``NamedSharding`` its metadata names;
the script prints each leaf's layout and the block one device holds, and
checks that the values equal the unsharded init's bit for bit. It then
writes a torch-layout checkpoint (with ``safetensors.numpy``: no torch
needed) and loads it into the same sharded layout with
``jaxinit.port.from_torch(path, target, mesh=mesh, axis_rules=...)``.

Run ``python examples/sharded_init.py`` (it sets
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` itself, before jax
starts). Exits 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

AXIS_RULES = (("embed", "data"), ("mlp", "model"))


def run(width: int, layers: int) -> bool:
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np
    import safetensors.numpy
    from flax import nnx

    import jaxinit
    import jaxinit.port

    def dense(features, names, name):
        init = nn.with_logical_partitioning(nn.initializers.lecun_normal(), names)
        bias = nn.with_logical_partitioning(nn.initializers.zeros, names[-1:])
        return nn.Dense(features, kernel_init=init, bias_init=bias, name=name)

    class MLPStack(nn.Module):
        @nn.compact
        def __call__(self, x):
            for i in range(layers):
                h = nn.LayerNorm(name=f"ln_{i}")(x)
                h = dense(4 * width, ("embed", "mlp"), f"fc_{i}")(h)
                x = x + dense(width, ("mlp", "embed"), f"proj_{i}")(nn.gelu(h))
            return x

    mesh = jax.make_mesh((4, 2), ("data", "model"))
    model, x, key = MLPStack(), jnp.ones((2, width)), jax.random.key(0)
    rules = jaxinit.flax.TORCH_DEFAULTS
    sharded = jaxinit.flax.init(model, key, x, rules=rules, mesh=mesh, axis_rules=AXIS_RULES)
    plain = jaxinit.flax.init(model, key, x, rules=rules)
    print(f"Linen, mesh {dict(mesh.shape)}:")
    ok = True
    for (path, a), b in zip(
        jax.tree_util.tree_leaves_with_path(nn.unbox(sharded)),
        jax.tree_util.tree_leaves(nn.unbox(plain)),
    ):
        same = bool(np.array_equal(np.asarray(a), np.asarray(b)))
        ok &= same
        block = a.addressable_shards[0].data.shape
        print(
            f"  {jax.tree_util.keystr(path):36s} {str(a.shape):12s} {str(a.sharding.spec):24s} "
            f"one device holds {block}{'' if same else '  VALUES DIFFER'}"
        )

    class NNXStack(nnx.Module):
        def __init__(self, rngs: nnx.Rngs):
            kernel = nnx.with_partitioning(nnx.initializers.lecun_normal(), ("embed", "mlp"))
            self.fc = nnx.Linear(width, 4 * width, kernel_init=kernel, rngs=rngs)
            self.norm = nnx.LayerNorm(4 * width, rngs=rngs)

    module = jaxinit.flax.init(NNXStack, key, rules=rules, mesh=mesh, axis_rules=AXIS_RULES)
    kernel = module.fc.kernel.get_value()
    print(
        f"NNX fc/kernel {kernel.shape} {kernel.sharding.spec}: one device holds "
        f"{kernel.addressable_shards[0].data.shape}"
    )

    # A torch-layout checkpoint (Linear weights are (out, in)), loaded into the same layout.
    rng = np.random.default_rng(0)
    state = {}
    for name, leaf in jax.tree_util.tree_leaves_with_path(nn.unbox(plain["params"])):
        module_name, param = (k.key for k in name)
        torch_name = (
            module_name.replace("_", ".")
            + "."
            + {"kernel": "weight", "scale": "weight"}.get(param, param)
        )
        shape = leaf.shape[::-1] if param == "kernel" else leaf.shape
        state[torch_name] = rng.standard_normal(shape, dtype=np.float32)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "mlp.safetensors")
        safetensors.numpy.save_file(state, path)
        target = jax.eval_shape(model.init, key, x)
        loaded = jaxinit.port.from_torch(path, target, mesh=mesh, axis_rules=AXIS_RULES)
    kernel = nn.unbox(loaded)["params"]["fc_0"]["kernel"]
    same = bool(np.array_equal(np.asarray(kernel), state["fc.0.weight"].T))
    ok &= same
    print(
        f"checkpoint fc.0.weight -> fc_0/kernel {kernel.sharding.spec}, equal to weight.T: {same}"
    )
    print("OK" if ok else "FAILED")
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Writes mlp.safetensors into a temporary folder, removed at the end. Exits 1 "
        "if a check fails.",
    )
    p.add_argument("--width", type=int, default=64, help="the MLP's width (default 64)")
    p.add_argument("--layers", type=int, default=2, help="its number of layers (default 2)")
    args = p.parse_args(argv)
    flag = "--xla_force_host_platform_device_count=8"
    if flag not in os.environ.get("XLA_FLAGS", ""):  # before jax starts its CPU backend
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    return 0 if run(args.width, args.layers) else 1


if __name__ == "__main__":
    sys.exit(main())
