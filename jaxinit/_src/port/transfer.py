"""``from_torch`` and ``to_torch``: move weights between a PyTorch model and its JAX port.

Both build one plan from names and shapes alone (which torch tensors fill
which target leaves, by which conversion), check all of it, and only then
move any data: a failure leaves both sides untouched. Conversions are numpy
views on the host where they can be (no per-leaf compiles); ``from_torch``
then puts each leaf on its device with one ``jax.device_put``, in the target
leaf's dtype and sharding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxinit._src.port import checks as K
from jaxinit._src.port import files as F
from jaxinit._src.port import names as N
from jaxinit._src.port import plan as L
from jaxinit._src.port import target as T
from jaxinit._src.port import torch as P

__all__ = ["from_torch", "to_torch"]


def _prepare(
    source: Any,
    target: Any,
    model: Any,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    rename: Any,
    torch_types: Any,
) -> tuple[list[P.TorchLayer], T.Target, L.Plan]:
    layers, aliases = P.torch_layers(source)
    N.glob_kinds(layers, torch_types)
    tgt = T.collect(target, model, args, kwargs)
    return layers, tgt, L.make_plan(layers, aliases, tgt, rename)


def convert(
    source: Any,
    target: Any,
    *,
    model: Any = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    rename: Any = None,
    strict: bool = True,
    torch_types: Any = None,
    check_hyperparameters: bool = True,
    what: str = "from_torch",
) -> tuple[T.Target, dict[int, np.ndarray]]:
    """The converted values of the target leaves (index -> numpy, target layout and dtype)."""
    layers, tgt, plan = _prepare(source, target, model, args, kwargs, rename, torch_types)
    values = {k: v for tl in layers for k, v in ((tl.keys[n], tl.values[n]) for n in tl.keys)}
    out, mismatches = L.forward(plan, tgt, values)
    shapes = {k: L.shape_of(v) for k, v in values.items()}
    # unfilled leaves are already errors under strict; planned ones that failed are mismatches
    planned = {i for step in plan.steps for i in step.leaves}
    abstract = [
        leaf.path
        for i, leaf in enumerate(tgt.leaves)
        if not strict and i not in planned and K.is_abstract(leaf.value)
    ]
    extra = [K.abstract_issue(abstract + tgt.abstract_rest, tgt.flavor)]
    L.report(what, plan, strict, tgt, shapes, mismatches, extra, check_hyperparameters)
    return tgt, out


def _owned(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``x`` in ``dtype``; copied if it is a contiguous view of someone else's memory.

    On CPU, ``jax.device_put`` may alias an aligned contiguous host buffer: a
    view of a torch tensor would then change when torch changes it.
    Non-contiguous views (transposes) are copied by ``device_put`` itself.
    """
    if x.dtype != dtype:
        return x.astype(dtype)
    if x.flags.c_contiguous and not x.flags.owndata:
        return np.array(x, copy=True)
    return x


