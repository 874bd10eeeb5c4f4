"""``to_torch`` into a ``.safetensors`` file, written tensor by tensor.

The torch names, shapes and dtypes come from a template (a torch module, a
state_dict, or a checkpoint path). The header is known from those alone, so
the file is streamed: each torch tensor is converted from its JAX leaves,
written, and dropped. A leaf sharded across processes is gathered with
``jax.experimental.multihost_utils.process_allgather`` (every process takes
part, process 0 writes). Ties are written once, as
``safetensors.torch.save_model`` and transformers write them: one name per
storage, the first in ``state_dict`` order, so ``safetensors.torch.load_model``
(or ``load_state_dict(..., strict=False)``, the tie filling the other name)
loads it back. The file appears only once complete (written beside it, then
renamed): a failure leaves no partial file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from jaxinit._src.port import target as T
from jaxinit._src.port import torch as P
from jaxinit._src.port.checks import tie_groups
from jaxinit._src.port.files.sources import DTYPES, Checkpoint, is_path, open_checkpoint

__all__ = ["Writer", "template"]

_CODES = {np.dtype(v): k for k, v in DTYPES.items()}
_ALIGN = 8  # safetensors pads its JSON header to a multiple of 8 bytes


@contextlib.contextmanager
def template(like: Any, path: Any) -> Iterator[Any]:
    """The names, shapes and dtypes to write: a torch module, a state_dict, or an opened checkpoint."""
    if like is None:
        raise TypeError(
            f"to_torch: writing {os.fspath(path)!r} needs the torch names, shapes and dtypes: "
            "pass template= (the torch nn.Module, its state_dict, or a checkpoint path)"
        )
    if not is_path(like):
        yield like
        return
    with open_checkpoint(like) as checkpoint:
        yield checkpoint


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in x.shape)


def _dtype(like: Any) -> np.dtype:
    """A template tensor's dtype as numpy's, without copying its data."""
    if P.is_tensor(like):
        return P.to_numpy(like.detach().reshape(-1)[:0]).dtype
    return np.asarray(like).dtype


def _host(x: Any) -> np.ndarray:
    """A leaf's value on this host, gathered from every process if it spans several."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def _placeholder(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return np.broadcast_to(np.zeros((), dtype), shape)


