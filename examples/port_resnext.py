"""Port a PyTorch model to Flax and make it start exactly as the original.

The model is ``CifarResNeXt`` from the reference PyTorch implementation of
the ResNeXt paper (prlz77/ResNeXt.pytorch, ``models/model.py``), written
twice below, in torch and in Flax Linen, with the same parameter names so
that the paths line up (torch ``stage_1.stage_1_bottleneck_0.conv_reduce.weight``
is Flax ``params/stage_1/stage_1_bottleneck_0/conv_reduce/kernel``).

The Flax model is initialized twice and compared, layer by layer, with torch:

(a) ``jaxinit.flax.init(model, key, x, rules=jaxinit.flax.TORCH_DEFAULTS)``
    against the torch model with torch's own default initialization
    (``kaiming_uniform_(a=sqrt(5))`` convs and Linear, Linear bias
    ``U(±1/sqrt(fan_in))``, BatchNorm 1/0);
(b) the original script's init loop translated to rules::

        ("*conv*/kernel", jaxinit.flax.kaiming_normal(mode="fan_out")),
        ("*bn*/scale", jaxinit.flax.ones()),
        ("*/bias", jaxinit.flax.zeros()),
        ("*/classifier/kernel", jaxinit.flax.kaiming_normal()),

    against the torch model after that loop.

Stds and max|w| are pooled over ``--seeds`` torch seeds and as many jax keys.
The script exits 1 if any ratio is out of a tolerance derived from the
sample size (see :func:`std_tolerance` and :func:`max_tolerance`; each check
fails by chance with probability about 1e-6), if a deterministic leaf
differs from torch, or if the Flax port, loaded with the torch weights, does
not compute the same logits as torch.

Run: ``python examples/port_resnext.py [--plot hist.png]`` (seconds on a CPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F
from flax import traverse_util

import jaxinit
import jaxinit.flax

FALSE_FAILURE = 1e-6  # per check: chance that a correct implementation fails it


# ----------------------------------------------------------------------------
# The torch original (prlz77/ResNeXt.pytorch models/model.py), with the
# deprecated ``init.kaiming_normal`` written as ``init.kaiming_normal_``.


class ResNeXtBottleneck(torch.nn.Module):
    """RexNeXt bottleneck type C."""

    def __init__(self, in_channels, out_channels, stride, cardinality, base_width, widen_factor):
        super().__init__()
        width_ratio = out_channels / (widen_factor * 64.0)
        D = cardinality * int(base_width * width_ratio)
        self.conv_reduce = torch.nn.Conv2d(
            in_channels, D, kernel_size=1, stride=1, padding=0, bias=False
        )
        self.bn_reduce = torch.nn.BatchNorm2d(D)
        self.conv_conv = torch.nn.Conv2d(
            D, D, kernel_size=3, stride=stride, padding=1, groups=cardinality, bias=False
        )
        self.bn = torch.nn.BatchNorm2d(D)
        self.conv_expand = torch.nn.Conv2d(
            D, out_channels, kernel_size=1, stride=1, padding=0, bias=False
        )
        self.bn_expand = torch.nn.BatchNorm2d(out_channels)
        self.shortcut = torch.nn.Sequential()
        if in_channels != out_channels:
            self.shortcut.add_module(
                "shortcut_conv",
                torch.nn.Conv2d(
                    in_channels, out_channels, kernel_size=1, stride=stride, padding=0, bias=False
                ),
            )
            self.shortcut.add_module("shortcut_bn", torch.nn.BatchNorm2d(out_channels))

    def forward(self, x):
        bottleneck = self.conv_reduce.forward(x)
        bottleneck = F.relu(self.bn_reduce.forward(bottleneck), inplace=True)
        bottleneck = self.conv_conv.forward(bottleneck)
        bottleneck = F.relu(self.bn.forward(bottleneck), inplace=True)
        bottleneck = self.conv_expand.forward(bottleneck)
        bottleneck = self.bn_expand.forward(bottleneck)
        residual = self.shortcut.forward(x)
        return F.relu(residual + bottleneck, inplace=True)


class CifarResNeXt(torch.nn.Module):
    """ResNeXt for CIFAR. ``original_init=False`` keeps torch's layer defaults."""

    def __init__(self, cardinality, depth, nlabels, base_width, widen_factor=4, original_init=True):
        super().__init__()
        self.cardinality = cardinality
        self.depth = depth
        self.block_depth = (self.depth - 2) // 9
        self.base_width = base_width
        self.widen_factor = widen_factor
        self.nlabels = nlabels
        self.output_size = 64
        self.stages = [64, 64 * self.widen_factor, 128 * self.widen_factor, 256 * self.widen_factor]

        self.conv_1_3x3 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        self.bn_1 = torch.nn.BatchNorm2d(64)
        self.stage_1 = self.block("stage_1", self.stages[0], self.stages[1], 1)
        self.stage_2 = self.block("stage_2", self.stages[1], self.stages[2], 2)
        self.stage_3 = self.block("stage_3", self.stages[2], self.stages[3], 2)
        self.classifier = torch.nn.Linear(self.stages[3], nlabels)
        if not original_init:
            return
        torch.nn.init.kaiming_normal_(self.classifier.weight)

        for key in self.state_dict():
            if key.split(".")[-1] == "weight":
                if "conv" in key:
                    torch.nn.init.kaiming_normal_(self.state_dict()[key], mode="fan_out")
                if "bn" in key:
                    self.state_dict()[key][...] = 1
            elif key.split(".")[-1] == "bias":
                self.state_dict()[key][...] = 0

    def block(self, name, in_channels, out_channels, pool_stride=2):
        block = torch.nn.Sequential()
        for bottleneck in range(self.block_depth):
            name_ = f"{name}_bottleneck_{bottleneck}"
            if bottleneck == 0:
                block.add_module(
                    name_,
                    ResNeXtBottleneck(
                        in_channels,
                        out_channels,
                        pool_stride,
                        self.cardinality,
                        self.base_width,
                        self.widen_factor,
                    ),
                )
            else:
                block.add_module(
                    name_,
                    ResNeXtBottleneck(
                        out_channels,
                        out_channels,
                        1,
                        self.cardinality,
                        self.base_width,
                        self.widen_factor,
                    ),
                )
        return block

    def forward(self, x):
        x = self.conv_1_3x3.forward(x)
        x = F.relu(self.bn_1.forward(x), inplace=True)
        x = self.stage_1.forward(x)
        x = self.stage_2.forward(x)
        x = self.stage_3.forward(x)
        x = F.avg_pool2d(x, 8, 1)
        x = x.view(-1, self.stages[3])
        return self.classifier(x)


