"""Planning: which rule initializes which leaf, with which concrete initializer.

:func:`plan` assigns each candidate leaf its first matching rule and checks
what the caller asked for (``strict``: every non-optional rule matches;
``unmatched="error"``: every floating leaf is covered), and that no rule
whose result depends on the layout meets a leaf whose layout was guessed.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
from collections.abc import Sequence
from typing import Any, Literal, TypeAlias

import jax
import numpy as np

from jaxinit._src.core.frames import warn
from jaxinit._src.core.initializer import Initializer
from jaxinit._src.core.sharding import sharding_of
from jaxinit._src.layers.context import LayoutWarning, reads_layout
from jaxinit._src.layers.leaf import Contextual, Leaf
from jaxinit._src.tree.rules import Rule, describe_rule, matches

__all__ = ["Job", "Unmatched", "check_classes_known", "plan"]

Unmatched: TypeAlias = Literal["keep", "error"]


# ----------------------------------------------------------------------------
# Planning: which rule initializes which leaf, with which concrete initializer


@dataclasses.dataclass(frozen=True)
class Job:
    """One leaf to draw: where, with what, and what it must look like."""

    index: int
    path: str
    rule: int
    init: Any
    shape: tuple[int, ...]
    dtype: np.dtype
    sharding: Any
    rule_desc: str = ""


def why_unused(r: int, rule: Rule, leaves: Sequence[Leaf], owner: list[int | None]) -> str:
    """Why rule ``r`` matched no leaf, where that can be told, and the nearest paths."""
    hits = [leaf for leaf in leaves if _safe_match(rule.selector, leaf)]
    candidates = [i for i, leaf in enumerate(leaves) if leaf.candidate and leaf in hits]
    if candidates:
        takers = sorted({t for i in candidates if (t := owner[i]) is not None})
        return f"every leaf it matches was taken by an earlier rule ({', '.join(f'rule {t}' for t in takers)})"
    if hits:
        shown = ", ".join(f"{h.path_str!r} ({_dtype_name(h.value)})" for h in hits[:3])
        return f"it matches only leaves that are not floating-point arrays: {shown}"
    notes = []
    selector = rule.selector
    if isinstance(selector, str):
        if selector.endswith("/value") and any(
            fnmatch.fnmatchcase(leaf.path_str, selector[: -len("/value")]) for leaf in leaves
        ):
            notes.append(
                "paths name the unboxed leaf (an nn.Partitioned box adds no '/value'): "
                f"use {selector[: -len('/value')]!r}"
            )
        near = difflib.get_close_matches(selector, [leaf.path_str for leaf in leaves], 3, 0.3)
        if near:
            notes.append(f"nearest paths: {', '.join(map(repr, near))}")
    elif rule.selects_classes and not any(leaf.owners for leaf in leaves):
        notes.append("the target records no module classes")
    return "; ".join(notes) if notes else "no leaf matches it"


def _safe_match(selector: Any, leaf: Leaf) -> bool:
    try:
        return matches(selector, leaf)
    except Exception:  # noqa: BLE001  (a user's predicate failing while we explain: no match)
        return False


def _dtype_name(value: Any) -> str:
    dtype = getattr(value, "dtype", None)
    return str(dtype) if dtype is not None else type(value).__name__


def _first_match(leaf: Leaf, rules: Sequence[Rule]) -> int | None:
    """The index of the first rule selecting ``leaf``, or None."""
    for r, rule in enumerate(rules):
        try:
            if matches(rule.selector, leaf):
                return r
        except Exception as e:  # noqa: BLE001  (a user's predicate: annotated and re-raised)
            e.add_note(f"while matching {describe_rule(r, rule)} on {leaf.path_str!r}")
            raise
    return None


def _concrete(rule: Rule, r: int, leaf: Leaf) -> Any:
    """The rule's initializer for ``leaf`` (a :class:`Contextual` one resolved)."""
    if not isinstance(rule.init, Contextual):
        return rule.init
    try:
        return rule.init.resolve(leaf)
    except Exception as e:  # noqa: BLE001  (annotated and re-raised)
        e.add_note(f"in {describe_rule(r, rule)} on {leaf.path_str!r}")
        raise


