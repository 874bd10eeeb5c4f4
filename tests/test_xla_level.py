"""The suite's XLA optimization level draws the same bits as XLA's default level.

``conftest.py`` compiles the suite at ``--xla_backend_optimization_level=1``
(about 30% less test time: most of it is compiling small programs), while
users run at the default, 3. Every verdict of the suite carries over only if
both levels draw the same values: here a fresh process at level 3 and this
process draw every scheme (eager, whose bits are drawn flat, and under
``jax.jit``, whose bits are drawn N-D), the three paths of trunc_normal's
quantile, the 16-bit dtypes, and a Linen model through ``jaxinit.flax.init``
(pooled flat programs, host-folded keys); every byte must match.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxinit

ROOT = Path(__file__).resolve().parents[1]
_LEVEL = re.compile(r"--xla_backend_optimization_level=\S+")

# name -> (initializer, eager shape, traced shape, dtypes)
_2D, _3D = (12, 7), (3, 4, 5)
CASES: dict[str, tuple[Any, tuple[int, ...], tuple[int, ...], tuple[Any, ...]]] = {
    "uniform": (jaxinit.uniform(-0.3, 0.7), _2D, _3D, (jnp.float32, jnp.bfloat16)),
    "normal": (jaxinit.normal(0.5, 2.0), _2D, _3D, (jnp.float32, jnp.bfloat16, jnp.float16)),
    "trunc_normal": (jaxinit.trunc_normal(), _2D, _3D, (jnp.float32, jnp.bfloat16)),
    # the quantile's far-tail polynomial (log p down to about -44) ...
    "trunc_normal_far": (jaxinit.trunc_normal(0.0, 1.0, 1.0, 9.0), _2D, _3D, (jnp.float32,)),
    # ... and its log-space tail (log p down to about -800)
    "trunc_normal_tail": (jaxinit.trunc_normal(0.0, 1.0, 1.5, 40.0), _2D, _3D, (jnp.float32,)),
    "constant": (jaxinit.constant(0.3), _2D, _3D, (jnp.float32,)),
    "eye": (jaxinit.eye(), _2D, (5, 9), (jnp.float32,)),
    "dirac": (jaxinit.dirac(groups=2), (4, 3, 5), (6, 2, 3, 3), (jnp.float32,)),
    "xavier_uniform": (jaxinit.xavier_uniform(gain=1.3), _2D, _3D, (jnp.float32,)),
    "xavier_normal": (jaxinit.xavier_normal(), _2D, _3D, (jnp.float32,)),
    "kaiming_uniform": (jaxinit.kaiming_uniform(a=0.1), _2D, _3D, (jnp.float32,)),
    "kaiming_normal": (
        jaxinit.kaiming_normal(mode="fan_out"),
        _2D,
        _3D,
        (jnp.float32, jnp.bfloat16),
    ),
    "orthogonal": (jaxinit.orthogonal(gain=2.0), _2D, _3D, (jnp.float32,)),
    "sparse": (jaxinit.sparse(0.3), _2D, (9, 11), (jnp.float32,)),
    "torch_linear_weight": (jaxinit.torch_linear_weight(), _2D, _3D, (jnp.float32,)),
    "torch_embedding": (jaxinit.torch_embedding(), _2D, _3D, (jnp.float32,)),
}


def _digest(x: Any) -> str:
    a = np.asarray(x)
    return hashlib.sha256(f"{a.dtype}{a.shape}".encode() + a.tobytes()).hexdigest()[:24]


def _model_init(key: jax.Array) -> Any:
    import flax.linen as nn

    import jaxinit.flax

    class Net(nn.Module):
        @nn.compact
        def __call__(self, tokens):
            x = nn.Embed(300, 16)(tokens)
            x = nn.LayerNorm()(x)
            x = nn.MultiHeadDotProductAttention(num_heads=4)(x, x)
            x = nn.Conv(8, (3,))(x)
            return nn.Dense(300)(x)

    tokens = jnp.zeros((1, 6), jnp.int32)
    return jaxinit.flax.init(Net(), key, tokens, rules=jaxinit.flax.TORCH_DEFAULTS)


def draws() -> dict[str, str]:
    """name -> digest of every draw above, in this process's XLA settings."""
    key = jax.random.key(2024)
    out: dict[str, str] = {}
    for name, (init, eager, traced, dtypes) in CASES.items():
        for dtype in dtypes:
            tag = f"{name}/{jnp.dtype(dtype).name}"
            out[f"{tag}/eager{eager}"] = _digest(init(key, eager, dtype))
            run: Callable[[jax.Array], jax.Array] = jax.jit(
                lambda k, init=init, shape=traced, dtype=dtype: init(k, shape, dtype)
            )
            out[f"{tag}/jit{traced}"] = _digest(run(key))
    for path, leaf in jax.tree_util.tree_leaves_with_path(_model_init(key)):
        out[f"linen{jax.tree_util.keystr(path)}"] = _digest(leaf)
    return out


def test_the_suites_optimization_level_draws_the_default_levels_bits():
    env = dict(os.environ)
    flags = _LEVEL.sub("", env.get("XLA_FLAGS", ""))
    env["XLA_FLAGS"] = f"{flags} --xla_backend_optimization_level=3".strip()
    env["PYTHONPATH"] = str(ROOT)
    # the fresh process runs while this one draws the same values
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import json, tests.test_xla_level as t; print(json.dumps(t.draws()))",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    here = draws()
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    default = json.loads(stdout.strip().splitlines()[-1])
    assert sorted(default) == sorted(here)
    differ = [name for name in here if here[name] != default[name]]
    assert not differ, f"level {os.environ.get('XLA_FLAGS')} differs from level 3 in {differ}"
