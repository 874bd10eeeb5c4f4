"""What the Flax doors share: boxed leaves (``nn.Partitioned``) and the rules' key."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax

from jaxinit._src.core.initializer import check_key
from jaxinit._src.layers.leaf import Owner

__all__ = ["is_box", "nnx_owners", "params_key", "rebox", "unbox"]


def is_box(x: Any) -> bool:
    """An ``nn.Partitioned`` (or other ``AxisMetadata``) box around a leaf."""
    return isinstance(x, nn.meta.AxisMetadata)


def unbox(x: Any) -> Any:
    return x.value if is_box(x) else x


def rebox(old: Any, new: Any) -> Any:
    """``new`` in ``old``'s box (if ``old`` is boxed)."""
    return old.replace_boxed(new) if is_box(old) else new


def params_key(key: Any, name: str, check: bool = True) -> jax.Array:
    """The key the rules use, validated: ``key`` itself, or ``key["params"]`` of a dict of keys.

    The one validation of the key on the Flax doors' call paths (``name`` is
    the door, for the message); ``check=False`` where the door checked it already.
    """
    if isinstance(key, Mapping):
        if "params" not in key:
            raise ValueError(f"{name}: a dict of keys must have a 'params' entry")
        key = key["params"]
    if check:
        check_key(name, key)
    return key


def nnx_owners(
    paths: Sequence[tuple[str, ...]], modules: Mapping[tuple[str, ...], Any]
) -> Callable[[int], tuple[Owner, ...]]:
    """``owners_of(i)`` for an NNX graph: the modules enclosing ``paths[i]``, outermost first."""

    def owners_of(i: int) -> tuple[Owner, ...]:
        path = paths[i]
        return tuple(
            Owner(path[:d], type(modules[path[:d]]), modules[path[:d]])
            for d in range(len(path))
            if path[:d] in modules
        )

    return owners_of
