"""Filling a target from a checkpoint leaf by leaf, each process reading only the boxes it needs.

``from_torch`` plans a port from names and shapes alone (the source is a
:class:`~jaxinit._src.port.files.sources.Checkpoint` whose values are
placeholders). :class:`Loader` then works out, still without reading, how
each target leaf comes from its torch tensor: as a :class:`View` (a
transpose, reshape, slice or flip: any block of the leaf is a box of the
tensor) or, for a conversion that computes (summed recurrent biases, gates
concatenated, a grouped transposed conv expanded), from whole tensors. It
checks every converted shape and dtype, so that a mismatch is reported before
any data moves.

Then each leaf is built with ``jax.make_array_from_callback`` in its
sharding: the callback is asked, for each device this process addresses, for
that device's block, and reads just the box of the tensor it needs. A
replicated block is read once per process. A computed conversion reads its
tensors whole, once, and keeps the result only until its leaves are built.
So a process holds at most about one tensor beyond what it keeps.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxinit._src.port import target as T
from jaxinit._src.port import torch as P
from jaxinit._src.port.files import views as V
from jaxinit._src.port.files.sources import Box, Checkpoint, is_path, open_checkpoint

__all__ = ["ArraySource", "Loader", "opened", "placement", "reader", "shapes"]


class ArraySource:
    """An in-memory state_dict (numpy views of torch tensors, arrays) read box by box."""

    def __init__(self, values: Mapping[str, np.ndarray]):
        self._values = values

    def __getitem__(self, name: str) -> np.ndarray:
        return self._values[name]

    def read(self, name: str, box: Box) -> np.ndarray:
        return np.asarray(self._values[name])[box]


def _shape_str(shape: Sequence[int]) -> str:
    return str(tuple(int(d) for d in shape))


def _full(shape: Sequence[int]) -> Box:
    return tuple(slice(0, int(n)) for n in shape)


def _key(index: tuple[slice, ...], shape: Sequence[int]) -> tuple[tuple[int, int, int], ...]:
    return tuple(s.indices(int(n)) for s, n in zip(index, shape))


def _settled(x: jax.Array) -> jax.Array:
    """``x`` once its host-to-device transfers are done and their host buffers released.

    jaxlib releases the host array a finished transfer held from its own
    thread, by queueing the release for Python's garbage collector; a
    youngest-generation collection (well under a millisecond) runs that queue.
    Without it, one leaf's host blocks would still be alive while the next
    leaf is read: two tensors in memory instead of one.
    """
    x.block_until_ready()
    gc.collect(0)
    return x


@dataclasses.dataclass
class _Fill:
    """How one target leaf is filled: output ``out`` of plan step ``step``."""

    leaf: int
    step: int
    out: int
    view: V.View | None  # None: the step's conversion runs on whole tensors


class Loader:
    """Plans how every filled leaf is read (from names, shapes and dtypes), then reads.

    Args:
      source: a checkpoint (or :class:`ArraySource`): ``source[name]`` has the
        tensor's shape and dtype; ``source.read(name, box)`` reads a box.
      tgt: the collected target.
      steps: the port plan's steps (``group``, ``keys``, ``leaves``).
      check_dtype: ``(source dtype, target dtype) -> problem or None``.
    """

    def __init__(
        self,
        source: Any,
        tgt: T.Target,
        steps: Sequence[Any],
        check_dtype: Callable[[np.dtype, np.dtype], str | None],
    ):
        self.source = source
        self.tgt = tgt
        self.steps = list(steps)
        self.fills: list[_Fill] = []
        self.mismatches: list[str] = []
        for s, step in enumerate(self.steps):
            self._plan_step(s, step, check_dtype)

    def _plan_step(self, s: int, step: Any, check_dtype: Any) -> None:
        metas = [self.source[k] for k in step.keys]
        shapes = [tuple(int(d) for d in m.shape) for m in metas]
        src = ", ".join(f"{k} {_shape_str(sh)}" for k, sh in zip(step.keys, shapes))
        dst = ", ".join(self.tgt.leaves[i].path for i in step.leaves)
        views: list[V.View | None]
        try:
            outs = step.group.fwd(*V.probe(shapes, [m.dtype for m in metas]))
            if not step.keys or not all(isinstance(o, V.Probe) for o in outs):
                raise V.NotAView("a computed or constant output")
            views = [V.View.of(o, shapes[o.source]) for o in outs]
            results = [(o.shape, o.dtype) for o in outs]
        except Exception:  # noqa: BLE001  (not a view, or the probe cannot tell: numpy decides)
            try:
                outs = step.group.fwd(*metas)
            except (ValueError, IndexError) as e:
                want = ", ".join(_shape_str(self.tgt.leaves[i].shape) for i in step.leaves)
                self.mismatches.append(f"torch {src} -> {dst} {want}: {e}")
                return
            views = [None] * len(outs)
            results = [(tuple(o.shape), np.dtype(o.dtype)) for o in outs]
        for j, (i, (shape, dtype)) in enumerate(zip(step.leaves, results)):
            leaf = self.tgt.leaves[i]
            if tuple(shape) != leaf.shape:
                self.mismatches.append(
                    f"torch {src} -> {leaf.path}: converted {_shape_str(shape)}, "
                    f"target {_shape_str(leaf.shape)}"
                )
                continue
            bad = check_dtype(np.dtype(dtype), leaf.dtype)
            if bad:
                self.mismatches.append(f"torch {src} -> {leaf.path}: {bad}")
                continue
            self.fills.append(_Fill(i, s, j, views[j]))

    # ------------------------------------------------------------------------
    # Reading

    def _whole(self, s: int) -> tuple[np.ndarray, ...]:
        step = self.steps[s]
        arrays = [self.source.read(k, _full(self.source[k].shape)) for k in step.keys]
        return tuple(np.asarray(x) for x in step.group.fwd(*arrays))

    def _block(self, fill: _Fill, index: tuple[slice, ...], whole: Any) -> np.ndarray:
        """The block ``index`` of a filled leaf, converted, in the leaf's dtype.

        A read is a view of the memory-mapped file or of the caller's (torch's)
        memory. On CPU, ``device_put`` aliases an aligned contiguous host
        buffer, a memory map's included (``may_alias=False`` or not): a
        contiguous view is copied here, so that no array is backed by the
        file (which may change, or be donated into). A strided view (a
        transposed kernel) cannot be aliased: ``device_put`` copies it,
        transposed on the way, and that is its only copy.
        """
        dtype = self.tgt.leaves[fill.leaf].dtype
        if fill.view is None:
            x = whole()[fill.out][index]
        else:
            name = self.steps[fill.step].keys[fill.view.source]
            box, arrange = fill.view.box(index)
            x = arrange(self.source.read(name, box))
        if x.dtype != dtype:
            return x.astype(dtype)
        if x.flags.c_contiguous and not x.flags.owndata:
            return np.array(x, copy=True)
        return x

    def load(self, placement: Callable[[int], Any]) -> dict[int, Any]:
        """Reads every filled leaf: leaf index -> new array.

        Args:
          placement: leaf index -> a ``jax.sharding.Sharding`` to build the
            leaf in, ``None`` for the default device, or ``"host"`` for a
            numpy leaf (kept numpy).
        """
        new: dict[int, Any] = {}
        by_step: dict[int, list[_Fill]] = {}
        for fill in self.fills:
            by_step.setdefault(fill.step, []).append(fill)
        for s, fills in by_step.items():
            cache: list[tuple[np.ndarray, ...]] = []

            def whole(s: int = s, cache: list = cache) -> tuple[np.ndarray, ...]:
                if not cache:
                    cache.append(self._whole(s))
                return cache[0]

            for fill in fills:
                new[fill.leaf] = self._build(fill, placement(fill.leaf), whole)
        return new

    def _build(self, fill: _Fill, where: Any, whole: Any) -> Any:
        leaf = self.tgt.leaves[fill.leaf]
        everything = tuple(slice(0, n) for n in leaf.shape)
        if isinstance(where, str):  # a numpy leaf stays numpy
            return np.array(self._block(fill, everything, whole), copy=True)
        if where is None or len(where.device_set) == 1:  # one block
            x = self._block(fill, everything, whole)
            out = jax.device_put(x, where)
            # a host copy of ours is freed before the next read; a view of the map is no memory
            return _settled(out) if x.base is None else out
        blocks: dict[Any, np.ndarray] = {}

        def callback(index: Any) -> np.ndarray:
            k = _key(index, leaf.shape)
            if k not in blocks:  # a replicated block is read once
                blocks[k] = self._block(fill, tuple(slice(a, b) for a, b, _ in k), whole)
            return blocks[k]

        out = jax.make_array_from_callback(leaf.shape, where, callback, dtype=leaf.dtype)
        blocks.clear()
        return _settled(out)


# ----------------------------------------------------------------------------
# What from_torch's file path uses


@contextlib.contextmanager
def opened(source: Any) -> Iterator[Any]:
    """A checkpoint path opened as a :class:`Checkpoint` (closed after); anything else as is."""
    if not is_path(source):
        yield source
        return
    with open_checkpoint(source) as checkpoint:
        yield checkpoint


def reader(source: Any, layers: Sequence[P.TorchLayer]) -> Any:
    """What the :class:`Loader` reads from: the checkpoint, or the layers' in-memory arrays."""
    if isinstance(source, Checkpoint):
        return source
    return ArraySource({tl.keys[n]: tl.values[n] for tl in layers for n in tl.keys})


