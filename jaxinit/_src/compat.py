"""Every private or unstable API jaxinit uses, in one place, each with its fallback.

Flax and JAX offer no public hook for these; each accessor checks that the
object it reads still has the shape it had, and ``tests/test_compat.py`` fails
naming the Flax/JAX version when one changes. Where a public fallback exists
it is used when the private object is gone, so a Flax release that moves it
costs speed, not correctness.

| what | where | fallback |
|---|---|---|
| the Linen module being set up or called | ``flax.linen.module._context.module_stack`` | the call stack: the nearest Linen method frame |
| the NNX layer being constructed | the call stack (``sys._getframe``) | none needed: CPython API |
| a constructor's jaxpr, cut down to some outputs | ``jax.extend.core`` (``ClosedJaxpr``, ``Var``, ``jaxpr_as_fun``) | none: NNX init then builds eagerly |
| Flax's default initializers on zero-width layers, while tracing shapes | ``jax._src.nn.initializers._compute_fans`` | none: such a layer then fails as in Flax |
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any

import jax.extend.core

__all__ = [
    "empty_defaults_tolerated",
    "frames",
    "jaxpr_as_fun",
    "linen_module_stack_top",
    "prune_jaxpr",
]

_MAX_FRAMES = 64  # how far up the call stack a layer's frame is looked for


def frames(skip: int = 1) -> Iterator[FrameType]:
    """The caller's frames, innermost first (at most ``_MAX_FRAMES``)."""
    frame: FrameType | None = sys._getframe(skip + 1)
    for _ in range(_MAX_FRAMES):
        if frame is None:
            return
        yield frame
        frame = frame.f_back


def self_of(frame: FrameType) -> Any:
    """The ``self`` of a method frame, or None."""
    code = frame.f_code
    if code.co_argcount and code.co_varnames[0] == "self":
        return frame.f_locals.get("self")
    return None


def _stack_of(linen: Any) -> Any:
    context = getattr(getattr(linen, "module", None), "_context", None)
    return getattr(context, "module_stack", None)


def linen_module_stack_top(linen: Any) -> tuple[bool, Any]:
    """(inside a Linen method?, the innermost Linen module running).

    Reads Flax's module stack (what ``nn.with_logical_partitioning`` reads); if
    a Flax release removes it, falls back to the call stack.
    """
    stack = _stack_of(linen)
    if isinstance(stack, list):
        top = stack[-1] if stack else None
        return top is not None, top
    for frame in frames(2):  # fallback: the nearest frame of a bound Linen module's method
        owner = self_of(frame)
        if isinstance(owner, linen.Module) and owner.scope is not None:
            return True, owner
    return False, None


def linen_stack_is_readable(linen: Any) -> bool:
    """Whether Flax still has the module stack jaxinit reads (tests name the version if not)."""
    return isinstance(_stack_of(linen), list)


# ----------------------------------------------------------------------------
# jaxprs (jax.extend.core)


def jaxpr_as_fun(closed: Any) -> Any:
    return jax.extend.core.jaxpr_as_fun(closed)


def prune_jaxpr(closed: Any, keep: Sequence[int]) -> Any:
    """``closed`` with only the outputs ``keep`` and the equations they need (or with effects)."""
    core = jax.extend.core
    jaxpr = closed.jaxpr
    outvars = [jaxpr.outvars[i] for i in keep]
    live = {v for v in outvars if isinstance(v, core.Var)}
    eqns = []
    for eqn in reversed(jaxpr.eqns):
        if eqn.effects or any(v in live for v in eqn.outvars):
            eqns.append(eqn)
            live.update(v for v in eqn.invars if isinstance(v, core.Var))
    eqns.reverse()
    effects = frozenset().union(*(eqn.effects for eqn in eqns))
    debug = jaxpr.debug_info._replace(result_paths=None)
    return core.ClosedJaxpr(
        jaxpr.replace(outvars=outvars, eqns=eqns, effects=effects, debug_info=debug),
        closed.consts,
    )


# ----------------------------------------------------------------------------
# jax's variance-scaling initializers on zero-element shapes


@contextlib.contextmanager
def empty_defaults_tolerated() -> Iterator[None]:
    """While tracing a model's shapes, jax's variance-scaling defaults accept zero fans.

    Flax's default ``kernel_init`` (``lecun_normal``) divides by ``fan_in`` in
    Python, so a zero-width layer (``nn.Dense(4)`` on ``(1, 0)`` inputs,
    ``nnx.Linear(0, 4)``) cannot even be traced, although a zero-element
    array has no values to scale and jaxinit's rules replace it anyway. Inside
    this context a zero-element shape's fans count as 1; every other
    shape is untouched. The patch is process-wide while the context lasts.
    """
    module = sys.modules.get("jax._src.nn.initializers")
    original = getattr(module, "_compute_fans", None)
    if original is None:  # jax moved it: zero-width layers fail as they do in Flax
        yield
        return

    def compute_fans(shape: Sequence[int], *args: Any, **kwargs: Any) -> tuple[float, float]:
        if math.prod(shape) == 0:  # no values: any positive fans do
            return 1.0, 1.0
        return original(shape, *args, **kwargs)

    module._compute_fans = compute_fans  # type: ignore[union-attr]
    try:
        yield
    finally:
        module._compute_fans = original  # type: ignore[union-attr]


def compute_fans_is_patchable() -> bool:
    """Whether jax still has the private ``_compute_fans`` the context above patches."""
    module = sys.modules.get("jax._src.nn.initializers")
    return callable(getattr(module, "_compute_fans", None))
