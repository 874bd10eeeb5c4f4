"""Sharded init of a GPT-shaped model on 8 emulated CPU devices: jaxinit vs Flax's own recipe.

- jaxinit: ``jaxinit.flax.init(model, key, x, rules=TORCH_DEFAULTS, mesh=mesh,
  axis_rules=...)``: each leaf drawn straight into its ``NamedSharding``, by
  a few cached per-(scheme, shape, sharding) programs.
- Flax's recipe: ``jax.jit(model.init, out_shardings=nn.logical_to_mesh_sharding(
  nn.get_partition_spec(jax.eval_shape(model.init, key, x)), mesh, rules))``:
  one program for the whole model. Its Dense kernels use
  ``variance_scaling(1/3, "fan_in", "uniform")`` (torch's Linear default, as
  jaxinit's rules draw) so both sample the same distributions.

Every kernel is sharded over both mesh axes (a (4, 2) mesh: "data" x
"model"; logical names "embed" -> data, "mlp"/"vocab" -> model), biases over
"model", norms replicated.

Each method runs in its own fresh process, in turn (ABAB...), and the table
gives minima: wall time of the first call (tracing + compiling + drawing) and
of a second call; per-device bytes from the compiled programs' memory
analysis (jaxinit: the result per device plus the largest temporary of its
programs; Flax: its one program's output plus temporary), from the live
buffers after the call (device 0), and the process's peak RSS growth during
the call (all 8 devices share the host: divide by 8 for a device).

The compiled programs are caught by wrapping jax's private
``jax._src.compiler.compile_or_get_cached`` (benchmark-only; if jax renames
it, that column is left empty).

    python benchmarks/sharded_init.py                        # ~1.05 B parameters
    python benchmarks/sharded_init.py --layers 2 --width 512 # a quick smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AXIS_RULES = (("embed", "data"), ("mlp", "model"), ("vocab", "model"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=18)
    p.add_argument("--width", type=int, default=2048)
    p.add_argument("--vocab", type=int, default=32768)
    p.add_argument("--rounds", type=int, default=2, help="fresh processes per method")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--run", choices=["jaxinit", "flax"], help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux)
        return True
    except OSError:
        return False


def build(args: argparse.Namespace):
    import flax.linen as nn
    import jax.numpy as jnp

    w = args.width
    kernel = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")  # torch's Linear

    def dense(features, names, name, use_bias=True):
        return nn.Dense(
            features,
            use_bias=use_bias,
            kernel_init=nn.with_logical_partitioning(kernel, names),
            bias_init=nn.with_logical_partitioning(nn.initializers.zeros, names[-1:]),
            name=name,
        )

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.LayerNorm(name="ln_1")(x)
            x = x + dense(w, ("mlp", "embed"), "proj")(
                dense(3 * w, ("embed", "mlp"), "qkv")(h)[..., :w]
            )
            h = nn.LayerNorm(name="ln_2")(x)
            return x + dense(w, ("mlp", "embed"), "fc2")(
                nn.gelu(dense(4 * w, ("embed", "mlp"), "fc")(h))
            )

    class GPT(nn.Module):
        @nn.compact
        def __call__(self, tokens):
            embed = nn.with_logical_partitioning(nn.initializers.normal(1.0), ("vocab", "embed"))
            x = nn.Embed(args.vocab, w, embedding_init=embed, name="wte")(tokens)
            for i in range(args.layers):
                x = Block(name=f"h_{i}")(x)
            x = nn.LayerNorm(name="ln_f")(x)
            return dense(args.vocab, ("embed", "vocab"), "head", use_bias=False)(x)

    return GPT(), jnp.zeros((1, 8), jnp.int32)


def _catch_compiles() -> list[dict]:
    """Records the memory analysis of every program compiled from now on (jax-private hook)."""
    stats: list[dict] = []
    try:
        from jax._src import compiler
    except ImportError:
        return stats
    original = getattr(compiler, "compile_or_get_cached", None)
    if original is None:
        return stats

    def wrapped(*a, **kw):
        executable = original(*a, **kw)
        try:
            m = executable.get_compiled_memory_stats()
            stats.append({"output": m.output_size_in_bytes, "temp": m.temp_size_in_bytes})
        except Exception:  # noqa: BLE001  (not every backend reports it)
            pass
        return executable

    compiler.compile_or_get_cached = wrapped
    return stats


def run(args: argparse.Namespace) -> dict:
    """One method, in this fresh process (XLA_FLAGS set by the parent)."""
    import flax.linen as nn
    import jax

    import jaxinit

    model, tokens = build(args)
    mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
    compiles = _catch_compiles()
    if args.run == "jaxinit":

        def call(key):
            return jaxinit.flax.init(
                model,
                key,
                tokens,
                rules=jaxinit.flax.TORCH_DEFAULTS,
                mesh=mesh,
                axis_rules=AXIS_RULES,
            )

    else:
        jitted: list = []  # the recipe's jitted init, built on the first call and kept

        def call(key):
            if not jitted:
                abstract = jax.eval_shape(model.init, key, tokens)
                specs = nn.get_partition_spec(abstract)
                shardings = nn.logical_to_mesh_sharding(specs, mesh, AXIS_RULES)
                jitted.append(jax.jit(model.init, out_shardings=shardings))
            with nn.logical_axis_rules(AXIS_RULES):
                return jitted[0](key, tokens)

    rss0 = _rss_kib("VmRSS")
    peak_ok = _reset_peak_rss()
    t0 = time.perf_counter()
    out = jax.block_until_ready(call(jax.random.key(0)))
    first = time.perf_counter() - t0
    peak_first = (_rss_kib("VmHWM") - rss0) * 1024 if peak_ok else None
    device = jax.devices()[0]
    leaves = jax.tree_util.tree_leaves(nn.unbox(out))
    live = sum(s.data.nbytes for x in leaves for s in x.addressable_shards if s.device == device)
    n_params = sum(x.size for x in leaves)
    programs = list(compiles)
    del out, leaves
    rss1 = _rss_kib("VmRSS")
    _reset_peak_rss()
    t0 = time.perf_counter()
    out = jax.block_until_ready(call(jax.random.key(1)))
    second = time.perf_counter() - t0
    peak_second = (_rss_kib("VmHWM") - rss1) * 1024 if peak_ok else None
    del out
    if args.run == "jaxinit":  # the result, plus the largest temporary of one program
        analysed = live + max((p["temp"] for p in programs), default=0) if programs else None
    else:
        analysed = max((p["output"] + p["temp"] for p in programs), default=None)
    return {
        "method": args.run,
        "parameters": n_params,
        "first_call_s": first,
        "second_call_s": second,
        "programs_compiled": len(programs),
        "per_device_analysed_bytes": analysed,
        "per_device_live_bytes": live,
        "peak_rss_growth_first_bytes": peak_first,
        "peak_rss_growth_second_bytes": peak_second,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.run:
        print(json.dumps(run(args)), flush=True)
        return
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    results: dict[str, list[dict]] = {"jaxinit": [], "flax": []}
    for _ in range(args.rounds):
        for method in results:
            cmd = [
                sys.executable,
                __file__,
                "--run",
                method,
                "--layers",
                str(args.layers),
                "--width",
                str(args.width),
                "--vocab",
                str(args.vocab),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
            if out.returncode:
                raise SystemExit(f"{method} failed:\n{out.stderr[-4000:]}")
            results[method].append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = {
        m: {
            k: min(r[k] for r in rs) if all(r[k] is not None for r in rs) else None
            for k in rs[0]
            if k not in ("method",)
        }
        for m, rs in results.items()
    }
    gib = 2**30
    print(
        f"{best['jaxinit']['parameters'] / 1e9:.2f} B parameters, float32, 8 host devices, minima of {args.rounds}"
    )
    print(
        "| | first call s | second call s | programs | per device: analysed GiB | live GiB | peak RSS growth GiB (all 8) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for m, b in best.items():

        def g(v):
            return "—" if v is None else f"{v / gib:.2f}"

        print(
            f"| {m} | {b['first_call_s']:.1f} | {b['second_call_s']:.1f} | {b['programs_compiled']} | "
            f"{g(b['per_device_analysed_bytes'])} | {g(b['per_device_live_bytes'])} | "
            f"{g(b['peak_rss_growth_first_bytes'])} |"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": results, "best": best, "load_average": os.getloadavg()}, f, indent=2)


if __name__ == "__main__":
    main()
