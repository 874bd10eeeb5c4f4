"""Checkpoint files as lazy state_dicts: names, shapes and dtypes from the headers, data on demand.

Three formats, each read one tensor (or one box of a tensor) at a time:

- ``.safetensors``, opened and checked with the ``safetensors`` package's
  numpy API (``safe_open``; no torch needed) and read through a read-only
  memory map: only the pages of the requested box are read, and no copy is
  made before the one that puts the box on its device.
- a sharded Hugging Face checkpoint: ``*.safetensors.index.json`` (its
  ``weight_map`` names the shard holding each tensor; each shard is opened
  when first read) or ``pytorch_model.bin.index.json``; or the directory
  holding either (or a single ``model.safetensors``/``pytorch_model.bin``).
- ``.bin``/``.pt``/``.pth``: ``torch.load(..., weights_only=True,
  mmap=True)``, so a box read touches only its pages (torch needed).

``safetensors`` is imported here and nowhere else, lazily
(:func:`import_safetensors`), like torch in :mod:`jaxinit._src.port.torch`.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

from jaxinit._src.port import torch as P

__all__ = ["DTYPES", "Checkpoint", "import_safetensors", "is_path", "open_checkpoint"]

Box = tuple[slice, ...]

# safetensors' dtype names -> numpy (ml_dtypes for bfloat16). The numpy API of
# safetensors reads these; FP8 and the sub-byte types it cannot (no numpy name).
DTYPES: dict[str, Any] = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "C64": np.complex64,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U64": np.uint64,
    "U32": np.uint32,
    "U16": np.uint16,
    "U8": np.uint8,
    "BOOL": np.bool_,
}
_TORCH_SUFFIXES = (".bin", ".pt", ".pth")
_HINT = (
    "expected a .safetensors file, a sharded checkpoint's *.index.json (or the directory "
    "holding it), or a torch .bin/.pt/.pth file"
)


def import_safetensors() -> Any:
    """Imports safetensors, with a clear message when the optional extra is missing."""
    try:
        return importlib.import_module("safetensors")
    except ImportError:
        raise ImportError(
            "jaxinit.port needs safetensors to read or write .safetensors files: "
            "pip install 'jaxinit[safetensors]' (or pip install safetensors)"
        ) from None


def is_path(x: Any) -> bool:
    """Whether ``x`` names a file or directory (``str`` or ``os.PathLike``)."""
    return isinstance(x, str | os.PathLike)


def _placeholder(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A read-only array of that shape and dtype that holds one element (zero strides)."""
    return np.broadcast_to(np.zeros((), dtype), shape)


class _Safetensors:
    """One ``.safetensors`` file: opened and checked by ``safe_open``, read through a memory map.

    ``safe_open(framework="numpy")`` validates the file and gives each
    tensor's shape and dtype. The data is then read through a read-only
    numpy memory map of the same file, at the offsets the (documented)
    header gives: a box is a view of the page cache, and the one copy made of
    it is the one that puts it on the device (transposed on the way, where
    the conversion transposes). safetensors' own numpy reads would copy each
    box once more first.
    """

    def __init__(self, path: Path):
        self.path = path
        self._handle: Any = None
        self._ctx: Any = None
        self._header: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None
        self._data: np.memmap | None = None
        self._offsets: dict[str, int] = {}

    def handle(self) -> Any:
        if self._handle is None:
            st = import_safetensors()
            if not self.path.is_file():
                raise FileNotFoundError(f"from_torch: no such checkpoint file: {self.path}")
            self._ctx = st.safe_open(str(self.path), framework="numpy")
            self._handle = self._ctx.__enter__()
        return self._handle

    def header(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        if self._header is None:
            h = self.handle()
            out = {}
            for name in h.keys():
                s = h.get_slice(name)
                code = s.get_dtype()
                if code not in DTYPES:
                    raise TypeError(
                        f"from_torch: tensor {name!r} in {self.path} is {code}, which "
                        f"safetensors' numpy API cannot read; supported: {', '.join(DTYPES)}. "
                        "Convert the checkpoint (e.g. to BF16) with torch first"
                    )
                out[name] = (tuple(int(d) for d in s.get_shape()), np.dtype(DTYPES[code]))
            self._header = out
        return self._header

    def _map(self) -> np.memmap:
        if self._data is None:
            with open(self.path, "rb") as f:  # 8 bytes: the JSON header's length, little-endian
                size = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(size))
            self._offsets = {
                name: 8 + size + int(entry["data_offsets"][0])
                for name, entry in header.items()
                if name != "__metadata__"
            }
            self._data = np.memmap(self.path, dtype=np.uint8, mode="r")
        return self._data

    def read(self, name: str, box: Box) -> np.ndarray:
        shape, dtype = self.header()[name]
        if sys.byteorder != "little":  # the file is little-endian: let safetensors convert
            return np.asarray(self.handle().get_slice(name)[box])
        data = self._map()
        return np.ndarray(shape, dtype, buffer=data, offset=self._offsets[name])[box]

    def close(self) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
        self._handle = self._ctx = None
        self._data = None


