"""Griffe extension for jaxinit's API reference (loaded by mkdocs.yml).

It does three things, all general (nothing here names a jaxinit function):

1. **Public callables made at run time.** Many public names are built by a
   function: ``jaxinit.flax.kaiming_normal = with_default_layout(...)``,
   ``jaxinit.kaiming_normal_ = make_inplace(...)``. Static analysis sees an
   assignment, and griffe's inspector unwraps ``functools.wraps`` wrappers to
   the wrapped builder, losing the wrapper's own ``__signature__`` and
   ``__doc__`` (``kaiming_normal_(array, /, ..., *, key)``). So, for every name
   in ``__all__`` of every public module, the live object is imported and,
   where its signature or docstring differs from what griffe loaded (or griffe
   did not see a function at all), the member is replaced by a function built
   from the live object: ``inspect.signature`` and ``inspect.getdoc``, with the
   annotations of the wrapped function where the parameter is the same.

2. **Sphinx markup in Google-style docstrings.** jaxinit's docstrings follow
   jax and optax: ``:math:`...```, ``.. math::``, ``:func:`~jaxinit.X```,
   bare ``>>>`` doctest blocks, simple tables. These become Markdown: arithmatex math,
   autorefs cross-references (for public ``jaxinit`` objects, so a broken one
   fails the strict build; anything else becomes code), fenced ``pycon``
   blocks (doctest directives and ``<BLANKLINE>`` dropped), admonitions and
   tables.
"""

from __future__ import annotations

import importlib
import inspect
import re
import textwrap
from pathlib import Path
from typing import Any

import griffe

_PACKAGE = "jaxinit"


# ----------------------------------------------------------------------------
# 1. Public callables made at run time


def _public_modules(pkg: griffe.Module) -> list[griffe.Module]:
    """The package and its non-underscore submodules (recursively)."""
    found = [pkg]
    for name, member in pkg.members.items():
        if not member.is_alias and member.is_module and not name.startswith("_"):
            found.extend(_public_modules(member))  # type: ignore[arg-type]
    return found


def _annotation(value: Any) -> str | None:
    if value is inspect.Parameter.empty:
        return None
    if isinstance(value, str):
        return value
    return inspect.formatannotation(value)


def _static_function(loader: griffe.GriffeLoader, obj: Any) -> griffe.Function | None:
    """The function griffe loaded for ``obj`` (unwrapped), if it loaded one."""
    base = inspect.unwrap(obj)
    path = f"{getattr(base, '__module__', '')}.{getattr(base, '__qualname__', '')}"
    try:
        found = loader.modules_collection.get_member(path)
    except (KeyError, ValueError, griffe.AliasResolutionError):
        return None
    return found if isinstance(found, griffe.Function) else None


def _function_from_live(
    name: str,
    obj: Any,
    module: griffe.Module,
    wrapped: griffe.Function | None,
    loader: griffe.GriffeLoader,
) -> griffe.Function:
    sig = inspect.signature(obj)
    static = {p.name: p for p in wrapped.parameters} if wrapped is not None else {}
    params = []
    for p in sig.parameters.values():
        annotation: Any = _annotation(p.annotation)
        same = static.get(p.name)
        if same is not None and same.annotation is not None and annotation is not None:
            annotation = same.annotation  # an expression: cross-referenced in the page
        params.append(
            griffe.Parameter(
                p.name,
                annotation=annotation,
                kind=griffe.ParameterKind(p.kind.description),
                default=None if p.default is inspect.Parameter.empty else repr(p.default),
            )
        )
    returns: Any = _annotation(sig.return_annotation)
    if wrapped is not None and wrapped.returns is not None and returns == str(wrapped.returns):
        returns = wrapped.returns
    func = griffe.Function(
        name,
        lineno=wrapped.lineno if wrapped is not None else None,
        endlineno=wrapped.endlineno if wrapped is not None else None,
        parameters=griffe.Parameters(*params),
        returns=returns,
    )
    doc = inspect.getdoc(obj)
    if doc:
        func.docstring = griffe.Docstring(
            doc,
            parent=func,
            parser=loader.docstring_parser,
            parser_options=loader.docstring_options,
        )
    module.set_member(name, func)
    return func


