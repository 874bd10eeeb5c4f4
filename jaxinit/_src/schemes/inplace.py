# mypy: disable-error-code="empty-body"
"""torch's in-place style: ``X_(array, *hyperparameters, key=k)`` returns a new, initialized array.

Every helper is written as a typed signature (so type checkers and IDEs see
torch's arguments) whose body is supplied by :func:`inplace_of`, the one
converter: it builds the initializer with the builder of the same name and
draws an array with the input's shape, dtype and sharding. No scheme's math
is here. The flax-layout helpers (``jaxinit.flax.X_``) are the same
functions with the flax layout as default (:func:`flax_inplace`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import textwrap
from collections.abc import Callable
from typing import Any, ParamSpec

import jax
import numpy as np
from jax.typing import ArrayLike

from jaxinit._src.core.builders import flax_defaults
from jaxinit._src.core.dtypes import is_key
from jaxinit._src.core.frames import warn
from jaxinit._src.core.gain import Nonlinearity
from jaxinit._src.core.hyper import IntLike, RealLike
from jaxinit._src.core.initializer import Initializer
from jaxinit._src.core.layout import FLAX, FanMode, Layout, LayoutLike
from jaxinit._src.core.sharding import kernel_sharding, place, sharding_of
from jaxinit._src.schemes import fans, fill, iid, structured
from jaxinit._src.schemes import trunc_normal as truncated

__all__ = [
    "constant_",
    "dirac_",
    "eye_",
    "flax_inplace",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "orthogonal_",
    "sparse_",
    "trunc_normal_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]

P = ParamSpec("P")


def fill_(
    qualname: str,
    build: Callable[..., Initializer],
    array: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    key: Any,
    default_layout: Layout | None,
    warns_empty: bool,
) -> jax.Array:
    """The one converter: ``build(*args, **kwargs)`` drawn like ``array``."""
    if is_key(array) and args and isinstance(args[0], tuple | list):
        builder_name = qualname.removesuffix("_")
        raise TypeError(
            f"{qualname} is the in-place helper (array first, as torch's "
            f"{qualname.rsplit('.', 1)[-1]}): it was called as an initializer (key, shape, "
            f"dtype). As kernel_init use the builder {builder_name}(...), e.g. "
            f"kernel_init={builder_name}()"
        )
    if any(is_key(a) for a in args):
        raise TypeError(
            f"{qualname}: a PRNG key was passed positionally; pass it by keyword: "
            f"{qualname}(array, ..., key=key)"
        )
    if "dtype" in kwargs:
        raise TypeError(f"{qualname}: the result has the input's dtype; do not pass dtype=")
    shape = getattr(array, "shape", None)
    dtype = getattr(array, "dtype", None)
    if shape is None or dtype is None:
        raise TypeError(f"{qualname}: expected an array first, got {type(array).__name__}")
    init = build(*args, **kwargs)
    if default_layout is not None:
        init = dataclasses.replace(init, default_layout=default_layout, namespace="jaxinit.flax")
    if init.is_random and key is None:
        raise TypeError(f"{qualname}: a PRNG key is required: {qualname}(array, ..., key=key)")
    if warns_empty and math.prod(shape) == 0:
        warn("Initializing zero-element tensors is a no-op")
    sharding = sharding_of(array)
    out = init(key, tuple(shape), np.dtype(dtype), out_sharding=kernel_sharding(sharding))
    return place(out, sharding)


def inplace_of(
    build: Callable[..., Initializer], *, warns_empty: bool = False
) -> Callable[[Callable[P, jax.Array]], Callable[P, jax.Array]]:
    """Turns a typed signature ``X_(array, *hyper, key=None, layout=None)`` into the helper.

    The signature must be the builder's, with ``array`` first, ``key=`` added
    and ``dtype=`` removed (checked here, at import). ``warns_empty``: warn
    on zero-element arrays, as torch's ``kaiming_*_`` do.
    """
    build_params = [p for p in inspect.signature(build).parameters.values() if p.name != "dtype"]

    def decorate(stub: Callable[P, jax.Array]) -> Callable[P, jax.Array]:
        params = list(inspect.signature(stub).parameters.values())
        mine = [p.replace(annotation=inspect.Parameter.empty) for p in params if p.name != "key"]
        theirs = [p.replace(annotation=inspect.Parameter.empty) for p in build_params]
        assert mine[0].name == "array" and mine[1:] == theirs, (stub.__name__, mine, theirs)
        qualname = f"jaxinit.{stub.__name__}"

        @functools.wraps(stub)
        def helper(array: Any, /, *args: Any, key: Any = None, **kwargs: Any) -> jax.Array:
            return fill_(qualname, build, array, args, kwargs, key, None, warns_empty)

        helper.__doc__ = _doc(stub.__doc__ or "", build, "torch ``(out, in, *kernel)``")
        helper.jaxinit_inplace = (build, warns_empty)  # type: ignore[attr-defined]
        return helper  # type: ignore[return-value]

    return decorate


def flax_inplace(helper: Callable[P, jax.Array]) -> Callable[P, jax.Array]:
    """``jaxinit.flax.X_``: the helper ``jaxinit.X_`` with the flax layout as default."""
    build, warns_empty = helper.jaxinit_inplace  # type: ignore[attr-defined]
    name = helper.__name__
    qualname = f"jaxinit.flax.{name}"

    @functools.wraps(helper)
    def flax_helper(array: Any, /, *args: Any, key: Any = None, **kwargs: Any) -> jax.Array:
        return fill_(qualname, build, array, args, kwargs, key, FLAX, warns_empty)

    flax_helper.__module__ = "jaxinit.flax"
    flax_helper.__doc__ = _doc(
        (helper.__wrapped__.__doc__ or ""),  # type: ignore[attr-defined]
        build,
        "flax ``(*kernel, in, out)``",
        flax=True,
    )
    return flax_helper  # type: ignore[return-value]


def _args_section(doc: str) -> list[str]:
    """The lines of a Google-style ``Args:`` section (without the header)."""
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Args:")
    except StopIteration:
        return []
    out = []
    for line in lines[start + 1 :]:
        if line.strip() and not line.startswith("      "):
            break
        out.append(line)
    while out and not out[-1].strip():
        out.pop()
    return [line for line in out if not line.strip().startswith("dtype:")]


def _doc(stub_doc: str, build: Callable[..., Initializer], layout: str, flax: bool = False) -> str:
    """The helper's docstring: the stub's summary and example, the builder's Args."""
    name = build.__name__
    module = "jaxinit.flax" if flax else "jaxinit"
    summary, _, example = inspect.cleandoc(stub_doc).partition("\n\n")
    if flax:
        shape = (32, 64) if name in ("eye", "sparse") else (3, 3, 32, 64)
        args = {"sparse": "0.25, ", "constant": "0.5, "}.get(name, "")
        example = (
            f">>> import jax, jax.numpy as jnp, jaxinit\n"
            f">>> w = jaxinit.flax.{name}_(jnp.zeros({shape}), {args}key=jax.random.key(0))\n"
            f">>> w.shape\n{shape}"
        )
    builder_args = "\n".join(_args_section(build.__doc__ or ""))
    if flax:
        builder_args = flax_defaults(builder_args)
    args = textwrap.indent(textwrap.dedent(builder_args), "  ")
    return (
        f"{summary}\n\n"
        f"torch's ``torch.nn.init.{name}_(tensor, ...)`` as a pure function: it returns a new\n"
        f"array with ``array``'s shape, dtype and sharding, drawn by :func:`{module}.{name}`;\n"
        f"``array`` itself is untouched. Shapes are read in the {layout} layout\n"
        f"unless ``layout=`` says otherwise.\n\n"
        f"Args:\n"
        f"  array: the array to take the shape, dtype and sharding from.\n"
        f"{args}\n"
        f"  key: a PRNG key, by keyword (required for random schemes).\n\n"
        f"Returns:\n"
        f"  A new array like ``array``.\n\n"
        f"Raises:\n"
        f"  TypeError: without ``key=`` for a random scheme, or with a key passed\n"
        f"    positionally; otherwise as :func:`{module}.{name}`.\n\n"
        f"{example}\n"
    )


