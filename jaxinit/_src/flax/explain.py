"""``jaxinit.flax.explain``: the dry run of the rules on a Flax target, and its leaves.

:func:`target_leaves` gives the leaf records the Flax tree tools see for any
Flax target: a Linen model (traced abstractly, as ``jaxinit.flax.init``
does), a Linen variables dict (with ``model=`` for the module classes), an
NNX module, or an NNX module class or factory (traced abstractly, as the
NNX ``jaxinit.flax.init`` does). ``jaxinit.testing`` uses it too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
from flax import nnx

from jaxinit._src.flax.linen import linen_leaves, nnx_leaves
from jaxinit._src.flax.nnx_init import trace_nnx
from jaxinit._src.flax.trace import record_modules
from jaxinit._src.layers.leaf import Leaf
from jaxinit._src.tree.explain import Explanation, explain_leaves
from jaxinit._src.tree.rules import as_rules

__all__ = ["explain", "target_leaves"]


def abstract_key() -> Any:
    """A ``jax.random.key``'s shape and dtype, made without running anything."""
    return jax.eval_shape(jax.random.key, 0)


def target_leaves(
    target: Any,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    *,
    key: Any = None,
    model: nn.Module | None = None,
) -> list[Leaf]:
    """The leaf records of a Flax target, as ``jaxinit.flax.init``/``reinit`` see them.

    ``target``: a Linen model (``args``/``kwargs``: its ``init`` inputs), a
    Linen variables or params dict (``model=`` and ``args`` for the module
    classes), an NNX module, or an NNX module class or factory
    (``args``/``kwargs``: its constructor's). Models are traced abstractly
    with ``key`` (default: an abstract key); nothing is computed.
    """
    kwargs = dict(kwargs or {})
    key = abstract_key() if key is None else key
    if isinstance(target, nn.Module):
        abstract, modules = record_modules(target, key, tuple(args), kwargs)
        return linen_leaves(abstract, modules, collections=True)[2]
    if isinstance(target, nnx.Module):
        return nnx_leaves(target)[1]
    if isinstance(target, Mapping):
        modules = None
        collections = True
        if model is not None:
            abstract, modules = record_modules(model, key, tuple(args), kwargs)
            collections = set(target) <= set(abstract) and bool(target)
        return linen_leaves(target, modules, collections)[2]
    if callable(target):
        return trace_nnx(target, key, tuple(args), kwargs).leaves
    raise TypeError(
        "jaxinit.flax: expected a Linen model, a Linen variables dict, an NNX module, or an "
        f"NNX module class or factory, got {type(target).__name__}"
    )


def explain(
    target: Any,
    rules: Any,
    *args: Any,
    key: Any = None,
    model: nn.Module | None = None,
    **kwargs: Any,
) -> Explanation:
    """What ``jaxinit.flax.init``/``reinit`` would do to a Flax model, leaf by leaf, without doing it.

    A dry run: for every floating-point leaf, its path, shape, dtype, the rule
    that takes it (first match wins), the initializer that rule gives it
    there (read in the leaf's layer layout, a bias with its ``fan_in``) and
    the :class:`~jaxinit.Distribution` it would draw; then the leaves no rule
    matches (they keep their values under ``reinit`` and get Flax's default
    under ``init``) and the non-optional rules that match no leaf. Models are
    traced abstractly: nothing is drawn and no XLA program is compiled.

    Args:
      target: what ``jaxinit.flax.init`` or ``reinit`` takes: a Linen model
        (``*args``/``**kwargs``: the inputs of ``model.init``, as for
        ``jaxinit.flax.init``), a Linen variables or params dict (with
        ``model=`` and ``*args`` for class selectors), an NNX module, or an
        NNX module class or function building one (``*args``/``**kwargs``:
        its constructor's, without ``rngs``).
      rules: the rules, e.g. ``jaxinit.flax.TORCH_DEFAULTS``.
      *args: the model's inputs, or the NNX constructor's arguments.
      key: the key to trace with (a key or a dict of keys, as ``init`` takes;
        only its structure and type matter). Default: one abstract key.
      model: for a Linen variables dict, the Linen model, so that class
        selectors know each module's class.
      **kwargs: keyword arguments of ``model.init`` or of the NNX constructor.

    Returns:
      A :class:`~jaxinit.Explanation`: a sequence of
      :class:`~jaxinit.ExplainRow` that prints as a table.

    Raises:
      TypeError: for a malformed rule or an unknown kind of target.

    >>> import jax.numpy as jnp, flax.linen as nn, jaxinit
    >>> model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(2)])
    >>> rules = [((nn.Dense, "kernel"), jaxinit.flax.torch_linear_weight()),
    ...          ("*/layers_0/bias", jaxinit.flax.zeros())]
    >>> print(jaxinit.flax.explain(model, rules, jnp.ones((1, 4))))
    path                    shape   dtype    rule  selector           init                                distribution
    params/layers_0/bias    (8,)    float32  1     '*/layers_0/bias'  jaxinit.flax.zeros()                const(0)
    params/layers_0/kernel  (4, 8)  float32  0     (Dense, 'kernel')  jaxinit.flax.torch_linear_weight()  U(-0.5, 0.5)
    params/layers_2/bias    (2,)    float32  -     -                  -                                   -
    params/layers_2/kernel  (8, 2)  float32  0     (Dense, 'kernel')  jaxinit.flax.torch_linear_weight()  U(-0.353553, 0.353553)
    1 of 4 floating-point leaves matched no rule: 'params/layers_2/bias'
    """
    leaves = target_leaves(target, args, kwargs, key=key, model=model)
    return explain_leaves(leaves, as_rules(rules))
