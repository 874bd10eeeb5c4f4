"""Loading a ~1 GB safetensors checkpoint into a Flax model: time and host memory.

Compares ``jaxinit.port.from_torch(path, target)`` (pairing, conversion to
Flax layouts, one tensor at a time) with the floor for the same bytes: a plain
read of every tensor with ``safe_open(...).get_tensor`` followed by
``jax.device_put`` of the array as read (no conversion).

- Time: the two are run in turn, round after round, in one process (the file
  in the page cache for both), and each one's minimum is reported.
- Memory: each runs once more in a fresh process under ``tracemalloc``
  (after a warm-up load, so imports and caches are not counted): the peak of
  traced host memory minus what is still held at the end (the result, where
  the CPU client keeps the host buffer), in units of the largest tensor, and
  the process's peak RSS.

The model is GPT-shaped, torch ``nn.Linear`` weights ``(out, in)`` that become
Flax ``Dense`` kernels ``(in, out)`` (every matrix is transposed), float32.

    python benchmarks/load_checkpoint.py                # ~1.07 GB, 3 rounds
    python benchmarks/load_checkpoint.py --layers 2     # a quick smoke run
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import subprocess
import sys
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=16, help="transformer blocks (16: ~1.07 GB)")
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--vocab", type=int, default=32768)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dir", default="/tmp/jaxinit_bench", help="where the checkpoint is written")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument(
        "--trace", action="store_true", help="also time from_torch(..., model=) (traces model.init)"
    )
    p.add_argument("--measure", choices=["floor", "jaxinit"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


def model_and_target(args: argparse.Namespace):
    import flax.linen as nn
    import jax
    import jax.numpy as jnp

    w = args.width

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.LayerNorm(name="ln_1")(x)
            x = x + nn.Dense(w, name="proj")(nn.Dense(3 * w, name="qkv")(h)[..., :w])
            h = nn.LayerNorm(name="ln_2")(x)
            return x + nn.Dense(w, name="fc2")(nn.gelu(nn.Dense(4 * w, name="fc")(h)))

    class GPT(nn.Module):
        @nn.compact
        def __call__(self, tokens):
            x = nn.Embed(args.vocab, w, name="wte")(tokens)
            for i in range(args.layers):
                x = Block(name=f"h_{i}")(x)
            return nn.Dense(args.vocab, use_bias=False, name="head")(nn.LayerNorm(name="ln_f")(x))

    model = GPT()
    tokens = jnp.zeros((1, 8), jnp.int32)
    return model, tokens, jax.eval_shape(model.init, jax.random.key(0), tokens)


def checkpoint(args: argparse.Namespace) -> str:
    """Writes the torch-layout state_dict (random float32) once; returns its path."""
    import numpy as np
    import safetensors.numpy

    w, v = args.width, args.vocab
    path = os.path.join(args.dir, f"gpt_{args.layers}x{w}_{v}.safetensors")
    if os.path.exists(path):
        return path
    os.makedirs(args.dir, exist_ok=True)
    rng = np.random.default_rng(0)

    def t(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    state = {"wte.weight": t(v, w)}
    for i in range(args.layers):
        p = f"h.{i}."
        for ln in ("ln_1", "ln_2"):
            state[p + ln + ".weight"], state[p + ln + ".bias"] = t(w), t(w)
        for name, (o, n) in {
            "qkv": (3 * w, w),
            "proj": (w, w),
            "fc": (4 * w, w),
            "fc2": (w, 4 * w),
        }.items():
            state[p + name + ".weight"], state[p + name + ".bias"] = t(o, n), t(o)
    state["ln_f.weight"], state["ln_f.bias"] = t(w), t(w)
    state["head.weight"] = t(v, w)
    safetensors.numpy.save_file(state, path)
    return path


def floor(path: str):
    """A plain read of every tensor and device_put of it as read."""
    import jax
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as f:
        out = [jax.device_put(f.get_tensor(name)) for name in f.keys()]
    return jax.block_until_ready(out)


def load(path: str, model, tokens, target, trace: bool = False):
    """``from_torch`` into the abstract target; with ``trace``, ``model=`` too (layer classes
    from tracing ``model.init``: a cost that grows with the model's code, not its bytes)."""
    import jax

    import jaxinit.port

    kwargs = {"model": model, "args": (tokens,)} if trace else {}
    return jax.block_until_ready(jaxinit.port.from_torch(path, target, **kwargs))


def sizes(path: str) -> tuple[int, int]:
    """(largest tensor, all tensors) in bytes: a float32 checkpoint."""
    from safetensors import safe_open

    with safe_open(path, framework="numpy") as f:
        nbytes = [math.prod(f.get_slice(k).get_shape()) * 4 for k in f.keys()]
    return max(nbytes), sum(nbytes)


def measure(args: argparse.Namespace) -> dict:
    """One method in this (fresh) process: host memory beyond the result."""
    path = checkpoint(args)
    model, tokens, target = model_and_target(args)
    run = (
        (lambda: floor(path))
        if args.measure == "floor"
        else (lambda: load(path, model, tokens, target))
    )
    run()  # warm: imports, caches, the file in the page cache
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    out = run()
    now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del out
    largest, total = sizes(path)
    return {
        "peak_extra_bytes": peak - now,
        "kept_bytes": now - base,
        "peak_extra_over_largest": (peak - now) / largest,
        "maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args)))
        return
    path = checkpoint(args)
    largest, total = sizes(path)
    model, tokens, target = model_and_target(args)
    runs = {"floor": lambda: floor(path), "jaxinit": lambda: load(path, model, tokens, target)}
    if args.trace:
        runs["jaxinit+model="] = lambda: load(path, model, tokens, target, trace=True)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():  # warm-up: imports, compiles, the page cache
        run()
        gc.collect()
    for _ in range(args.rounds):
        for name, run in runs.items():
            t0 = time.perf_counter()
            out = run()
            times[name].append(time.perf_counter() - t0)
            del out
            gc.collect()
    memory = {}
    for name in ("floor", "jaxinit"):
        cmd = [
            sys.executable,
            __file__,
            "--measure",
            name,
            "--layers",
            str(args.layers),
            "--width",
            str(args.width),
            "--vocab",
            str(args.vocab),
            "--dir",
            args.dir,
        ]
        out = subprocess.run(
            cmd, capture_output=True, text=True, check=True, env=dict(os.environ, PYTHONPATH=ROOT)
        )
        memory[name] = json.loads(out.stdout.strip().splitlines()[-1])
    best = {k: min(v) for k, v in times.items()}
    result = {
        "checkpoint_bytes": total,
        "largest_tensor_bytes": largest,
        "rounds": args.rounds,
        "seconds": times,
        "min_seconds": best,
        "ratio": best["jaxinit"] / best["floor"],
        "memory": memory,
        "load_average": os.getloadavg(),
    }
    print(f"checkpoint {total / 2**30:.2f} GiB, largest tensor {largest / 2**20:.0f} MiB")
    for name in runs:
        line = f"{name:15s} min {best[name]:.2f} s (rounds {', '.join(f'{t:.2f}' for t in times[name])})"
        if name in memory:
            m = memory[name]
            line += (
                f"; peak host memory beyond the result {m['peak_extra_bytes'] / 2**20:.0f} MiB "
                f"= {m['peak_extra_over_largest']:.2f}x the largest tensor; "
                f"max RSS {m['maxrss_bytes'] / 2**30:.2f} GiB"
            )
        print(line)
    for name in runs:
        if name != "floor":
            print(f"{name} / floor: {best[name] / best['floor']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
