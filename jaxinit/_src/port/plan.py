"""The plan of a port: which torch tensors fill which target leaves, by which conversion.

Built from names and shapes alone (:func:`make_plan`), checked as a whole
(:func:`report`: one error naming every problem under strict, else warnings),
and run torch -> target on host arrays (:func:`forward`) or by the file
loader. :mod:`jaxinit._src.port.transfer` and ``compare_init`` use it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxinit._src.port import checks as K
from jaxinit._src.port import convert as C
from jaxinit._src.port import names as N
from jaxinit._src.port import review as R
from jaxinit._src.port import target as T
from jaxinit._src.port import torch as P

__all__ = ["Plan", "Step", "check_dtype", "fmt_shape", "forward", "make_plan", "report", "shape_of"]


@dataclasses.dataclass
class Step:
    """One group of one pair, with the torch keys and target leaves it joins."""

    group: C.Group
    torch: P.TorchLayer
    target: T.TargetLayer
    keys: tuple[str, ...]  # state_dict keys of group.src
    leaves: tuple[int, ...]  # target leaf indices of group.dst


@dataclasses.dataclass
class Plan:
    steps: list[Step]
    problems: list[str]
    unused: list[str]  # state_dict keys no step reads
    unfilled: list[int]  # target leaves no step writes
    notes: list[str]
    aliases: dict[str, tuple[str, ...]]  # tied keys: key -> the keys sharing its storage
    review: R.Review = dataclasses.field(default_factory=lambda: R.Review())


def shape_of(x: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in x.shape)


def make_plan(
    torch_layers: Sequence[P.TorchLayer],
    aliases: Mapping[str, tuple[str, ...]],
    target: T.Target,
    rename: Any,
) -> Plan:
    """Pairs the layers and plans every conversion, from names and shapes alone."""
    collections = target.flavor == "Linen variables" and all(
        leaf.path.split("/", 1)[0] in ("params", "batch_stats") for leaf in target.leaves
    )
    pairing = N.pair_layers(
        torch_layers,
        target.layers,
        [leaf.path for leaf in target.leaves],
        N.compile_rename(rename),
        collections and any("/" in leaf.path for leaf in target.leaves),
    )
    equinox = target.flavor == "Equinox module"
    review = R.Review()
    steps: list[Step] = []
    problems: list[str] = []
    unused: list[str] = []
    unfilled: list[int] = []
    for pair in pairing.pairs:
        tl, fl = pair.torch, pair.target
        ts = {name: shape_of(v) for name, v in tl.values.items()}
        fs = {rel: target.leaves[i].shape for rel, i in fl.leaves.items()}
        try:
            if pair.single:
                (name,) = ts
                (rel,) = fs
                groups = C.single(name, rel, len(ts[name]))
            else:
                groups = C.plan(tl.kind, fl.kind, ts, fs, fl.module, tl.values, equinox)
        except C.PortError as e:
            problems.append(f"torch {tl.describe()} -> {fl.describe()}: {e}")
            continue
        if not pair.single:
            R.review(pair, groups, ts, fs, target, equinox, review)
        used: set[str] = set()
        filled: set[tuple[str, ...]] = set()
        for g in groups:
            if not all(s in ts for s in g.src) or not all(d in fs for d in g.dst):
                continue
            if used.intersection(g.src) or filled.intersection(g.dst):
                continue
            used.update(g.src)
            filled.update(g.dst)
            steps.append(
                Step(
                    g,
                    tl,
                    fl,
                    tuple(tl.keys[s] for s in g.src),
                    tuple(fl.leaves[d] for d in g.dst),
                )
            )
        unused += [tl.keys[n] for n in ts if n not in used]
        unfilled += [i for rel, i in fl.leaves.items() if rel not in filled]
    for tl in pairing.torch_left:
        unused += list(tl.keys.values())
    for fl in pairing.target_left:
        unfilled += list(fl.leaves.values())
    plan = Plan(steps, problems, unused, sorted(set(unfilled)), pairing.notes, dict(aliases))
    plan.review = review
    return plan


def fmt_shape(shape: Sequence[int]) -> str:
    return str(tuple(int(d) for d in shape))


def report(
    what: str,
    plan: Plan,
    strict: bool,
    target: T.Target,
    torch_shapes: Mapping[str, tuple[int, ...]],
    mismatches: list[str],
    extra: Sequence[K.Issue] = (),
    check_hyperparameters: bool = True,
) -> None:
    """Raises one ``ValueError`` naming every problem (see :func:`checks.settle`), or warns."""
    read = {k for s in plan.steps for k in s.keys}
    unused = [k for k in plan.unused if not any(a in read for a in plan.aliases.get(k, ()))]
    unfilled = list(plan.unfilled)
    leaf_names = [target.leaves[i].path for i in unfilled]

    def near(names: list[str], side: str, name: str) -> str:
        found = N.nearest(name, names)
        return f"  nearest {side}: {', '.join(found)}" if found else ""

    pair_fix = (
        "Pair the remaining names with rename=[(torch_glob, target_glob), ...] (module paths "
        "or full tensor names; '*' matches anything), or pass strict=False to leave them."
    )
    issues = [
        K.Issue("cannot convert", plan.problems),
        K.Issue("shape or dtype mismatches", mismatches),
        *K.conv1d_issues(plan.review.assumed, plan.review.declared_conv1d),
        K.Issue(
            "torch tensors no target leaf takes",
            [f"{k} {fmt_shape(torch_shapes[k])}" + near(leaf_names, "target", k) for k in unused],
            pair_fix,
            "pairing",
        ),
        K.Issue(
            f"{target.flavor} leaves no torch tensor fills",
            [
                f"{target.leaves[i].path} {fmt_shape(target.leaves[i].shape)}"
                + near(unused, "torch", target.leaves[i].path)
                for i in unfilled
            ],
            pair_fix,
            "pairing",
        ),
        *extra,
    ]
    if check_hyperparameters:
        fix = (
            "Make the JAX layers compute what torch's do, or pass check_hyperparameters=False "
            "if the difference is intended."
        )
        issues.append(
            K.Issue("layer hyperparameters that differ", plan.review.settings, fix, "strict")
        )
    K.settle(what, issues, strict, plan.notes)


def check_dtype(src: np.dtype, dst: np.dtype) -> str | None:
    floating = jax.numpy.issubdtype
    if not floating(dst, np.inexact):
        return f"target dtype {dst} is not a float type"
    if not floating(src, np.inexact):
        return f"source dtype {src} is not a float type"
    if floating(src, np.complexfloating) and not floating(dst, np.complexfloating):
        return f"complex {src} cannot fill a real {dst} leaf"
    return None


def forward(
    plan: Plan, tgt: T.Target, values: Mapping[str, np.ndarray]
) -> tuple[dict[int, np.ndarray], list[str]]:
    """Runs the plan torch -> target: leaf index -> converted array, and the mismatches."""
    out: dict[int, np.ndarray] = {}
    mismatches: list[str] = []
    for step in plan.steps:
        arrays = [values[k] for k in step.keys]
        src = ", ".join(f"{k} {fmt_shape(a.shape)}" for k, a in zip(step.keys, arrays))
        dst = ", ".join(tgt.leaves[i].path for i in step.leaves)
        try:
            results = step.group.fwd(*arrays)
        except (ValueError, IndexError) as e:
            want = ", ".join(fmt_shape(tgt.leaves[i].shape) for i in step.leaves)
            mismatches.append(f"torch {src} -> {dst} {want}: {e}")
            continue
        for i, x in zip(step.leaves, results):
            leaf = tgt.leaves[i]
            if tuple(x.shape) != leaf.shape:
                mismatches.append(
                    f"torch {src} -> {leaf.path}: converted {fmt_shape(x.shape)}, "
                    f"target {fmt_shape(leaf.shape)}"
                )
                continue
            bad = check_dtype(np.dtype(x.dtype), leaf.dtype)
            if bad:
                mismatches.append(f"torch {src} -> {leaf.path}: {bad}")
                continue
            out[i] = x
    return out, mismatches
