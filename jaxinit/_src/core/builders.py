"""Builders: the decorators that make a public scheme out of a function.

* :func:`builder` marks jaxinit's own builders (clear errors when one is used
  as an initializer or given an array);
* :func:`flax_variant` makes ``jaxinit.flax.X`` from ``jaxinit.X``, docstring
  included;
* :func:`scheme` is the public way to define a scheme of one's own on one of
  jaxinit's families.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import textwrap
from collections.abc import Callable, Mapping
from typing import Any, Concatenate, ParamSpec, overload

from jaxinit._src.core.dtypes import is_key
from jaxinit._src.core.initializer import BUILDER_DEFAULTS, Initializer
from jaxinit._src.core.layout import FLAX, Layout

__all__ = ["builder", "flax_defaults", "flax_doc", "flax_variant", "scheme"]

P = ParamSpec("P")

Example = tuple[str, tuple[int, ...]]
_DEFAULT_EXAMPLE: Example = ("", (3, 3, 32, 64))


def _misuse(qualname: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Raises a clear TypeError for the two common mistakes with a builder."""
    if args and is_key(args[0]):
        raise TypeError(
            f"{qualname} is a builder: call it to get the initializer, e.g. "
            f"kernel_init={qualname}(), not kernel_init={qualname}"
        )
    values = (*args, *kwargs.values())
    if any(_is_array(v) for v in values):
        name = qualname.rsplit(".", 1)[-1]
        raise TypeError(
            f"{qualname}() builds an initializer and takes hyperparameters, not an "
            f"array. To initialize an existing array (torch's deprecated "
            f"nn.init.{name}(tensor)), use {qualname}_(array, ..., key=key); "
            f"to get an initializer, call {qualname}(...) without the array."
        )


def _is_array(x: Any) -> bool:
    """An array of one or more dimensions (numpy, jax, torch...): a weight, not a hyperparameter."""
    shape = getattr(x, "shape", None)
    return hasattr(x, "dtype") and isinstance(shape, tuple) and len(shape) >= 1


@overload
def builder(fn: Callable[P, Initializer], /) -> Callable[P, Initializer]: ...


@overload
def builder(
    *, example: Example
) -> Callable[[Callable[P, Initializer]], Callable[P, Initializer]]: ...


def builder(fn: Any = None, /, *, example: Example = _DEFAULT_EXAMPLE) -> Any:
    """Marks a builder: clear errors when it is used as an initializer or given an array.

    torch's deprecated ``nn.init.kaiming_normal(tensor)`` form cannot exist
    here, since ``jaxinit.kaiming_normal`` is the builder. ``example`` is
    ``(arguments, shape)`` for the doctest of the flax variant's docstring.
    """
    if fn is None:
        return functools.partial(_mark, example=example)
    return _mark(fn, example=example)


