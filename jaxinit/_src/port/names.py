"""Pairing torch layers with JAX layers: by name where the structures line up, by rules elsewhere.

Names are compared in a canonical form: the path split into tokens at
``.``, ``/`` and ``_``, with a ``layers`` token dropped before an index. So
torch ``layer1.0.conv1``, Linen ``layer1_0/conv1`` and NNX ``layer1/0/conv1``
are all ``layer1 0 conv1``, and torch ``0`` (an ``nn.Sequential`` item),
Linen ``layers_0`` and NNX ``layers/0`` are all ``0``.

``rename`` rules are ordered ``(torch_glob, target_glob)`` pairs (or a
callable ``torch_name -> target_name | None``). A rule is tried on the dotted
path of each torch *module* (then the module's tensors move together, each
converted by its layer's conversion), and, for modules no rule renames, on
each full tensor name (then that tensor alone fills the named target leaf;
its layout follows the leaf's name: a ``kernel`` is transposed like a
Linear/conv weight, anything else is copied). ``*`` matches any run of
characters (dots included); the target glob's ``*`` s take the matched text
in order: ``("h.*.mlp.c_fc", "block_*/mlp/fc")``.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from jaxinit._src.port import torch as P
from jaxinit._src.port.target import TargetLayer

__all__ = ["Pair", "canonical", "compile_rename", "pair_layers"]

Rename = Callable[[str], "str | None"]
_SPLIT = re.compile(r"[./_]")


def canonical(parts: Iterable[str]) -> tuple[str, ...]:
    """The canonical token form of a path (see the module docstring)."""
    tokens = [t for p in parts for t in _SPLIT.split(str(p)) if t != ""]
    out = []
    for i, tok in enumerate(tokens):
        if tok == "layers" and i + 1 < len(tokens) and tokens[i + 1].isdigit():
            continue
        out.append(tok)
    return tuple(out)


def _glob_regex(glob: str) -> re.Pattern[str]:
    return re.compile("".join("(.*)" if c == "*" else re.escape(c) for c in glob))


def compile_rename(rename: Any) -> Rename | None:
    """Normalizes ``rename`` (pairs, a dict, or a callable) to ``torch_name -> target_name | None``."""
    if rename is None:
        return None
    if callable(rename):
        return rename
    items = rename.items() if isinstance(rename, dict) else rename
    rules: list[tuple[re.Pattern[str], str, str]] = []
    for i, item in enumerate(items):
        if not (
            isinstance(item, tuple | list)
            and len(item) == 2
            and all(isinstance(x, str) for x in item)
        ):
            raise TypeError(
                f"rename rule {i}: expected a (torch_glob, target_glob) pair of strings, got {item!r}"
            )
        src, dst = item
        if dst.count("*") > src.count("*"):
            raise ValueError(
                f"rename rule {i} ({src!r}, {dst!r}): the target glob has more '*' than the "
                "torch glob, so some would have nothing to take"
            )
        rules.append((_glob_regex(src), dst, src))

    def apply(name: str) -> str | None:
        for regex, dst, _ in rules:
            m = regex.fullmatch(name)
            if m is not None:
                out = dst
                for g in m.groups():
                    if "*" not in out:
                        break
                    out = out.replace("*", g, 1)
                return out
        return None

    return apply


@dataclasses.dataclass
class Pair:
    """A torch layer and the target layer it fills; ``single``: one renamed tensor."""

    torch: P.TorchLayer
    target: TargetLayer
    single: bool = False


@dataclasses.dataclass
class Pairing:
    pairs: list[Pair]
    torch_left: list[P.TorchLayer]  # unpaired torch layers (all their tensors)
    target_left: list[TargetLayer]  # unpaired target layers (all their leaves)
    notes: list[str]  # rename rules that led nowhere, ambiguities


_COMPOSITE_TORCH = (P.MHA, P.LSTM, P.GRU, P.RNN)


def _merge(prefix: tuple[str, ...], layers: Sequence[TargetLayer]) -> TargetLayer:
    """One virtual layer holding the leaves of ``layers``, relative to the module ``prefix``."""
    first = layers[0]
    depth = next(d for d in range(len(first.path)) if canonical(first.path[:d]) == prefix)
    path = first.path[:depth]
    leaves: dict[tuple[str, ...], int] = {}
    for layer in layers:
        for rel, i in layer.leaves.items():
            leaves[layer.path[depth:] + rel] = i
    return TargetLayer(path, path, None, None, leaves)


class _Pairer:
    """The state of one pairing: target layers indexed by canonical name, and what is taken.

    :func:`pair_layers` runs the steps in order; each step pairs what it can
    and leaves the rest to the next.
    """

    def __init__(
        self,
        target_layers: Sequence[TargetLayer],
        leaf_paths: Sequence[str],
        rename: Rename | None,
        collections: bool,
    ):
        self.target_layers = target_layers
        self.rename = rename
        self.by_key: dict[tuple[str, ...], list[TargetLayer]] = {}
        for layer in target_layers:
            self._index(layer)
        self.taken: dict[int, P.TorchLayer] = {}  # id(target layer) -> torch layer
        self.pairs: list[Pair] = []
        self.left: list[P.TorchLayer] = []
        self.notes: list[str] = []
        self.single_taken: set[int] = set()  # target leaves filled by a renamed tensor
        self.leaf_keys: dict[tuple[str, ...], list[int]] = {}
        for i, path in enumerate(leaf_paths):
            parts = path.split("/")
            self.leaf_keys.setdefault(canonical(parts), []).append(i)
            if collections:
                self.leaf_keys.setdefault(canonical(parts[1:]), []).append(i)

    def _index(self, layer: TargetLayer) -> None:
        """Indexes ``layer`` by its pairing key and by its full path (which a rename may name)."""
        for k in dict.fromkeys((canonical(layer.key), canonical(layer.path))):
            self.by_key.setdefault(k, []).append(layer)

    def _owner_of_leaf(self, i: int) -> tuple[TargetLayer, tuple[str, ...]]:
        for layer in self.target_layers:
            for rel, j in layer.leaves.items():
                if j == i:
                    return layer, rel
        raise KeyError(i)

    def _lookup(self, key: tuple[str, ...], torch_name: str) -> TargetLayer | None:
        """The one free target layer named ``key`` (``None``, with a note, if several are)."""
        found = [t for t in self.by_key.get(key, []) if id(t) not in self.taken]
        if len(found) > 1:
            exact = [t for t in found if t.name == torch_name.replace(".", "/")]
            if len(exact) == 1:
                return exact[0]
            self.notes.append(
                f"torch {torch_name!r} matches several target layers: "
                + ", ".join(repr(t.name) for t in found)
                + "; use rename= to choose"
            )
            return None
        return found[0] if found else None

    def _take(self, tl: P.TorchLayer, target: TargetLayer) -> None:
        if id(target) in self.taken:
            self.notes.append(
                f"torch {self.taken[id(target)].name!r} and {tl.name!r} both pair with target "
                f"{target.name!r}"
            )
            self.left.append(tl)
            return
        self.taken[id(target)] = tl
        self.pairs.append(Pair(tl, target))

    def _plain_layers_below(self, key: tuple[str, ...]) -> dict[tuple[str, ...], list[TargetLayer]]:
        """Free plain target layers below a module whose own path is canonically ``key``."""
        groups: dict[tuple[str, ...], list[TargetLayer]] = {}
        for k, ts in self.by_key.items():
            if len(k) <= len(key) or k[: len(key)] != key:
                continue
            for t in ts:
                if id(t) in self.taken or t.kind is not None:
                    continue
                depth = [d for d in range(len(t.path)) if canonical(t.path[:d]) == key]
                if depth:
                    groups.setdefault(t.path[: depth[0]], []).append(t)
        return groups

    def merge(self, key: tuple[str, ...], tl: P.TorchLayer) -> bool:
        """Pairs a composite torch layer with the plain target layers below ``key``."""
        kind = tl.kind or P.infer_kind({k: tuple(v.shape) for k, v in tl.values.items()})
        if kind not in _COMPOSITE_TORCH:
            return False
        groups = self._plain_layers_below(key)
        if len(groups) != 1:
            return False
        inner = next(iter(groups.values()))
        for t in inner:
            self.taken[id(t)] = tl
        self.pairs.append(Pair(tl, _merge(key, inner)))
        return True

    def renamed_module(self, tl: P.TorchLayer, new: str) -> None:
        """Pairs a torch module that a rename rule names."""
        key = canonical(new.split("/"))
        target = self._lookup(key, tl.name)
        if target is not None:
            self._take(tl, target)
        elif not self.merge(key, tl):
            self.notes.append(f"rename: torch {tl.name!r} -> {new!r}, which is no target layer")
            self.left.append(tl)

    def renamed_tensors(self, tl: P.TorchLayer, rename: Rename) -> P.TorchLayer | None:
        """Pairs the tensors of ``tl`` that a rename rule names; returns the rest, if any."""
        moved = []
        for local, full in tl.keys.items():
            dst = rename(full)
            if dst is None:
                continue
            hits = [
                i
                for i in self.leaf_keys.get(canonical(dst.split("/")), [])
                if i not in self.single_taken
            ]
            hits = list(dict.fromkeys(hits))
            if len(hits) != 1:
                self.notes.append(
                    f"rename: torch {full!r} -> {dst!r}, which is "
                    + ("no target leaf" if not hits else "several target leaves")
                )
                continue
            owner, rel = self._owner_of_leaf(hits[0])
            self.single_taken.add(hits[0])
            sub_t = P.TorchLayer(
                tl.path, tl.kind, tl.module, {local: full}, {local: tl.values[local]}
            )
            sub_f = TargetLayer(owner.path, owner.key, None, owner.module, {rel: hits[0]})
            self.pairs.append(Pair(sub_t, sub_f, single=True))
            moved.append(local)
        if not moved:
            return tl
        rest = {k: v for k, v in tl.keys.items() if k not in moved}
        if not rest:
            return None
        return P.TorchLayer(tl.path, tl.kind, tl.module, rest, {k: tl.values[k] for k in rest})

    def by_name(self, layers: Sequence[P.TorchLayer]) -> list[P.TorchLayer]:
        """Pairs layers whose canonical names agree; returns the unpaired."""
        unmatched = []
        for tl in layers:
            target = self._lookup(canonical(tl.path), tl.name)
            if target is None:
                unmatched.append(tl)
            else:
                self._take(tl, target)
        return unmatched

    def expand_composites(self) -> bool:
        """Replaces each free composite target layer by its parts; whether any was."""
        expanded = False
        for layer in self.target_layers:
            if id(layer) not in self.taken and layer.parts:
                for k in (canonical(layer.key), canonical(layer.path)):
                    self.by_key[k] = [t for t in self.by_key.get(k, []) if t is not layer]
                for part in layer.parts:
                    self._index(part)
                expanded = True
        return expanded

    def target_left(self) -> list[TargetLayer]:
        """The free target layers; leaves that a renamed tensor fills dropped from every layer."""
        all_targets = {id(t): t for ts in self.by_key.values() for t in ts}
        free = [t for i, t in all_targets.items() if i not in self.taken]
        if not self.single_taken:
            return free
        for p in self.pairs:
            if not p.single:
                p.target = dataclasses.replace(
                    p.target,
                    leaves={r: i for r, i in p.target.leaves.items() if i not in self.single_taken},
                )
        trimmed = []
        for t in free:
            kept = {r: i for r, i in t.leaves.items() if i not in self.single_taken}
            if kept:
                trimmed.append(dataclasses.replace(t, leaves=kept))
        return trimmed


def pair_layers(
    torch_layers: Sequence[P.TorchLayer],
    target_layers: Sequence[TargetLayer],
    leaf_paths: Sequence[str],
    rename: Rename | None,
    collections: bool,
) -> Pairing:
    """Pairs layers by rules, then by canonical name, then composites by prefix.

    Args:
      torch_layers: the torch side.
      target_layers: the target side.
      leaf_paths: every target leaf's ``/``-joined path (for tensor renames).
      rename: the compiled rename rules.
      collections: the target leaf paths start with a Linen collection.
    """
    p = _Pairer(target_layers, leaf_paths, rename, collections)
    pending: list[P.TorchLayer] = []
    for tl in torch_layers:  # 1. rename rules: whole modules, else single tensors
        new = rename(tl.name) if rename is not None else None
        if new is not None:
            p.renamed_module(tl, new)
            continue
        rest = p.renamed_tensors(tl, rename) if rename is not None else tl
        if rest is not None:
            pending.append(rest)
    unmatched = p.by_name(pending)  # 2. canonical names
    # 3. a composite torch layer (attention, a cell) <-> the target's plain layers below it
    still = [tl for tl in unmatched if not p.merge(canonical(tl.path), tl)]
    # 4. a composite target layer <-> torch's plain layers (attention as four Linears)
    if p.expand_composites():
        still = p.by_name(still)
    p.left.extend(still)
    return Pairing(p.pairs, p.left, p.target_left(), p.notes)


_SAME_AS = {
    "weight": "kernel",
    "scale": "kernel",
    "embedding": "kernel",
    "running": "",
    "params": "",
}


def _form(name: str) -> str:
    """A name's canonical tokens, torch's and Flax's parameter names made alike."""
    tokens = [_SAME_AS.get(t, t) for t in canonical(name.split("/"))]
    return " ".join(t for t in tokens if t)