# ----------------------------------------------------------------------------
# The helpers. Each is a signature only: its builder's, with ``array`` first
# and ``key=`` added (checked at import); the body comes from inplace_of.


@inplace_of(iid.uniform)
def uniform_(
    array: ArrayLike,
    a: RealLike = 0.0,
    b: RealLike = 1.0,
    *,
    key: ArrayLike | None = None,
    layout: LayoutLike | None = None,
) -> jax.Array:
    """Returns a new array like ``array`` with values from :math:`\\mathcal{U}[a, b)`.

    >>> import jax, jax.numpy as jnp, jaxinit
    >>> w = jaxinit.uniform_(jnp.zeros((64, 32)), -0.1, 0.1, key=jax.random.key(0))
    >>> w.shape, bool(abs(w).max() <= 0.1)
    ((64, 32), True)
    """
    ...


@inplace_of(iid.normal)
def normal_(
    array: ArrayLike,
    mean: RealLike = 0.0,
    std: RealLike = 1.0,
    *,
    key: ArrayLike | None = None,
    padding_idx: IntLike | None = None,
    layout: LayoutLike | None = None,
) -> jax.Array:
    """Returns a new array like ``array`` with values from :math:`\\mathcal{N}(mean, std^2)`.

    >>> import jax, jax.numpy as jnp, jaxinit
    >>> w = jaxinit.normal_(jnp.zeros((64, 32)), std=0.02, key=jax.random.key(0))
    >>> w.shape
    (64, 32)
    """
    ...


