"""Griffe extension for jaxinit's API reference (loaded by mkdocs.yml).

It does two things, both general (nothing here names a jaxinit function):

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
   bare ``>>>`` doctest blocks. These become Markdown: arithmatex math,
   autorefs cross-references (for public ``jaxinit`` objects, so a broken one
   fails the strict build; anything else becomes code), fenced ``pycon``
   blocks (doctest directives and ``<BLANKLINE>`` dropped), and admonitions.
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
        line = _MATH_ROLE.sub(lambda m: f"${m.group(1)}$", line)
        line = _ROLE.sub(refs, line)
        out.append(line)
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


class JaxinitDocs(griffe.Extension):
    """See the module docstring."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if pkg.name != _PACKAGE:
            return
        _fix_runtime_callables(pkg, loader)
        exports = {
            m.path: list(getattr(importlib.import_module(m.path), "__all__", ()))
            for m in _public_modules(pkg)
        }
        _convert_docstrings(pkg, _Refs(exports), set())
