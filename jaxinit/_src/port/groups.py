"""The unit of a layer conversion (:class:`Group`) and the numpy moves conversions are made of.

A conversion is a list of :class:`Group` s: torch tensors ``src`` (local names)
become target leaves ``dst`` (paths relative to the layer) by ``fwd``, and
back by ``bwd``. Every ``fwd``/``bwd`` is a numpy view (transpose, slice,
reshape) where it can be; only sums and concatenations allocate.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["Group", "PortError", "Rel"]

Rel = tuple[str, ...]


class PortError(ValueError):
    """A layer that cannot be converted (the message names the layer)."""


@dataclasses.dataclass
class Group:
    """torch tensors ``src`` <-> target leaves ``dst``; ``fwd``: torch -> target, ``bwd``: back."""

    src: tuple[str, ...]
    dst: tuple[Rel, ...]
    fwd: Callable[..., tuple[np.ndarray, ...]]
    bwd: Callable[..., tuple[np.ndarray, ...]]


# ----------------------------------------------------------------------------
# Array moves


def transpose2(w: np.ndarray) -> np.ndarray:
    """A 2-D weight transposed (a view): Linear ``(out, in)`` <-> Dense ``(in, out)``."""
    return w.T


def conv_perm(n: int) -> tuple[int, ...]:
    """``(out, in, *k)`` -> ``(*k, in, out)``."""
    return (*range(2, n), 1, 0)


def inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    """The permutation that undoes ``perm``."""
    return tuple(int(i) for i in np.argsort(perm))


def sum_exact(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a + b``, exactly ``a`` where ``b`` is zero (so a ``-0.0`` survives a round trip)."""
    return np.where(b == 0, a, a + b)


def one(src: str, dst: Rel, fwd: Callable[[np.ndarray], np.ndarray], bwd: Any = None) -> Group:
    """One tensor to one leaf by ``fwd``, back by ``bwd`` (default: ``fwd``, an involution)."""
    back = bwd or fwd
    return Group((src,), (dst,), lambda a: (fwd(a),), lambda a: (back(a),))


def same(src: str, dst: Rel) -> Group:
    """One tensor to one leaf, unchanged."""
    return one(src, dst, lambda a: a)


def dropped(src: str, template: Mapping[str, Any]) -> Group:
    """A torch tensor with no Flax counterpart (``num_batches_tracked``): kept as it is."""
    return Group((src,), (), lambda a: (), lambda: (template[src],))


def split(w: np.ndarray, n: int) -> list[np.ndarray]:
    """``w`` cut into ``n`` equal blocks along axis 0 (torch's stacked gates), as views."""
    if w.shape[0] % n:
        raise PortError(f"cannot split {w.shape} into {n} gates along axis 0")
    size = w.shape[0] // n
    return [w[i * size : (i + 1) * size] for i in range(n)]
