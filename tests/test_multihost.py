"""Many hosts: 2 processes on localhost, 4 CPU devices each, one global mesh of 8.

Each process (``tests/multihost_worker.py``) initializes the model sharded
across both, loads a safetensors checkpoint into it and saves it back, with
JAX's own runtime (``jax.distributed``). The oracle is this process's
single-process result: every shard a worker holds must equal the same block
of it, and each worker must have read exactly the blocks its devices hold
(counted by an instrumented checkpoint), less than the whole file.

The workers get a coordinator on the loopback address, run under timeouts,
and are killed if anything fails.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch

import jaxinit.flax
import jaxinit.port as port
from tests.sharded_models import MODEL, RULES, TOKENS
from tests.test_port import randomize
from tests.test_sharded_init import TGPT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "multihost_worker.py")
TIMEOUT = 240  # seconds for both workers together (2 shared cores)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _flat(tree) -> dict[str, np.ndarray]:
    import flax.linen as nn

    return {
        jax.tree_util.keystr(path): np.asarray(x)
        for path, x in jax.tree_util.tree_leaves_with_path(nn.unbox(tree))
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The checkpoint, and the single-process results every worker compares with."""
    path = tmp_path_factory.mktemp("multihost")
    tmod = randomize(TGPT())
    checkpoint = path / "gpt.safetensors"
    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in tmod.state_dict().items()}, checkpoint
    )
    key = jax.random.key(0)
    init = jaxinit.flax.init(MODEL, key, TOKENS, rules=RULES)
    loaded = port.from_torch(tmod, jax.eval_shape(MODEL.init, key, TOKENS))
    reference = {"init" + k: v for k, v in _flat(init).items()}
    reference.update({"load" + k: v for k, v in _flat(loaded).items()})
    np.savez(path / "reference.npz", **reference)
    return path


def _run(folder, steps: str) -> list[dict]:
    port_ = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["PYTHONPATH"] = ROOT
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, str(i), str(port_), str(folder), steps],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for i in range(2)
    ]
    results: dict[int, tuple[str, str]] = {}
    try:
        for i, p in enumerate(procs):
            results[i] = p.communicate(timeout=TIMEOUT)
    finally:
        for i, p in enumerate(procs):  # a failed or hung worker must not outlive the test
            if i not in results:
                p.kill()
                results[i] = p.communicate()
    outs = []
    for i, p in enumerate(procs):
        out, err = results[i]
        assert p.returncode == 0, f"worker {i} failed ({p.returncode}):\n{out}\n{err[-4000:]}"
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return sorted(outs, key=lambda r: r["process"])


def _check_reads(reports) -> None:
    for r in reports:
        assert r["bytes_read"] == r["bytes_expected"], r  # exactly the blocks it holds
        assert r["bytes_read"] < r["bytes_total"], r  # not the whole file
    assert sum(r["bytes_read"] for r in reports) > reports[0]["bytes_total"] // 2


def test_two_processes_init_and_load_only_their_blocks(folder):
    """The default-run variant: a sharded init and a sharded load across 2 processes."""
    reports = _run(folder, "init,load")
    assert [r["process"] for r in reports] == [0, 1]
    assert all(r["init_shards"] > 0 and r["load_shards"] > 0 for r in reports)
    _check_reads(reports)


@pytest.mark.slow
def test_two_processes_load_and_save(folder):
    reports = _run(folder, "load,save")
    _check_reads(reports)
    saved = safetensors.numpy.load_file(reports[0]["saved"])
    original = safetensors.numpy.load_file(str(folder / "gpt.safetensors"))
    assert saved.keys() == original.keys()
    for k in original:
        np.testing.assert_array_equal(saved[k], original[k])