def shapes(layers: Sequence[P.TorchLayer]) -> dict[str, tuple[int, ...]]:
    """``state_dict`` key -> shape, for the error report."""
    return {tl.keys[n]: tuple(int(d) for d in tl.values[n].shape) for tl in layers for n in tl.keys}


def placement(
    tgt: T.Target,
    target: Any,
    mesh: jax.sharding.Mesh | None,
    axis_rules: Sequence[tuple[str, Any]] | None = None,
) -> Callable[[int], Any]:
    """Where each filled leaf goes: leaf index -> sharding, ``None`` (default device) or "host".

    With a mesh, a Flax leaf with partitioning metadata (a Linen box, an NNX
    ``out_sharding``) goes where the metadata says, as
    ``jaxinit.flax.init(..., mesh=)`` draws it. Any other leaf keeps its own
    sharding (an array's, or a ``ShapeDtypeStruct``'s); one without (an
    abstract leaf) is replicated on the mesh, or put on the default device
    without one. A numpy leaf stays numpy.
    """
    named: dict[str, Any] = {}
    if mesh is not None and "flax" in sys.modules:
        # Flax is optional: its box types exist only if it is imported already.
        from flax import nnx

        from jaxinit._src.flax import sharding as S

        with S.axis_rules_context(axis_rules):
            if isinstance(target, nnx.Module):
                named = S.nnx_shardings(target, mesh)
            elif isinstance(target, Mapping):
                named = S.linen_path_shardings(target, mesh)
    replicated = NamedSharding(mesh, PartitionSpec()) if mesh is not None else None

    def where(i: int) -> Any:
        leaf = tgt.leaves[i]
        if isinstance(leaf.value, np.ndarray):
            return "host"
        own = getattr(leaf.value, "sharding", None)
        return named.get(leaf.path) or own or replicated

    return where