def _mark(fn: Callable[P, Initializer], *, example: Example) -> Callable[P, Initializer]:
    @functools.wraps(fn)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> Initializer:
        _misuse(f"jaxinit.{fn.__name__}", args, kwargs)
        return fn(*args, **kwargs)

    wrapped.jaxinit_builder = f"jaxinit.{fn.__name__}"  # type: ignore[attr-defined]
    wrapped.jaxinit_example = example  # type: ignore[attr-defined]
    BUILDER_DEFAULTS[fn.__name__] = {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    return wrapped


def flax_variant(
    build: Callable[P, Initializer], default_layout: Layout = FLAX
) -> Callable[P, Initializer]:
    """``jaxinit.flax.X``: the builder ``jaxinit.X`` with the flax layout as default."""
    name = build.__name__
    inner: Callable[..., Initializer] = getattr(build, "__wrapped__", build)

    @functools.wraps(build)
    def flax_builder(*args: P.args, **kwargs: P.kwargs) -> Initializer:
        _misuse(f"jaxinit.flax.{name}", args, kwargs)
        init = inner(*args, **kwargs)
        return dataclasses.replace(init, default_layout=default_layout, namespace="jaxinit.flax")

    flax_builder.__module__ = "jaxinit.flax"
    flax_builder.__qualname__ = name
    example = getattr(build, "jaxinit_example", _DEFAULT_EXAMPLE)
    flax_builder.__doc__ = flax_doc(build.__doc__ or "", name, default_layout, example)
    flax_builder.jaxinit_builder = f"jaxinit.flax.{name}"  # type: ignore[attr-defined]
    return flax_builder


def flax_defaults(doc: str) -> str:
    """A docstring's "default: torch's (out, in, ...)" layouts, said for the flax variant."""
    for torch_axes, flax_axes in (("(out, in, *k)", "(*k, in, out)"), ("(out, in)", "(in, out)")):
        doc = doc.replace(f"default: torch's ``{torch_axes}``", f"default: flax's ``{flax_axes}``")
    return doc


def flax_doc(doc: str, name: str, layout: Layout, example: Example = _DEFAULT_EXAMPLE) -> str:
    """The docstring of a flax-layout variant, from the torch-layout one."""
    doc = flax_defaults(inspect.cleandoc(doc))
    summary, _, rest = doc.partition("\n")
    rest = rest.split("\n>>>")[0].rstrip()  # the torch-layout example is replaced below
    where = (
        "``(*kernel, in, out)``"
        if layout == FLAX
        else f"``{layout!r}`` (an ``Embed`` table read as torch's ``Embedding``)"
    )
    note = textwrap.fill(
        f"The flax-layout variant of :func:`jaxinit.{name}`: the same arguments and "
        f"distribution, but a bare call reads the shape in the flax layout {where}. "
        f"Inside a Flax layer or the tree tools it takes their layout, as "
        f"``jaxinit.{name}`` does; an explicit ``layout=`` wins.",
        width=88,
    )
    args, shape = example
    doctest = (
        f">>> import jax, jaxinit\n"
        f">>> init = jaxinit.flax.{name}({args})\n"
        f">>> init(jax.random.key(0), {shape}).shape\n"
        f"{shape}"
    )
    return f"{summary}\n\n{note}\n{rest}\n\n{doctest}\n"


# ----------------------------------------------------------------------------
# A user's own scheme

Pick = Callable[Concatenate[tuple[int, ...], Layout, P], Initializer]


def scheme(like: Initializer) -> Callable[[Pick[P]], Callable[P, Initializer]]:
    """Defines a scheme of your own: per shape, one of jaxinit's initializers.

    Decorates ``fn(shape, layout, *hyperparameters) -> Initializer``, which
    picks, for each shape (read in ``layout``), an initializer of the same
    family as ``like`` -- typically with parameters computed from the fans.
    The result is a builder taking ``fn``'s hyperparameters. Its initializers
    are jaxinit initializers in every respect: they take the layout of the
    context that applies them (a Flax layer, the tree tools), have a
    :meth:`~jaxinit.Initializer.distribution`, show in :func:`jaxinit.explain`,
    are checked by :func:`jaxinit.testing.assert_follows`, compared by
    :func:`jaxinit.port.compare_init`, and are drawn with the pooled flat
    programs of the tree tools where their family allows it.

    Args:
      like: an initializer of the family every pick comes from, e.g.
        ``jaxinit.normal()``.

    Returns:
      A decorator turning ``fn`` into the builder.

    Raises:
      TypeError: at draw time, if ``fn`` returns anything but an initializer
        of ``like``'s family.

    A muP-style normal whose std shrinks with the fan-in:

    >>> import math, jax, jaxinit
    >>> @jaxinit.scheme(jaxinit.normal())
    ... def mup_normal(shape, layout, base_std=0.02, base_fan_in=256):
    ...     fan_in, _ = jaxinit.calculate_fan_in_and_fan_out(shape, layout)
    ...     return jaxinit.normal(std=base_std * math.sqrt(base_fan_in / fan_in))
    >>> init = mup_normal(base_std=0.04)
    >>> repr(init).endswith(".mup_normal(base_std=0.04)")  # the defining module's, then the call
    True
    >>> init.distribution((128, 1024))
    N(mean=0, std=0.02)
    >>> init(jax.random.key(0), (128, 1024)).shape
    (128, 1024)
    """
    if not isinstance(like, Initializer):
        raise TypeError(
            f"jaxinit.scheme: expected a jaxinit initializer naming the family, e.g. "
            f"jaxinit.scheme(jaxinit.normal()), got {like!r}"
        )
    family = like.family

    def decorate(fn: Pick[P]) -> Callable[P, Initializer]:
        name = fn.__name__
        signature = inspect.signature(fn)
        hyper = list(signature.parameters.values())[2:]
        hyper_signature = signature.replace(parameters=hyper)
        module = getattr(fn, "__module__", "") or ""
        namespace = "" if module in ("__main__", "builtins") or "<" in module else module
        BUILDER_DEFAULTS[f"{namespace}.{name}"] = {
            p.name: p.default for p in hyper if p.default is not inspect.Parameter.empty
        }

        def build(*args: P.args, **kwargs: P.kwargs) -> Initializer:
            _misuse(name, args, kwargs)
            bound = hyper_signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = dict(bound.arguments)

            def pick(shape: tuple[int, ...], layout: Layout) -> Initializer:
                init = fn(shape, layout, **values)  # type: ignore[call-arg]
                if not isinstance(init, Initializer) or init.family is not family:
                    raise TypeError(
                        f"{name}: a scheme on the {family.name} family (jaxinit.scheme({like!r})) "
                        f"must return an initializer of that family for every shape; for shape "
                        f"{shape} it returned {init!r}"
                    )
                return init

            def check(shape: tuple[int, ...], layout: Layout) -> None:
                init = pick(shape, layout)
                if init.check is not None:
                    init.check(shape, layout)

            return Initializer(
                name=name,
                hyperparams=values,
                family=family,
                params=lambda shape, layout, dt: pick(shape, layout).params(shape, layout, dt),
                check=check,
                namespace=namespace,
            )

        functools.update_wrapper(build, fn)
        del build.__wrapped__  # type: ignore[attr-defined]
        build.__signature__ = hyper_signature.replace(  # type: ignore[attr-defined]
            return_annotation=Initializer
        )
        return build

    return decorate