# ----------------------------------------------------------------------------
# The Flax Linen port: NHWC, the same module names, no explicit init anywhere.


def _bn(name: str) -> nn.BatchNorm:
    # torch's BatchNorm2d: eps 1e-5, running = 0.9 * running + 0.1 * batch.
    return nn.BatchNorm(use_running_average=True, momentum=0.9, epsilon=1e-5, name=name)


class Shortcut(nn.Module):
    out_channels: int
    stride: int

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(
            self.out_channels,
            (1, 1),
            strides=self.stride,
            padding=0,
            use_bias=False,
            name="shortcut_conv",
        )(x)
        return _bn("shortcut_bn")(x)


class FlaxResNeXtBottleneck(nn.Module):
    in_channels: int
    out_channels: int
    stride: int
    cardinality: int
    base_width: int
    widen_factor: int

    @nn.compact
    def __call__(self, x):
        width_ratio = self.out_channels / (self.widen_factor * 64.0)
        D = self.cardinality * int(self.base_width * width_ratio)
        y = nn.Conv(D, (1, 1), padding=0, use_bias=False, name="conv_reduce")(x)
        y = nn.relu(_bn("bn_reduce")(y))
        y = nn.Conv(
            D,
            (3, 3),
            strides=self.stride,
            padding=1,
            feature_group_count=self.cardinality,
            use_bias=False,
            name="conv_conv",
        )(y)
        y = nn.relu(_bn("bn")(y))
        y = nn.Conv(self.out_channels, (1, 1), padding=0, use_bias=False, name="conv_expand")(y)
        y = _bn("bn_expand")(y)
        residual = x
        if self.in_channels != self.out_channels:
            residual = Shortcut(self.out_channels, self.stride, name="shortcut")(x)
        return nn.relu(residual + y)


