"""The kernel layout of each Flax built-in layer, and of the layer calling an initializer.

An initializer built without ``layout=`` and called by a Flax layer takes that
layer's layout, so ``nn.Dense(kernel_init=jaxinit.kaiming_normal(mode="fan_out"))``
reads the ``(in, out)`` kernel as a Dense kernel, and the tree tools read the
leaves a layer owns the same way.

=========================================  ===============================================
layer (Linen / NNX, subclasses included)   kernel layout (the equivalent torch weight)
=========================================  ===============================================
Dense, DenseGeneral (flattened), Linear,   ``(in, out)``: flax, ``Layout(-2, -1)``
LinearGeneral (flattened), DenseParams,    (torch ``Linear``: ``(out, in)``)
LoRA ``(in, rank)``/``(rank, out)``
Conv                                       ``(*k, in/g, out)``: flax (torch ``(out, in/g, *k)``)
ConvLocal                                  ``(*positions, k*in, out)``: flax with the
                                           output positions as batch axes (one matrix
                                           per position)
ConvTranspose                              ``(*k, in, out)`` read as torch reads its
                                           ``(in, out/g, *k)`` weight: ``Layout(-1, -2)``;
                                           with ``transpose_kernel=True`` the kernel is
                                           ``(*k, out, in)``: ``Layout(-2, -1)``
Embed                                      ``(num, features)``, as torch's ``Embedding``:
                                           ``Layout(-1, -2)``
Einsum                                     from the equation: contracted kernel axes are
                                           in, kernel axes kept in the output are out,
                                           axes in all three operands are batch
=========================================  ===============================================

Linen's DenseGeneral and NNX's LinearGeneral call their ``kernel_init`` with
the kernel flattened to ``(prod(batch) * prod(in), prod(out))``; in the tree
tools (the stored, unflattened kernel) the in axes are the contracted ones and
the out axes the features, with Linen's batch dims counted as in, as Flax's
own flattening does.

Extra leading axes (a kernel stacked by ``nn.scan``/``nn.vmap``, seen by the
tree tools) are batch axes: each layer gets its own fans and structure.

How the calling layer is found: for Linen, the module on top of Flax's module
stack (``flax.linen.module._context.module_stack``, as
``nn.with_logical_partitioning`` does); for NNX, which has no such stack and
creates parameters in ``__init__``, the nearest ``__init__`` frame on the call
stack whose ``self`` is an NNX module. A user's own module calling
``self.param(...)`` or an initializer directly is not a built-in layer: the
builder's default layout applies.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from typing import Any

from jaxinit._src.core.layout import FLAX, Layout

__all__ = ["calling_layer_layout", "layer_layout"]

_CONV_TRANSPOSE = Layout(in_axis=-1, out_axis=-2)
_CONV_TRANSPOSE_SWAPPED = FLAX
_EMBED = Layout(in_axis=-1, out_axis=-2)
_MAX_FRAMES = 64  # how far up the call stack an NNX layer's __init__ is looked for


def _classes(*names: str) -> tuple[type, ...]:
    """The Linen and NNX classes of these names that are loaded."""
    loaded = tuple(sys.modules.get(m) for m in ("flax.linen", "flax.nnx"))
    return _classes_in(loaded, names)


@functools.lru_cache(maxsize=64)
def _classes_in(loaded: tuple[Any, ...], names: tuple[str, ...]) -> tuple[type, ...]:
    found: list[type] = []
    for module in loaded:
        for name in names:
            cls = getattr(module, name, None) if module is not None else None
            if isinstance(cls, type) and cls not in found:
                found.append(cls)
    return tuple(found)


def _count(x: Any) -> int:
    """How many axes an ``int | Sequence[int]`` attribute names."""
    return 1 if isinstance(x, int) else len(x)


def _einsum_layout(equation: Any, ndim: int) -> Layout | None:
    """The kernel layout an ``"lhs,kernel->out"`` equation implies (None if it cannot tell)."""
    if not isinstance(equation, str) or "..." in equation:
        return None
    equation = equation.replace(" ", "")
    try:
        inputs, output = equation.split("->")
        lhs, rhs = inputs.split(",")
    except ValueError:
        return None
    if len(rhs) != ndim:
        return None
    ins = tuple(i - ndim for i, c in enumerate(rhs) if c in lhs and c not in output)
    outs = tuple(i - ndim for i, c in enumerate(rhs) if c in output and c not in lhs)
    batch = tuple(i - ndim for i, c in enumerate(rhs) if c in lhs and c in output)
    if not ins or not outs:
        return None
    return Layout(in_axis=ins, out_axis=outs, batch_axis=batch)


_KINDS = (  # checked in this order: subclasses before their bases
    ("embed", ("Embed",)),
    ("conv_transpose", ("ConvTranspose",)),
    ("conv_local", ("ConvLocal",)),
    ("conv", ("Conv",)),
    ("einsum", ("Einsum",)),
    ("dense_general", ("DenseGeneral", "LinearGeneral")),
    ("dense", ("Dense", "Linear", "DenseParams", "LoRA", "LoRALinear")),
)


def _kind(cls: type) -> str | None:
    """Which kind of built-in layer ``cls`` is (None: not one)."""
    loaded = tuple(sys.modules.get(m) for m in ("flax.linen", "flax.nnx"))
    return _kind_in(cls, loaded)


@functools.lru_cache(maxsize=256)
def _kind_in(cls: type, loaded: tuple[Any, ...]) -> str | None:
    for kind, names in _KINDS:
        if issubclass(cls, _classes_in(loaded, names)):
            return kind
    return None


def _native(
    module: Any, shape: tuple[int, ...], local: Mapping[str, Any]
) -> tuple[Layout, int] | None:
    """The layout of ``module``'s kernel and the kernel's own rank; None if not a kernel layer."""
    kind = _kind(type(module))
    if kind is None:
        return None

    def attr(name: str, default: Any = None) -> Any:
        value = getattr(module, name, None)
        return local.get(name, default) if value is None else value

    if kind == "embed":
        return _EMBED, 2
    if kind == "conv_transpose":
        n = _count(attr("kernel_size", ()))
        swapped = bool(attr("transpose_kernel", False))
        return (_CONV_TRANSPOSE_SWAPPED if swapped else _CONV_TRANSPOSE), n + 2
    if kind == "conv_local":
        n = _count(attr("kernel_size", ()))
        return Layout(in_axis=-2, out_axis=-1, batch_axis=tuple(range(-n - 2, -2))), n + 2
    if kind == "conv":
        return FLAX, _count(attr("kernel_size", ())) + 2
    if kind == "einsum":
        kernel_shape = attr("shape") or attr("kernel_shape")
        n = len(kernel_shape) if kernel_shape is not None else len(shape)
        layout = _einsum_layout(attr("einsum_str"), n)
        return None if layout is None else (layout, n)
    if kind == "dense_general":
        if len(shape) == 2:  # as their kernel_init sees it: flattened
            return FLAX, 2
        if hasattr(module, "out_features"):  # NNX LinearGeneral
            n_in = len(module.in_features) + len(getattr(module, "batch_axis", {}))
            n_out = len(module.out_features)
        else:  # Linen DenseGeneral
            n_in = _count(module.axis) + _count(getattr(module, "batch_dims", ()))
            n_out = _count(module.features)
        layout = Layout(
            in_axis=tuple(range(-n_out - n_in, -n_out)), out_axis=tuple(range(-n_out, 0))
        )
        return layout, n_in + n_out
    return FLAX, 2  # dense


def layer_layout(
    module: Any, shape: tuple[int, ...], local: Mapping[str, Any] | None = None
) -> Layout | None:
    """The layout of a ``shape`` parameter of the built-in layer ``module``, or None.

    None too when ``shape`` has fewer dimensions than the layer's kernel (a
    bias). Leading axes beyond the kernel's rank (layers stacked by
    ``nn.scan``/``nn.vmap``) become batch axes. ``local``: the layer's
    ``__init__`` arguments, for an NNX layer still being built.
    """
    native = _native(module, shape, local or {})
    if native is None:
        return None
    layout, own = native
    extra = len(shape) - own
    if extra < 0:
        return None
    if extra == 0:
        return layout
    return Layout(
        in_axis=layout.in_axis,
        out_axis=layout.out_axis,
        batch_axis=(*range(extra), *layout.batch_axis),
    )


# ----------------------------------------------------------------------------
# The calling layer


def _linen_caller() -> tuple[bool, Any]:
    """(in a Linen method?, the module on top of Flax's module stack)."""
    linen = sys.modules.get("flax.linen")
    if linen is None:
        return False, None
    stack = linen.module._context.module_stack
    top = stack[-1] if stack else None
    return top is not None, top


def _nnx_caller() -> tuple[Any, Mapping[str, Any]]:
    """The NNX module whose ``__init__`` is running nearest on the call stack, and its locals."""
    nnx = sys.modules.get("flax.nnx")
    if nnx is None:
        return None, {}
    frame = sys._getframe(2)
    for _ in range(_MAX_FRAMES):
        if frame is None:
            break
        code = frame.f_code
        if code.co_name == "__init__" and code.co_argcount and code.co_varnames[0] == "self":
            local = frame.f_locals
            owner = local.get("self")
            if isinstance(owner, nnx.Module):
                return owner, local
        frame = frame.f_back  # type: ignore[assignment]
    return None, {}


def calling_layer_layout(shape: tuple[int, ...]) -> Layout | None:
    """The layout of the built-in Flax layer creating a ``shape`` parameter now, or None."""
    in_linen, module = _linen_caller()
    if in_linen:
        return layer_layout(module, shape)
    owner, local = _nnx_caller()
    if owner is None:
        return None
    return layer_layout(owner, shape, local)