class Writer:
    """Checks a ``to_torch`` plan into a file from shapes alone, then streams the tensors.

    Args:
      path: the ``.safetensors`` file to write.
      like: the template (see :func:`template`).
      layers, aliases: the template's torch layers and ties
        (``P.torch_layers(like, values=False)``).
      tgt: the collected JAX source.
      steps: the port plan's steps.
      strict: tied names given different values are an error (else a warning).
    """

    def __init__(
        self,
        path: Any,
        like: Any,
        layers: Sequence[P.TorchLayer],
        aliases: Mapping[str, tuple[str, ...]],
        tgt: T.Target,
        steps: Sequence[Any],
        strict: bool = True,
    ):
        self.path = Path(os.fspath(path))
        if not self.path.name.endswith(".safetensors"):
            raise ValueError(
                f"to_torch writes .safetensors files, got {self.path.name!r}; for a .bin, load "
                "into the torch model (to_torch(variables, torch_model)) and torch.save its "
                "state_dict"
            )
        self.like = like
        self.tgt = tgt
        self.steps = list(steps)
        self.values = {tl.keys[n]: tl.values[n] for tl in layers for n in tl.keys}
        # each tie is written once, under its first key in state_dict order
        self.tied = {
            alias: group[0] for group in tie_groups(aliases, self.values) for alias in group[1:]
        }
        self.mismatches: list[str] = []
        self.dtypes = {k: _dtype(v) for k, v in self.values.items()}
        bad = sorted({str(d) for d in self.dtypes.values() if d not in _CODES})
        if bad:
            raise TypeError(f"to_torch: safetensors cannot store the dtypes {bad}")
        for step in self.steps:
            self._check(step)
        self.by_key = {key: s for s, step in enumerate(self.steps) for key in step.keys}
        if self.tied and not self.mismatches:
            ties = self._check_ties()
            if ties and not strict:
                warnings.warn("\n".join(ties), stacklevel=4)
            elif ties:
                self.mismatches += ties

    def _check(self, step: Any) -> None:
        """The step's output shapes from placeholders of its leaves (no data read)."""
        leaves = [self.tgt.leaves[i] for i in step.leaves]
        src = ", ".join(f"{leaf.path} {_shape(leaf.value)}" for leaf in leaves)
        try:
            outs = step.group.bwd(*(_placeholder(leaf.shape, leaf.dtype) for leaf in leaves))
        except (ValueError, IndexError) as e:
            self.mismatches.append(f"{src} -> torch {', '.join(step.keys)}: {e}")
            return
        for key, x in zip(step.keys, outs):
            want = _shape(self.values[key])
            if _shape(x) != want:
                self.mismatches.append(f"{src} -> torch {key}: converted {_shape(x)}, torch {want}")

    def _original(self, key: str) -> np.ndarray:
        """A template tensor's own value (what a key no JAX leaf fills keeps)."""
        like = self.values[key]
        if isinstance(self.like, Checkpoint):
            return self.like.read(key, tuple(slice(0, n) for n in _shape(like)))
        return P.to_numpy(like)

    def _run(self, step: Any) -> list[tuple[str, np.ndarray]]:
        arrays = [_host(self.tgt.leaves[i].value) for i in step.leaves]
        outs = step.group.bwd(*arrays)
        done = []
        for key, x in zip(step.keys, outs):
            if x is self.values[key]:  # a dropped tensor (num_batches_tracked) keeps its value
                x = self._original(key)
            done.append((key, np.asarray(x, dtype=self.dtypes[key])))
        return done

    def _check_ties(self) -> list[str]:
        """Tied names must get equal values: they are stored once."""
        problems = []
        for alias, kept in self.tied.items():
            if alias not in self.by_key or kept not in self.by_key:
                continue
            a = dict(self._run(self.steps[self.by_key[alias]]))[alias]
            b = dict(self._run(self.steps[self.by_key[kept]]))[kept]
            if not np.array_equal(a, b, equal_nan=True):
                problems.append(
                    f"to_torch: torch {alias!r} and {kept!r} share storage (tied) and are "
                    "stored once, but the JAX model holds different values for them; tie them "
                    f"in the JAX model, or untie them in the torch template ({kept!r} is written)"
                )
        return problems

    def write(self) -> Path:
        """Writes the file (process 0; every process takes part in gathers) and returns its path."""
        by_key = self.by_key
        names = [k for k in self.values if k not in self.tied]
        # the kept name of a tie takes its alias's value where only the alias is filled
        source = {k: by_key.get(k) for k in names}
        for alias, kept in self.tied.items():
            if source.get(kept) is None and alias in by_key:
                source[kept] = by_key[alias]
        order = sorted(names, key=lambda k: (source[k] is None, source[k] or 0))
        header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for k in order:
            size = int(np.prod(_shape(self.values[k]))) * self.dtypes[k].itemsize
            header[k] = {
                "dtype": _CODES[self.dtypes[k]],
                "shape": list(_shape(self.values[k])),
                "data_offsets": [offset, offset + size],
            }
            offset += size
        blob = json.dumps(header, separators=(",", ":")).encode()
        blob += b" " * (-len(blob) % _ALIGN)
        writer = jax.process_index() == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = None
        f = None
        try:
            if writer:
                fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
                f = os.fdopen(fd, "wb")
                f.write(len(blob).to_bytes(8, "little"))
                f.write(blob)
            done: dict[int, dict[str, np.ndarray]] = {}
            for k in order:
                s = source[k]
                if s is None:
                    x = np.asarray(self._original(k), dtype=self.dtypes[k])
                else:
                    if s not in done:
                        done.clear()  # one step's tensors at a time
                        done[s] = dict(self._run(self.steps[s]))
                    outs = done[s]
                    x = (
                        outs[k]
                        if k in outs
                        else outs[next(a for a, b in self.tied.items() if b == k)]
                    )
                if f is not None:
                    f.write(np.ascontiguousarray(x).reshape(-1).view(np.uint8).data)
            if f is not None and tmp is not None:
                f.close()
                f = None
                os.chmod(tmp, 0o644)  # mkstemp's 0o600 is not what a saved file should be
                os.replace(tmp, self.path)
                tmp = None
        finally:
            if f is not None:
                f.close()
            if tmp is not None:
                os.unlink(tmp)
        return self.path