def _needs_live(member: Any, obj: Any) -> bool:
    try:
        target = member.final_target if member.is_alias else member
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return True
    if not isinstance(target, griffe.Function):
        return True
    try:
        live = [p.name for p in inspect.signature(obj).parameters.values()]
    except (TypeError, ValueError):
        return False
    doc = inspect.getdoc(obj) or ""
    loaded = target.docstring.value if target.docstring else ""
    return [p.name for p in target.parameters] != live or doc.strip() != loaded.strip()


def _fix_runtime_callables(pkg: griffe.Module, loader: griffe.GriffeLoader) -> None:
    for module in _public_modules(pkg):
        live = importlib.import_module(module.path)
        live_file = Path(getattr(live, "__file__", "") or "").resolve()
        if module.filepath and live_file != Path(str(module.filepath)).resolve():
            raise RuntimeError(
                f"griffe_jaxinit: griffe read {module.filepath} but Python imports "
                f"{module.path} from {live_file}; run mkdocs from the checkout whose "
                f"package is installed (pip install -e .)"
            )
        for name in getattr(live, "__all__", ()):
            obj = getattr(live, name)
            if inspect.isclass(obj) or not callable(obj):
                continue
            member = module.members.get(name)
            if member is None or _needs_live(member, obj):
                _function_from_live(name, obj, module, _static_function(loader, obj), loader)


# ----------------------------------------------------------------------------
# 2. Sphinx markup -> Markdown

