"""dtypes and keys: what a scheme may draw, in what it samples, and which keys it takes."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxinit._src.core.frames import warn

__all__ = [
    "DtypeKinds",
    "check_key",
    "default_float",
    "is_key",
    "resolve_dtype",
    "sample_dtype",
]

DtypeKinds: TypeAlias = Literal["inexact", "real", "any"]

# torch's names for the dtypes it names in "not implemented for" errors.
_TORCH_DTYPE_NAMES = {
    "bool": "Bool",
    "int8": "Char",
    "uint8": "Byte",
    "int16": "Short",
    "uint16": "UInt16",
    "int32": "Int",
    "uint32": "UInt32",
    "int64": "Long",
    "uint64": "UInt64",
}


def torch_dtype_name(dt: np.dtype) -> str:
    """torch's C++ name of a dtype (``Float8_e4m3fn``, ``Long``), as its errors print it."""
    if dt.name.startswith("float8_"):
        return "Float8_" + dt.name.removeprefix("float8_")
    return _TORCH_DTYPE_NAMES.get(dt.name, dt.name)


def default_float() -> np.dtype:
    """float32, or float64 under ``jax_enable_x64``."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.float64))


def resolve_dtype(
    name: str, dtype: DTypeLike | None, dtypes: DtypeKinds, torch_kernel: str
) -> np.dtype:
    """Validates a dtype for a family accepting ``dtypes``; 64-bit dtypes without x64 warn as jax does.

    The random families refuse what torch's kernels refuse, with torch's
    words: integers, bool, and the 8-bit (and smaller) floats, which torch's
    ``uniform_``/``normal_`` do not implement either (the fills, ``eye`` and
    ``dirac`` take every dtype, as torch's ``fill_`` does).
    """
    requested = default_float() if dtype is None else np.dtype(dtype)
    dt = np.dtype(jax.dtypes.canonicalize_dtype(requested))
    if dt != requested:
        warn(
            f"Explicitly requested dtype {requested} requested in {name} is not available, "
            f"and will be truncated to dtype {dt}. To enable more dtypes, set the "
            "jax_enable_x64 configuration option or the JAX_ENABLE_X64 shell environment variable."
        )
    if dtypes == "any":
        return dt
    if jnp.issubdtype(dt, jnp.floating) and dt.itemsize >= 2:
        return dt
    if jnp.issubdtype(dt, jnp.complexfloating):
        if dtypes == "inexact":
            return dt
        raise TypeError(
            f"{name}: complex dtypes are not supported (torch does not support them either), "
            f"got {dt}"
        )
    what = (
        "a random scheme needs a float dtype of 16 bits or more (torch's kernels refuse "
        "8-bit floats too; draw in float32 or bfloat16 and cast)"
        if jnp.issubdtype(dt, jnp.floating)
        else "a random scheme needs a floating dtype"
    )
    raise TypeError(
        f'{name}: "{torch_kernel}" not implemented for {torch_dtype_name(dt)!r}: {what}, got {dt}'
    )


def sample_dtype(dtype: np.dtype) -> np.dtype:
    """The real dtype to sample in: float32 for 16-bit floats, else the real part's."""
    real_dtype = np.dtype(jnp.finfo(dtype).dtype)
    return np.dtype(np.float32) if real_dtype.itemsize < 4 else real_dtype


def is_key(x: Any) -> bool:
    """A typed PRNG key (any batch shape) or a legacy raw ``uint32[2]`` key."""
    if not isinstance(x, jax.Array | np.ndarray):
        return False
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return True
    return bool(x.dtype == np.uint32 and x.shape[-1:] == (2,))


def check_key(name: str, key: Any) -> None:
    """Accepts one typed key or one legacy uint32 key; rejects batches and non-keys."""
    if key is None:
        raise TypeError(f"{name}: a PRNG key is required, got None")
    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if shape != ():
            raise ValueError(
                f"{name}: expected a single PRNG key, got a batch of keys of shape {shape}; "
                "use jax.vmap over keys instead"
            )
        return
    if dtype is not None and np.dtype(dtype) == np.uint32 and shape is not None and len(shape) >= 1:
        if len(shape) == 1:
            return
        raise ValueError(
            f"{name}: expected a single PRNG key, got a batch of raw keys of shape {shape}; "
            "use jax.vmap over keys instead"
        )
    if isinstance(key, tuple | list) and all(isinstance(d, int) for d in key):
        raise TypeError(
            f"{name}: expected a PRNG key first, got the shape {tuple(key)!r}: an initializer "
            f"is called as init(key, shape, dtype), e.g. init(jax.random.key(0), {tuple(key)!r})"
        )
    raise TypeError(f"{name}: expected a PRNG key (jax.random.key or PRNGKey), got {key!r}")
