"""Drawing the leaves the rules selected: few cached programs, every check before any change.

A leaf is drawn one of two ways:

* **flat** (:mod:`jaxinit._src.tree.flat`): a leaf of an elementwise family
  (uniform, normal, trunc_normal, the fills) under a concrete threefry key,
  not placed by a ``NamedSharding``, is drawn by one 1-D program per
  (family, element count, dtype), small leaves pooled, with its key folded in
  on the host (:mod:`jaxinit._src.tree.keys`), and reshaped. A GPT-2-small-shaped
  model of 197 leaves compiles 6 sampling programs this way.
* **per leaf**: any other leaf by its scheme's kernel, jitted with the shape
  static and the hyperparameters and the path hash traced: structured
  schemes, sharded leaves (drawn straight into their sharding), other PRNG
  implementations, foreign callables, and everything inside a caller's
  ``jit`` (where the calls simply become part of the caller's program).

Either way a program compiles once per signature and is cached across calls
and models. (One XLA program returning every leaf would compile one output
fusion per leaf: on CPU that costs about as much as the sampling itself.)

Order of work, so that a failure leaves the target untouched: every job is
validated first (a jaxinit initializer checks shape and dtype when bound;
another callable is traced abstractly and must give the leaf's shape and
dtype); with donation, every executable is also compiled before the first
old buffer is deleted; only then are arrays drawn. Without donation the flat
programs compile on a worker thread while the draws run, the programs with
the most values to draw first (:func:`_draw_order`, :func:`_compile_ahead`).
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np

from jaxinit._src.core.hyper import is_traced
from jaxinit._src.core.initializer import Initializer
from jaxinit._src.core.sharding import kernel_sharding, place
from jaxinit._src.tree.flat import Program, fit, size_buckets
from jaxinit._src.tree.keys import fold_in_words, key_impl, path_words, words_key
from jaxinit._src.tree.plan import Job

__all__ = ["draw_jobs"]

# Whether eligible leaves are drawn flat (tests and benchmarks turn it off to
# compare with the per-leaf path, which defines the values).
FLAT = True


@functools.partial(jax.jit, static_argnames=("fn", "shape", "dtype", "layout", "out_sharding"))
def _draw_leaf(key, path_hash, *params, fn, shape, dtype, layout, out_sharding):
    """One leaf: its kernel, keyed by the leaf key of its path hash's words."""
    return fn(
        words_key(key, path_hash),
        *params,
        shape=shape,
        dtype=dtype,
        layout=layout,
        out_sharding=out_sharding,
    )


@functools.partial(jax.jit, static_argnames=("init", "shape", "dtype"))
def _draw_callable(key, path_hash, *, init, shape, dtype):
    """One leaf from a foreign initializer (``jax.nn.initializers``, a user's function)."""
    return init(words_key(key, path_hash), shape, dtype)


