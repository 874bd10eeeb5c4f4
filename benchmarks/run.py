"""Benchmarks jaxinit against raw jax.random, jax.nn.initializers and torch.nn.init.

Usage::

    python benchmarks/run.py                     # full run (CPU), prints the tables
    python benchmarks/run.py --quick             # small shapes, few repetitions
    python benchmarks/run.py --sharded --json results.json --plot ratios.png

Every time is the minimum over ``--reps`` calls after one warm-up call, each
ended by ``block_until_ready``. The jaxinit column calls the public
initializer (``jaxinit.kaiming_normal()(key, shape)``, Python dispatch
included); "raw" is the same distribution written directly with
``jax.random`` and jitted; "jax.nn" is the like-for-like
``jax.nn.initializers`` initializer where one exists (``he_normal``,
``glorot_normal`` and ``lecun_normal`` are *truncated* normals, so the
untruncated ``variance_scaling(..., "normal")`` is used instead); "torch" is
``torch.nn.init.X_`` on a freshly allocated ``torch.empty(shape)``, as when a
new parameter is created.

``--sharded`` re-runs every scheme in a subprocess with 8 host CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``), initializing directly
into a ``NamedSharding`` on a (4, 2) mesh, and checks the shard sizes and that
the values equal the unsharded result.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

_SHARDED_FLAG = "--xla_force_host_platform_device_count=8"

# jax's CPU QR (orthogonal) calls scipy's OpenBLAS; its threads spin against
# XLA's own thread pool, which on a small machine makes QR times 5-50x slower and
# erratic (measured: 1024x1024 QR 0.17 s with one thread, 0.8-1.4 s without).
# Set before numpy/scipy load; an explicit setting in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

if "--_sharded-worker" in sys.argv:  # must happen before jax is imported
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _SHARDED_FLAG).strip()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import jaxinit  # noqa: E402

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_NO_JAXNN = "none"  # marker: jax.nn.initializers has no equivalent


# ----------------------------------------------------------------------------
# timing and compile counting


def time_interleaved(
    fns: dict[str, Callable[[], Any]], reps: int, min_total_s: float = 3.0, max_rounds: int = 25
) -> dict[str, float | str]:
    """Min-of-N times of several functions, called in turn each round.

    Interleaving puts every contender under the same background load, so the
    ratios stay fair on a shared machine; fast cases get more rounds (at least
    ``reps``, then more until ``min_total_s`` has passed, at most ``max_rounds``)
    so that their minimum is as trustworthy as a slow case's. A function that
    raises (an unsupported dtype, say) gets the error message instead of a time.
    """
    live: dict[str, Callable[[], Any]] = {}
    out: dict[str, float | str] = {}
    for name, fn in fns.items():
        try:
            jax.block_until_ready(fn())  # warm-up (compiles)
            live[name] = fn
            out[name] = math.inf
        except Exception as e:  # noqa: BLE001  (an unsupported combination: torch QR in bf16, ...)
            out[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:90]}"
    start = time.perf_counter()
    rounds = 0
    while (
        live
        and rounds < max_rounds
        and (rounds < reps or time.perf_counter() - start < min_total_s)
    ):
        rounds += 1
        for name, fn in live.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn())
            out[name] = min(out[name], time.perf_counter() - t0)  # type: ignore[type-var]
    return out


class CompileCounter:
    """Counts XLA backend compilations (a public ``jax.monitoring`` event)."""

    def __init__(self) -> None:
        self.count = 0

    def _listener(self, event: str, duration: float, **kwargs: Any) -> None:
        if event == _COMPILE_EVENT:
            self.count += 1

    def __enter__(self) -> CompileCounter:
        jax.monitoring.register_event_duration_secs_listener(self._listener)
        return self

    def __exit__(self, *exc: Any) -> None:
        jax.monitoring.unregister_event_duration_listener(self._listener)


# ----------------------------------------------------------------------------
# the cases


@dataclasses.dataclass
class Case:
    scheme: str
    shape: tuple[int, ...]
    dtype: Any
    init: jaxinit.Initializer
    changed: jaxinit.Initializer  # same scheme, other hyperparameters
    raw: Callable[[jax.Array], jax.Array] | None
    jaxnn: Any  # an initializer, _NO_JAXNN, or None
    torch: Callable[[], Any] | None
    random: bool = True
    note: str = ""

    @property
    def label(self) -> str:
        dt = np.dtype(self.dtype).name
        return f"{self.scheme} {'x'.join(map(str, self.shape))}" + (
            "" if dt == "float32" else f" {dt}"
        )


def _torch_init(name: str, shape: tuple[int, ...], *args: Any, dtype: Any = None, **kwargs: Any):
    import torch

    fn = getattr(torch.nn.init, name)
    tdtype = dtype or torch.float32

    def run():
        t = torch.empty(shape, dtype=tdtype)
        with torch.no_grad():
            fn(t, *args, **kwargs)
        return t

    return run


def _orthogonal_raw(shape: tuple[int, ...], dtype: Any) -> Callable[[jax.Array], jax.Array]:
    """torch's algorithm written directly: QR of a normal matrix, sign-fixed."""
    rows, cols = shape[0], math.prod(shape[1:])

    @jax.jit
    def raw(key):
        flat = jax.random.normal(key, (rows, cols), jnp.float32)
        if rows < cols:
            flat = flat.T
        q, r = jnp.linalg.qr(flat)
        q = q * jnp.sign(jnp.diagonal(r))
        if rows < cols:
            q = q.T
        return q.reshape(shape).astype(dtype)

    return raw


