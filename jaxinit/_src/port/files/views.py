"""Which part of a torch tensor a block of a converted leaf comes from.

A conversion (:mod:`jaxinit._src.port.convert`) is a numpy function. Most are
views (a transpose, a reshape, a slice, a flip): each element of the result is
one element of the source. Run on a :class:`Probe` instead of an array, such a
conversion records those operations and gives a :class:`View`; the view maps
any block of the result back to the source: a box (one slice per source axis)
to read, and how to arrange what is read. A conversion that computes (a sum of
two biases, a concatenation, the block-diagonal expansion of a grouped
transposed conv) touches the data, which a probe refuses: it is not a view,
and the loader reads its source whole.

The map is exact, not a bound: walking the recorded operations backwards
turns the block's index ranges into the source coordinate of every element,
kept in broadcast form (one axis each), so a ``(4096, 4096)`` block costs two
index vectors; only a reshape that merges axes builds a grid, and only over
the merged axes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["NotAView", "Probe", "View", "probe"]

Index = tuple[slice, ...]


class NotAView(TypeError):
    """A conversion touched the data (arithmetic, concatenation): not a pure view."""


def _axes(args: tuple[Any, ...], ndim: int) -> tuple[int, ...]:
    if len(args) == 1 and (args[0] is None or isinstance(args[0], Sequence)):
        args = tuple(range(ndim))[::-1] if args[0] is None else tuple(args[0])
    if not args:
        return tuple(range(ndim))[::-1]
    return tuple(int(a) % ndim for a in args)


def _shape_arg(args: tuple[Any, ...], size: int) -> tuple[int, ...]:
    shape = tuple(args[0]) if len(args) == 1 and isinstance(args[0], Sequence) else tuple(args)
    shape = tuple(int(d) for d in shape)
    if shape.count(-1) == 1:
        known = math.prod(d for d in shape if d != -1)
        shape = tuple(size // known if d == -1 and known else d for d in shape)
    if math.prod(shape) != size:
        raise ValueError(f"cannot reshape array of size {size} into shape {shape}")
    return shape


@dataclasses.dataclass(frozen=True)
class _Op:
    """One recorded operation, from an input of ``shape_in`` to the next array."""

    kind: str  # "transpose" | "reshape" | "index"
    shape_in: tuple[int, ...]
    arg: Any  # the permutation; the output shape; per input axis (start, step, out axis, length)

    def apply(self, x: np.ndarray) -> np.ndarray:
        """This operation on a real array (a numpy view where numpy can make one)."""
        if self.kind == "transpose":
            return x.transpose(self.arg)
        if self.kind == "reshape":
            return x.reshape(self.arg)
        key: list[Any] = []
        for start, step, axis, length in self.arg:
            if axis is None:
                key.append(start)
            else:
                stop = start + step * length
                key.append(slice(start, stop if stop >= 0 else None, step))
        return x[tuple(key)]


class Probe:
    """Stands in for a torch tensor in a conversion and records the view operations done to it.

    Supports what the conversions use to move data without computing:
    ``.T``, ``transpose``, ``swapaxes``, ``reshape``, basic slicing and
    ``np.flip``/``np.transpose``/``np.reshape``/``np.swapaxes``. Anything
    else (arithmetic, ``np.asarray``, ``np.concatenate``) raises
    :class:`NotAView`.
    """

    __array_priority__ = 1000

    def __init__(
        self, source: int, shape: tuple[int, ...], dtype: np.dtype, ops: tuple[_Op, ...] = ()
    ):
        self.source = source
        self.shape = tuple(int(d) for d in shape)
        self.dtype = np.dtype(dtype)
        self.ops = ops

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def _then(self, op: _Op, shape: tuple[int, ...]) -> Probe:
        return Probe(self.source, shape, self.dtype, (*self.ops, op))

    def transpose(self, *axes: Any) -> Probe:
        perm = _axes(axes, self.ndim)
        if sorted(perm) != list(range(self.ndim)):
            raise ValueError(f"axes {perm} don't match array of {self.ndim} dimensions")
        return self._then(_Op("transpose", self.shape, perm), tuple(self.shape[p] for p in perm))

    @property
    def T(self) -> Probe:  # noqa: N802  (numpy's name)
        return self.transpose()

    def swapaxes(self, a: int, b: int) -> Probe:
        perm = list(range(self.ndim))
        perm[a], perm[b] = perm[b], perm[a]
        return self.transpose(perm)

    def reshape(self, *shape: Any, order: str = "C") -> Probe:
        if order != "C":
            raise NotAView(f"reshape(order={order!r})")
        new = _shape_arg(shape, self.size)
        return self._then(_Op("reshape", self.shape, new), new)

    def __getitem__(self, key: Any) -> Probe:
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis for k in key):
            at = key.index(Ellipsis)
            fill = (slice(None),) * (self.ndim - len(key) + 1)
            key = key[:at] + fill + key[at + 1 :]
        key = key + (slice(None),) * (self.ndim - len(key))
        if len(key) != self.ndim:
            raise IndexError(f"too many indices for array of {self.ndim} dimensions")
        per_axis: list[tuple[int, int, int | None, int]] = []
        shape: list[int] = []
        for n, k in zip(self.shape, key):
            if isinstance(k, slice):
                start, stop, step = k.indices(n)
                length = len(range(start, stop, step))
                per_axis.append((start, step, len(shape), length))
                shape.append(length)
            elif isinstance(k, int | np.integer):
                i = int(k)
                if not -n <= i < n:
                    raise IndexError(f"index {i} is out of bounds for axis with size {n}")
                per_axis.append((i % n, 0, None, 1))
            else:
                raise NotAView(f"index {k!r}")
        return self._then(_Op("index", self.shape, tuple(per_axis)), tuple(shape))

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        if func is np.flip:
            return _flip(*args, **kwargs)
        if func is np.transpose:
            return args[0].transpose(*args[1:], **kwargs)
        if func is np.reshape:
            return args[0].reshape(*args[1:], **kwargs)
        if func is np.swapaxes:
            return args[0].swapaxes(*args[1:], **kwargs)
        raise NotAView(f"np.{func.__name__}")

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        raise NotAView(f"np.{ufunc.__name__}")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotAView("np.asarray")

    def _computes(self, *args: Any) -> Any:
        raise NotAView("arithmetic")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _computes
    __eq__ = __ne__ = __lt__ = __gt__ = __neg__ = __truediv__ = _computes  # type: ignore[assignment]
    __hash__ = None  # type: ignore[assignment]

    def astype(self, *args: Any, **kwargs: Any) -> Any:
        raise NotAView("astype")


def _flip(m: Probe, axis: Any = None) -> Probe:
    axes = range(m.ndim) if axis is None else (axis if isinstance(axis, Sequence) else (axis,))
    key = [slice(None)] * m.ndim
    for a in axes:
        key[int(a) % m.ndim] = slice(None, None, -1)
    return m[tuple(key)]


def probe(shapes: Sequence[tuple[int, ...]], dtypes: Sequence[np.dtype]) -> list[Probe]:
    """One probe per source tensor of a conversion."""
    return [Probe(i, s, d) for i, (s, d) in enumerate(zip(shapes, dtypes))]


# ----------------------------------------------------------------------------
# Walking back


def _reshape_groups(a: tuple[int, ...], b: tuple[int, ...]) -> list[tuple[range, range]]:
    """Splits a reshape ``a -> b`` (no zero sizes) into runs of axes with equal products."""
    groups = []
    i = j = 0
    while i < len(a) or j < len(b):
        i0, j0 = i, j
        pa = pb = 1
        if i < len(a):
            pa, i = a[i], i + 1
        if j < len(b):
            pb, j = b[j], j + 1
        while pa != pb:
            if pa < pb:
                pa, i = pa * a[i], i + 1
            else:
                pb, j = pb * b[j], j + 1
        groups.append((range(i0, i), range(j0, j)))
    return groups


def _back(op: _Op, coords: list[np.ndarray], nd: int) -> list[np.ndarray]:
    """The coordinates in ``op``'s input of the elements whose output coordinates are ``coords``."""
    one = np.zeros((1,) * nd, np.int64)
    if op.kind == "transpose":
        out: list[np.ndarray] = [one] * len(op.shape_in)
        for i, p in enumerate(op.arg):
            out[p] = coords[i]
        return out
    if op.kind == "index":
        return [
            one + start if axis is None else start + step * coords[axis]
            for start, step, axis, _ in op.arg
        ]
    out = [one] * len(op.shape_in)
    for ins, outs in _reshape_groups(op.shape_in, op.arg):
        flat = one
        stride = 1
        for k in reversed(outs):
            flat = flat + coords[k] * stride
            stride *= op.arg[k]
        stride = 1
        for j in reversed(ins):
            out[j] = (flat // stride) % op.shape_in[j]
            stride *= op.shape_in[j]
    return out


@dataclasses.dataclass(frozen=True)
class View:
    """A converted leaf as a view of one source tensor (see the module docstring)."""

    source: int
    source_shape: tuple[int, ...]
    shape: tuple[int, ...]
    ops: tuple[_Op, ...]

    @classmethod
    def of(cls, p: Probe, source_shape: tuple[int, ...]) -> View:
        return cls(p.source, tuple(source_shape), p.shape, p.ops)

    def box(self, index: Index) -> tuple[Index, Any]:
        """The source box a block needs, and how to arrange the box into the block.

        Args:
          index: one ``slice`` (step 1 or None) per result axis, as
            ``jax.make_array_from_callback`` passes.

        Returns:
          ``(box, arrange)``: the slices of the source to read, and a function
          taking what was read (shape of the box) to the block.
        """
        nd = len(self.shape)
        ranges = [range(*s.indices(n)) for s, n in zip(index, self.shape)]
        block = tuple(len(r) for r in ranges)
        if 0 in block or 0 in self.source_shape:
            empty = tuple(slice(0, 0) for _ in self.source_shape)
            return empty, lambda data: np.empty(block, data.dtype)
        coords = []
        for axis, r in enumerate(ranges):
            shape = [1] * nd
            shape[axis] = len(r)
            coords.append(np.arange(r.start, r.stop, r.step, dtype=np.int64).reshape(shape))
        for op in reversed(self.ops):
            coords = _back(op, coords, nd)
        lo = [int(c.min()) for c in coords]
        hi = [int(c.max()) + 1 for c in coords]
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        ops = self.ops
        whole = lo == [0] * len(lo) and tuple(hi) == self.source_shape
        if not whole and block == self.shape and ops and ops[0].kind == "index":
            # the whole leaf from a slice of the tensor (a gate, a third of in_proj)
            first = ops[0].arg
            region = tuple(slice(a, a + n) for a, step, _, n in first if step in (0, 1))
            if len(region) == len(first) and region == box:
                whole, box = True, region
                ops = (_Op("index", tuple(n for *_, n in first), _local(first)), *ops[1:])
        if whole:

            def replay(data: np.ndarray) -> np.ndarray:
                for op in ops:
                    data = op.apply(data)
                return data[index]

            return box, replay
        local = [c - low for c, low in zip(coords, lo)]
        return box, _arrangement(local, block)


def _local(first: tuple[Any, ...]) -> tuple[Any, ...]:
    """A leading index op, relative to the region it reads (ints become 0, slices start at 0)."""
    return tuple((0, step, axis, n) for _, step, axis, n in first)


def _arrangement(local: list[np.ndarray], block: tuple[int, ...]) -> Any:
    """A function from the box read to the block: a view where it can be, else a gather."""
    plan = _as_view(local, block)
    if plan is not None:
        squeeze, perm, flips = plan

        def view(data: np.ndarray) -> np.ndarray:
            v = data.reshape(squeeze).transpose(perm).reshape(block)
            return v[flips] if flips else v

        return view
    index = tuple(local)
    return lambda data: data[index].reshape(block)


def _as_view(
    local: list[np.ndarray], block: tuple[int, ...]
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[slice, ...]] | None:
    """``(squeezed box shape, permutation, flips)`` if each source axis runs along one block axis.

    That is: every source coordinate is constant or varies along a single
    block axis by steps of +1 or -1, no two source axes along the same block
    axis. The block is then the box, squeezed, transposed and flipped: a view.
    """
    along: dict[int, int] = {}  # block axis -> source axis
    desc: set[int] = set()
    extents: dict[int, int] = {}  # varying source axis -> its extent
    for j, c in enumerate(local):
        varying = [k for k, n in enumerate(c.shape) if n > 1]
        if not varying:
            continue
        if len(varying) > 1 or varying[0] in along:
            return None
        k = varying[0]
        v = c.reshape(-1)
        step = int(v[1] - v[0])
        if step not in (1, -1) or not np.array_equal(np.diff(v), np.full(v.size - 1, step)):
            return None
        along[k] = j
        extents[j] = int(v.size)
        if step == -1:
            desc.add(k)
    order = [along[k] for k in sorted(along)]
    squeeze = tuple(extents[j] for j in sorted(along.values()))
    rank = {j: i for i, j in enumerate(sorted(along.values()))}
    perm = tuple(rank[j] for j in order)
    flips = (
        tuple(slice(None, None, -1) if k in desc else slice(None) for k in range(len(block)))
        if desc
        else ()
    )
    return squeeze, perm, flips
