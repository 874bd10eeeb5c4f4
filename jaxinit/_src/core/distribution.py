"""``Distribution``: what an initializer draws for a given shape, as a small value.

Its maths is its family's (:class:`~jaxinit._src.core.family.Family`): this
class only holds the parameters and asks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

from jaxinit._src.core.layout import Layout

__all__ = ["Distribution", "fmt"]


@dataclasses.dataclass(frozen=True)
class Distribution:
    """What an initializer draws for one shape: a family and its parameters.

    Returned by :meth:`jaxinit.Initializer.distribution`. The iid families
    (every entry independent, identically distributed) have a ``cdf``:

    | family           | parameters                      | entries                                                        |
    |------------------|---------------------------------|----------------------------------------------------------------|
    | ``uniform``      | ``low``, ``high``               | :math:`\\mathcal{U}[low, high)`                                |
    | ``uniform_sum``  | ``low``, ``high``, ``terms``    | a sum of ``terms`` independent :math:`\\mathcal{U}[low, high)` |
    | ``normal``       | ``mean``, ``std``               | :math:`\\mathcal{N}(mean, std^2)`                              |
    | ``trunc_normal`` | ``mean``, ``std``, ``a``, ``b`` | :math:`\\mathcal{N}(mean, std^2)` restricted to :math:`[a, b]` |
    | ``constant``     | ``value``                       | ``value``                                                      |

    ``normal(..., padding_idx=...)`` and ``torch_embedding(padding_idx=...)``
    are the ``padded_normal`` family (``mean``, ``std``, ``zero_row``: that
    row of the torch view is 0), so not iid; ``mean`` and ``std`` are those of
    the other rows.

    The structured families describe a whole array: ``eye``, ``dirac``
    (``groups``), ``orthogonal`` (``gain``, ``rows``, ``cols``: every batch
    entry's ``rows x cols`` torch view is ``gain`` times a Haar-random
    (semi-)orthogonal matrix) and ``sparse`` (``std``, ``zeros``: every
    column of the torch view has exactly ``zeros`` zero entries, the others
    :math:`\\mathcal{N}(0, std^2)`).

    Attributes:
      family: the family (``d.family.name`` is its name: ``"uniform"``).
      params: its parameters (Python numbers, or tracers for traced hyperparameters).
      shape: the shape it was computed for.
      layout: the layout the shape was read in.
      dtype: the dtype drawn (``None``: unknown; then ``support`` is not rounded).

    >>> import jaxinit
    >>> d = jaxinit.kaiming_uniform(a=5 ** 0.5).distribution((64, 256))
    >>> d
    U(-0.0625, 0.0625)
    >>> d.family.name, round(d.std, 6)
    ('uniform', 0.036084)
    """

    family: Any  # its Family (jaxinit._src.core.family): typed loosely, family imports this
    params: Mapping[str, Any]
    shape: tuple[int, ...] = ()
    layout: Layout | None = None
    dtype: np.dtype | None = None

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("params", {})
        if name in params:
            return params[name]
        prop = getattr(type(self), name, None)
        if isinstance(prop, property) and prop.fget is not None:
            return prop.fget(self)  # a property that raised AttributeError: say its reason
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def replace(self, **params: Any) -> Distribution:
        """The same distribution with some parameters changed."""
        return dataclasses.replace(self, params={**self.params, **params})

    @property
    def is_iid(self) -> bool:
        """Whether the entries are independent and identically distributed."""
        return self.family.is_iid(self)

    @property
    def is_random(self) -> bool:
        """Whether the entries are random (not a fixed array)."""
        return self.family.is_random(self)

    @property
    def mean(self) -> float:
        """The mean of one entry (of the non-zero entries for ``sparse``)."""
        return self.family.mean(self)

    @property
    def std(self) -> float:
        """The standard deviation of one entry (of the non-zero entries for ``sparse``).

        For ``orthogonal``, ``gain / sqrt(max(rows, cols))``: the rms of an
        entry of a Haar-random (semi-)orthogonal matrix.
        """
        return self.family.std(self)

    @property
    def support(self) -> tuple[float, float]:
        """The smallest closed interval holding every entry, rounded to ``dtype``.

        ``U[low, high)`` drawn in float32 has support ``[low, high - ulp]``:
        the largest float32 below ``high`` (and likewise in 16-bit floats,
        where values rounding up to ``high`` are moved to ``low``, as torch).
        """
        return self.family.rounded_support(self)

    def cdf(self, x: Any) -> np.ndarray:
        """The CDF of one entry at ``x`` (iid families only), in float64.

        Raises:
          TypeError: for the structured families, whose entries are not iid.
        """
        if not self.is_iid:
            raise TypeError(f"a {self.family.name} array is not iid: it has no per-entry cdf")
        return self.family.cdf(self, np.asarray(x, np.float64))

    def __repr__(self) -> str:
        return self.family.format(self)


def fmt(x: Any) -> str:
    """A number as a repr prints it: ``0.0625``, ``-2``, ``inf`` (6 significant digits)."""
    if isinstance(x, np.ndarray | np.generic) and x.ndim == 0:  # a value converted to a dtype
        x = x.item() if isinstance(x.item(), bool | int | float | complex) else float(x)
    if isinstance(x, complex):
        return f"{x:.6g}"
    if isinstance(x, float | int | np.number):
        return f"{float(x):.6g}"
    return repr(x)