class Stage(nn.Module):
    in_channels: int
    out_channels: int
    pool_stride: int
    block_depth: int
    cardinality: int
    base_width: int
    widen_factor: int

    @nn.compact
    def __call__(self, x):
        for i in range(self.block_depth):
            first = i == 0
            x = FlaxResNeXtBottleneck(
                self.in_channels if first else self.out_channels,
                self.out_channels,
                self.pool_stride if first else 1,
                self.cardinality,
                self.base_width,
                self.widen_factor,
                name=f"{self.name}_bottleneck_{i}",
            )(x)
        return x


class FlaxCifarResNeXt(nn.Module):
    cardinality: int
    depth: int
    nlabels: int
    base_width: int
    widen_factor: int = 4

    @nn.compact
    def __call__(self, x):
        stages = [64, 64 * self.widen_factor, 128 * self.widen_factor, 256 * self.widen_factor]
        block = dict(
            block_depth=(self.depth - 2) // 9,
            cardinality=self.cardinality,
            base_width=self.base_width,
            widen_factor=self.widen_factor,
        )
        x = nn.Conv(64, (3, 3), strides=1, padding=1, use_bias=False, name="conv_1_3x3")(x)
        x = nn.relu(_bn("bn_1")(x))
        x = Stage(stages[0], stages[1], 1, **block, name="stage_1")(x)
        x = Stage(stages[1], stages[2], 2, **block, name="stage_2")(x)
        x = Stage(stages[2], stages[3], 2, **block, name="stage_3")(x)
        x = nn.avg_pool(x, (8, 8), strides=(1, 1))
        x = x.reshape(-1, stages[3])
        return nn.Dense(self.nlabels, name="classifier")(x)


# The original script's init loop, as rules (first match wins).
ORIGINAL_INIT = [
    ("*conv*/kernel", jaxinit.flax.kaiming_normal(mode="fan_out")),
    ("*bn*/scale", jaxinit.flax.ones()),
    ("*/bias", jaxinit.flax.zeros()),
    ("*/classifier/kernel", jaxinit.flax.kaiming_normal()),
]


# ----------------------------------------------------------------------------
# torch state_dict <-> Flax variables


def torch_to_flax(state_dict: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """torch parameters and buffers under their Flax paths, in the Flax layout."""
    out = {}
    for key, t in state_dict.items():
        *module, name = key.split(".")
        base = "/".join(module)
        w = t.detach().numpy()
        if (
            name == "weight" and w.ndim == 4
        ):  # conv (out, in/groups, kh, kw) -> (kh, kw, in/groups, out)
            out[f"params/{base}/kernel"] = w.transpose(2, 3, 1, 0)
        elif name == "weight" and w.ndim == 2:  # Linear (out, in) -> Dense (in, out)
            out[f"params/{base}/kernel"] = w.T
        elif name == "weight":  # BatchNorm
            out[f"params/{base}/scale"] = w
        elif name == "bias":
            out[f"params/{base}/bias"] = w
        elif name == "running_mean":
            out[f"batch_stats/{base}/mean"] = w
        elif name == "running_var":
            out[f"batch_stats/{base}/var"] = w
    return out


def flat(variables: Any) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in traverse_util.flatten_dict(variables, sep="/").items()}


# ----------------------------------------------------------------------------
# Statistics: tolerances from the sample size

KURTOSIS = {"uniform": 1.8, "normal": 3.0}


