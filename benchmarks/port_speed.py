"""How fast ``jaxinit.port.from_torch`` loads a 134M GPT-shaped torch model into its Flax port.

The models are those of ``benchmarks/whole_model.py`` (GPT-2-small-shaped:
vocab 32000, width 768, 12 blocks of LayerNorm + MultiheadAttention + MLP,
134M parameters). In the same process, interleaved, best of ``--repeat``:

  numpy      the floor: every torch tensor as numpy, 2-D weights transposed
             (``np.ascontiguousarray(w.T)``), the rest copied (``np.array(w)``)
  from_torch ``jaxinit.port.from_torch(torch_model, variables, rename=...)``:
             pairing, checks, layout moves (attention split per head),
             ``jax.device_put`` into the variables' dtypes and shardings
  from_torch+model  the same with ``model=`` (an abstract trace of the Linen
             model, for the module classes)
  to_torch   ``jaxinit.port.to_torch(variables, torch_model, ...)`` (the way back)

    python benchmarks/port_speed.py [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from whole_model import DEPTH, _flax_model, _torch_model  # noqa: E402

import jaxinit.port  # noqa: E402

# The Flax model's automatic names (Block_3/Dense_0) for torch's (blocks.3.fc1).
RENAME = [
    ("embed", "Embed_0"),
    ("blocks.*.ln1", "Block_*/LayerNorm_0"),
    ("blocks.*.ln2", "Block_*/LayerNorm_1"),
    ("blocks.*.attn", "Block_*/MultiHeadDotProductAttention_0"),
    # ``nn.Dense(WIDTH)(nn.gelu(nn.Dense(HIDDEN)(h)))`` constructs fc2 first: it is Dense_0.
    ("blocks.*.fc1", "Block_*/Dense_1"),
    ("blocks.*.fc2", "Block_*/Dense_0"),
    ("ln", "LayerNorm_0"),
    ("head", "Dense_0"),
]


def numpy_copy(state: dict) -> list[np.ndarray]:
    out = []
    for t in state.values():
        w = t.detach().numpy()
        out.append(np.ascontiguousarray(w.T) if w.ndim == 2 else np.array(w))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    tmodel = _torch_model()
    state = tmodel.state_dict()
    n_params = sum(t.numel() for t in state.values())
    model = _flax_model()
    x = jnp.zeros((1, 8), jnp.int32)
    variables = jax.jit(model.init)(jax.random.key(0), x)
    jax.block_until_ready(variables)

    def t_numpy():
        return numpy_copy(state)

    def t_from():
        return jax.block_until_ready(jaxinit.port.from_torch(tmodel, variables, rename=RENAME))

    def t_from_model():
        return jax.block_until_ready(
            jaxinit.port.from_torch(tmodel, variables, model=model, args=(x,), rename=RENAME)
        )

    loaded = t_from()

    def t_to():
        return jaxinit.port.to_torch(loaded, tmodel, rename=RENAME)

    cases = {
        "numpy": t_numpy,
        "from_torch": t_from,
        "from_torch+model": t_from_model,
        "to_torch": t_to,
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.repeat):
        for name, fn in cases.items():
            start = time.perf_counter()
            result = fn()
            times[name].append(time.perf_counter() - start)
            del result
    best = {k: min(v) for k, v in times.items()}
    # Correctness of what was timed: the first block's fc1 and the packed query projection.
    p = loaded["params"]
    w = state["blocks.0.fc1.weight"].numpy()
    assert np.array_equal(np.asarray(p["Block_0"]["Dense_1"]["kernel"]), w.T)
    q = state["blocks.0.attn.in_proj_weight"].numpy()[:768]
    assert np.array_equal(
        np.asarray(p["Block_0"]["MultiHeadDotProductAttention_0"]["query"]["kernel"]).reshape(
            768, 768
        ),
        q.T,
    )
    print(
        f"GPT-shaped model, {DEPTH} blocks, {n_params / 1e6:.0f}M parameters "
        f"({n_params * 4 / 2**20:.0f} MiB float32), {len(state)} tensors; "
        f"jax {jax.__version__}, torch {torch.__version__}; best of {args.repeat}"
    )
    for name, secs in best.items():
        ratio = secs / best["numpy"]
        print(f"  {name:18s} {secs:7.3f} s   {ratio:5.2f}x numpy")
    goal = best["from_torch"] / best["numpy"]
    print(f"from_torch / numpy transpose-and-copy: {goal:.2f}x (goal <= 1.5x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"params": n_params, "seconds": best, "all": times}, f, indent=2)


if __name__ == "__main__":
    main()
