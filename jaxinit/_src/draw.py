"""Drawing the leaves the rules selected: cached kernels, every check before any change.

Each leaf is drawn by its scheme's kernel, jitted with the shape static and
the hyperparameters and the path hash traced, so a model of twelve identical
blocks compiles each distinct (scheme, shape) once, and a later model with
the same shapes compiles nothing. (One XLA program returning every leaf
would compile one output fusion per leaf: on CPU that costs about as much as
the sampling itself.) Inside a caller's ``jit`` the same calls simply become
part of the caller's program.

Order of work, so that a failure leaves the target untouched: every job is
validated first (a jaxinit initializer checks shape and dtype when bound;
another callable is traced abstractly and must give the leaf's shape and
dtype); with donation, every executable is also compiled before the first
old buffer is deleted; only then are arrays drawn.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from jaxinit._src.core import Initializer, check_key, is_traced, kernel_sharding, place
from jaxinit._src.tree import Job, stable_hash

__all__ = ["draw_jobs"]


@functools.partial(jax.jit, static_argnames=("fn", "shape", "dtype", "layout", "out_sharding"))
def _draw_leaf(key, path_hash, *params, fn, shape, dtype, layout, out_sharding):
    """One leaf: its kernel, keyed by ``fold_in(key, path_hash)``."""
    leaf_key = jax.random.fold_in(key, path_hash)
    return fn(leaf_key, *params, shape=shape, dtype=dtype, layout=layout, out_sharding=out_sharding)


@functools.partial(jax.jit, static_argnames=("init", "shape", "dtype"))
def _draw_callable(key, path_hash, *, init, shape, dtype):
    """One leaf from a foreign initializer (``jax.nn.initializers``, a user's function)."""
    return init(jax.random.fold_in(key, path_hash), shape, dtype)


class _Drawer:
    """A validated way to draw one job's array from the base key."""

    def __init__(self, job: Job, key: jax.Array):
        self.job = job
        self.hash = np.uint32(stable_hash(job.path))
        init = job.init
        self.init = init
        self.statics: dict[str, Any] | None = None
        self.params: tuple[Any, ...] = ()
        if isinstance(init, Initializer):
            if all(d > 0 for d in job.shape):
                fn, self.params, layout = init.bind(job.shape, job.dtype)  # validates
                self.statics = dict(
                    fn=fn,
                    shape=job.shape,
                    dtype=job.dtype,
                    layout=layout,
                    out_sharding=kernel_sharding(job.sharding),
                )
            else:  # zero-element: validated by the call itself, nothing to compile
                init(key, job.shape, job.dtype)
            return
        out = jax.eval_shape(self._foreign, key)
        if tuple(out.shape) != job.shape or np.dtype(out.dtype) != job.dtype:
            raise ValueError(
                f"{job.rule_desc} returns shape {tuple(out.shape)} and dtype {out.dtype} for "
                f"{job.path!r}, which is {job.shape} {job.dtype}"
            )

    def _foreign(self, key: jax.Array) -> jax.Array:
        init, job = self.init, self.job
        try:
            hash(init)
        except TypeError:  # an unhashable callable cannot be a static argument: call it as is
            return init(jax.random.fold_in(key, self.hash), job.shape, job.dtype)
        return _draw_callable(key, self.hash, init=init, shape=job.shape, dtype=job.dtype)

    def compile(self, key: jax.Array, done: set[Any]) -> None:
        """Compiles this job's executable (once per signature) without running it."""
        if self.statics is None or is_traced(key):
            return
        signature = (
            tuple(sorted(self.statics.items(), key=lambda kv: kv[0])),
            tuple(jax.typeof(p) for p in self.params),
            self.init.is_random,
        )
        if signature in done:
            return
        done.add(signature)
        if self.init.is_random:
            _draw_leaf.lower(key, self.hash, *self.params, **self.statics).compile()
        else:
            statics = {k: v for k, v in self.statics.items() if k != "fn"}
            self.statics["fn"].lower(None, *self.params, **statics).compile()

    def __call__(self, key: jax.Array) -> jax.Array:
        job = self.job
        if self.statics is not None:
            if self.init.is_random:
                out = _draw_leaf(key, self.hash, *self.params, **self.statics)
            else:
                statics = {k: v for k, v in self.statics.items() if k != "fn"}
                out = self.statics["fn"](None, *self.params, **statics)
        elif isinstance(self.init, Initializer):
            out = self.init(
                jax.random.fold_in(key, self.hash),
                job.shape,
                job.dtype,
                kernel_sharding(job.sharding),
            )
        else:
            out = self._foreign(key)
        return place(out, job.sharding)


def _buffers(x: jax.Array) -> set[int]:
    """The device buffers behind a concrete array (its identity if they cannot be read)."""
    try:
        return {shard.data.unsafe_buffer_pointer() for shard in x.addressable_shards}
    except Exception:  # not every backend exposes buffer pointers
        return {id(x)}


def _donatable(values: Sequence[Any], jobs: Sequence[Job]) -> list[bool]:
    """Per job: whether its old array may be deleted (no kept leaf shares its buffers)."""
    replaced = {job.index for job in jobs}
    kept: set[int] = set()
    for i, value in enumerate(values):
        if i not in replaced and isinstance(value, jax.Array) and not is_traced(value):
            kept |= _buffers(value)
    out = []
    for job in jobs:
        old = values[job.index]
        concrete = isinstance(old, jax.Array) and not is_traced(old) and not old.is_deleted()
        out.append(concrete and not (_buffers(old) & kept))
    return out


def draw_jobs(
    key: jax.Array, jobs: Sequence[Job], values: Sequence[Any], donate: bool = False
) -> list[jax.Array]:
    """Draws every job's array, in job order.

    Args:
      key: the base key.
      jobs: what to draw (from :func:`jaxinit._src.tree.plan`).
      values: every (unboxed) leaf of the target, indexed by ``job.index``.
      donate: delete each replaced array just before its replacement is
        drawn (peak memory near one copy of the parameters), unless a kept
        leaf shares its buffer.

    Raises:
      ValueError, TypeError: from a job's validation, with a note naming the
        rule and the path; nothing has been drawn or deleted then.
    """
    check_key("reinit", key)
    drawers: list[Callable[[jax.Array], jax.Array]] = []
    for job in jobs:
        try:
            drawers.append(_Drawer(job, key))
        except Exception as e:
            e.add_note(f"in {job.rule_desc} on {job.path!r}; the target was left untouched")
            raise
    deletable = _donatable(values, jobs) if donate else [False] * len(jobs)
    if any(deletable):
        done: set[Any] = set()
        for drawer in drawers:
            drawer.compile(key, done)  # type: ignore[attr-defined]
    out = []
    for job, drawer, delete in zip(jobs, drawers, deletable):
        old = values[job.index]
        if delete and not old.is_deleted():
            old.delete()
        out.append(drawer(key))
    return out
