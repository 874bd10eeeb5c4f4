"""What a port must say instead of loading wrong weights quietly, and the one error it raises.

Every check returns :class:`Issue` s; :func:`settle` turns them into one
``ValueError`` (nothing has been changed yet) or warnings:

- ``level="error"``: an error whatever ``strict`` says (a shape mismatch);
- ``level="strict"``: an error under ``strict=True``, a warning otherwise
  (tied tensors given different values, layer hyperparameters that differ,
  a square weight whose layout is only assumed, leaves left abstract);
- ``level="pairing"``: an error under ``strict=True``, nothing otherwise
  (unpaired names: ``strict=False`` asks to leave them).
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import jax
import numpy as np

__all__ = ["Assumed", "Issue", "conv1d_issues", "settle", "tie_conflicts"]

_LIST = 12  # how many items an error lists per section


@dataclasses.dataclass
class Issue:
    """One section of the report: a title, the items, and the fix."""

    title: str
    items: list[str]
    fix: str = ""
    level: Literal["error", "strict", "pairing"] = "error"
    as_warning: list[str] | None = None  # the items as a warning says them (what was done)


def _section(issue: Issue) -> list[str]:
    lines = [f"{issue.title} ({len(issue.items)}):"]
    lines.extend(f"  {x}" for x in issue.items[:_LIST])
    if len(issue.items) > _LIST:
        lines.append(f"  ... and {len(issue.items) - _LIST} more")
    return lines


def settle(what: str, issues: Sequence[Issue], strict: bool, notes: Sequence[str] = ()) -> None:
    """Raises one ``ValueError`` for every issue that is an error here; warns of the rest.

    Args:
      what: the function speaking (``"from_torch"``).
      issues: the sections, in the order they are shown.
      strict: whether ``"strict"`` and ``"pairing"`` issues are errors.
      notes: pairing notes shown with an error (rename rules that led nowhere).
    """
    issues = [i for i in issues if i.items]
    errors = [i for i in issues if i.level == "error" or strict]
    if errors:
        lines = [f"{what}: nothing was changed."]
        for issue in errors:
            lines += _section(issue)
        if notes:
            lines += _section(Issue("notes", list(notes)))
        fixes = list(dict.fromkeys(i.fix for i in errors if i.fix))
        lines += fixes
        raise ValueError("\n".join(lines))
    for issue in issues:
        if issue.level == "strict":
            if issue.as_warning is not None:
                issue = dataclasses.replace(issue, items=issue.as_warning)
            text = "\n".join([f"{what}: " + _section(issue)[0], *_section(issue)[1:], issue.fix])
            warnings.warn(text.rstrip(), UserWarning, stacklevel=3)


# ----------------------------------------------------------------------------
# Tied tensors


def tie_groups(ties: Mapping[str, Sequence[str]], order: Iterable[str]) -> list[list[str]]:
    """The groups of keys that share storage, each in ``order`` (state_dict order)."""
    position = {k: i for i, k in enumerate(order)}
    groups: dict[tuple[str, ...], list[str]] = {}
    for key, others in ties.items():
        members = sorted({key, *others}, key=lambda k: position.get(k, len(position)))
        groups.setdefault(tuple(members), members)
    return list(groups.values())


def tie_conflicts(
    ties: Mapping[str, Sequence[str]],
    written: Mapping[str, np.ndarray],
    order: Iterable[str],
    source_of: Mapping[str, str],
) -> tuple[Issue, set[str]]:
    """Tied torch tensors that the JAX side gives more than one value.

    Args:
      ties: key -> the keys sharing its storage.
      written: key -> the value about to be written (torch layout).
      order: the state_dict keys in order (the first written key of a tie wins).
      source_of: key -> the JAX leaf its value comes from.

    Returns:
      The issue (one item per tie whose values differ), and the keys not to
      write (every written key of a tie but its first: one storage, one write).
    """
    items, done, skip = [], [], set()
    for group in tie_groups(ties, order):
        keys = [k for k in group if k in written]
        if len(keys) < 2:
            continue
        first, rest = keys[0], keys[1:]
        skip.update(rest)
        a = np.asarray(written[first], np.float64)
        diffs = {
            k: float(np.max(np.abs(a - np.asarray(written[k], np.float64)), initial=0.0))
            for k in rest
        }
        differ = [k for k in rest if not np.array_equal(written[first], written[k])]
        if not differ:
            continue
        worst = max(diffs[k] for k in differ)
        others = ", ".join(f"{k} (from {source_of.get(k, '?')})" for k in differ)
        items.append(
            f"{first} (from {source_of.get(first, '?')}) and {others} share storage in torch "
            f"(tied), but their JAX values differ (max |diff| {worst:.3g})"
        )
        done.append(f"{items[-1]}: wrote {first}'s value, from {source_of.get(first, '?')}")
    fix = (
        "Give tied leaves equal values (or keep only one of them in the JAX model), or pass "
        "strict=False to write the first tied key's value (in state_dict order) and skip the rest."
    )
    issue = Issue("tied torch tensors given different values", items, fix, "strict", done)
    return issue, skip


# ----------------------------------------------------------------------------
# transformers Conv1D in a bare state_dict


@dataclasses.dataclass
class Assumed:
    """A 2-D weight of a layer of unknown kind read as a Linear's ``(out, in)``, by assumption.

    Attributes:
      key: its state_dict key.
      module: its module path (what ``torch_types`` globs match).
      shape: its shape.
      leaf: the target leaf it fills, and that leaf's shape.
      leaf_shape: the target leaf's shape.
      same_layout: the target keeps torch's layout (Equinox).
    """

    key: str
    module: str
    shape: tuple[int, ...]
    leaf: str
    leaf_shape: tuple[int, ...]
    same_layout: bool

    @property
    def fits_linear(self) -> bool:
        want = self.shape if self.same_layout else self.shape[::-1]
        return self.leaf_shape == want

    @property
    def fits_conv1d(self) -> bool:
        want = self.shape[::-1] if self.same_layout else self.shape
        return self.leaf_shape == want


def module_glob(module: str) -> str:
    """A module path with its indices made ``*``: ``transformer.h.0.attn`` -> ``transformer.h.*.attn``."""
    return ".".join("*" if re.fullmatch(r"\d+", t) else t for t in module.split("."))


def conv1d_issues(assumed: Sequence[Assumed], declared: bool) -> list[Issue]:
    """A state_dict holding transformers Conv1D weights makes every square weight's layout a guess.

    Args:
      assumed: the 2-D weights read as Linear by assumption.
      declared: some layer is a Conv1D (by its class, or declared in ``torch_types``).

    Returns:
      An error (whatever ``strict`` says) listing the weights that fit only as
      Conv1D ``(in, out)``, and an error under strict (a warning otherwise)
      listing the square weights whose layout cannot be told; both with the
      ``torch_types`` that says it.
    """
    conv1d = [a for a in assumed if a.fits_conv1d and not a.fits_linear]
    if not conv1d and not declared:
        return []
    square = [a for a in assumed if a.fits_conv1d and a.fits_linear]
    globs = list(dict.fromkeys(module_glob(a.module) for a in [*conv1d, *square]))
    example = (
        "{"
        + ", ".join(f"{g!r}: 'Conv1D'" for g in globs[:4])
        + ("" if len(globs) <= 4 else ", ...")
        + "}"
    )
    fix = (
        "transformers' Conv1D (GPT-2) stores its weight (in, out), a Linear (out, in); shapes "
        f"cannot tell a square one's layout: declare them, e.g. torch_types={example} "
        "(or 'Linear' for those that are)."
    )
    return [
        Issue(
            "weights that fit only read as transformers Conv1D (in, out), not as Linear (out, in)",
            [f"{a.key} {a.shape} -> {a.leaf} {a.leaf_shape}" for a in conv1d],
            fix,
            "error",
        ),
        Issue(
            "square weights read as Linear (out, in) by assumption, next to transformers "
            "Conv1D weights",
            [f"{a.key} {a.shape} -> {a.leaf} (transposed as a Linear weight)" for a in square],
            fix,
            "strict",
        ),
    ]


# ----------------------------------------------------------------------------
# Abstract leaves


def abstract_issue(paths: Sequence[str], flavor: str) -> Issue:
    """Leaves that would stay ``jax.ShapeDtypeStruct`` s (they fail later, inside Flax)."""
    if flavor == "NNX module":
        fix = (
            "Build the module concretely (Model(rngs=nnx.Rngs(0))) rather than under "
            "nnx.eval_shape: its RNG state and any leaf the port does not fill need values."
        )
    else:
        fix = (
            "Start from concrete variables (model.init(key, x), or jax.jit of it) where the "
            "port does not fill every leaf, or fill those leaves before use."
        )
    return Issue(
        "leaves that would stay abstract (jax.ShapeDtypeStruct)", list(paths), fix, "strict"
    )


def is_abstract(x: Any) -> bool:
    return isinstance(x, jax.ShapeDtypeStruct)