@inplace_of(truncated.trunc_normal)
def trunc_normal_(
    array: ArrayLike,
    mean: RealLike = 0.0,
    std: RealLike = 1.0,
    a: RealLike = -2.0,
    b: RealLike = 2.0,
    *,
    key: ArrayLike | None = None,
    layout: LayoutLike | None = None,
) -> jax.Array:
    """Returns a new array like ``array`` from a normal truncated to ``[a, b]`` (absolute bounds).

    >>> import jax, jax.numpy as jnp, jaxinit
    >>> w = jaxinit.trunc_normal_(jnp.zeros((64, 32)), std=0.02, a=-0.04, b=0.04,
    ...                           key=jax.random.key(0))
    >>> bool(abs(w).max() <= 0.04)
    True
    """
    ...


@inplace_of(fill.constant)
def constant_(
    array: ArrayLike,
    val: RealLike,
    *,
    key: ArrayLike | None = None,
    layout: LayoutLike | None = None,
) -> jax.Array:
    """Returns a new array like ``array`` filled with ``val`` (any dtype, as torch's ``fill_``).

    >>> import jax.numpy as jnp, jaxinit
    >>> jaxinit.constant_(jnp.zeros((2,), jnp.int32), 7)
    Array([7, 7], dtype=int32)
    """
    ...


@inplace_of(fill.ones)
def ones_(
    array: ArrayLike,
    *,
    key: ArrayLike | None = None,
    layout: LayoutLike | None = None,
) -> jax.Array:
    """Returns a new array like ``array`` filled with ones.

    >>> import jax.numpy as jnp, jaxinit
    >>> jaxinit.ones_(jnp.zeros((3,)))
    Array([1., 1., 1.], dtype=float32)
    """
    ...


@inplace_of(fill.zeros)
def zeros_(
    array: ArrayLike,
    *,
    key: ArrayLike | None = None,
    layout: LayoutLike | None = None,
) -> jax.Array:
    """Returns a new array like ``array`` filled with zeros.

    >>> import jax.numpy as jnp, jaxinit
    >>> jaxinit.zeros_(jnp.ones((3,)))
    Array([0., 0., 0.], dtype=float32)
    """
    ...


@inplace_of(structured.eye)
def eye_(
    array: ArrayLike,
    *,
    key: ArrayLike | None = None,
    layout: LayoutLike | None = None,
) -> jax.Array:
    """Returns a new 2-D array like ``array`` holding the identity, in its layout.

    >>> import jax.numpy as jnp, jaxinit
    >>> jaxinit.eye_(jnp.zeros((64, 32))).sum()
    Array(32., dtype=float32)
    """
    ...


@inplace_of(structured.dirac)
def dirac_(
    array: ArrayLike,
    groups: IntLike = 1,
    *,
    key: ArrayLike | None = None,
    layout: LayoutLike | None = None,
) -> jax.Array:
    """Returns a new 3-5-D conv weight like ``array`` holding the Dirac delta, in its layout.

    >>> import jax.numpy as jnp, jaxinit
    >>> jaxinit.dirac_(jnp.zeros((64, 32, 3, 3))).sum()
    Array(32., dtype=float32)
    """
    ...


