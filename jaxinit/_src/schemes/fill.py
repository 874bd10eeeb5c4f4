"""constant, ones and zeros: torch's ``fill_``, its conversions, every dtype."""

from __future__ import annotations

import math
import numbers
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from jaxinit._src.core.builders import builder
from jaxinit._src.core.distribution import Distribution, fmt
from jaxinit._src.core.family import Checks, Family, kernel
from jaxinit._src.core.hyper import RealLike, is_traced, real
from jaxinit._src.core.initializer import Initializer
from jaxinit._src.core.layout import LayoutLike, is_int
from jaxinit._src.schemes.sampling import make, real_dtype

__all__ = ["CONSTANT", "constant", "fill_value", "ones", "zeros"]


@kernel
def _constant_kernel(key, value, *, shape, dtype, layout):
    """Every element ``value`` (already converted to ``dtype``)."""
    return jnp.full(shape, value, dtype)


class ConstantFamily(Family):
    """Every entry ``value`` (already converted to the dtype, as torch's ``fill_``)."""

    def mean(self, d: Distribution) -> Any:
        return np.asarray(d.params["value"]).item()

    def std(self, d: Distribution) -> float:
        return 0.0

    def support(self, d: Distribution) -> tuple[float, float]:
        value = np.asarray(d.params["value"])
        if np.iscomplexobj(value):
            return -math.inf, math.inf
        return float(value), float(value)

    def rounded_support(self, d: Distribution) -> tuple[float, float]:
        return self.support(d)  # the value is converted to the dtype already

    def finite(self, d: Distribution) -> bool:
        return bool(np.all(np.isfinite(np.asarray(d.params["value"]))))

    def cdf(self, d: Distribution, x: np.ndarray) -> np.ndarray:
        return (x >= self.support(d)[0]).astype(np.float64)

    def check(self, x: np.ndarray, d: Distribution, checks: Checks) -> list[str]:
        return checks.exact(x, np.asarray(d.params["value"]), f"the constant {d!r}")

    def format(self, d: Distribution) -> str:
        return f"const({fmt(d.params['value'])})"


CONSTANT = ConstantFamily(
    "constant", _constant_kernel, ("value",), random=False, dtypes="any", elementwise=True
)


def fill_value(name: str, val: Any, dt: np.dtype) -> Any:  # noqa: C901  (one branch per value type torch accepts)
    """``val`` converted to ``dt`` as torch's ``fill_`` converts it (``checked_convert``).

    * bool: ``val != 0`` (nan and inf included).
    * integers: a float must lie within ``[min, max]`` and is truncated toward
      zero; an int must lie within ``[min, max]``, except that a negative int
      wraps for unsigned types when ``-val <= max`` (``-1`` -> 255 in uint8).
    * floats and complex: inf and nan pass; a finite value beyond the largest
      finite value is an error; 16-bit floats are converted through float32
      (``c10::Half(float(val))``), which can round differently from a direct
      conversion (``1 + 2**-11 + 2**-40`` -> ``1.0``, not ``1.0009765625``).
    * a complex value: into a complex dtype as it is; into bool as ``val != 0``;
      into any other dtype only with a zero imaginary part (torch: ``value
      cannot be converted to type float without overflow``).
    """
    if isinstance(val, complex) and not jnp.issubdtype(dt, jnp.complexfloating):
        if dt == np.bool_:
            return np.asarray(val != 0)
        if val.imag != 0:
            raise ValueError(
                f"{name}: value {val} cannot be converted to type {dt} without overflow "
                f"(a complex fill needs a complex dtype, or a zero imaginary part)"
            )
        val = val.real
    if is_traced(val):
        if dt == np.bool_:
            return val != 0
        if jnp.issubdtype(dt, jnp.integer):
            return jnp.trunc(val).astype(dt)
        if real_dtype(dt).itemsize < 4:
            return val.astype(jnp.float32).astype(dt)
        return val.astype(dt)
    overflow = ValueError(f"{name}: value {val} cannot be converted to type {dt} without overflow")
    if dt == np.bool_:
        return np.asarray(val != 0)  # nan != 0 too
    if jnp.issubdtype(dt, jnp.integer):
        info = jnp.iinfo(dt)
        if isinstance(val, int):
            if val > info.max or (val < info.min and not (info.min == 0 and -val <= info.max)):
                raise overflow
            return np.asarray(val % (int(info.max) + 1) if val < 0 and info.min == 0 else val, dt)
        if math.isnan(val) or val < float(info.min) or val > float(info.max):
            raise overflow
        whole = math.trunc(val)
        if not info.min <= whole <= info.max:  # float(max) rounds up for 64-bit types
            raise overflow
        return np.asarray(whole, dt)
    finfo = jnp.finfo(dt)
    if any(math.isfinite(v) and abs(v) > float(finfo.max) for v in (val.real, val.imag)):
        raise overflow
    if np.dtype(finfo.dtype).itemsize < 4:
        return np.asarray(np.float32(val), dtype=dt)
    return np.asarray(val, dtype=dt)


