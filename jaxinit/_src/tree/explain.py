"""``explain``: a dry run of the rules, leaf by leaf; nothing is drawn or compiled.

For every floating-point leaf: its path, shape and dtype, the rule that takes
it (index and selector), the initializer that rule gives it there (a
``Contextual`` rule resolved, the leaf's layout applied) and the
:class:`~jaxinit.Distribution` it will draw; then the leaves no rule takes
and the rules that take no leaf. It reuses the planner of ``reinit``
(:func:`jaxinit._src.tree.rules.plan`), so it tells exactly what ``reinit`` and
``init`` would do, without running any XLA program.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, overload

import numpy as np

from jaxinit._src.core.distribution import Distribution
from jaxinit._src.core.initializer import Initializer
from jaxinit._src.core.layout import Layout, LayoutLike
from jaxinit._src.layers.leaf import Contextual, Leaf
from jaxinit._src.tree.generic import tree_leaves
from jaxinit._src.tree.plan import plan, why_unused
from jaxinit._src.tree.rules import Layers, Rule, as_rules

__all__ = ["ExplainRow", "Explanation", "explain"]


@dataclasses.dataclass(frozen=True)
class ExplainRow:
    """One floating-point leaf of an :class:`Explanation`.

    Attributes:
      path: the ``/``-joined path, as rules see it.
      shape: the leaf's shape.
      dtype: the leaf's dtype.
      rule: the index of the rule that takes the leaf, or ``None``.
      selector: that rule's selector, in short (``"(Dense, 'kernel')"``), or ``None``.
      init: the initializer the rule gives this leaf (resolved for it), as
        text, or ``None``.
      distribution: what it will draw (``None`` if unmatched, or for an
        initializer that is not a jaxinit one).
      matched: whether a rule takes the leaf.
      error: why the initializer cannot draw this leaf (a bad shape), or ``None``.
      layout: the layout the initializer reads the leaf in, or ``None``.

    >>> import jax.numpy as jnp, jaxinit
    >>> row = jaxinit.explain({"w": jnp.zeros((64, 256))},
    ...                       [("w", jaxinit.torch_linear_weight())])[0]
    >>> row.path, row.rule, row.distribution
    ('w', 0, U(-0.0625, 0.0625))
    """

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    rule: int | None
    selector: str | None
    init: str | None
    distribution: Distribution | None
    matched: bool
    error: str | None = None
    layout: Layout | None = None


class Explanation(Sequence[ExplainRow]):
    """The rows of :func:`jaxinit.explain`, one per floating-point leaf; prints as a table.

    A sequence of :class:`ExplainRow` (in the target's leaf order) that also
    knows the leaves no rule matched and the rules that matched no leaf.

    Attributes:
      rows: every row.
      unused_rules: the non-optional rules that matched no leaf (what
        ``strict=True`` rejects), each with the reason where it can be told.

    >>> import jax.numpy as jnp, jaxinit
    >>> tree = {"w": jnp.zeros((64, 256)), "b": jnp.zeros(64)}
    >>> print(jaxinit.explain(tree, [("w", jaxinit.torch_linear_weight())]))
    path  shape      dtype    rule  selector  init                           distribution
    b     (64,)      float32  -     -         -                              -
    w     (64, 256)  float32  0     'w'       jaxinit.torch_linear_weight()  U(-0.0625, 0.0625)
    1 of 2 floating-point leaves matched no rule: 'b'
    """

    def __init__(self, rows: Sequence[ExplainRow], unused_rules: Sequence[str] = ()):
        self.rows: tuple[ExplainRow, ...] = tuple(rows)
        self.unused_rules: tuple[str, ...] = tuple(unused_rules)

    @overload
    def __getitem__(self, index: int) -> ExplainRow: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ExplainRow]: ...

    def __getitem__(self, index: Any) -> Any:
        return self.rows[index]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[ExplainRow]:
        return iter(self.rows)

    @property
    def unmatched(self) -> tuple[ExplainRow, ...]:
        """The rows of the leaves no rule matched."""
        return tuple(row for row in self.rows if not row.matched)

    @property
    def errors(self) -> tuple[ExplainRow, ...]:
        """The rows whose initializer cannot draw the leaf (``reinit`` would raise)."""
        return tuple(row for row in self.rows if row.error is not None)

    def row(self, path: str) -> ExplainRow:
        """The row of the leaf at ``path``.

        Raises:
          KeyError: if no floating-point leaf has that path.
        """
        for row in self.rows:
            if row.path == path:
                return row
        raise KeyError(f"no floating-point leaf at {path!r}")

    def table(self, max_width: int = 60) -> str:
        """The rows as an aligned text table, then the unmatched leaves and unused rules.

        Args:
          max_width: cells longer than this are cut in the middle, at ``...``.
        """
        header = ("path", "shape", "dtype", "rule", "selector", "init", "distribution")
        cells = [header]
        for r in self.rows:
            if r.error is not None:
                dist = f"error: {r.error}"
            else:
                dist = "-" if r.distribution is None else repr(r.distribution)
            cells.append(
                (
                    r.path,
                    str(r.shape),
                    str(r.dtype),
                    "-" if r.rule is None else str(r.rule),
                    r.selector or "-",
                    r.init or "-",
                    dist,
                )
            )
        cut = [tuple(_cut(c, max_width) for c in row) for row in cells]
        widths = [max(len(row[i]) for row in cut) for i in range(len(header))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cut]
        unmatched = self.unmatched
        if unmatched:
            lines.append(
                f"{len(unmatched)} of {len(self.rows)} floating-point leaves matched no rule: "
                + ", ".join(repr(r.path) for r in unmatched[:20])
                + (f", ... ({len(unmatched) - 20} more)" if len(unmatched) > 20 else "")
            )
        for text in self.unused_rules:
            lines.append(f"matched no leaf: {text}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return self.table()


def _cut(text: str, width: int) -> str:
    """``text`` cut in the middle to ``width`` (the end of a selector is its parameter name)."""
    if len(text) <= width:
        return text
    head = (width - 3) // 2
    return text[:head] + "..." + text[len(text) - (width - 3 - head) :]


def _name(cls: Any) -> str:
    if isinstance(cls, type):
        return cls.__name__
    names = list(dict.fromkeys(c.__name__ for c in cls))  # Linen's and NNX's LayerNorm: once
    if len(names) == 1:
        return names[0]
    shown = names if len(names) <= 3 else [*names[:2], f"+{len(names) - 2}"]
    return "(" + " | ".join(shown) + ")"


def describe_selector(selector: Any) -> str:
    """A short text for a selector: ``'*/bias'``, ``Dense``, ``(Dense, 'kernel')``."""
    if isinstance(selector, str):
        return repr(selector)
    if isinstance(selector, type) or (
        isinstance(selector, tuple) and selector and all(isinstance(c, type) for c in selector)
    ):
        return _name(selector)
    if isinstance(selector, tuple):
        return f"({_name(selector[0])}, {selector[1]!r})"
    if isinstance(selector, Layers):  # by kind: the same text whatever frameworks are loaded
        kinds = list(selector.kinds)
        shown = kinds if len(kinds) <= 3 else [*kinds[:2], f"+{len(kinds) - 2}"]
        text = shown[0] if len(shown) == 1 else "(" + " | ".join(shown) + ")"
        return text if selector.pattern == "*" else f"({text}, {selector.pattern!r})"
    name = getattr(selector, "__qualname__", None) or type(selector).__name__
    return f"predicate {name}"


def explain_leaves(leaves: Sequence[Leaf], rules: Sequence[Rule]) -> Explanation:
    """The :class:`Explanation` of ``rules`` on already-built leaf records."""
    jobs = plan(leaves, rules, strict=False, unmatched="keep", abstract_ok=True)
    by_index = {job.index: job for job in jobs}
    rows = []
    taken: list[int | None] = [None] * len(leaves)
    for index, leaf in enumerate(leaves):
        if not leaf.candidate:
            continue
        job = by_index.get(index)
        if job is None:
            rows.append(
                ExplainRow(leaf.path_str, leaf.shape, leaf.dtype, None, None, None, None, False)
            )
            continue
        taken[index] = job.rule
        distribution, error, layout = None, None, None
        if isinstance(job.init, Initializer):
            layout = job.init.resolved_layout()
            try:
                distribution = job.init.distribution(leaf.shape, leaf.dtype)
            except (ValueError, TypeError) as e:
                error = str(e)
        rows.append(
            ExplainRow(
                leaf.path_str,
                leaf.shape,
                leaf.dtype,
                job.rule,
                describe_selector(rules[job.rule].selector),
                _init_text(job.init, rules[job.rule], leaf),
                distribution,
                True,
                error,
                layout,
            )
        )
    used = {job.rule for job in jobs}
    unused = [
        f"rule {r} ({describe_selector(rule.selector)} -> {rule.init!r}): "
        f"{why_unused(r, rule, leaves, taken)}"
        for r, rule in enumerate(rules)
        if r not in used and not rule.optional
    ]
    return Explanation(rows, unused)


def _init_text(init: Any, rule: Rule, leaf: Leaf) -> str:
    """The initializer as the user wrote it: without the layout the context gave it."""
    if isinstance(init, Initializer):
        own = rule.init.resolve(leaf) if isinstance(rule.init, Contextual) else rule.init
        if isinstance(own, Initializer) and own.layout is None:
            return repr(init.with_layout(None))
        return repr(init)
    if not callable(init):
        return repr(init)
    name = getattr(init, "__qualname__", None) or getattr(init, "__name__", None)
    module = getattr(init, "__module__", None) or ""
    if name and "<locals>" not in name:
        return f"{module}.{name}" if module else name
    return repr(init)


def explain(tree: Any, rules: Any, *, layout: LayoutLike = "torch") -> Explanation:
    """What :func:`jaxinit.reinit` would do to ``tree``, leaf by leaf, without doing it.

    A dry run: for every floating-point leaf, its path, shape, dtype, the rule
    that takes it (first match wins), the initializer that rule gives it there,
    and the :class:`~jaxinit.Distribution` it would draw; then the leaves no
    rule matches and the rules that match no leaf. Nothing is drawn and no XLA
    program is compiled. For Flax targets (Linen models and variables, NNX
    modules and classes) use :func:`jaxinit.flax.explain`.

    Args:
      tree: any pytree (Equinox modules, dicts, lists); leaves may be
        arrays or ``jax.ShapeDtypeStruct``.
      rules: ``(selector, initializer)`` pairs or :class:`~jaxinit.Rule` s,
        or a dict, as :func:`jaxinit.reinit` takes.
      layout: the layout given to initializers built without ``layout=``, as
        in :func:`jaxinit.reinit` (default torch).

    Returns:
      An :class:`Explanation`: a sequence of :class:`ExplainRow` that prints
      as a table.

    Raises:
      TypeError: for a malformed rule.

    >>> import jax.numpy as jnp, jaxinit
    >>> params = {"dense": {"weight": jnp.zeros((64, 256)), "bias": jnp.zeros(64)}}
    >>> rules = [("*/weight", jaxinit.torch_linear_weight()), ("*/bias", jaxinit.zeros())]
    >>> print(jaxinit.explain(params, rules))
    path          shape      dtype    rule  selector    init                           distribution
    dense/bias    (64,)      float32  1     '*/bias'    jaxinit.zeros()                const(0)
    dense/weight  (64, 256)  float32  0     '*/weight'  jaxinit.torch_linear_weight()  U(-0.0625, 0.0625)
    """
    _, _, leaves = tree_leaves(tree, layout)
    return explain_leaves(leaves, as_rules(rules))