def plan(
    leaves: Sequence[Leaf],
    rules: Sequence[Rule],
    strict: bool,
    unmatched: Unmatched = "keep",
    *,
    abstract_ok: bool = False,
) -> list[Job]:
    """Assigns each candidate leaf its first matching rule; checks ``strict`` and ``unmatched``.

    ``abstract_ok``: the caller materializes the abstract leaves no rule draws
    (``jaxinit.flax.init``); otherwise an undrawn abstract leaf is an error.
    """
    if unmatched not in ("keep", "error"):
        raise ValueError(f"unmatched must be 'keep' or 'error', got {unmatched!r}")
    taken_by: list[int | None] = [None] * len(leaves)
    guessed: list[str] = []
    jobs = []
    for index, leaf in enumerate(leaves):
        r = _first_match(leaf, rules) if leaf.candidate else None
        if r is None:
            continue
        taken_by[index] = r
        init = _concrete(rules[r], r, leaf)
        if isinstance(init, Initializer):
            assert leaf.layout is not None
            if leaf.guessed and reads_layout(init, leaf.shape):
                guessed.append(f"{leaf.path_str!r} {leaf.shape} by {describe_rule(r, rules[r])}")
            init = init.in_context(leaf.layout)
        jobs.append(
            Job(
                index,
                leaf.path_str,
                r,
                init,
                leaf.shape,
                leaf.dtype,
                sharding_of(leaf.value),
                describe_rule(r, rules[r]),
            )
        )
    used = set(taken_by)
    if guessed:
        _layout_unknown(guessed, strict)
    if strict:
        unused = [
            f"{describe_rule(r, rule)}: {why_unused(r, rule, leaves, taken_by)}"
            for r, rule in enumerate(rules)
            if r not in used and not rule.optional
        ]
        if unused:
            raise ValueError(
                "strict=True: these rules matched no leaf:\n  "
                + "\n  ".join(unused)
                + "\nFix the selector, mark the rule optional (jaxinit.Rule(..., optional=True)) "
                "or pass strict=False."
            )
    drawn = {job.index for job in jobs}
    abstract = [
        leaf.path_str
        for i, leaf in enumerate(leaves)
        if i not in drawn and isinstance(leaf.value, jax.ShapeDtypeStruct)
    ]
    uncovered = [
        leaf.path_str for i, leaf in enumerate(leaves) if leaf.candidate and i not in drawn
    ]
    if abstract and not abstract_ok:
        raise ValueError(
            f"these abstract (ShapeDtypeStruct) leaves are not drawn by any rule and would be "
            f"returned unmaterialized: {_listing(abstract)}. Add rules for them, or build the "
            "model with jaxinit.flax.init, which materializes the leaves no rule selects."
        )
    if unmatched == "error" and uncovered:
        raise ValueError(
            f"unmatched='error': no rule covers these floating-point leaves: {_listing(uncovered)}"
        )
    return jobs


def _layout_unknown(guessed: Sequence[str], strict: bool) -> None:
    message = (
        f"the layout of {len(guessed)} leaf(s) is unknown (no layer jaxinit knows owns them), "
        f"and their initializers read it (fans or structure): {_listing(guessed, 8)}. They "
        "would be read in the flax layout (*kernel, in, out), which is a guess. Tell jaxinit: "
        "for a Linen dict pass model= (and args=) to jaxinit.flax.reinit, or use "
        "jaxinit.flax.init; or build the initializer with layout= ('flax', 'torch' or a "
        "jaxinit.Layout)."
    )
    if strict:
        raise ValueError(f"strict=True: {message} (strict=False warns instead)")
    warn(message, LayoutWarning)


def _listing(paths: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(map(repr, paths[:limit]))
    return shown + (f", ... ({len(paths) - limit} more)" if len(paths) > limit else "")


def check_classes_known(rules: Sequence[Rule], leaves: Sequence[Leaf], hint: str) -> None:
    """Raises if class selectors meet a target that records no module classes at all."""
    if any(rule.selects_classes for rule in rules) and not any(leaf.owners for leaf in leaves):
        selectors = [describe_rule(r, rule) for r, rule in enumerate(rules) if rule.selects_classes]
        raise ValueError(
            f"{len(selectors)} rule(s) select by module class, e.g. {selectors[0]}, but this "
            f"target holds no modules (only dicts, lists and arrays), so they can match "
            f"nothing. {hint}"
        )