class _Drawer:
    """A validated way to draw one job's array from the base key."""

    def __init__(self, job: Job, key: jax.Array, words: np.ndarray):
        self.job = job
        self.hash = words  # (hi, lo) of the path's hash
        init = job.init
        self.init = init
        self.statics: dict[str, Any] | None = None
        self.params: tuple[Any, ...] = ()
        # (program, key words) once planned flat by _plan_flat
        self.flat: tuple[Program, Any] | None = None
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
            return init(words_key(key, self.hash), job.shape, job.dtype)
        return _draw_callable(key, self.hash, init=init, shape=job.shape, dtype=job.dtype)

    @property
    def elementwise(self) -> bool:
        """Whether this leaf can be drawn flat: an elementwise family, unsharded, nothing traced."""
        return (
            self.statics is not None
            and self.statics["out_sharding"] is None
            and self.init.family.elementwise
            and not any(is_traced(p) for p in self.params)
        )

    def programs(self, key: jax.Array) -> list[tuple[Any, Callable[[], Any]]]:
        """This job's executables: ``(signature, lower)`` pairs, ``lower()`` giving the lowered program.

        ``lower()`` returns ``None`` where no program is needed (a flat draw
        already in its shape). Nothing is listed without a compiled kernel
        (zero-element and foreign leaves) or under a traced key.
        """
        if self.statics is None or is_traced(key):
            return []
        types = tuple(jax.typeof(p) for p in self.params)
        if self.flat is not None:
            program, words = self.flat
            flat = jax.ShapeDtypeStruct((program.size,), self.job.dtype)
            return [
                ((program, types), lambda: program.lower(words, self.params)),
                ((flat, self.job.shape), lambda: fit(flat, self.job.shape, lower=True)),
            ]
        signature = (
            tuple(sorted(self.statics.items(), key=lambda kv: kv[0])),
            types,
            self.init.is_random,
        )
        statics = self.statics
        if self.init.is_random:
            return [(signature, lambda: _draw_leaf.lower(key, self.hash, *self.params, **statics))]
        kernel_statics = {k: v for k, v in statics.items() if k != "fn"}
        return [(signature, lambda: statics["fn"].lower(None, *self.params, **kernel_statics))]

    def compile(self, key: jax.Array, done: set[Any]) -> None:
        """Compiles this job's executables (once per signature) without running them."""
        for signature, lower in self.programs(key):
            if signature not in done:
                done.add(signature)
                lowered = lower()
                if lowered is not None:
                    lowered.compile()

    def __call__(self, key: jax.Array) -> jax.Array:
        job = self.job
        if self.flat is not None:
            program, words = self.flat
            out = fit(program(words, self.params), job.shape)
        elif self.statics is not None:
            if self.init.is_random:
                out = _draw_leaf(key, self.hash, *self.params, **self.statics)
            else:
                statics = {k: v for k, v in self.statics.items() if k != "fn"}
                out = self.statics["fn"](None, *self.params, **statics)
        elif isinstance(self.init, Initializer):
            out = self.init(
                words_key(key, self.hash),
                job.shape,
                job.dtype,
                kernel_sharding(job.sharding),
            )
        else:
            out = self._foreign(key)
        return place(out, job.sharding)


def _plan_flat(drawers: Sequence[_Drawer], key: jax.Array) -> None:
    """Assigns a flat program (and its key words) to every drawer that can be drawn flat."""
    if not FLAT or is_traced(key):
        return
    candidates = [d for d in drawers if d.elementwise]
    random = [d for d in candidates if d.init.is_random]
    words = fold_in_words(key, np.stack([d.hash for d in random])) if random else None
    if words is None:  # not a threefry key: its random leaves stay on the per-leaf path
        candidates = [d for d in candidates if not d.init.is_random]
    leaf_words = dict(zip(map(id, random), words)) if words is not None else {}
    impl = key_impl(key)
    partitionable = bool(jax.config.jax_threefry_partitionable)  # type: ignore[attr-defined]
    groups: dict[tuple[Any, np.dtype], list[_Drawer]] = {}
    for d in candidates:
        groups.setdefault((d.init.family.kernel, d.job.dtype), []).append(d)
    for (fn, dtype), members in groups.items():
        random_group = members[0].init.is_random
        sizes = [math.prod(d.job.shape) for d in members]
        # Pooling saves a sampling program per small size; a fill compiles about
        # as fast as the cut that pooling would need instead.
        buckets = size_buckets(sizes, pool=partitionable and random_group)
        for d, n in zip(members, sizes):
            program = Program(fn, buckets[n], dtype, impl, random_group)
            d.flat = (program, leaf_words.get(id(d)))