def std_tolerance(family: str, n_jax: int, n_torch: int) -> float:
    """Half-width for std(jax)/std(torch) - 1: ``z`` standard errors of the ratio.

    The sample std of ``n`` iid values with kurtosis ``k`` has relative
    standard error ``sqrt((k - 1) / (4 n))`` (1.8 for uniform, 3 for normal).
    """
    z = statistics.NormalDist().inv_cdf(1 - FALSE_FAILURE / 2)
    rel_var = (KURTOSIS[family] - 1.0) / 4.0
    return z * math.sqrt(rel_var / n_jax + rel_var / n_torch)


def _max_quantile(family: str, n: int, p: float) -> float:
    """The p-quantile of max|x| over n iid draws, in units of the scale (bound or std).

    ``P(max|x| <= m) = F(m) ** n``, with ``F(m) = m`` for U(-1, 1) and
    ``2 Phi(m) - 1`` for N(0, 1).
    """
    q = math.exp(math.log(p) / n)  # F(m) = p ** (1 / n)
    if family == "uniform":
        return q
    return statistics.NormalDist().inv_cdf((1.0 + q) / 2.0)


def max_tolerance(family: str, n_jax: int, n_torch: int) -> tuple[float, float]:
    """The interval max|w| jax / max|w| torch lies in unless either max is in a 1e-6/4 tail."""
    p = FALSE_FAILURE / 4
    lo_j, hi_j = _max_quantile(family, n_jax, p), _max_quantile(family, n_jax, 1 - p)
    lo_t, hi_t = _max_quantile(family, n_torch, p), _max_quantile(family, n_torch, 1 - p)
    return lo_j / hi_t, hi_j / lo_t


# ----------------------------------------------------------------------------
# Comparison


@dataclasses.dataclass
class Row:
    path: str
    shape: tuple[int, ...]
    torch: np.ndarray  # pooled over seeds, float64
    jax: np.ndarray
    family: str | None  # None: deterministic, must be bit-exact
    failures: list[str] = dataclasses.field(default_factory=list)


def compare(
    torch_draws: list[dict[str, np.ndarray]],
    jax_draws: list[dict[str, np.ndarray]],
    family: Mapping[str, str | None],
) -> list[Row]:
    """One row per leaf, in torch's ``state_dict`` order (the order of the network)."""
    missing = set(torch_draws[0]) ^ set(jax_draws[0])
    if missing:
        raise KeyError(f"the port's names do not line up with torch's: {sorted(missing)}")
    rows = []
    for path in torch_draws[0]:
        fam = family.get(path)
        t = np.stack([d[path] for d in torch_draws]).astype(np.float64)
        j = np.stack([d[path] for d in jax_draws]).astype(np.float64)
        row = Row(path, jax_draws[0][path].shape, t, j, fam)
        if t.shape != j.shape:
            row.failures.append(f"shape {j.shape[1:]} != torch {t.shape[1:]}")
        elif fam is None:
            if not np.array_equal(t, j):
                row.failures.append("differs from torch (deterministic leaf)")
        else:
            r_std = j.std() / t.std()
            tol = std_tolerance(fam, j.size, t.size)
            if abs(r_std - 1) > tol:
                row.failures.append(f"std ratio {r_std:.4f} outside 1 ± {tol:.4f}")
            r_max = np.abs(j).max() / np.abs(t).max()
            lo, hi = max_tolerance(fam, j.size, t.size)
            if not lo <= r_max <= hi:
                row.failures.append(f"max|w| ratio {r_max:.4f} outside [{lo:.4f}, {hi:.4f}]")
        rows.append(row)
    return rows


def is_norm_leaf(path: str) -> bool:
    """BatchNorm scale/bias and running statistics (deterministic; summarized in one line)."""
    return path.startswith("batch_stats/") or "bn" in path.rsplit("/", 2)[-2]