def from_torch(
    source: Any,
    target: Any,
    *,
    model: Any = None,
    rename: Any = None,
    strict: bool = True,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    torch_types: Mapping[str, Any] | None = None,
    check_hyperparameters: bool = True,
    mesh: jax.sharding.Mesh | None = None,
    axis_rules: Sequence[tuple[str, Any]] | None = None,
) -> Any:
    """Loads a PyTorch model's weights into its Flax (Linen or NNX) or Equinox port.

    Each torch tensor is moved to the layout of the layer it fills (see
    :mod:`jaxinit.port`): Linear ``(out, in)`` -> Dense ``(in, out)``; conv
    ``(out, in/g, *k)`` -> ``(*k, in/g, out)``; ConvTranspose for either
    ``transpose_kernel``; MultiheadAttention's packed or separate
    in-projections -> query/key/value ``(E, heads, head_dim)`` and out
    ``(heads, head_dim, E)``; LSTM/GRU/RNN gates split in torch's order with
    ``b_ih + b_hh`` summed where Flax has one bias; norms' running statistics
    into ``batch_stats`` (``num_batches_tracked`` dropped). Equinox keeps
    torch's layout.

    Layers are paired by name where the structures line up (torch
    ``layer1.0.conv1`` <-> Linen ``layer1_0/conv1`` or NNX ``layer1/0/conv1``;
    an ``nn.Sequential`` item ``0`` <-> ``layers_0``), and by ``rename`` rules
    where they don't. Everything is checked before anything changes.

    Args:
      source: a torch ``nn.Module`` (layer types known), or a state_dict / any
        mapping ``name -> tensor or array`` (e.g. from ``safetensors``; layer
        types then come from the target), or a checkpoint path (``str`` or
        ``os.PathLike``): a ``.safetensors`` file (no torch needed), a sharded
        checkpoint's ``*.index.json`` or the directory holding it, or a
        ``.bin``/``.pt`` file (torch needed). A file is read lazily, tensor by
        tensor, and each process reads only the boxes its shards need.
      target: a Linen variables or params dict (a new one is returned), an
        NNX module (updated in place and returned) or an Equinox module (a new
        one is returned). Abstract leaves (``jax.ShapeDtypeStruct``, e.g. from
        ``jax.eval_shape(model.init, ...)``) are filled too, so the default
        init need not run.
      model: for a Linen dict, the Linen module, traced abstractly (with
        ``args``/``kwargs``, the inputs of ``model.init``) to learn each
        layer's class. Without it, layer types come from the torch module, or
        from the leaf names.
      rename: ordered ``(torch_glob, target_glob)`` pairs, or a callable
        ``torch_name -> target_name | None``. Tried on torch module paths
        (``"blocks.*.attn"`` -> ``"block_*/attn"``), then on full tensor names
        (``"cls_token"`` -> ``"cls"``); ``*`` matches anything and the
        target's ``*`` s take the matched text in order.
      strict: if ``True``, every torch tensor must be used and every target
        leaf filled (tied weights, which share storage in the torch module or
        state_dict, count once), and what cannot be known is an error
        (otherwise a warning): layer hyperparameters that differ, a square
        weight whose layout is only assumed, leaves left abstract.
      args, kwargs: the inputs of ``model.init`` for ``model=``.
      torch_types: for a bare state_dict, ``{torch_module_glob: class name}``
        for layers the target cannot tell, e.g. ``{"*.c_attn": "Conv1D",
        "*.c_fc": "Conv1D", "*.c_proj": "Conv1D"}`` for GPT-2's ``(in, out)``
        weights. Globs match whole module paths (``*`` crosses dots); one
        that matches no module is an error.
      check_hyperparameters: compare the hyperparameters both models hold
        (attention heads; norm type, eps and groups; conv stride, padding,
        dilation and groups; bias and scale presence; an RNN's nonlinearity;
        an Embedding's ``max_norm``) and refuse a port whose layers would
        compute something else. ``False`` skips the comparison (a
        difference you intend).
      mesh, axis_rules: build each filled leaf in the ``NamedSharding`` its
        partitioning metadata names on this mesh (default: the one
        ``jax.set_mesh`` set), as ``jaxinit.flax.init(..., mesh=)`` does.

    Returns:
      The target, filled: each leaf keeps its dtype, sharding and any
      ``nn.Partitioned`` box; leaves not filled (``strict=False``) are the
      very same objects.

    Raises:
      ValueError: listing every unpaired torch tensor and target leaf (with the
        nearest names on the other side), every shape mismatch (with both
        shapes), every layer that cannot be converted, every layer
        hyperparameter that differs, and (in a bare state_dict holding
        transformers ``Conv1D`` weights) every square weight whose layout is
        only assumed, each section with its fix. The target is unchanged.
      ImportError: if torch (or, for a ``.safetensors`` file, safetensors) is
        needed but not installed.
      FileNotFoundError: for a checkpoint path (or a shard) that does not exist.

    >>> import torch, flax.linen as nn, jax, jax.numpy as jnp  # doctest: +SKIP
    >>> torch_model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))  # doctest: +SKIP
    >>> model = nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(2)])  # doctest: +SKIP
    >>> variables = model.init(jax.random.key(0), jnp.ones((1, 4)))  # doctest: +SKIP
    >>> variables = jaxinit.port.from_torch(torch_model, variables)  # doctest: +SKIP
    """
    mesh = F.context_mesh(mesh)
    if F.is_path(source) or mesh is not None:  # read lazily, box by box, into each sharding
        with F.opened(source) as src:
            layers, tgt, plan = _prepare(src, target, model, args, kwargs, rename, torch_types)
            loader = F.Loader(F.reader(src, layers), tgt, plan.steps, L.check_dtype)
            L.report("from_torch", plan, strict, tgt, F.shapes(layers), loader.mismatches)
            return tgt.write(loader.load(F.placement(tgt, target, mesh, axis_rules)))
    tgt, out = convert(
        source,
        target,
        model=model,
        args=args,
        kwargs=kwargs,
        rename=rename,
        strict=strict,
        torch_types=torch_types,
        check_hyperparameters=check_hyperparameters,
    )
    host, host_idx, dev, dev_idx, shardings = [], [], [], [], []
    for i, x in out.items():
        leaf = tgt.leaves[i]
        x = _owned(x, leaf.dtype)
        if isinstance(leaf.value, np.ndarray):
            host.append(np.array(x, copy=True))
            host_idx.append(i)
            continue
        sharding = getattr(leaf.value, "sharding", None)
        dev.append(x)
        dev_idx.append(i)
        shardings.append(sharding)
    new: dict[int, Any] = dict(zip(host_idx, host))
    with_s = [j for j, s in enumerate(shardings) if s is not None]
    without = [j for j, s in enumerate(shardings) if s is None]
    if with_s:
        put = jax.device_put([dev[j] for j in with_s], [shardings[j] for j in with_s])
        new.update({dev_idx[j]: a for j, a in zip(with_s, put)})
    if without:
        put = jax.device_put([dev[j] for j in without])
        new.update({dev_idx[j]: a for j, a in zip(without, put)})
    return tgt.write(new)