def _buffers(x: jax.Array) -> set[int]:
    """The device buffers behind a concrete array (its identity if they cannot be read)."""
    try:
        return {shard.data.unsafe_buffer_pointer() for shard in x.addressable_shards}
    except (AttributeError, NotImplementedError, RuntimeError):  # not every backend exposes them
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
    """Draws every job's array; returns them in job order.

    Args:
      key: the base key.
      jobs: what to draw (from :func:`jaxinit._src.tree.rules.plan`).
      values: every (unboxed) leaf of the target, indexed by ``job.index``.
      donate: delete each replaced array as soon as its replacement exists
        (peak memory near one copy of the parameters plus one leaf), unless a
        kept leaf shares its buffer. Initializers that can fail at run time
        (foreign callables) are drawn first, before anything is deleted.

    The key is not checked here: each door checks it once, on entry.

    Raises:
      ValueError, TypeError: from a job's validation, with a note naming the
        rule and the path; nothing has been drawn or deleted then.
    """
    drawers: list[_Drawer] = []
    words = path_words([job.path for job in jobs])
    for job, w in zip(jobs, words):
        try:
            drawers.append(_Drawer(job, key, w))
        except Exception as e:
            e.add_note(f"in {job.rule_desc} on {job.path!r}; the target was left untouched")
            raise
    _plan_flat(drawers, key)
    deletable = _donatable(values, jobs) if donate else [False] * len(jobs)
    order = _draw_order(drawers)
    if any(deletable):  # what may fail at run time first, while nothing is deleted yet
        order = sorted(order, key=lambda i: drawers[i].statics is not None)
        done: set[Any] = set()
        for drawer in drawers:
            drawer.compile(key, done)
    out: list[Any] = [None] * len(jobs)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jaxinit-compile") as pool:
        pending = {} if any(deletable) else _compile_ahead(drawers, order, key, pool)
        for i in order:
            for future in pending.get(i, ()):
                future.result()  # compiled by now (or its error raised here)
            out[i] = drawers[i](key)
            old = values[jobs[i].index]
            if deletable[i] and not old.is_deleted():
                jax.block_until_ready(out[i])  # the new value exists before the old goes
                old.delete()
    return out


# Flat programs (and reshapes) this process has compiled: not compiled ahead again.
_COMPILED: set[Any] = set()


def _compile_ahead(
    drawers: Sequence[_Drawer],
    order: Sequence[int],
    key: jax.Array,
    pool: concurrent.futures.Executor,
) -> dict[int, list[concurrent.futures.Future]]:
    """Starts compiling the flat programs in the background, in draw order.

    Returns, per drawer, the compiles to wait for before drawing it.

    The CPU client runs at most 32 programs at a time: past that, a dispatch
    waits for a running one to finish, and the main thread would compile the
    next program only once the queue drains. Compiling on a worker thread
    overlaps the compiles with the sampling. Each program is lowered here, on
    the calling thread (lowering reads jax's thread-local configuration, the
    caller's ``enable_x64`` or ``threefry_partitionable`` context), and
    compiled there (under the caller's ``log_compiles`` setting); the draws
    then find it in jax's cache. (Should jax have dropped one from its cache
    since, the draw compiles it again, on the calling thread.)
    """
    log = bool(jax.config.jax_log_compiles)  # type: ignore[attr-defined]
    started: dict[Any, concurrent.futures.Future] = {}
    waits: dict[int, list[concurrent.futures.Future]] = {}
    for i in order:
        if drawers[i].flat is None:
            continue
        for signature, lower in drawers[i].programs(key):
            if signature in _COMPILED:
                continue
            if signature not in started:
                lowered = lower()
                if lowered is None:
                    _COMPILED.add(signature)
                    continue
                started[signature] = pool.submit(_compile, lowered, log, signature)
            waits.setdefault(i, []).append(started[signature])
    return waits


def _compile(lowered: Any, log: bool, signature: Any) -> None:
    """Compiles on the worker, logging as the caller's ``jax.log_compiles`` context says."""
    with jax.log_compiles(log):
        lowered.compile()
    _COMPILED.add(signature)


def _draw_order(drawers: Sequence[_Drawer]) -> list[int]:
    """The order to draw in: the programs with the most values to draw first.

    Dispatch is asynchronous: while the biggest draws run, the next programs
    compile, so the sampling queue stays full and a core is idle only while
    the first program compiles. The leaves of one flat program go together,
    in job order; every other leaf is a unit of its own.
    """
    units: dict[Any, list[int]] = {}
    for i, d in enumerate(drawers):
        units.setdefault(d.flat[0] if d.flat is not None else i, []).append(i)
    size = {
        u: sum(math.prod(drawers[i].job.shape) for i in members) for u, members in units.items()
    }
    ordered = sorted(units, key=lambda u: -size[u])  # stable: ties keep job order
    return [i for u in ordered for i in units[u]]