def cases(quick: bool) -> list[Case]:
    import torch

    vs = jax.nn.initializers.variance_scaling
    n = 1024 if quick else 4096
    iid = (n, n)
    fan = iid[1]
    gain_relu = math.sqrt(2.0)  # kaiming default: leaky_relu with a=0
    kaiming_std = gain_relu / math.sqrt(fan)
    xavier_std = math.sqrt(2.0 / (iid[0] + iid[1]))
    f32 = jnp.float32

    def jit_raw(fn):
        return jax.jit(fn)

    out: list[Case] = [
        Case(
            "uniform",
            iid,
            f32,
            jaxinit.uniform(),
            jaxinit.uniform(-3.0, 5.0),
            jit_raw(lambda k: jax.random.uniform(k, iid, f32, 0.0, 1.0)),
            jax.nn.initializers.uniform(1.0),
            _torch_init("uniform_", iid),
        ),
        Case(
            "normal",
            iid,
            f32,
            jaxinit.normal(),
            jaxinit.normal(2.0, 3.0),
            jit_raw(lambda k: jax.random.normal(k, iid, f32) * 1.0 + 0.0),
            jax.nn.initializers.normal(1.0),
            _torch_init("normal_", iid),
        ),
        Case(
            "trunc_normal",
            iid,
            f32,
            jaxinit.trunc_normal(),
            jaxinit.trunc_normal(0.5, 2.0, -1.0, 3.0),
            jit_raw(lambda k: jax.random.truncated_normal(k, -2.0, 2.0, iid, f32) * 1.0 + 0.0),
            jax.nn.initializers.truncated_normal(1.0, lower=-2.0, upper=2.0),
            _torch_init("trunc_normal_", iid),
            note="jaxinit inverts the normal CDF (ndtri); jax.random uses erfinv",
        ),
        Case(
            "constant",
            iid,
            f32,
            jaxinit.constant(0.5),
            jaxinit.constant(-2.0),
            jit_raw(lambda k: jnp.full(iid, 0.5, f32)),
            jax.nn.initializers.constant(0.5),
            _torch_init("constant_", iid, 0.5),
            random=False,
        ),
        Case(
            "ones",
            iid,
            f32,
            jaxinit.ones(),
            jaxinit.ones(dtype=f32),
            jit_raw(lambda k: jnp.ones(iid, f32)),
            jax.nn.initializers.ones,
            _torch_init("ones_", iid),
            random=False,
        ),
        Case(
            "zeros",
            iid,
            f32,
            jaxinit.zeros(),
            jaxinit.zeros(dtype=f32),
            jit_raw(lambda k: jnp.zeros(iid, f32)),
            jax.nn.initializers.zeros,
            _torch_init("zeros_", iid),
            random=False,
        ),
    ]
    eye_shape = (2048, 2048) if quick else (8192, 8192)
    out.append(
        Case(
            "eye",
            eye_shape,
            f32,
            jaxinit.eye(),
            jaxinit.eye(dtype=f32),
            jit_raw(lambda k: jnp.eye(*eye_shape, dtype=f32)),
            _NO_JAXNN,
            _torch_init("eye_", eye_shape),
            random=False,
        )
    )
    dshape = (256, 256, 3, 3) if quick else (1024, 1024, 3, 3)

    def dirac_raw(k):
        d = jnp.arange(min(dshape[0], dshape[1]))
        return jnp.zeros(dshape, f32).at[d, d, dshape[2] // 2, dshape[3] // 2].set(1.0)

    out.append(
        Case(
            "dirac",
            dshape,
            f32,
            jaxinit.dirac(),
            jaxinit.dirac(groups=2),
            jit_raw(dirac_raw),
            _NO_JAXNN,
            _torch_init("dirac_", dshape),
            random=False,
            note="jax.nn.initializers.delta_orthogonal is a different scheme",
        )
    )
    xb = math.sqrt(3.0) * xavier_std
    kb = math.sqrt(3.0) * kaiming_std
    out += [
        Case(
            "xavier_uniform",
            iid,
            f32,
            jaxinit.xavier_uniform(),
            jaxinit.xavier_uniform(2.0),
            jit_raw(lambda k: jax.random.uniform(k, iid, f32, -xb, xb)),
            vs(1.0, "fan_avg", "uniform", in_axis=1, out_axis=0),
            _torch_init("xavier_uniform_", iid),
        ),
        Case(
            "xavier_normal",
            iid,
            f32,
            jaxinit.xavier_normal(),
            jaxinit.xavier_normal(2.0),
            jit_raw(lambda k: jax.random.normal(k, iid, f32) * xavier_std),
            vs(1.0, "fan_avg", "normal", in_axis=1, out_axis=0),
            _torch_init("xavier_normal_", iid),
            note="glorot_normal is truncated: variance_scaling(1, fan_avg, normal) used",
        ),
        Case(
            "kaiming_uniform",
            iid,
            f32,
            jaxinit.kaiming_uniform(),
            jaxinit.kaiming_uniform(math.sqrt(5.0), "fan_out", "relu"),
            jit_raw(lambda k: jax.random.uniform(k, iid, f32, -kb, kb)),
            vs(2.0, "fan_in", "uniform", in_axis=1, out_axis=0),
            _torch_init("kaiming_uniform_", iid),
        ),
        Case(
            "kaiming_normal",
            iid,
            f32,
            jaxinit.kaiming_normal(),
            jaxinit.kaiming_normal(0.1, "fan_out", "leaky_relu"),
            jit_raw(lambda k: jax.random.normal(k, iid, f32) * kaiming_std),
            vs(2.0, "fan_in", "normal", in_axis=1, out_axis=0),
            _torch_init("kaiming_normal_", iid),
            note="he_normal is truncated: variance_scaling(2, fan_in, normal) used",
        ),
    ]
    for oshape, dt in (
        [((256, 256), f32), ((512, 128), f32), ((256, 256), jnp.bfloat16)]
        if quick
        else [((1024, 1024), f32), ((2048, 512), f32), ((1024, 1024), jnp.bfloat16)]
    ):
        tdt = torch.bfloat16 if dt == jnp.bfloat16 else torch.float32
        out.append(
            Case(
                "orthogonal",
                oshape,
                dt,
                jaxinit.orthogonal(),
                jaxinit.orthogonal(2.0),
                _orthogonal_raw(oshape, dt),
                jax.nn.initializers.orthogonal(),
                _torch_init("orthogonal_", oshape, dtype=tdt),
                note="raw = torch's QR algorithm in jnp; both QR-bound",
            )
        )
    out.append(
        Case(
            "sparse",
            iid,
            f32,
            jaxinit.sparse(0.1),
            jaxinit.sparse(0.3, std=1.0),
            jit_raw(lambda k: jax.random.normal(k, iid, f32) * 0.01),
            _NO_JAXNN,
            _torch_init("sparse_", iid, 0.1),
            note="sparsity 0.1; raw = jax.random.normal of the same shape",
        )
    )
    return out


# ----------------------------------------------------------------------------
# measurements


def measure(case: Case, reps: int, key: jax.Array) -> dict[str, Any]:
    shape, dtype = case.shape, case.dtype
    row: dict[str, Any] = {
        "case": case.label,
        "scheme": case.scheme,
        "shape": list(shape),
        "dtype": np.dtype(dtype).name,
        "note": case.note,
    }
    # First call from a cold cache: trace + compile + run; and how many compiles it took.
    jax.clear_caches()
    with CompileCounter() as cc:
        start = time.perf_counter()
        jax.block_until_ready(case.init(key, shape, dtype))
        row["first_call_s"] = time.perf_counter() - start
    row["compiles_first_call"] = cc.count
    # Same scheme and shape, other hyperparameters (and another key): no compile.
    other_key = jax.block_until_ready(jax.random.fold_in(key, 1))
    with CompileCounter() as cc:
        jax.block_until_ready(case.changed(other_key, shape, dtype))
    row["compiles_hyperparam_change"] = cc.count

    fns: dict[str, Callable[[], Any]] = {"jaxinit": lambda: case.init(key, shape, dtype)}
    if case.raw is not None:
        fns["raw"] = lambda: case.raw(key)
    if case.jaxnn != _NO_JAXNN:
        jfn = jax.jit(lambda k: case.jaxnn(k, shape, dtype))
        fns["jaxnn"] = lambda: jfn(key)
    fns["torch"] = case.torch
    times = time_interleaved(fns, reps)
    for name in ("jaxinit", "raw", "jaxnn", "torch"):
        t = times.get(name, "no equivalent")
        row[f"{name}_s"], row[f"{name}_error"] = (t, "") if isinstance(t, float) else (None, t)
    row["compile_s"] = max(row["first_call_s"] - row["jaxinit_s"], 0.0)
    for ref in ("raw", "jaxnn", "torch"):
        t = row[f"{ref}_s"]
        row[f"ratio_{ref}"] = row["jaxinit_s"] / t if t else None
    return row


def sampling_rates(quick: bool, reps: int) -> dict[str, float]:
    """Values per second of the raw generators on this machine (timed interleaved).

    jaxinit's rows are the same bits as jax.random's (its Threefry-2x32
    written out, ``jaxinit._src.core.threefry``), so the difference between
    the two is how XLA compiles them.
    """
    import torch

    from jaxinit._src.core import threefry

    n = 1 << (20 if quick else 24)
    key = jax.random.key(0)
    bits = jax.jit(lambda k: jax.random.bits(k, (n,), jnp.uint32))
    uniform = jax.jit(lambda k: jax.random.uniform(k, (n,)))
    normal = jax.jit(lambda k: jax.random.normal(k, (n,)))
    our_bits = jax.jit(lambda k: threefry.random_bits(k, (n,), jnp.uint32))
    our_uniform = jax.jit(lambda k: jaxinit.uniform()(k, (n,)))
    our_normal = jax.jit(lambda k: jaxinit.normal()(k, (n,)))
    times = time_interleaved(
        {
            "jax.random.bits uint32": lambda: bits(key),
            "jax.random.uniform f32": lambda: uniform(key),
            "jax.random.normal f32": lambda: normal(key),
            "jaxinit threefry bits uint32": lambda: our_bits(key),
            "jaxinit uniform f32": lambda: our_uniform(key),
            "jaxinit normal f32": lambda: our_normal(key),
            "torch random_ int32": lambda: torch.empty(n, dtype=torch.int32).random_(),
            "torch uniform_ f32": lambda: torch.empty(n).uniform_(),
            "torch normal_ f32": lambda: torch.empty(n).normal_(),
        },
        reps,
    )
    return {name: n / t for name, t in times.items() if isinstance(t, float)}


def sparse_profile(quick: bool, reps: int) -> dict[str, float]:
    """Where sparse's time goes: the values, the mask, and the whole kernel."""
    from jaxinit._src.schemes.floyd import sparse_mask

    n = 1024 if quick else 4096
    k = math.ceil(0.1 * n)
    key = jax.random.key(0)
    mask = jax.jit(sparse_mask, static_argnums=(1, 2))
    values = jax.jit(lambda kk: jax.random.normal(kk, (n, n)) * 0.01)
    init = jaxinit.sparse(0.1)
    return time_interleaved(
        {
            "values (jax.random.normal)": lambda: values(key),
            f"mask (sparse_mask, k={k})": lambda: mask(key, n, n, np.int32(k)),
            "mask, k=rows/2 (worst case)": lambda: mask(key, n, n, np.int32(n // 2)),
            "sparse (whole)": lambda: init(key, (n, n)),
        },
        reps,
    )


# ----------------------------------------------------------------------------
# the sharded case (runs in a subprocess with 8 host devices)


def sharded_worker(quick: bool, reps: int) -> list[dict[str, Any]]:
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    devices = jax.devices()
    if len(devices) < 8:
        raise RuntimeError(f"expected 8 host devices, got {len(devices)}")
    mesh = Mesh(np.array(devices[:8]).reshape(4, 2), ("x", "y"))
    key = jax.random.key(0)
    rows = []
    for case in cases(quick):
        spec = P("x", "y", *([None] * (len(case.shape) - 2)))
        sharding = NamedSharding(mesh, spec)
        row: dict[str, Any] = {"case": case.label}
        ref = np.asarray(case.init(key, case.shape, case.dtype))
        out = case.init(key, case.shape, case.dtype, sharding)
        shards = out.addressable_shards
        expect = (case.shape[0] // 4, case.shape[1] // 2, *case.shape[2:])
        row["n_shards"] = len(shards)
        row["shard_shape"] = list(shards[0].data.shape)
        row["shards_are_eighths"] = (
            len(shards) == 8
            and len({s.device for s in shards}) == 8
            and all(s.data.shape == expect and s.data.size * 8 == out.size for s in shards)
        )
        row["sharding_ok"] = out.sharding.is_equivalent_to(sharding, out.ndim)
        got = np.asarray(out)
        row["equal_unsharded"] = bool(np.array_equal(got, ref))
        row["max_abs_diff"] = float(np.max(np.abs(got.astype(np.float32) - ref.astype(np.float32))))
        init, shape, dtype = case.init, case.shape, case.dtype
        times = time_interleaved(
            {
                "sharded": lambda init=init, shape=shape, dtype=dtype, s=sharding: init(
                    key, shape, dtype, s
                ),
                "unsharded": lambda init=init, shape=shape, dtype=dtype: init(key, shape, dtype),
            },
            reps,
        )
        row["sharded_s"], row["unsharded_s"] = times["sharded"], times["unsharded"]
        rows.append(row)
    return rows


def run_sharded(quick: bool, reps: int) -> list[dict[str, Any]]:
    # 8 devices share this machine's cores: fewer repetitions keep the run short.
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--_sharded-worker",
        "--reps",
        str(min(reps, 3)),
    ]
    if quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"sharded worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------
# goals and output


def goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by = {r["case"]: r for r in rows}
    out = []

    def add(goal: str, value: float | None, limit: float, what: str) -> None:
        out.append(
            {
                "goal": goal,
                "measured": value,
                "limit": limit,
                "met": value is not None and value <= limit,
                "what": what,
            }
        )

    iid = [
        "uniform",
        "normal",
        "trunc_normal",
        "xavier_uniform",
        "xavier_normal",
        "kaiming_uniform",
        "kaiming_normal",
    ]
    for r in rows:
        if r["scheme"] in iid or r["scheme"] == "orthogonal":
            add(f"{r['case']}: <= 1.05x raw jax.random", r["ratio_raw"], 1.05, "jaxinit/raw")
            if r["jaxnn_s"] is not None:
                # 'no more than jax.nn': 1.0, plus the 5% min-of-N noise we measured on this VM
                add(
                    f"{r['case']}: <= jax.nn.initializers (5% noise allowance)",
                    r["ratio_jaxnn"],
                    1.05,
                    "jaxinit/jax.nn",
                )
    for r in rows:
        if r["scheme"] == "sparse":
            add(f"{r['case']}: <= 1.5x raw jax.random.normal", r["ratio_raw"], 1.5, "jaxinit/raw")
        if r["scheme"] == "dirac":
            add(f"{r['case']}: <= 0.9x torch dirac_", r["ratio_torch"], 0.9, "jaxinit/torch")
        if r["scheme"] == "eye":
            add(f"{r['case']}: <= 1.2x torch eye_", r["ratio_torch"], 1.2, "jaxinit/torch")
        if r["scheme"] == "orthogonal" and r["jaxnn_s"] is not None:
            add(
                f"{r['case']}: orthogonal <= 1.05x jax.nn orthogonal",
                r["ratio_jaxnn"],
                1.05,
                "jaxinit/jax.nn",
            )
    del by
    return out


def _ms(t: float | None) -> str:
    return "—" if t is None else f"{t * 1e3:.1f}"


def _x(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}x"


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| case | jaxinit ms | raw jax.random ms | jax.nn ms | torch ms | /raw | /jax.nn | /torch "
        "| first call s | compiles (1st, hparam change) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['case']} | {_ms(r['jaxinit_s'])} | {_ms(r['raw_s'])} | {_ms(r['jaxnn_s'])} | "
            f"{_ms(r['torch_s'])} | {_x(r['ratio_raw'])} | {_x(r['ratio_jaxnn'])} | "
            f"{_x(r['ratio_torch'])} | {r['first_call_s']:.2f} | "
            f"{r['compiles_first_call']}, {r['compiles_hyperparam_change']} |"
        )
    notes = [f"- {r['case']}: {r['note']}" for r in result["rows"] if r["note"]]
    notes += [
        f"- {r['case']}: jax.nn {r['jaxnn_error']}"
        for r in result["rows"]
        if r["jaxnn_error"] and r["jaxnn_error"] != "no equivalent"
    ]
    notes += [
        f"- {r['case']}: torch {r['torch_error']}" for r in result["rows"] if r["torch_error"]
    ]
    if notes:
        lines += ["", "Notes:", *notes]
    lines += ["", "Raw sampling rates (values/s):", "", "| generator | Mvalues/s |", "|---|---:|"]
    lines += [f"| {k} | {v / 1e6:.0f} |" for k, v in result["rates"].items()]
    lines += ["", "sparse profile:", "", "| part | ms |", "|---|---:|"]
    lines += [f"| {k} | {_ms(v)} |" for k, v in result["sparse_profile"].items()]
    lines += ["", "Goals:", "", "| goal | measured | met |", "|---|---:|---|"]
    lines += [
        f"| {g['goal']} | {_x(g['measured'])} | {'yes' if g['met'] else 'NO'} |"
        for g in result["goals"]
    ]
    if result.get("sharded"):
        lines += [
            "",
            "Sharded (8 host CPU devices, (4, 2) mesh, NamedSharding P('x', 'y')):",
            "",
            "| case | sharded ms | unsharded ms | shard shape | 8 shards of 1/8 | equals unsharded |",
            "|---|---:|---:|---|---|---|",
        ]
        for r in result["sharded"]:
            eq = "yes" if r["equal_unsharded"] else f"no (max diff {r['max_abs_diff']:.2g})"
            lines.append(
                f"| {r['case']} | {_ms(r['sharded_s'])} | {_ms(r['unsharded_s'])} | "
                f"{'x'.join(map(str, r['shard_shape']))} | "
                f"{'yes' if r['shards_are_eighths'] and r['sharding_ok'] else 'NO'} | {eq} |"
            )
    return "\n".join(lines)


def plot(result: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    labels = [r["case"] for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.8), 5))
    for i, (ref, name) in enumerate(
        [
            ("raw", "jaxinit / raw jax.random"),
            ("jaxnn", "jaxinit / jax.nn.initializers"),
            ("torch", "jaxinit / torch.nn.init"),
        ]
    ):
        vals = [r[f"ratio_{ref}"] or np.nan for r in rows]
        ax.bar(x + (i - 1) * 0.27, vals, 0.27, label=name)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_yscale("log")
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("time ratio (lower is faster for jaxinit)")
    ax.set_title(f"jaxinit on {result['machine']['cpu']} ({result['machine']['backend']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(mem, 1),
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "jax": jax.__version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "threefry_partitionable": bool(jax.config.jax_threefry_partitionable),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, 2 repetitions")
    parser.add_argument(
        "--reps", type=int, default=None, help="timed calls per measurement (default 5, quick 2)"
    )
    parser.add_argument("--json", metavar="FILE", help="write all results as JSON")
    parser.add_argument("--plot", metavar="FILE.png", help="bar chart of the ratios")
    parser.add_argument(
        "--sharded", action="store_true", help="also run the 8-device NamedSharding case"
    )
    parser.add_argument("--_sharded-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    reps = args.reps or (2 if args.quick else 5)

    if args._sharded_worker:
        print(json.dumps(sharded_worker(args.quick, reps)))
        return

    key = jax.random.key(0)
    result: dict[str, Any] = {
        "machine": machine(),
        "quick": args.quick,
        "reps": reps,
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    }
    start = time.perf_counter()
    rows = []
    for case in cases(args.quick):
        rows.append(measure(case, reps, key))
        print(
            f"  measured {rows[-1]['case']} ({time.perf_counter() - start:.0f} s)", file=sys.stderr
        )
    result["rows"] = rows
    result["rates"] = sampling_rates(args.quick, reps)
    result["sparse_profile"] = sparse_profile(args.quick, reps)
    result["goals"] = goals(rows)
    if args.sharded:
        print("  running the sharded case in a subprocess ...", file=sys.stderr)
        result["sharded"] = run_sharded(args.quick, reps)
    result["total_s"] = time.perf_counter() - start
    m = result["machine"]
    print(
        f"# {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB; jax {m['jax']} ({m['backend']}), "
        f"torch {m['torch']} ({m['torch_threads']} threads); min of {reps} after warm-up\n"
    )
    print(markdown(result))
    print(f"\ntotal {result['total_s']:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.plot:
        plot(result, args.plot)


if __name__ == "__main__":
    main()
