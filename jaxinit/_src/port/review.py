"""What the plan of one pair of layers cannot tell from names and shapes: the settings to check.

- the layer hyperparameters both sides hold that differ (:mod:`jaxinit._src.port.hyper`);
- in a bare state_dict, the 2-D weights read as a Linear's ``(out, in)`` only
  by assumption, and whether ``torch_types`` declared any transformers
  ``Conv1D`` (:func:`jaxinit._src.port.checks.conv1d_issues` judges them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from jaxinit._src.port import checks as K
from jaxinit._src.port import convert as C
from jaxinit._src.port import hyper as H
from jaxinit._src.port import names as N
from jaxinit._src.port import target as T
from jaxinit._src.port import torch as P

__all__ = ["Review", "review"]


@dataclasses.dataclass
class Review:
    """What :func:`review` found over all pairs.

    Attributes:
      settings: one line per hyperparameter that differs (with the fix).
      assumed: the weights read as Linear by assumption.
      declared_conv1d: a layer is a transformers ``Conv1D`` (by its class or ``torch_types``).
    """

    settings: list[str] = dataclasses.field(default_factory=list)
    assumed: list[K.Assumed] = dataclasses.field(default_factory=list)
    declared_conv1d: bool = False


def review(
    pair: N.Pair,
    groups: Sequence[C.Group],
    ts: Mapping[str, tuple[int, ...]],
    fs: Mapping[tuple[str, ...], tuple[int, ...]],
    target: T.Target,
    equinox: bool,
    into: Review,
) -> None:
    """Notes into ``into`` the hyperparameters that differ and the weights read as Linear by assumption."""
    tl, fl = pair.torch, pair.target
    tk, fk = C.resolve_kinds(tl.kind, fl.kind, ts, fs, equinox)
    for s in H.compare(tk, fk, tl.module, fl.module, ts, fs):
        if s.differs:
            fix = s.fix if s.fix.startswith("none") else f"set {s.fix}"
            into.settings.append(
                f"torch {tl.describe()} -> {fl.describe()}: {s.what} {s.torch!r} in torch, "
                f"{s.jax!r} in JAX; {fix}"
            )
    if tl.kind == P.HF_CONV1D:  # by its class, or declared in torch_types
        into.declared_conv1d = True
        return
    # a layer of unknown kind (a bare state_dict, an unknown module class) read as a Linear
    if tl.kind is not None or tk not in (None, P.LINEAR):
        return
    if "weight" not in ts or len(ts["weight"]) != 2:
        return
    group = next((g for g in groups if g.src == ("weight",) and len(g.dst) == 1), None)
    if group is None or group.dst[0][-1] not in ("kernel", "weight") or group.dst[0] not in fs:
        return
    shape = fs[group.dst[0]]
    if len(shape) == 2:
        module = ".".join(tl.path)
        leaf = target.leaves[fl.leaves[group.dst[0]]].path
        same = equinox or group.dst[0][-1] == "weight"
        into.assumed.append(K.Assumed(tl.keys["weight"], module, ts["weight"], leaf, shape, same))