def fill(name: str, hyperparams: dict[str, Any], val: Any, layout: Any, dtype: Any) -> Initializer:
    """The initializer filling with ``val`` (constant, ones, zeros)."""
    return make(
        name,
        hyperparams,
        CONSTANT,
        lambda shape, lay, dt: (fill_value(name, val, dt),),
        layout=layout,
        dtype=dtype,
    )


def _fill_number(value: Any) -> Any:
    """A fill value as torch takes it: an int stays an int (exact, and wraps for unsigned).

    Python, numpy and jax numbers and 0-d arrays (a torch 0-d tensor too,
    through ``.item()``), real or complex, as torch's ``fill_`` takes them.
    """
    if is_traced(value):
        return real("constant", "val", value)
    if isinstance(value, bool | np.bool_) or is_int(value):
        return int(value)
    if not isinstance(value, numbers.Number) and np.ndim(value) == 0 and hasattr(value, "item"):
        item = value.item()  # a 0-d numpy, jax or torch array
        if isinstance(item, numbers.Number):
            return _fill_number(item)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, numbers.Complex):
        return complex(value)
    shape = getattr(value, "shape", None)
    if shape is not None:
        raise TypeError(
            f"constant: fill_ only supports 0-dimension value tensor but got a value of "
            f"shape {tuple(shape)}"
        )
    raise TypeError(f"constant: val must be a number, got {value!r}")


@builder(example=("0.5", (3, 3, 32, 64)))
def constant(
    val: RealLike | complex, *, layout: LayoutLike | None = None, dtype: DTypeLike | None = None
) -> Initializer:
    """Fills with the value ``val``.

    Works for every dtype torch's ``fill_`` does: floating, complex, integer
    and bool, with torch's conversion (``fill_value``): 16-bit floats through
    float32 (bit for bit as torch), integers truncated toward zero, bool as
    ``val != 0``, and an out-of-range value is an error, as in torch.

    Args:
      val: the value: any real or complex number, or a 0-d array
        (``inf``/``nan`` for float dtypes; complex for complex dtypes).
      layout: accepted for uniformity; it does not affect this scheme.
      dtype: the default dtype of the result.

    Returns:
      An initializer ``(key, shape, dtype=None, out_sharding=None) -> Array``.

    Raises:
      ValueError: at call time, if ``val`` does not fit the dtype
        (torch: ``value cannot be converted to type c10::Half without overflow``).

    PyTorch equivalent: ``torch.nn.init.constant_(w, val)``; bit for bit.

    >>> import jax.numpy as jnp, jaxinit
    >>> jaxinit.constant(0.5)(None, (2, 2))
    Array([[0.5, 0.5],
           [0.5, 0.5]], dtype=float32)
    >>> jaxinit.constant(-1.7)(None, (3,), jnp.int32)
    Array([-1, -1, -1], dtype=int32)
    """
    val = _fill_number(val)
    return fill("constant", {"val": val}, val, layout, dtype)


@builder
def ones(*, layout: LayoutLike | None = None, dtype: DTypeLike | None = None) -> Initializer:
    """Fills with ones (any dtype, bool and integers included).

    Args:
      layout: accepted for uniformity; it does not affect this scheme.
      dtype: the default dtype of the result.

    PyTorch equivalent: ``torch.nn.init.ones_(w)``.

    >>> import jaxinit
    >>> jaxinit.ones()(None, (3,))
    Array([1., 1., 1.], dtype=float32)
    """
    return fill("ones", {}, 1, layout, dtype)


@builder
def zeros(*, layout: LayoutLike | None = None, dtype: DTypeLike | None = None) -> Initializer:
    """Fills with zeros (any dtype, bool and integers included).

    Args:
      layout: accepted for uniformity; it does not affect this scheme.
      dtype: the default dtype of the result.

    PyTorch equivalent: ``torch.nn.init.zeros_(w)``. Note that
    ``jax.nn.initializers.zeros`` is itself the initializer; here ``zeros()``
    builds one.

    >>> import jaxinit
    >>> jaxinit.zeros()(None, (3,))
    Array([0., 0., 0.], dtype=float32)
    """
    return fill("zeros", {}, 0, layout, dtype)
