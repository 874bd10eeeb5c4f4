"""The layout of the Flax layer calling an initializer (the ``kernel_init`` door).

An initializer built without ``layout=`` and called by a registered Flax layer
takes that layer's kernel layout (:func:`~jaxinit._src.layers.registry.layer_layout`),
so ``nn.Dense(kernel_init=jaxinit.kaiming_normal(mode="fan_out"))`` reads the
``(in, out)`` kernel as a Dense kernel, exactly as the tree tools read the
leaves a layer owns.

How the calling layer is found: for Linen, the module on top of Flax's module
stack (see :mod:`jaxinit._src.compat`), with its call arguments where its
layout depends on them (``nn.Einsum(...)(x, "bi,io->bo")``); for NNX, which
has no such stack and creates parameters in ``__init__``, the nearest
``__init__`` frame on the call stack whose ``self`` is an NNX module, with
that ``__init__``'s arguments.

Nothing silent: a user's own module (not a registered layer) creating a
parameter of two or more dimensions with a layout-less initializer whose
result depends on the layout gets the builder's default layout and a
:class:`LayoutWarning`, once per (module class, parameter), saying how to
choose (``layout=``). So does a registered layer whose layout cannot be read
(an Einsum whose equation is unknown).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from jaxinit._src import compat
from jaxinit._src.core import initializer
from jaxinit._src.core.frames import warn
from jaxinit._src.core.layout import FLAX, TORCH, Layout
from jaxinit._src.layers.registry import EINSUM, kind_of, layer_layout

__all__ = ["LayoutWarning", "calling_layer_layout", "reads_layout"]


class LayoutWarning(UserWarning):
    """An initializer's layout had to be guessed: its fans or structure may not be torch's."""


_WARNED: set[tuple[Any, ...]] = set()


def reads_layout(init: Any, shape: tuple[int, ...]) -> bool:
    """Whether ``init``'s result on ``shape`` depends on the layout it reads it in."""
    if len(shape) < 2 or getattr(init, "layout", None) is not None:
        return False
    family = getattr(init, "family", None)
    if family is None:
        return False
    if family.structured:
        return True
    try:
        one, two = (init.in_context(lay).distribution(shape) for lay in (TORCH, FLAX))
    except (ValueError, TypeError):
        return True  # valid in one reading only: it reads the layout
    return (one.family, dict(one.params)) != (two.family, dict(two.params))


def _warn_once(owner: Any, what: str, shape: tuple[int, ...], init: Any, why: str) -> None:
    token = (type(owner), what)
    if token in _WARNED or init is None or not reads_layout(init, shape):
        return
    _WARNED.add(token)
    warn(
        f"{init!r} was called by {type(owner).__name__} for {what} {shape} {why}, so it "
        f"reads the shape in its default layout ({_name(init.default_layout)}). If that is "
        f"not the parameter's layout its fans differ from torch's: pass layout='flax' "
        "((*kernel, in, out)), layout='torch' ((out, in, *kernel)) or a jaxinit.Layout to "
        "the builder to choose (and silence this warning).",
        LayoutWarning,
    )


def _name(layout: Layout) -> str:
    return {TORCH: "torch", FLAX: "flax"}.get(layout, repr(layout))


def _frame_locals(owner: Any, code_name: str) -> Mapping[str, Any]:
    """The locals of the nearest ``owner.<code_name>`` frame (call or param arguments)."""
    for frame in compat.frames(2):
        if frame.f_code.co_name == code_name and compat.self_of(frame) is owner:
            return frame.f_locals
    return {}


def _linen(linen: Any, shape: tuple[int, ...], init: Any) -> tuple[bool, Layout | None]:
    in_linen, module = compat.linen_module_stack_top(linen)
    if not in_linen:
        return False, None
    row = kind_of(module)
    if row is None:
        name = _frame_locals(module, "param").get("name", "a parameter")
        _warn_once(module, repr(name), shape, init, "(not a layer jaxinit knows)")
        return True, None
    local = _frame_locals(module, "__call__") if row.kind == EINSUM else {}
    layout = layer_layout(module, shape, local)
    if layout is None and row.kernel is not None and len(shape) >= 2:
        _warn_once(module, "its kernel", shape, init, "(its layout could not be read)")
    return True, layout


def _nnx_caller(nnx: Any) -> tuple[Any, Mapping[str, Any], int]:
    """The NNX module whose ``__init__`` runs nearest on the call stack, its locals, its line."""
    for frame in compat.frames(3):
        if frame.f_code.co_name == "__init__":
            owner = compat.self_of(frame)
            if isinstance(owner, nnx.Module):
                return owner, frame.f_locals, frame.f_lineno
    return None, {}, 0


def calling_layer_layout(shape: tuple[int, ...], init: Any = None) -> Layout | None:
    """The layout of the registered Flax layer creating a ``shape`` parameter now, or None.

    Flax is consulted only if the program has imported it: jaxinit never
    imports flax by itself.
    """
    linen = sys.modules.get("flax.linen")
    if linen is not None:
        inside, layout = _linen(linen, shape, init)
        if inside:
            return layout
    nnx = sys.modules.get("flax.nnx")
    if nnx is None:
        return None
    owner, local, line = _nnx_caller(nnx)
    if owner is None:
        return None
    row = kind_of(owner)
    if row is None:
        _warn_once(owner, f"the parameter made at line {line}", shape, init, "(not a layer)")
        return None
    layout = layer_layout(owner, shape, local)
    if layout is None and row.kernel is not None and len(shape) >= 2:
        _warn_once(owner, "its kernel", shape, init, "(its layout could not be read)")
    return layout


initializer.set_layer_context(calling_layer_layout)
