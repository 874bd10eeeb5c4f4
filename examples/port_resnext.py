"""Port a PyTorch model to Flax and make it start exactly as the original.

The model is ``CifarResNeXt`` from the reference PyTorch implementation of
the ResNeXt paper (prlz77/ResNeXt.pytorch, ``models/model.py``), written
twice below, in torch and in Flax Linen, with the same module names, so
``jaxinit.port`` pairs them by itself (torch
``stage_1.stage_1_bottleneck_0.conv_reduce.weight`` is Flax
``params/stage_1/stage_1_bottleneck_0/conv_reduce/kernel``).

The Flax model is initialized twice and compared, layer by layer, with torch
by ``jaxinit.port.compare_init``:

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

Each leaf is pooled over ``--seeds`` torch seeds and as many jax keys: std
(tolerance from the sample size and kurtosis), max|w| (order statistics) and
a two-sample KS test, each failing a correct port with probability 1e-6;
leaves torch draws identically every seed must match bit for bit. Then
``jaxinit.port.from_torch`` loads the torch weights (BatchNorm running
statistics included) into the Flax model, which must compute torch's logits.
The script exits 1 if anything fails.

Run: ``python examples/port_resnext.py [--plot hist.png]`` (seconds on a CPU).
The tables fit the terminal's width (``$COLUMNS``; 100 columns when the
output is not a terminal): long leaf paths are grouped under their parent,
and where the full table does not fit, a compact one (std ratio ± tolerance,
max|w| ratio, KS p) is printed instead; ``--wide`` always prints the full one.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import textwrap
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F

import jaxinit
import jaxinit.flax
import jaxinit.port

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
# Output that fits the terminal


def compact_table(report: jaxinit.port.InitReport, width: int) -> str:
    """``report`` in at most ``width`` columns (76 at the least).

    One row per random leaf (and per deterministic leaf that failed): shape,
    torch's std, the jax/torch std ratio with its tolerance, the max|w| ratio,
    the KS p-value and the verdict; the report's own summary lines, wrapped.
    A path longer than its column is split: its parent is printed once, on a
    line of its own, and the rest indented below it.
    """
    shown = [r for r in report.rows if not (r.deterministic and r.ok)]
    header = ["leaf", "shape", "torch std", "std ratio±tol", "max ratio", "KS p", "check"]
    cells = []
    for r in shown:
        exact = r.deterministic
        cells.append(
            [
                r.path.removeprefix("params/"),
                "x".join(map(str, r.shape)) or "()",
                f"{r.torch_std:.5f}",
                "exact" if exact else f"{r.std_ratio:.4f}±{r.std_tol:.3f}",
                f"{r.max_ratio:.4f}",
                "-" if r.ks_pvalue is None else f"{r.ks_pvalue:.2g}",
                "FAIL" if r.failures else ("exact" if exact else "ok"),
            ]
        )
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(len(header))]
    widths[0] = max(12, min(widths[0], width - sum(widths[1:]) - 2 * (len(header) - 1)))

    def fmt(row: list[str]) -> str:
        return "  ".join(
            x.ljust(w) if i in (0, 1, len(row) - 1) else x.rjust(w)
            for i, (x, w) in enumerate(zip(row, widths))
        ).rstrip()

    lines = [fmt(header), "  ".join("-" * w for w in widths)]
    parent = None
    for row in cells:
        leaf, parts = row[0], row[0].split("/")
        if len(leaf) <= widths[0]:
            parent = None
        elif parent and leaf.startswith(parent) and len(leaf) - len(parent) + 2 <= widths[0]:
            leaf = "  " + leaf.removeprefix(parent)  # under the group above
        else:
            k = next(
                (k for k in range(1, len(parts)) if len("/".join(parts[k:])) + 2 <= widths[0]),
                len(parts) - 1,
            )
            parent = "/".join(parts[:k]) + "/"
            lines.append(parent)
            leaf = "  " + "/".join(parts[k:])
        lines.append(fmt([leaf, *row[1:]]))
    summary = report.table().splitlines()[2 + len(shown) :]
    lines += [textwrap.fill(line, width, subsequent_indent="  ") for line in summary]
    return "\n".join(lines)


def plot_path(plot: str, name: str) -> str:
    """Where ``--plot FILE.png`` draws report (a) (FILE.png) and (b) (FILE_b.png)."""
    if name == "a":
        return plot
    stem, ext = os.path.splitext(plot)
    return f"{stem}_b{ext or '.png'}"


def fitted(report: jaxinit.port.InitReport, width: int, wide: bool) -> str:
    """The report's own table if it fits in ``width`` columns (or ``wide``), else a compact one."""
    full = report.table()
    if wide or max(map(len, full.splitlines())) <= width:
        return full
    return compact_table(report, width)


# ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Writes no file unless --plot is given. Exits 1 if any check fails.",
    )
    parser.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw overlaid torch/jax histograms per layer: (a) into FILE.png and (b) "
        "into FILE_b.png (needs matplotlib)",
    )
    parser.add_argument(
        "--wide",
        action="store_true",
        help="print the full tables whatever the terminal's width",
    )
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
        print(
            f"will write {plot_path(args.plot, 'a')} and {plot_path(args.plot, 'b')} "
            "(histograms of (a) and (b))"
        )
    width = max(60, shutil.get_terminal_size((100, 24)).columns)
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

    def compare(original_init: bool, rules) -> jaxinit.port.InitReport:
        # jaxinit.flax.init is the whole call; the jit around it only lets the
        # extra keys reuse one compiled program.
        init = jax.jit(lambda key: jaxinit.flax.init(model, key, x, rules=rules))
        return jaxinit.port.compare_init(
            lambda: CifarResNeXt(**hyper, original_init=original_init),
            init,
            seeds=args.seeds,
            false_failure=FALSE_FAILURE,
            model=model,
            args=(x,),
        )

    # (a) torch's layer defaults; (b) the original script's loop.
    report_a = compare(False, jaxinit.flax.TORCH_DEFAULTS)
    report_b = compare(True, ORIGINAL_INIT)

    # The port is faithful: torch's weights in the Flax model give torch's logits.
    torch.manual_seed(0)
    reference = CifarResNeXt(**hyper).eval()
    with torch.no_grad():  # non-trivial running statistics, as after training
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = reference(image).numpy()
    shapes = jax.eval_shape(model.init, jax.random.key(0), x)  # nothing is initialized
    variables = jaxinit.port.from_torch(reference, shapes, model=model, args=(x,))
    got = np.asarray(
        jax.jit(model.apply)(variables, jnp.asarray(image.numpy().transpose(0, 2, 3, 1)))
    )
    logits_err = float(np.abs(got - want).max() / np.abs(want).max())

    def say(text: str) -> None:
        print(textwrap.fill(text, width, subsequent_indent="    "))

    n_params = sum(r.torch_values[0].size for r in report_a.rows if r.path.startswith("params/"))
    say(
        f"CifarResNeXt(depth={args.depth}, cardinality={args.cardinality}, base_width="
        f"{args.base_width}, widen_factor={args.widen_factor}): {n_params:,} parameters; "
        f"torch {torch.__version__}, jax {jax.__version__}"
    )
    say(
        f"stds and max|w| pooled over {args.seeds} torch seeds and {args.seeds} jax keys; "
        f"std ratio must be 1 ± tol, max|w| ratio in range, KS p >= {FALSE_FAILURE:g} "
        f"(false-failure odds {FALSE_FAILURE:g} per check)"
    )
    print()
    say(
        "(a) jaxinit.flax.init(model, key, x, rules=jaxinit.flax.TORCH_DEFAULTS)  vs  "
        "torch's default init"
    )
    print(fitted(report_a, width, args.wide), end="\n\n")
    rules = "".join(f"\n      ({sel!r}, {init!r})," for sel, init in ORIGINAL_INIT)
    say(
        "(b) jaxinit.flax.init(model, key, x, rules=ORIGINAL_INIT)  vs  the original "
        "script's init loop"
    )
    print(f"    ORIGINAL_INIT = [{rules}\n    ]")
    print(fitted(report_b, width, args.wide), end="\n\n")
    failures = [
        f"({name}) {f}" for name, r in (("a", report_a), ("b", report_b)) for f in r.failures
    ]
    logits_ok = logits_err < 1e-4
    say(
        "port check: jaxinit.port.from_torch(torch_model, ...) loads torch's weights and "
        f"running statistics; the Flax model gives torch's logits (max relative difference "
        f"{logits_err:.1e}): {'ok' if logits_ok else 'FAIL'}"
    )
    if not logits_ok:
        failures.append(f"logits differ from torch by {logits_err:.1e} (relative)")
    if args.plot:
        for name, report in (("a", report_a), ("b", report_b)):
            path = plot_path(args.plot, name)
            report.plot(path)
            print(f"wrote {path}: ({name}) torch vs jaxinit histograms")
    print(f"done in {time.perf_counter() - start:.1f} s")
    if failures:
        print(f"\n{len(failures)} FAILED:", *failures, sep="\n  ")
        return 1
    print("every layer starts as in torch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
