"""One process of ``tests/test_multihost.py``: 4 CPU devices of a global mesh of 8 over 2 processes.

Usage: ``python tests/multihost_worker.py PROCESS_ID PORT FOLDER STEPS``, where
FOLDER holds ``gpt.safetensors`` and ``reference.npz`` (the single-process
results) and STEPS is a comma-separated subset of ``init,load,save``.
Prints one JSON line with what it checked. JAX's own runtime does the work
(``jax.distributed``, ``NamedSharding``, ``jax.make_array_from_callback``,
``process_allgather``); the coordinator listens on the loopback address only.
"""

from __future__ import annotations

import json
import math
import os
import sys

# Importing these starts no backend, and changes no setting: pytest's doctest collection
# imports this module too. main() sets the environment first, then joins the runtime.
import flax.linen as nn
import jax
import numpy as np

import jaxinit.flax
import jaxinit.port as port
from jaxinit._src.port.files import sources
from tests.sharded_models import AXIS_RULES, MODEL, RULES, TOKENS


def _flat(tree):
    return {
        jax.tree_util.keystr(path): x
        for path, x in jax.tree_util.tree_leaves_with_path(nn.unbox(tree))
    }


def _check_shards(tree, reference, prefix: str) -> int:
    """Every addressable shard equals the same block of the single-process result."""
    n = 0
    for name, x in _flat(tree).items():
        want = reference[prefix + name]
        for shard in x.addressable_shards:
            np.testing.assert_array_equal(np.asarray(shard.data), want[shard.index], err_msg=name)
            n += 1
    return n


def _expected_bytes(tree) -> int:
    """The bytes this process must read: each distinct block its devices hold, once."""
    total = 0
    for x in _flat(tree).values():
        blocks = {
            tuple(s.indices(n) for s, n in zip(shard.index, x.shape))
            for shard in x.addressable_shards
        }
        for block in blocks:
            total += math.prod(len(range(*b)) for b in block) * x.dtype.itemsize
    return total


def main() -> None:
    process_id, coordinator_port, folder, steps = sys.argv[1:5]
    # before jax starts its CPU backend (on the first device query, below)
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"
    os.environ["JAX_PLATFORMS"] = "cpu"
    jax.config.update("jax_platforms", "cpu")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{coordinator_port}",
        num_processes=2,
        process_id=int(process_id),
        initialization_timeout=60,
    )
    assert jax.process_count() == 2 and jax.device_count() == 8
    reference = np.load(os.path.join(folder, "reference.npz"))
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
    report: dict[str, object] = {"process": jax.process_index()}
    key = jax.random.key(0)
    if "init" in steps:
        variables = jaxinit.flax.init(
            MODEL, key, TOKENS, rules=RULES, mesh=mesh, axis_rules=AXIS_RULES
        )
        report["init_shards"] = _check_shards(variables, reference, "init")
    if "load" in steps or "save" in steps:
        read_bytes = [0]
        read = sources.Checkpoint.read

        def counting(self, name, box):
            out = read(self, name, box)
            read_bytes[0] += out.nbytes
            return out

        sources.Checkpoint.read = counting  # type: ignore[method-assign]
        checkpoint = os.path.join(folder, "gpt.safetensors")
        abstract = jax.eval_shape(MODEL.init, key, TOKENS)
        loaded = port.from_torch(checkpoint, abstract, mesh=mesh, axis_rules=AXIS_RULES)
        report["load_shards"] = _check_shards(loaded, reference, "load")
        report["bytes_read"] = read_bytes[0]
        report["bytes_expected"] = _expected_bytes(loaded)
        report["bytes_total"] = os.path.getsize(checkpoint)
        if "save" in steps:
            out = port.to_torch(
                loaded, os.path.join(folder, "saved.safetensors"), template=checkpoint
            )
            report["saved"] = str(out)
    jax.distributed.shutdown()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
