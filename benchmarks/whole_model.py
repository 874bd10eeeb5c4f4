"""Whole-model init: a GPT-2-small-shaped model in Flax (jaxinit) vs torch, cold processes.

Each measurement runs in a fresh Python process (imports excluded from the
timed region, compile included), as a user starting a training script would;
the cases are interleaved, round after round, and each case's minimum is kept:

    python benchmarks/whole_model.py            # the table
    python benchmarks/whole_model.py --json out.json --repeat 5
    python benchmarks/whole_model.py --baseline DIR   # also time the jaxinit checked out in DIR
                                                      # (repeatable; case "jaxinit@NAME" for DIR/NAME)

The jaxinit measured is the one of the checkout this script belongs to (its
root goes first on the children's ``PYTHONPATH``), whatever is installed.

Cases:
  torch          build the torch model (its default init), CPU
  jaxinit        jaxinit.flax.init(model, key, x, rules=TORCH_DEFAULTS), cold, then warm;
                 XLA compiles counted and timed inside the cold call only
  jaxinit@NAME   the same with the jaxinit checked out in --baseline .../NAME
  jaxinit-cache  the same in a second process sharing jax's persistent compilation
                 cache with a first one (jax_compilation_cache_dir, opt-in)
  flax-jit       jax.jit(model.init)(key, x), cold (flax's own defaults)
  flax-eager     model.init(key, x), cold
  raw            the RNG floor: jax.random.uniform for as many values as the model
                 has, one jitted call, cold, then warm (the same function again)
  reinit-donate  peak RSS of jaxinit.flax.reinit(variables, ..., donate=True) vs donate=False

With --bert, a BERT-base-shaped NNX model instead (see _bert_model):

    python benchmarks/whole_model.py --bert --json benchmarks/results_nnx_bert.json

  bert-eager         Bert(rngs=nnx.Rngs(key)), cold (flax's own init, eager)
  bert-eager-reinit  the same, then jaxinit.flax.reinit(model, TORCH_DEFAULTS, key=key)
  bert-floor         the floor: nnx.eval_shape of the constructor + one cold jitted uniform
                     of as many values as the model has
  bert-init          jaxinit.flax.init(Bert, key, rules=TORCH_DEFAULTS), cold, then warm
  bert-phases        where bert-init's cold time goes (trace, plan, draws, the rest, merge)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VOCAB, WIDTH, DEPTH, HEADS, HIDDEN = 32000, 768, 12, 12, 3072
PARAMS = 134_240_000  # the model's parameter count (checked by the jaxinit case)
ROOT = Path(__file__).resolve().parents[1]
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def _flax_model():
    import flax.linen as nn

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            h = nn.LayerNorm()(x)
            x = x + nn.MultiHeadDotProductAttention(num_heads=HEADS)(h, h)
            h = nn.LayerNorm()(x)
            return x + nn.Dense(WIDTH)(nn.gelu(nn.Dense(HIDDEN)(h)))

    class GPT(nn.Module):
        @nn.compact
        def __call__(self, tokens):
            x = nn.Embed(VOCAB, WIDTH)(tokens)
            for _ in range(DEPTH):
                x = Block()(x)
            return nn.Dense(VOCAB)(nn.LayerNorm()(x))

    return GPT()


def _torch_model():
    import torch.nn as tnn

    class Block(tnn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = tnn.LayerNorm(WIDTH), tnn.LayerNorm(WIDTH)
            self.attn = tnn.MultiheadAttention(WIDTH, HEADS, batch_first=True)
            self.fc1, self.fc2 = tnn.Linear(WIDTH, HIDDEN), tnn.Linear(HIDDEN, WIDTH)

    class GPT(tnn.Module):
        def __init__(self):
            super().__init__()
            self.embed = tnn.Embedding(VOCAB, WIDTH)
            self.blocks = tnn.ModuleList(Block() for _ in range(DEPTH))
            self.ln, self.head = tnn.LayerNorm(WIDTH), tnn.Linear(WIDTH, VOCAB)

    return GPT()


def _rss_mb() -> float:
    """Current resident set size, from /proc (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _live_mb() -> float:
    """Bytes held by live jax arrays (not deleted), in MiB."""
    import jax

    return sum(a.nbytes for a in jax.live_arrays() if not a.is_deleted()) / 2**20


class _Peak:
    """Samples RSS and live jax-array bytes every few ms in a thread while the block runs.

    RSS alone misleads here: the allocator keeps freed blocks, so a fresh
    allocation may reuse memory without growing RSS. Live array bytes count
    exactly what jax holds.
    """

    def __enter__(self):
        import threading

        self.peak = _rss_mb()
        self.live = _live_mb()
        self._stop = threading.Event()

        def sample():
            while not self._stop.is_set():
                self.peak = max(self.peak, _rss_mb())
                self.live = max(self.live, _live_mb())
                self._stop.wait(0.002)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())
        self.live = max(self.live, _live_mb())