def nearest(name: str, candidates: Sequence[str], n: int = 3) -> list[str]:
    """The candidates closest to ``name`` in canonical form (``difflib``)."""
    forms: dict[str, list[str]] = {}
    for c in candidates:
        forms.setdefault(_form(c), []).append(c)
    hits = difflib.get_close_matches(_form(name), list(forms), n, 0.5)
    return [c for h in hits for c in forms[h]][:n]


def glob_kinds(layers: Sequence[P.TorchLayer], torch_types: Any) -> None:
    """Sets the kind of the torch layers ``torch_types`` (``{module_glob: class name}``) names."""
    if not torch_types:
        return
    names = {
        "linear": P.LINEAR,
        "conv1d": P.CONV,
        "conv2d": P.CONV,
        "conv3d": P.CONV,
        "convtranspose1d": P.CONV_TRANSPOSE,
        "convtranspose2d": P.CONV_TRANSPOSE,
        "convtranspose3d": P.CONV_TRANSPOSE,
        "embedding": P.EMBEDDING,
        "layernorm": P.NORM,
        "groupnorm": P.NORM,
        "rmsnorm": P.NORM,
        "batchnorm1d": P.NORM,
        "batchnorm2d": P.NORM,
        "batchnorm3d": P.NORM,
        "multiheadattention": P.MHA,
        "lstm": P.LSTM,
        "lstmcell": P.LSTM,
        "gru": P.GRU,
        "grucell": P.GRU,
        "rnn": P.RNN,
        "rnncell": P.RNN,
    }
    rules = []
    for glob, cls in dict(torch_types).items():
        label = cls if isinstance(cls, str) else getattr(cls, "__name__", repr(cls))
        kind = P.HF_CONV1D if label == "Conv1D" else names.get(label.lower())
        if kind is None:
            raise ValueError(
                f"torch_types[{glob!r}]: unknown torch layer {label!r}; expected one of "
                "Linear, Conv1D (transformers), Conv1d/2d/3d, ConvTranspose1d/2d/3d, Embedding, "
                "LayerNorm, GroupNorm, RMSNorm, BatchNorm1d/2d/3d, MultiheadAttention, LSTM, GRU, RNN"
            )
        rules.append((glob, kind))
    matched: set[str] = set()
    for layer in layers:
        module_name = ".".join(layer.path[:-1]) if layer.virtual else layer.name
        for glob, kind in rules:
            if fnmatch.fnmatchcase(layer.name, glob) or fnmatch.fnmatchcase(module_name, glob):
                layer.kind = kind
                matched.add(glob)
                break
    unmatched = [glob for glob, _ in rules if glob not in matched]
    if unmatched:
        modules = list(dict.fromkeys(layer.name for layer in layers if layer.name))
        lines = []
        for glob in unmatched:
            wider = "*" + glob if glob.startswith(".") else "*." + glob
            hits = [m for m in modules if fnmatch.fnmatchcase(m, wider)]
            near = hits or nearest(glob.replace("*", ""), modules)
            hint = f"; did you mean {wider!r}? it matches " if hits else "; nearest: "
            lines.append(
                f"torch_types[{glob!r}] matches no torch module"
                + (hint + ", ".join(near[:3]) + (", ..." if len(near) > 3 else "") if near else "")
            )
        raise ValueError(
            "\n".join(lines) + "\nA glob must match a whole module path ('*' matches any text, "
            f"dots included), e.g. {'*.' + modules[-1].rsplit('.', 1)[-1] if modules else '*.fc'!r}; "
            f"the modules are: {', '.join(modules[:6])}" + (", ..." if len(modules) > 6 else "")
        )