_ROLE = re.compile(r":(?:py:)?(func|class|mod|meth|attr|data|obj|exc|const):`([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_ADMONITION = re.compile(r"^(\s*)\.\. (note|warning|tip|important|seealso|danger)::\s*(.*)$")
_MATH_DIRECTIVE = re.compile(r"^(\s*)\.\. math::\s*(.*)$")
_EXAMPLES_SECTION = re.compile(r"^\s*Examples?:\s*$", re.MULTILINE)


class _Refs:
    """Turns a Sphinx role target into an autorefs link, or into code."""

    def __init__(self, exports: dict[str, list[str]]):
        self.exports = exports  # public module path -> its __all__

    def qualify(self, target: str) -> str | None:
        target = target.lstrip(".")
        if "." not in target:
            for module, names in self.exports.items():
                if target in names:
                    return f"{module}.{target}"
            return None
        if target.split(".")[0] != _PACKAGE:
            return None
        if any(part.startswith("_") and not part.startswith("__") for part in target.split(".")):
            return None  # private: not in the reference
        return target

    def __call__(self, match: re.Match[str]) -> str:
        text = match.group(2)
        title, _, explicit = text.partition(" <")
        if explicit:  # :func:`title <target>`
            target, shown = explicit.rstrip(">"), title
        else:
            target = text
            shown = text.lstrip("~").split(".")[-1] if text.startswith("~") else text
            target = target.lstrip("~")
        path = self.qualify(target)
        return f"[`{shown}`][{path}]" if path else f"`{shown}`"


_INLINE_LITERAL = re.compile(r"(:\w+:`[^`]*`|``.*?``|`[^`]*`)")


def _table_cell(text: str) -> str:
    """RST cell text for a Markdown table: ``|`` and ``*`` outside literals and roles escaped.

    RST reads ``conv*d`` literally; Markdown would start emphasis at its ``*``.
    """
    parts = _INLINE_LITERAL.split(text)
    return "".join(
        part if i % 2 else part.replace("|", "\\|").replace("*", "\\*")
        for i, part in enumerate(parts)
    )


_TABLE_BORDER = re.compile(r"^(\s*)=+(?: +=+)+\s*$")


def _rst_table(lines: list[str], start: int) -> tuple[list[str], int] | None:
    """The reStructuredText simple table whose top border is ``lines[start]``, as Markdown.

    Returns (Markdown lines, index after the table), or None if no table starts
    there. Columns are where the border's ``=`` runs start (the last column
    runs to the end of the line); a line whose first column is blank continues
    the row above it, and so does a line with text in its first column only
    after a first cell ending in a comma (a wrapped list of names); the rows
    above the second border are the header. A table with one border line
    before its end has no header: its columns get none.
    """
    m = _TABLE_BORDER.match(lines[start])
    if m is None:
        return None
    border = lines[start].rstrip()
    starts = [run.start() for run in re.finditer(r"=+", border)]
    borders = [start]
    end = start + 1
    while end < len(lines) and lines[end].strip() and len(borders) < 3:
        if lines[end].rstrip() == border:
            borders.append(end)
        end += 1
    if len(borders) < 2:
        return None
    if len(borders) == 2 and end < len(lines) and lines[end].strip():
        return None  # a third border is missing: not a table this converter knows

    def rows(first: int, last: int) -> list[list[str]]:
        out: list[list[str]] = []
        for line in lines[first:last]:
            cells = [
                line[a : (starts[i + 1] if i + 1 < len(starts) else len(line))].strip()
                for i, a in enumerate(starts)
            ]
            wrapped_list = out and out[-1][0].endswith(",") and not any(cells[1:])
            if out and (not cells[0] or wrapped_list):
                out[-1] = [f"{old} {new}".strip() for old, new in zip(out[-1], cells)]
            elif any(cells):
                out.append(cells)
        return out

    if len(borders) == 3:
        header, body = rows(borders[0] + 1, borders[1]), rows(borders[1] + 1, borders[2])
        header_cells = [" ".join(c).strip() for c in zip(*header)] if header else []
    else:
        header_cells, body = [""] * len(starts), rows(borders[0] + 1, borders[1])
    indent = m.group(1)

    def md(cells: list[str]) -> str:
        return indent + "| " + " | ".join(map(_table_cell, cells)) + " |"

    table = [md(header_cells), indent + "|" + "---|" * len(starts), *map(md, body)]
    return table, borders[-1] + 1


_DOCTEST_DIRECTIVE = re.compile(r"\s*#\s*doctest:.*$")


def _doctest_display(line: str) -> str:
    """A doctest line as readers should see it: no directives, no ``<BLANKLINE>``."""
    if line.strip() == "<BLANKLINE>":
        return ""
    if line.lstrip().startswith((">>>", "...")):
        return _DOCTEST_DIRECTIVE.sub("", line)
    return line


def _indented_block(lines: list[str], start: int, base: int) -> int:
    """Index after the block of lines indented deeper than ``base`` (blank lines inside)."""
    end = start
    while end < len(lines):
        line = lines[end]
        if line.strip() and len(line) - len(line.lstrip()) <= base:
            break
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return end


def refs_and_math(line: str, refs: _Refs) -> str:
    """A line's ``:math:`` roles as arithmatex math, its object roles as links or code."""
    line = _MATH_ROLE.sub(lambda m: f"${m.group(1)}$", line)
    return _ROLE.sub(refs, line)


def sphinx_to_markdown(text: str, refs: _Refs) -> str:
    """Rewrites the Sphinx markup jaxinit's docstrings use as Markdown."""
    lines = text.splitlines()
    out: list[str] = []
    fence_doctests = not _EXAMPLES_SECTION.search(text)
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith("```"):
            in_fence = not in_fence
        if in_fence:
            out.append(line)
            i += 1
            continue
        if m := _MATH_DIRECTIVE.match(line):
            end = _indented_block(lines, i + 1, len(indent))
            body = textwrap.dedent("\n".join(lines[i + 1 : end])).strip()
            math = "\n".join(part for part in (m.group(2).strip(), body) if part)
            out += ["", f"{indent}$$", *(indent + x for x in math.splitlines()), f"{indent}$$", ""]
            i = end
            continue
        if m := _ADMONITION.match(line):
            end = _indented_block(lines, i + 1, len(indent))
            body = textwrap.dedent("\n".join(lines[i + 1 : end]))
            kind = "info" if m.group(2) == "seealso" else m.group(2)
            first = [m.group(3)] if m.group(3) else []
            out.append(
                f'{indent}!!! {kind} ""' if kind != "info" else f'{indent}!!! info "See also"'
            )
            out += [indent + "    " + x if x.strip() else "" for x in [*first, *body.splitlines()]]
            i = end
            continue
        if (table := _rst_table(lines, i)) is not None:
            out += ["", *(refs_and_math(x, refs) for x in table[0]), ""]
            i = table[1]
            continue
        if fence_doctests and stripped.startswith(">>>"):
            end = i
            while end < len(lines) and lines[end].strip():
                end += 1
            shown = [_doctest_display(x) for x in lines[i:end]]
            out += [f"{indent}```pycon", *shown, f"{indent}```"]
            i = end
            continue
        if stripped.endswith("::") and not stripped.startswith(".."):
            line = line[:-1]  # RST "text::" introduces a literal block: "text:"
        out.append(refs_and_math(line, refs))
        i += 1
    return "\n".join(out)


_PARAMS_SECTION = re.compile(
    r"^(\s*)(Args|Arguments|Parameters|Keyword Args|Other Parameters):\s*$"
)
_GROUPED_ENTRY = re.compile(r"^(\s+)(\*{0,2}\w+(?:\s*,\s*\*{0,2}\w+)+)\s*:(.*)$")


def split_grouped_params(text: str) -> str:
    """``a, b: desc`` in an Args section becomes one entry per name (as numpydoc allows)."""
    lines = text.splitlines()
    out: list[str] = []
    section_indent: int | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        indent = len(line) - len(line.lstrip())
        if m := _PARAMS_SECTION.match(line):
            section_indent = len(m.group(1))
        elif line.strip() and section_indent is not None and indent <= section_indent:
            section_indent = None
        m = _GROUPED_ENTRY.match(line) if section_indent is not None else None
        if m is None:
            out.append(line)
            i += 1
            continue
        end = _indented_block(lines, i + 1, len(m.group(1)))
        rest = lines[i + 1 : end]
        for name in (n.strip() for n in m.group(2).split(",")):
            out += [f"{m.group(1)}{name}:{m.group(3)}", *rest]
        i = end
    return "\n".join(out)


def _convert_docstrings(obj: griffe.Object, refs: _Refs, seen: set[int]) -> None:
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if obj.docstring is not None:
        text = split_grouped_params(obj.docstring.value)
        obj.docstring.value = sphinx_to_markdown(text, refs)
    for member in obj.members.values():
        if not member.is_alias:
            _convert_docstrings(member, refs, seen)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------
# 3. Rule sets as tables

# Where a class lives -> how the docs name it (as users import it).
_CLASS_PREFIXES = (("flax.linen.", "nn."), ("flax.nnx.", "nnx."), ("equinox.", "eqx.nn."))
# A layer registry's framework -> the same prefix.
_FRAMEWORK_PREFIXES = {"linen": "nn.", "nnx": "nnx.", "equinox": "eqx.nn."}
# The registry of layer kinds that kind selectors (``jaxinit.Layers``) name. Imported,
# not copied: a move makes the build fail here instead of listing stale classes.
_KIND_REGISTRY = f"{_PACKAGE}._src.layers.registry"


def _class_name(cls: type) -> str:
    for module, alias in _CLASS_PREFIXES:
        if f"{cls.__module__}.".startswith(module):
            return alias + cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _kind_classes(kinds: tuple[str, ...]) -> str:
    """The classes of registered layer kinds, framework by framework, as Markdown."""
    rows = importlib.import_module(_KIND_REGISTRY).KINDS
    names: list[str] = []
    for kind in kinds:
        found = [r for r in rows if r.kind == kind]
        if not found:
            raise ValueError(f"griffe_jaxinit: layer kind {kind!r} is not in {_KIND_REGISTRY}")
        for row in found:
            prefix = _FRAMEWORK_PREFIXES.get(row.framework, f"{row.framework}.")
            names += [f"`{prefix}{c}`" for c in row.classes if f"`{prefix}{c}`" not in names]
    order = list(_FRAMEWORK_PREFIXES.values())
    return ", ".join(
        sorted(names, key=lambda n: next(i for i, p in enumerate(order) if n[1:].startswith(p)))
    )


def _is_rule_set(value: Any) -> bool:
    return (
        isinstance(value, (tuple, list))
        and len(value) > 0
        and all(all(hasattr(r, a) for a in ("selector", "init", "optional")) for r in value)
    )


def _selector_cells(selector: Any) -> tuple[str, str]:
    """(layers, parameter) for one rule selector, as Markdown."""
    if isinstance(selector, str):
        return "any", f"`{selector}`"
    if isinstance(getattr(selector, "kinds", None), tuple) and hasattr(selector, "pattern"):
        return _kind_classes(selector.kinds), f"`{selector.pattern}`"
    if isinstance(selector, type):
        return f"`{_class_name(selector)}`", "every parameter"
    if isinstance(selector, tuple) and selector and isinstance(selector[-1], str):
        layers, _ = _selector_cells(selector[0])
        return layers, f"`{selector[-1]}`"
    if isinstance(selector, tuple) and all(isinstance(c, type) for c in selector):
        return ", ".join(f"`{_class_name(c)}`" for c in selector), "every parameter"
    return "any", f"where `{getattr(selector, '__name__', repr(selector))}` holds"


def _init_cell(init: Any) -> str:
    # A code span: Markdown tables do not split at a "|" inside one (a per-leaf
    # initializer's repr has one: "weight init | bias init").
    return f"`{init!r}`"


def rule_table(rules: Any) -> str:
    """The Markdown table of a rule set, in the order its rules are tried.

    Consecutive rules with the same layers and initializer share a row; a
    row whose layers are those of the row above leaves them blank. An
    "optional" column appears unless every rule is optional.
    """
    rows: list[list[str]] = []  # [first, last, layers, parameters, init, optional]
    for i, rule in enumerate(rules):
        layers, param = _selector_cells(rule.selector)
        init = _init_cell(rule.init)
        optional = "yes" if rule.optional else "no"
        last = rows[-1] if rows else None
        if last is not None and (last[2], last[4], last[5]) == (layers, init, optional):
            last[1] = str(i)
            last[3] += f", {param}"
            continue
        rows.append([str(i), str(i), layers, param, init, optional])
    mixed = not all(r.optional for r in rules)
    head = ["rule", "layers", "parameter", "initializer", *(["optional"] if mixed else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    above = None
    for first, last, layers, params, init, optional in rows:
        cells = [
            first if first == last else f"{first}–{last}",
            "" if layers == above else layers,
            params,
            init,
            *([optional] if mixed else []),
        ]
        above = layers
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _tabulate_rule_sets(pkg: griffe.Module) -> None:
    for module in _public_modules(pkg):
        live = importlib.import_module(module.path)
        for name in getattr(live, "__all__", ()):
            value = getattr(live, name)
            member = module.members.get(name)
            if member is None or not _is_rule_set(value):
                continue
            target = member.final_target if member.is_alias else member
            doc = target.docstring.value if target.docstring else ""
            attr = griffe.Attribute(
                name,
                lineno=target.lineno,
                endlineno=target.endlineno,
                annotation=getattr(target, "annotation", None),
                value=None,  # the source expression names private helpers: the table says it
            )
            text = (
                f"{doc.rstrip()}\n\n"
                f"The {len(value)} rules, in the order they are tried (the first that "
                f"matches a leaf draws it):\n\n{rule_table(value)}"
            )
            if all(r.optional for r in value):
                text += "\n\nEvery rule is optional: one that matches no leaf is not an error."
            attr.docstring = griffe.Docstring(
                text.strip(),
                parent=attr,
                parser=target.docstring.parser if target.docstring else None,
            )
            attr.labels = set(target.labels)
            module.set_member(name, attr)


class JaxinitDocs(griffe.Extension):
    """See the module docstring."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != _PACKAGE:
            return
        _fix_runtime_callables(pkg, loader)
        _tabulate_rule_sets(pkg)
        exports = {
            m.path: list(getattr(importlib.import_module(m.path), "__all__", ()))
            for m in _public_modules(pkg)
        }
        _convert_docstrings(pkg, _Refs(exports), set())