def print_table(title: str, rows: list[Row]) -> None:
    """The per-layer table: every leaf but the BatchNorm ones, which get one summary line."""
    header = [
        "layer",
        "shape",
        "torch std",
        "jaxinit std",
        "ratio",
        "tol",
        "torch max|w|",
        "jaxinit max|w|",
        "ratio",
        "range",
        "check",
    ]
    cells = []
    for r in rows:
        if is_norm_leaf(r.path):
            continue
        ts, js = r.torch.std(), r.jax.std()
        tm, jm = np.abs(r.torch).max(), np.abs(r.jax).max()
        if r.family is None:
            rs = "1" if ts == js == 0 else f"{js / ts:.4f}"
            rm = "1" if tm == jm == 0 else f"{jm / tm:.4f}"
            tol, span = "exact", "exact"
        else:
            lo, hi = max_tolerance(r.family, r.jax.size, r.torch.size)
            tol = f"±{std_tolerance(r.family, r.jax.size, r.torch.size):.3f}"
            span = f"{lo:.3f}-{hi:.3f}"
            rs, rm = f"{js / ts:.4f}", f"{jm / tm:.4f}"
        check = "FAIL" if r.failures else ("exact" if r.family is None else "ok")
        cells.append(
            [
                r.path.removeprefix("params/"),
                "x".join(map(str, r.shape)),
                f"{ts:.5f}",
                f"{js:.5f}",
                rs,
                tol,
                f"{tm:.5f}",
                f"{jm:.5f}",
                rm,
                span,
                check,
            ]
        )
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]
    left = {0, 1, len(header) - 1}

    def fmt(c: list[str]) -> str:
        return "  ".join(
            x.ljust(w) if i in left else x.rjust(w) for i, (x, w) in enumerate(zip(c, widths))
        )

    print(title)
    print(fmt(header))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print(fmt(c))
    norms = [r for r in rows if is_norm_leaf(r.path)]
    bad = [r for r in norms if r.failures]
    n_params = sum(not r.path.startswith("batch_stats/") for r in norms)
    print(
        f"BatchNorm: {n_params} scale/bias and {len(norms) - n_params} running mean/var leaves: "
        + ("all bit-exact with torch (1, 0, 0, 1)" if not bad else f"{len(bad)} FAIL")
    )
    print()


def plot(path: str, tables: list[tuple[str, list[Row]]]) -> None:
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(name, r) for name, rows in tables for r in rows if r.family is not None]
    cols = 4
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 2.6 * nrows), squeeze=False)
    for ax, (name, r) in zip(axes.flat, panels):
        n_bins = int(np.clip(np.sqrt(r.torch.size), 10, 60))
        bins = np.linspace(min(r.torch.min(), r.jax.min()), max(r.torch.max(), r.jax.max()), n_bins)
        ax.hist(r.torch.ravel(), bins=bins, density=True, alpha=0.5, label="torch")
        ax.hist(
            r.jax.ravel(),
            bins=bins,
            density=True,
            alpha=0.5,
            label="jaxinit",
            histtype="step",
            linewidth=1.5,
        )
        short = r.path.removeprefix("params/").replace("_bottleneck_", "_b")
        ax.set_title(f"({name}) {short}", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path} ({len(panels)} histograms)")


# ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plot", metavar="FILE.png", help="draw overlaid histograms per layer")
    parser.add_argument(
        "--seeds", type=int, default=8, help="torch seeds / jax keys pooled per layer"
    )
    parser.add_argument("--depth", type=int, default=11, help="9 * blocks + 2 (11, 20, 29)")
    parser.add_argument("--cardinality", type=int, default=8)
    parser.add_argument("--base-width", type=int, default=4)
    parser.add_argument("--widen-factor", type=int, default=2)
    args = parser.parse_args(argv)
    if args.plot:
        try:
            import matplotlib  # noqa: F401  (optional: only --plot needs it)
        except ImportError:
            parser.error("--plot needs matplotlib: pip install matplotlib")
    start = time.perf_counter()
    hyper = dict(
        cardinality=args.cardinality,
        depth=args.depth,
        nlabels=10,
        base_width=args.base_width,
        widen_factor=args.widen_factor,
    )
    model = FlaxCifarResNeXt(**hyper)
    x = jnp.zeros((1, 32, 32, 3), jnp.float32)

    def torch_draws(original_init: bool) -> list[dict[str, np.ndarray]]:
        draws = []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            draws.append(
                torch_to_flax(CifarResNeXt(**hyper, original_init=original_init).state_dict())
            )
        return draws

    def jax_draws(rules: Any) -> list[dict[str, np.ndarray]]:
        # jaxinit.flax.init is the whole call; the jit around it only lets the
        # extra keys reuse one compiled program.
        init = jax.jit(lambda key: jaxinit.flax.init(model, key, x, rules=rules))
        return [flat(init(jax.random.key(seed))) for seed in range(args.seeds)]

    # (a) torch's layer defaults: every random leaf is uniform.
    torch_a, jax_a = torch_draws(False), jax_draws(jaxinit.flax.TORCH_DEFAULTS)
    family_a = {p: "uniform" for p in jax_a[0] if p.endswith("kernel") or "classifier/bias" in p}
    rows_a = compare(torch_a, jax_a, family_a)
    # (b) the original script's loop: kaiming normal kernels, constants elsewhere.
    torch_b, jax_b = torch_draws(True), jax_draws(ORIGINAL_INIT)
    family_b = {p: "normal" for p in jax_b[0] if p.endswith("kernel")}
    rows_b = compare(torch_b, jax_b, family_b)

    # The port is faithful: torch's weights in the Flax model give torch's logits.
    torch.manual_seed(0)
    reference = CifarResNeXt(**hyper).eval()
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = reference(image).numpy()
    variables = traverse_util.unflatten_dict(
        {k: jnp.asarray(v) for k, v in torch_to_flax(reference.state_dict()).items()}, sep="/"
    )
    got = np.asarray(
        jax.jit(model.apply)(variables, jnp.asarray(image.numpy().transpose(0, 2, 3, 1)))
    )
    logits_err = float(np.abs(got - want).max() / np.abs(want).max())

    n_params = sum(v.size for k, v in jax_a[0].items() if k.startswith("params/"))
    print(
        f"CifarResNeXt(depth={args.depth}, cardinality={args.cardinality}, base_width="
        f"{args.base_width}, widen_factor={args.widen_factor}): {n_params:,} parameters; "
        f"torch {torch.__version__}, jax {jax.__version__}"
    )
    print(
        f"stds and max|w| pooled over {args.seeds} torch seeds and {args.seeds} jax keys; "
        f"std ratio must be 1 ± tol, max|w| ratio in range (false-failure odds "
        f"{FALSE_FAILURE:g} per check)\n"
    )
    print_table(
        "(a) jaxinit.flax.init(model, key, x, rules=jaxinit.flax.TORCH_DEFAULTS)  vs  "
        "torch's default init",
        rows_a,
    )
    rules = "".join(f"\n      ({sel!r}, {init!r})," for sel, init in ORIGINAL_INIT)
    print_table(
        f"(b) jaxinit.flax.init(model, key, x, rules=ORIGINAL_INIT)  vs  the original "
        f"script's init loop\n    ORIGINAL_INIT = [{rules}\n    ]",
        rows_b,
    )
    failures = [
        f"({name}) {r.path}: {f}"
        for name, rows in (("a", rows_a), ("b", rows_b))
        for r in rows
        for f in r.failures
    ]
    logits_ok = logits_err < 1e-4
    print(
        f"port check: torch's weights loaded into the Flax model give torch's logits "
        f"(max relative difference {logits_err:.1e}): {'ok' if logits_ok else 'FAIL'}"
    )
    if not logits_ok:
        failures.append(f"logits differ from torch by {logits_err:.1e} (relative)")
    if args.plot:
        plot(args.plot, [("a", rows_a), ("b", rows_b)])
    print(f"done in {time.perf_counter() - start:.1f} s")
    if failures:
        print(f"\n{len(failures)} FAILED:", *failures, sep="\n  ")
        return 1
    print("every layer starts as in torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