class _TorchFile:
    """A ``torch.save`` d state_dict, memory-mapped by ``torch.load``."""

    def __init__(self, path: Path):
        self.path = path
        self._state: dict[str, Any] | None = None

    def state(self) -> dict[str, Any]:
        if self._state is None:
            torch = P.import_torch()
            if not self.path.is_file():
                raise FileNotFoundError(f"from_torch: no such checkpoint file: {self.path}")
            try:
                obj = torch.load(self.path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e):
                    raise
                warnings.warn(
                    f"from_torch: {self.path} is in torch's legacy (pre-1.6) format, which "
                    "cannot be memory-mapped: it is read whole. Re-save it with torch.save to "
                    "read it lazily.",
                    stacklevel=4,
                )
                obj = torch.load(self.path, map_location="cpu", weights_only=True)
            if not isinstance(obj, Mapping) or not all(
                isinstance(k, str) and P.is_tensor(v) for k, v in obj.items()
            ):
                what = (
                    f"a dict with keys {sorted(map(str, obj))[:8]}"
                    if isinstance(obj, Mapping)
                    else f"a {type(obj).__name__}"
                )
                raise TypeError(
                    f"from_torch: {self.path} holds {what}, not a state_dict (name -> tensor); "
                    "load it with torch.load and pass the state_dict (e.g. "
                    "checkpoint['state_dict'] or checkpoint['model'])"
                )
            self._state = dict(obj)
        return self._state

    def header(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        return {
            name: (tuple(int(d) for d in t.shape), P.to_numpy(t).dtype)
            for name, t in self.state().items()
        }

    def read(self, name: str, box: Box) -> np.ndarray:
        return P.to_numpy(self.state()[name])[box]

    def close(self) -> None:
        self._state = None


def _reader(path: Path) -> _Safetensors | _TorchFile:
    if path.name.endswith(".safetensors"):
        return _Safetensors(path)
    if path.suffix in _TORCH_SUFFIXES:
        return _TorchFile(path)
    raise ValueError(f"from_torch: cannot read {path}: {_HINT}")


class Checkpoint(Mapping[str, np.ndarray]):
    """A checkpoint's tensors by name, read on demand.

    As a mapping, each name gives a placeholder array of the tensor's shape
    and dtype that holds no data (what the pairing code reads: names, shapes,
    dtypes). :meth:`read` reads one box of one tensor.

    Attributes:
      path: the path given.
      bytes_read: how many bytes :meth:`read` has returned so far.
      reads: ``(name, box)`` of every read, in order.
    """

    def __init__(self, path: Path, readers: Mapping[str, _Safetensors | _TorchFile]):
        self.path = path
        self._readers = readers  # tensor name -> the file holding it
        self._files = list({id(r): r for r in readers.values()}.values())
        self._meta: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
        for f in self._files:
            header = f.header()
            for name, meta in header.items():
                if readers.get(name) is f:
                    self._meta[name] = meta
        missing = [n for n in readers if n not in self._meta]
        if missing:
            raise ValueError(
                f"from_torch: the index of {path} names tensors its shards do not hold: "
                f"{missing[:8]}"
            )
        self.bytes_read = 0
        self.reads: list[tuple[str, Box]] = []

    def __getitem__(self, name: str) -> np.ndarray:
        shape, dtype = self._meta[name]
        return _placeholder(shape, dtype)

    def __iter__(self) -> Iterator[str]:
        return iter(self._meta)

    def __len__(self) -> int:
        return len(self._meta)

    def read(self, name: str, box: Box) -> np.ndarray:
        """The box ``box`` (one ``slice`` per axis, step 1) of tensor ``name``.

        A view of the mapped file (or of torch's mapped storage), read-only:
        the caller copies what it keeps.
        """
        shape, dtype = self._meta[name]
        block = tuple(len(range(*s.indices(n))) for s, n in zip(box, shape))
        if 0 in block:
            return np.empty(block, dtype)
        out = self._readers[name].read(name, box)
        self.bytes_read += out.nbytes
        self.reads.append((name, box))
        return out

    def close(self) -> None:
        for f in self._files:
            f.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _index(path: Path) -> Checkpoint:
    try:
        weight_map = json.loads(path.read_text())["weight_map"]
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(
            f"from_torch: {path} is not a sharded checkpoint index (a JSON file with a "
            f"'weight_map' of tensor name -> shard file): {e}"
        ) from None
    shards: dict[str, _Safetensors | _TorchFile] = {}
    for shard in dict.fromkeys(weight_map.values()):
        shards[shard] = _reader(path.parent / shard)
    absent = [s for s, r in shards.items() if not r.path.is_file()]
    if absent:
        raise FileNotFoundError(
            f"from_torch: the shards {absent[:8]} named by {path} are not in {path.parent}"
        )
    return Checkpoint(path, {name: shards[f] for name, f in weight_map.items()})


_DIRECTORY_FILES = (
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
)


def _resolve(path: Path) -> Path:
    """A directory's checkpoint: Hugging Face's file names first, else its one checkpoint file."""
    for name in _DIRECTORY_FILES:
        if (path / name).is_file():
            return path / name
    found = sorted(
        p.name
        for p in path.iterdir()
        if p.name.endswith((".safetensors", ".index.json", *_TORCH_SUFFIXES))
    )
    indexes = [n for n in found if n.endswith(".index.json")]
    if len(indexes) == 1:
        return path / indexes[0]
    if len(found) == 1:
        return path / found[0]
    raise ValueError(
        f"from_torch: cannot tell which checkpoint in {path} to read "
        + (f"(found {found}); pass the file" if found else "(it holds none)")
        + f"; {_HINT}"
    )


def open_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Opens a checkpoint file, a sharded index, or a directory holding one; reads headers only.

    Raises:
      FileNotFoundError: for a missing file or shard.
      ValueError: for a path that is no checkpoint (naming what is expected).
      ImportError: if safetensors (or, for ``.bin``/``.pt``, torch) is needed but missing.
    """
    p = Path(os.fspath(path))
    if p.is_dir():
        p = _resolve(p)
    if not p.exists():
        raise FileNotFoundError(f"from_torch: no such checkpoint file or directory: {p}")
    if p.name.endswith(".index.json"):
        return _index(p)
    reader = _reader(p)
    names = list(reader.header())
    return Checkpoint(p, dict.fromkeys(names, reader))