def _case(name: str) -> dict:
    """Runs in the child process."""
    if name.startswith("bert-"):
        return _bert_case(name)
    out: dict = {"case": name}
    if name == "torch":
        import torch

        torch.set_num_threads(2)
        t = time.perf_counter()
        model = _torch_model()
        out["seconds"] = time.perf_counter() - t
        out["params"] = sum(p.numel() for p in model.parameters())
        return out
    import jax
    import jax.numpy as jnp

    if name.startswith("jaxinit-cache"):
        # Opt-in, as a user would: jax's own persistent cache, every program
        # (the default keeps only those compiling for over a second).
        jax.config.update("jax_compilation_cache_dir", os.environ["JAXINIT_BENCH_CACHE"])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    compiles: list[float] = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, secs, **kw: compiles.append(secs) if event == _COMPILE_EVENT else None
    )
    import jaxinit
    import jaxinit.flax

    out["jaxinit_file"] = jaxinit.__file__
    model = _flax_model()
    x = jnp.zeros((1, 8), jnp.int32)
    key = jax.random.key(0)
    jax.block_until_ready((x, key))
    if name == "raw":
        draw = jax.jit(lambda k: jax.random.uniform(k, (PARAMS,)))
        t = time.perf_counter()
        draw(key).block_until_ready()
        out["seconds"] = time.perf_counter() - t
        t = time.perf_counter()
        draw(key).block_until_ready()
        out["warm_seconds"] = time.perf_counter() - t
        return out
    if name.startswith("jaxinit"):
        rules = jaxinit.flax.TORCH_DEFAULTS
        before = len(compiles)
        t = time.perf_counter()
        v = jaxinit.flax.init(model, key, x, rules=rules)
        jax.block_until_ready(v)
        out["seconds"] = time.perf_counter() - t
        out["compiles"] = len(compiles) - before
        out["compile_seconds"] = sum(compiles[before:])
        out["params"] = sum(a.size for a in jax.tree_util.tree_leaves(v))
        assert out["params"] == PARAMS, out["params"]
        del v  # as for the raw case: the previous result is freed before the warm call
        t = time.perf_counter()
        jax.block_until_ready(jaxinit.flax.init(model, key, x, rules=rules))
        out["warm_seconds"] = time.perf_counter() - t
        return out
    if name == "flax-jit":
        t = time.perf_counter()
        jax.block_until_ready(jax.jit(model.init)(key, x))
        out["seconds"] = time.perf_counter() - t
        out["compile_seconds"] = sum(compiles)
        return out
    if name == "flax-eager":
        t = time.perf_counter()
        jax.block_until_ready(model.init(key, x))
        out["seconds"] = time.perf_counter() - t
        return out
    if name.startswith("reinit"):
        donate = name == "reinit-donate"
        v = jax.jit(model.init)(key, x)
        jax.block_until_ready(v)
        nbytes = sum(a.nbytes for a in jax.tree_util.tree_leaves(v))
        rules = jaxinit.flax.TORCH_DEFAULTS
        # Warm up on a throwaway copy (compiles, the abstract trace), so the
        # measured call allocates only what re-initialization itself needs.
        spare = jax.tree_util.tree_map(lambda a: a.copy(), v)
        jax.block_until_ready(jaxinit.flax.reinit(spare, rules, key=key, model=model, args=(x,)))
        del spare
        import gc

        gc.collect()
        before = _rss_mb()
        live_before = _live_mb()
        with _Peak() as peak:
            v = jaxinit.flax.reinit(v, rules, key=key, model=model, args=(x,), donate=donate)
            jax.block_until_ready(v)
        out["param_mb"] = nbytes / 2**20
        out["rss_before_mb"] = before
        out["peak_rss_mb"] = peak.peak
        out["live_before_mb"] = live_before
        out["peak_live_mb"] = peak.live
        return out
    raise SystemExit(f"unknown case {name}")


