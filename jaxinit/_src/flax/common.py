"""What the Flax doors share: boxed leaves (``nn.Partitioned``) and the rules' key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax

from jaxinit._src.core.initializer import check_key

__all__ = ["is_box", "params_key", "rebox", "unbox"]


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