@inplace_of(fans.xavier_uniform)
def xavier_uniform_(
    array: ArrayLike,
    gain: RealLike = 1.0,
    *,
    key: ArrayLike | None = None,
    layout: LayoutLike | None = None,
) -> jax.Array:
    """Returns a new array like ``array`` from torch's ``xavier_uniform_`` distribution.

    >>> import jax, jax.numpy as jnp, jaxinit
    >>> w = jaxinit.xavier_uniform_(jnp.zeros((64, 32)), key=jax.random.key(0))
    >>> bool(abs(w).max() <= (6 / (64 + 32)) ** 0.5)
    True
    """
    ...


@inplace_of(fans.xavier_normal)
def xavier_normal_(
    array: ArrayLike,
    gain: RealLike = 1.0,
    *,
    key: ArrayLike | None = None,
    layout: LayoutLike | None = None,
) -> jax.Array:
    """Returns a new array like ``array`` from torch's ``xavier_normal_`` distribution.

    >>> import jax, jax.numpy as jnp, jaxinit
    >>> jaxinit.xavier_normal_(jnp.zeros((64, 32)), key=jax.random.key(0)).shape
    (64, 32)
    """
    ...


@inplace_of(fans.kaiming_uniform, warns_empty=True)
def kaiming_uniform_(
    array: ArrayLike,
    a: RealLike = 0.0,
    mode: FanMode = "fan_in",
    nonlinearity: Nonlinearity = "leaky_relu",
    *,
    key: ArrayLike | None = None,
    layout: LayoutLike | None = None,
) -> jax.Array:
    """Returns a new array like ``array`` from torch's ``kaiming_uniform_`` distribution.

    Warns "Initializing zero-element tensors is a no-op" on a zero-element
    array, as torch does.

    >>> import jax, jax.numpy as jnp, jaxinit
    >>> w = jaxinit.kaiming_uniform_(jnp.zeros((64, 32, 3, 3)), key=jax.random.key(0))
    >>> w.shape
    (64, 32, 3, 3)
    """
    ...


@inplace_of(fans.kaiming_normal, warns_empty=True)
def kaiming_normal_(
    array: ArrayLike,
    a: RealLike = 0.0,
    mode: FanMode = "fan_in",
    nonlinearity: Nonlinearity = "leaky_relu",
    *,
    key: ArrayLike | None = None,
    layout: LayoutLike | None = None,
) -> jax.Array:
    """Returns a new array like ``array`` from torch's ``kaiming_normal_`` distribution.

    Warns "Initializing zero-element tensors is a no-op" on a zero-element
    array, as torch does.

    >>> import jax, jax.numpy as jnp, jaxinit
    >>> w = jaxinit.kaiming_normal_(jnp.zeros((64, 32, 3, 3)), mode="fan_out",
    ...                             nonlinearity="relu", key=jax.random.key(0))
    >>> w.shape
    (64, 32, 3, 3)
    """
    ...


@inplace_of(structured.orthogonal)
def orthogonal_(
    array: ArrayLike,
    gain: RealLike = 1.0,
    *,
    key: ArrayLike | None = None,
    layout: LayoutLike | None = None,
) -> jax.Array:
    """Returns a new (semi-)orthogonal array like ``array``, along torch's axes in its layout.

    >>> import jax, jax.numpy as jnp, jaxinit
    >>> q = jaxinit.orthogonal_(jnp.zeros((64, 32)), key=jax.random.key(0))
    >>> bool(jnp.allclose(q.T @ q, jnp.eye(32), atol=1e-5))
    True
    """
    ...


@inplace_of(structured.sparse)
def sparse_(
    array: ArrayLike,
    sparsity: RealLike,
    std: RealLike = 0.01,
    *,
    key: ArrayLike | None = None,
    layout: LayoutLike | None = None,
) -> jax.Array:
    """Returns a new 2-D array like ``array``: normal values, ``ceil(sparsity * out)`` zeros per input.

    >>> import jax, jax.numpy as jnp, jaxinit
    >>> w = jaxinit.sparse_(jnp.zeros((64, 32)), 0.25, key=jax.random.key(0))
    >>> int((w == 0).sum(axis=0).min())
    16
    """
    ...