def to_torch(
    source: Any,
    torch_target: Any,
    *,
    model: Any = None,
    rename: Any = None,
    strict: bool = True,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    torch_types: Mapping[str, Any] | None = None,
    check_hyperparameters: bool = True,
    template: Any = None,
) -> Any:
    """Loads a JAX model's weights back into PyTorch: the reverse of :func:`from_torch`.

    The same pairing and conversions, run backwards. Where one Flax bias
    stands for torch's ``b_ih + b_hh`` (recurrent cells), it goes into
    ``b_ih`` and ``b_hh`` is set to zero: the same function. So a JAX model
    sent to torch and back is bit-exact, and a torch model sent to JAX and back
    has bit-exact weights and the same outputs, its summed biases moved into
    ``b_ih``. ``num_batches_tracked`` keeps the torch side's value.

    Tied torch tensors (sharing storage, in a module or a state_dict) are
    written once: if the JAX leaves that fill them differ, that is an error
    under ``strict`` (a warning otherwise, and the first key's value in
    ``state_dict`` order is written). A returned state_dict keeps tied keys
    as one tensor.

    Args:
      source: a Linen variables or params dict, an NNX module or an Equinox
        module.
      torch_target: a torch ``nn.Module`` (updated in place, under
        ``torch.no_grad()``, and returned), or a state_dict / mapping of
        tensors or arrays giving the names and shapes (a new dict with the
        same keys, dtypes and devices is returned), or a ``.safetensors``
        path to write (streamed tensor by tensor, ties stored once; from
        several processes, process 0 writes).
      model, args, kwargs, rename, strict, torch_types, check_hyperparameters: as for
        :func:`from_torch` (``rename`` still maps torch names to JAX names).
      template: for a file ``torch_target``: the torch names, shapes and
        dtypes to write (a torch ``nn.Module``, its state_dict, or a
        checkpoint path). No torch is needed unless it is a torch object.

    Returns:
      The torch module, a new state_dict, or the path written.

    Raises:
      ValueError: as :func:`from_torch`; nothing is changed.

    >>> torch_model = jaxinit.port.to_torch(variables, torch_model)  # doctest: +SKIP
    """
    if F.is_path(torch_target):  # a .safetensors file, written tensor by tensor
        with F.template(template, torch_target) as like:
            layers, aliases = P.torch_layers(like, values=False)
            N.glob_kinds(layers, torch_types)
            tgt = T.collect(source, model, args, kwargs)
            plan = L.make_plan(layers, aliases, tgt, rename)
            writer = F.Writer(torch_target, like, layers, aliases, tgt, plan.steps, strict)
            L.report("to_torch", plan, strict, tgt, F.shapes(layers), writer.mismatches)
            return writer.write()
    layers, aliases = P.torch_layers(torch_target, values=False)
    N.glob_kinds(layers, torch_types)
    tgt = T.collect(source, model, args, kwargs)
    plan = L.make_plan(layers, aliases, tgt, rename)
    template = {tl.keys[n]: tl.values[n] for tl in layers for n in tl.keys}
    out: dict[str, np.ndarray] = {}
    mismatches: list[str] = []
    for step in plan.steps:
        arrays = [tgt.read(i) for i in step.leaves]
        src = ", ".join(
            f"{tgt.leaves[i].path} {L.fmt_shape(a.shape)}" for i, a in zip(step.leaves, arrays)
        )
        try:
            results = step.group.bwd(*arrays)
        except (ValueError, IndexError) as e:
            mismatches.append(f"{src} -> torch {', '.join(step.keys)}: {e}")
            continue
        for key, x in zip(step.keys, results):
            want = L.shape_of(template[key])
            if tuple(x.shape) != want:
                mismatches.append(
                    f"{src} -> torch {key}: converted {L.fmt_shape(x.shape)}, torch {L.fmt_shape(want)}"
                )
                continue
            out[key] = np.asarray(x)
    shapes = {k: L.shape_of(v) for k, v in template.items()}
    source_of = {
        k: ", ".join(tgt.leaves[i].path for i in st.leaves) for st in plan.steps for k in st.keys
    }
    as_torch = {k: x.astype(P.to_numpy(template[k]).dtype) for k, x in out.items() if k in aliases}
    ties, skip = K.tie_conflicts(aliases, as_torch, template, source_of)
    L.report("to_torch", plan, strict, tgt, shapes, mismatches, [ties], check_hyperparameters)
    out = {k: x for k, x in out.items() if k not in skip}  # one write per storage

    if P.is_torch_module(torch_target):
        for key, x in out.items():
            P.copy_into(template[key], x)
        return torch_target
    result = dict(torch_target)
    for key, x in out.items():
        like = template[key]
        if P.is_tensor(like):
            result[key] = P.from_numpy(x, like)
        else:
            result[key] = np.array(x, dtype=np.asarray(like).dtype, copy=True)
    for group in K.tie_groups(aliases, template):  # tied keys stay one tensor
        written = next((k for k in group if k in out), None)
        for key in group if written is not None else ():
            result[key] = result[written]
    return result