def _run(case: str, env: dict[str, str]) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--case", case],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _env(jaxinit_root: Path, **extra: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(jaxinit_root), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def _load() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def main() -> None:  # noqa: C901  (one branch per benchmark case)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--repeat", type=int, default=2, help="cold runs per case (min is kept)")
    parser.add_argument("--bert", action="store_true", help="the NNX BERT-base cases instead")
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        help="another jaxinit checkout to time, as case jaxinit@<its directory name> (repeatable)",
    )
    parser.add_argument("--cases", help="comma-separated cases to run (default: all)", default="")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(_case(args.case)))
        return
    if args.bert:
        _bert_main(args)
        return
    others = {f"jaxinit@{Path(d).resolve().name}": Path(d).resolve() for d in args.baseline}
    timed = ["torch", "raw", "jaxinit", *others, "jaxinit-cache", "flax-jit", "flax-eager"]
    memory = ["reinit-donate", "reinit-copy"]
    wanted = [c for c in args.cases.split(",") if c] or timed + memory
    wanted += [c for c in others if "jaxinit" in wanted]
    env = _env(ROOT)
    runs: dict[str, list[dict]] = {}
    loads = [_load()]
    for _ in range(args.repeat):  # interleaved: every case once per round
        for case in [c for c in timed if c in wanted]:
            if case in others:
                result = _run("jaxinit", _env(others[case]))
                result["case"] = case
            elif case == "jaxinit-cache":
                with tempfile.TemporaryDirectory() as cache:
                    cache_env = {**env, "JAXINIT_BENCH_CACHE": cache}
                    first = _run("jaxinit-cache-fill", cache_env)
                    result = _run("jaxinit-cache", cache_env)
                    result["first_process_seconds"] = first["seconds"]
            else:
                result = _run(case, env)
            runs.setdefault(case, []).append(result)
        loads.append(_load())
    for case in [c for c in memory if c in wanted]:
        runs[case] = [_run(case, env)]
    results = {}
    for case, rs in runs.items():
        results[case] = min(rs, key=lambda r: r.get("seconds", 0))
        if "warm_seconds" in rs[0]:
            results[case]["warm_seconds"] = min(r["warm_seconds"] for r in rs)
        results[case]["runs"] = len(rs)
        print(case, json.dumps(results[case]), flush=True)
    results["load_average"] = loads
    print(f"\n1-min load average before/after each round: {loads}")
    if "jaxinit" in results and "raw" in results:
        j, r = results["jaxinit"], results["raw"]
        print(
            f"jaxinit.flax.init cold / raw uniform cold: {j['seconds']:.2f} s / "
            f"{r['seconds']:.2f} s = {j['seconds'] / r['seconds']:.2f}x (goal <= 1.25x); "
            f"{j['compiles']} compiles, {j['compile_seconds']:.2f} s of backend compile"
        )
        print(
            f"jaxinit warm / raw warm: {j['warm_seconds']:.2f} s / {r['warm_seconds']:.2f} s "
            f"= {j['warm_seconds'] / r['warm_seconds']:.2f}x (goal <= 0.9x)"
        )
        for other in [*others, "jaxinit-cache"]:
            if other in results:
                o = results[other]
                print(
                    f"{other}: cold {o['seconds']:.2f} s = {o['seconds'] / r['seconds']:.2f}x raw, "
                    f"warm {o['warm_seconds']:.2f} s, {o['compiles']} compiles, "
                    f"{o['compile_seconds']:.2f} s of backend compile"
                )
    if "torch" in results and "jaxinit" in results:
        t, j = results["torch"]["seconds"], results["jaxinit"]["seconds"]
        print(f"jaxinit.flax.init cold / torch: {j:.2f} s / {t:.2f} s = {j / t:.2f}x")
    for case in memory:
        if case not in results:
            continue
        r = results[case]
        print(
            f"{case}: params {r['param_mb']:.0f} MiB; live jax arrays peak "
            f"{r['peak_live_mb']:.0f} MiB = {r['peak_live_mb'] / r['param_mb']:.2f}x params "
            f"(before {r['live_before_mb']:.0f} MiB); RSS {r['rss_before_mb']:.0f} -> "
            f"{r['peak_rss_mb']:.0f} MiB"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


# ----------------------------------------------------------------------------
# NNX: a BERT-base-shaped encoder, built by jaxinit.flax.init vs eagerly

BERT_VOCAB, BERT_POSITIONS, BERT_TYPES = 30522, 512, 2
BERT_WIDTH, BERT_DEPTH, BERT_HEADS, BERT_HIDDEN = 768, 12, 12, 3072


def _bert_model():
    """The BERT-base encoder's parameters (no task head): 109.5M, in NNX."""
    from flax import nnx

    class Layer(nnx.Module):
        def __init__(self, rngs):
            self.attention = nnx.MultiHeadAttention(BERT_HEADS, BERT_WIDTH, decode=False, rngs=rngs)
            self.attention_norm = nnx.LayerNorm(BERT_WIDTH, rngs=rngs)
            self.intermediate = nnx.Linear(BERT_WIDTH, BERT_HIDDEN, rngs=rngs)
            self.output = nnx.Linear(BERT_HIDDEN, BERT_WIDTH, rngs=rngs)
            self.output_norm = nnx.LayerNorm(BERT_WIDTH, rngs=rngs)
            self.dropout = nnx.Dropout(0.1, rngs=rngs)

    class Bert(nnx.Module):
        def __init__(self, *, rngs):
            self.word_embeddings = nnx.Embed(BERT_VOCAB, BERT_WIDTH, rngs=rngs)
            self.position_embeddings = nnx.Embed(BERT_POSITIONS, BERT_WIDTH, rngs=rngs)
            self.token_type_embeddings = nnx.Embed(BERT_TYPES, BERT_WIDTH, rngs=rngs)
            self.embeddings_norm = nnx.LayerNorm(BERT_WIDTH, rngs=rngs)
            self.dropout = nnx.Dropout(0.1, rngs=rngs)
            self.layers = nnx.List([Layer(rngs) for _ in range(BERT_DEPTH)])
            self.pooler = nnx.Linear(BERT_WIDTH, BERT_WIDTH, rngs=rngs)

    return Bert


def _bert_case(name: str) -> dict:
    """One BERT case, in the child process."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    compiles: list[float] = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, secs, **kw: (
            compiles.append(secs) if event == "/jax/core/compile/backend_compile_duration" else None
        )
    )
    import jaxinit
    import jaxinit.flax

    bert = _bert_model()
    key = jax.random.key(0)
    rules = jaxinit.flax.TORCH_DEFAULTS
    out: dict = {"case": name}

    def params(module) -> int:
        return sum(v.size for v in jax.tree_util.tree_leaves(nnx.state(module, nnx.Param)))

    if name in ("bert-eager", "bert-eager-reinit"):
        t = time.perf_counter()
        model = bert(rngs=nnx.Rngs(key))
        jax.block_until_ready(nnx.state(model))
        out["build_seconds"] = time.perf_counter() - t
        if name == "bert-eager-reinit":
            t2 = time.perf_counter()
            jax.block_until_ready(nnx.state(jaxinit.flax.reinit(model, rules, key=key)))
            out["reinit_seconds"] = time.perf_counter() - t2
        out["seconds"] = time.perf_counter() - t
        out["compiles"], out["compile_seconds"] = len(compiles), sum(compiles)
        out["params"] = params(model)
        return out
    if name == "bert-init":
        t = time.perf_counter()
        model = jaxinit.flax.init(bert, key, rules=rules)
        jax.block_until_ready(nnx.state(model))
        out["seconds"] = time.perf_counter() - t
        out["compiles"], out["compile_seconds"] = len(compiles), sum(compiles)
        out["params"] = params(model)
        del model  # freed before the warm call, as in the GPT cases
        before = len(compiles)
        t = time.perf_counter()
        jax.block_until_ready(nnx.state(jaxinit.flax.init(bert, key, rules=rules)))
        out["warm_seconds"] = time.perf_counter() - t
        out["warm_compiles"] = len(compiles) - before
        return out
    if name == "bert-floor":  # the floor: abstract constructor trace + one cold uniform
        t = time.perf_counter()
        abstract = nnx.eval_shape(lambda: bert(rngs=nnx.Rngs(key)))
        out["trace_seconds"] = time.perf_counter() - t
        n = params(abstract)
        t2 = time.perf_counter()
        uniform = jax.jit(lambda k: jax.random.uniform(k, (n,), jnp.float32))
        jax.block_until_ready(uniform(key))
        out["uniform_seconds"] = time.perf_counter() - t2
        out["seconds"] = time.perf_counter() - t
        out["params"] = n
        return out
    if name == "bert-phases":
        from jaxinit._src.flax import nnx_init as flax_nnx_init
        from jaxinit._src.tree import draw
        from jaxinit._src.tree.plan import plan
        from jaxinit._src.tree.rules import as_rules

        phases = {}
        t = time.perf_counter()
        traced = flax_nnx_init.trace_nnx(bert, key, (), {})
        phases["trace"] = time.perf_counter() - t
        t = time.perf_counter()
        jobs = plan(traced.leaves, as_rules(rules), True, "keep", abstract_ok=True)
        phases["plan"] = time.perf_counter() - t
        before = sum(compiles)
        t = time.perf_counter()
        drawn = draw.draw_jobs(key, jobs, [leaf.value for leaf in traced.leaves])
        jax.block_until_ready(drawn)
        phases["draw"] = time.perf_counter() - t
        phases["draw_compile"] = sum(compiles) - before
        done = {job.index for job in jobs}
        rest = tuple(i for i in range(len(traced.leaves)) if i not in done)
        t = time.perf_counter()
        rest_values = traced.rest_values(rest, [key])
        jax.block_until_ready(rest_values)
        phases["rest"] = time.perf_counter() - t
        t = time.perf_counter()
        values = [None] * len(traced.leaves)
        for job, x in zip(jobs, drawn):
            values[job.index] = x
        for i, x in zip(rest, rest_values):
            values[i] = x
        nnx.merge(traced.graphdef, jax.tree_util.tree_unflatten(traced.treedef, values))
        phases["merge"] = time.perf_counter() - t
        out.update(phases, leaves=len(traced.leaves), drawn=len(jobs), rest_leaves=len(rest))
        return out
    raise SystemExit(f"unknown case {name}")


def _bert_main(args) -> None:
    """Each case in a fresh process, the cases interleaved round by round; the minimum is kept.

    ``--cases`` picks among them (the summary needs bert-floor, bert-eager,
    bert-eager-reinit and bert-init); each ``--baseline`` checkout adds a
    ``bert-init@NAME`` case, the same call with that jaxinit.
    """
    cases = ["bert-floor", "bert-eager", "bert-eager-reinit", "bert-init", "bert-phases"]
    wanted = [c for c in args.cases.split(",") if c] or cases
    envs = {case: _env(ROOT) for case in cases if case in wanted}
    for d in args.baseline:
        envs[f"bert-init@{Path(d).resolve().name}"] = _env(Path(d).resolve())
    runs: dict[str, list[dict]] = {case: [] for case in envs}
    for _ in range(args.repeat):
        for case, env in envs.items():
            load = _load()
            proc = subprocess.run(
                [sys.executable, __file__, "--case", case.split("@")[0]],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            runs[case].append({**json.loads(proc.stdout.strip().splitlines()[-1]), "load": load})
            runs[case][-1]["case"] = case
            print(case, json.dumps(runs[case][-1]), flush=True)
    results = {}
    for case, rs in runs.items():
        key = "seconds" if case != "bert-phases" else "trace"
        results[case] = min(rs, key=lambda r: r[key])
        results[case]["runs"] = [r[key] for r in rs]
        if case.startswith("bert-init"):
            results[case]["warm_seconds"] = min(r["warm_seconds"] for r in rs)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if not {"bert-floor", "bert-eager", "bert-eager-reinit", "bert-init"} <= results.keys():
        return
    eager, init = results["bert-eager"]["seconds"], results["bert-init"]["seconds"]
    floor = results["bert-floor"]["seconds"]
    print(
        f"\njaxinit.flax.init cold / floor (abstract constructor trace + one cold uniform): "
        f"{init:.2f} s / {floor:.2f} s = {init / floor:.2f}x (goal <= 1.15x)"
    )
    print(
        f"jaxinit.flax.init cold / eager build: {init:.2f} s / {eager:.2f} s = "
        f"{init / eager:.2f}x; eager build + reinit "
        f"{results['bert-eager-reinit']['seconds']:.2f} s; warm init "
        f"{results['bert-init']['warm_seconds']:.2f} s"
    )
    for case in [c for c in results if "@" in c]:
        other = results[case]
        print(
            f"{case}: cold {other['seconds']:.2f} s = {other['seconds'] / floor:.2f}x the floor, "
            f"warm {other['warm_seconds']:.2f} s"
        )


if __name__ == "__main__":
    main()
