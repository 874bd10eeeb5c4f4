"""``Family``: a distribution family, carrying how it is drawn and its maths.

A family is one object: its jitted sampling kernel, what that kernel
accepts, and the maths of what it draws -- mean, std, support (exact, and
rounded to the dtype drawn), CDF, repr, whether entries are drawn
elementwise from their row-major index (so the tree tools may draw many
leaves as one flat draw), and how :mod:`jaxinit.testing` checks an array
against it. A scheme is a builder over one family; adding a scheme touches
no table anywhere else.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._src.core.distribution import Distribution, fmt
from jaxinit._src.core.dtypes import DtypeKinds, sample_dtype
from jaxinit._src.core.hyper import is_traced
from jaxinit._src.core.layout import Layout
from jaxinit._src.core.sharding import constrain

__all__ = [
    "Checks",
    "Family",
    "Kernel",
    "drawing_flat",
    "draws_flat",
    "kernel",
    "param",
    "round_to",
    "unsharded",
]


class Kernel(Protocol):
    """A jitted sampler: ``(key, *params, shape=, dtype=, layout=, out_sharding=) -> Array``."""

    def __call__(
        self,
        key: Any,
        *params: Any,
        shape: tuple[int, ...],
        dtype: np.dtype,
        layout: Layout | None,
        out_sharding: Any,
        flat: bool = False,
    ) -> jax.Array: ...


# Whether the kernel being traced may draw its random bits flat (see draws_flat).
_FLAT: contextvars.ContextVar[bool] = contextvars.ContextVar("jaxinit_flat", default=False)


def draws_flat() -> bool:
    """Whether the kernel being traced may draw its random bits flat and reshape them.

    The same bits either way (threefry's counters are row-major indices), and
    a flat draw compiles about 3x faster on CPU; but a flat draw reshaped
    cannot be partitioned along an inner axis, so only a kernel whose result
    is known to be unsharded (:func:`unsharded`) draws flat.
    """
    return _FLAT.get()


@contextlib.contextmanager
def drawing_flat(enabled: bool) -> Iterator[None]:
    """Traces the block's random draws flat (``True``) or N-D (``False``)."""
    token = _FLAT.set(enabled)
    try:
        yield
    finally:
        _FLAT.reset(token)


def unsharded(args: Sequence[Any], out_sharding: Any) -> bool:
    """Whether a kernel call's result is known to be unsharded.

    True for an eager call (no argument traced: no caller's ``jit`` may give
    it ``out_shardings``) without ``out_sharding`` and outside a mesh context.
    """
    return (
        out_sharding is None
        and jax.sharding.get_abstract_mesh().empty
        and not any(is_traced(a) for a in args)
    )


def kernel(fn: Callable[..., jax.Array]) -> Kernel:
    """Jits a family's sampling function with the shape, dtype, layout and sharding static.

    ``fn(key, *params, shape, dtype, layout)`` computes in any dtype it likes;
    the wrapper casts to ``dtype`` and applies ``out_sharding``. ``flat=True``
    (static; for a result known to be unsharded) lets it draw its random bits
    flat (:func:`draws_flat`): the same values, compiled faster.
    """

    @functools.partial(
        jax.jit, static_argnames=("shape", "dtype", "layout", "out_sharding", "flat")
    )
    def run(key, *params, shape, dtype, layout, out_sharding, flat=False):
        with drawing_flat(flat):
            out = fn(key, *params, shape=shape, dtype=dtype, layout=layout)
        return constrain(out.astype(dtype), out_sharding)

    run.__name__ = run.__qualname__ = f"jaxinit_{fn.__name__.lstrip('_')}"  # type: ignore[attr-defined]
    return run  # type: ignore[return-value]


class Checks(Protocol):
    """The tests :mod:`jaxinit.testing` lends a family's :meth:`Family.check`."""

    alpha: float

    def iid(self, values: np.ndarray, dist: Distribution, alpha: float | None = None) -> list[str]:
        """KS and variance tests of iid values (complex: of their parts)."""
        ...

    def exact(self, x: np.ndarray, expected: Any, what: str) -> list[str]:
        """``x`` equals ``expected`` bit for bit."""
        ...

    def matrices(self, x: np.ndarray, dist: Distribution) -> np.ndarray:
        """``x`` as ``(batch, rows, cols)``: each batch entry's torch ``(out, in * k)`` view."""
        ...


class Family:
    """A distribution family: its sampling kernel and the maths of what it draws.

    The built-in families are instances of subclasses, one per family; each
    overrides the maths it has. A user's scheme reuses them through
    :func:`jaxinit.scheme`.

    Args:
      name: the family's name (``"uniform"``).
      kernel: the jitted sampler (:func:`kernel`).
      params: the names of the kernel's numeric parameters, in order: a
        :class:`~jaxinit.Distribution`'s ``params`` keys.
      random: whether the kernel uses its key.
      dtypes: ``"inexact"`` (float and complex), ``"real"`` (float only) or
        ``"any"`` (the deterministic fills: also int and bool, as torch).
      structured: whether the layout changes the kernel's program (eye,
        dirac, orthogonal, sparse); iid families use the layout only for
        fans, computed in Python, so it stays out of their compile key.
      elementwise: whether entry ``i`` depends only on the ``i``-th random
        bits and the scalar parameters, so a draw of any shape is the flat
        draw reshaped (the tree tools then pool such leaves).
      torch_kernel: torch's kernel name in its "not implemented for" error.
    """

    iid = True
    """Whether the entries are independent and identically distributed."""
    exact_support = True
    """Whether no entry lies outside :meth:`support` (``jaxinit.testing`` checks it)."""

    def __init__(
        self,
        name: str,
        kernel: Kernel,
        params: Sequence[str] = (),
        *,
        random: bool = True,
        dtypes: DtypeKinds = "inexact",
        structured: bool = False,
        elementwise: bool = False,
        torch_kernel: str = "",
    ):
        self.name = name
        self.kernel = kernel
        self.params = tuple(params)
        self.random = random
        self.dtypes: DtypeKinds = dtypes
        self.structured = structured
        self.elementwise = elementwise
        self.torch_kernel = torch_kernel

    def __repr__(self) -> str:
        return f"<jaxinit family {self.name!r}>"

    # -- Distributions of this family ------------------------------------------------

    def describe(
        self,
        values: tuple[Any, ...],
        shape: tuple[int, ...],
        layout: Layout | None,
        dtype: np.dtype | None,
    ) -> Distribution:
        """The distribution the kernel draws from with parameters ``values``."""
        return Distribution(self, dict(zip(self.params, values)), shape, layout, dtype)

    def is_iid(self, d: Distribution) -> bool:
        """Whether ``d``'s entries are iid (a per-entry ``cdf`` exists)."""
        return self.iid

    def is_random(self, d: Distribution) -> bool:
        """Whether ``d``'s entries are random (not a fixed array)."""
        return self.random

    def mean(self, d: Distribution) -> float:
        """The mean of one entry."""
        raise AttributeError(f"a {self.name} array has no entry mean; see .params")

    def std(self, d: Distribution) -> float:
        """The standard deviation of one entry."""
        raise AttributeError(f"a {self.name} array has no entry std; see .params")

    def support(self, d: Distribution) -> tuple[float, float]:
        """The smallest closed interval holding every entry, in exact arithmetic."""
        return -math.inf, math.inf

    def finite(self, d: Distribution) -> bool:
        """Whether every entry is finite (``inf`` and ``nan`` then mean a wrong array)."""
        return True

    def cdf(self, d: Distribution, x: np.ndarray) -> np.ndarray:
        """The CDF of one entry at ``x`` (float64), for iid families."""
        raise TypeError(f"a {self.name} array is not iid: it has no per-entry cdf")

    def moments(self, d: Distribution, centered: np.ndarray) -> tuple[float, float]:
        """``(kappa, eta)``: one entry's standardized 4th and 6th central moments.

        Estimated from the centered values unless the family knows them.
        """
        m2 = float(np.mean(centered**2))
        return float(np.mean(centered**4)) / m2**2, float(np.mean(centered**6)) / m2**3

    def part(self, d: Distribution) -> Distribution:
        """The distribution of the real and of the imaginary part of a complex entry."""
        return d

    def format(self, d: Distribution) -> str:
        """``d``'s repr."""
        args = ", ".join(f"{k}={fmt(v)}" for k, v in d.params.items())
        return f"{self.name}({args})"

    # -- Rounding to the dtype drawn ------------------------------------------------

    def rounded_support(self, d: Distribution) -> tuple[float, float]:
        """:meth:`support` as the dtype drawn rounds it.

        Sampling happens in :func:`sample_dtype` and the result is cast, and
        rounding is monotone, so every entry lies between the two rounded ends.
        """
        lo, hi = self.support(d)
        if d.dtype is None or not jnp.issubdtype(d.dtype, jnp.inexact):
            return lo, hi
        return round_to(lo, d.dtype), round_to(hi, d.dtype)

    def rounded_cdf(self, d: Distribution, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(P(X_r < x), P(X_r <= x))`` for ``x`` values of ``X_r``, ``X`` rounded to ``x.dtype``.

        16-bit floats are exact here: ``F`` at the midpoints to the
        neighbouring representable values; wider floats use ``F`` itself.
        """
        xf = x.astype(np.float64)
        if x.dtype.itemsize >= 4:
            f = self.cdf(d, xf)
            return f, f
        inf = np.asarray(np.inf, x.dtype)
        hi = (xf + np.nextafter(x, inf).astype(np.float64)) / 2
        lo = (xf + np.nextafter(x, -inf).astype(np.float64)) / 2
        return self.cdf(d, lo), self.cdf(d, hi)

    # -- jaxinit.testing --------------------------------------------------------------

    def check(self, x: np.ndarray, d: Distribution, checks: Checks) -> list[str]:
        """Why ``x`` is not a draw of ``d`` (empty if it is); iid by default."""
        return checks.iid(x, d)


def round_to(value: float, dtype: np.dtype) -> float:
    """``value`` rounded as a kernel rounds it: to the sampling dtype, then to ``dtype``."""
    if math.isinf(value):
        return value
    real = np.dtype(jnp.finfo(dtype).dtype)
    return float(np.asarray(np.asarray(value, sample_dtype(real)), real))


def param(d: Distribution, name: str) -> float:
    """A concrete parameter as a Python float."""
    return float(d.params[name])
