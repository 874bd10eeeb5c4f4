"""Layer hyperparameters that change what a layer computes, compared between torch and JAX.

Weights that load without a shape error can still give another function:
``MultiheadAttention(num_heads=4)`` read into an attention with 8 heads, a
``LayerNorm`` with torch's ``eps=1e-5`` into Flax's default ``1e-6``, a conv
with other padding. Each pair of layers whose kinds are known is compared on
what both sides hold, each value brought to one form first (conv padding as
explicit ``(low, high)`` pairs, transposed-conv padding as the pads of the
stride-dilated input that ``lax.conv_transpose`` takes). Where one side
cannot say (a bare state_dict has no ``eps``; Flax's ``"SAME"`` padding with
a stride depends on the input size), nothing is compared.

Not compared, because they do not change the forward function or the
weights' meaning: dropout rates, BatchNorm momentum, ``batch_first``,
``padding_idx`` (Flax and Equinox embeddings have no such notion; it only
zeroes a gradient).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from jaxinit._src.port import target as T
from jaxinit._src.port import torch as P
from jaxinit._src.port.groups import Rel

__all__ = ["Setting", "compare"]


class _Unknown:
    def __repr__(self) -> str:
        return "?"


UNKNOWN: Any = _Unknown()  # one side cannot say


@dataclasses.dataclass(frozen=True)
class Setting:
    """One hyperparameter as torch and the target hold it, and the target setting matching torch.

    Attributes:
      what: the hyperparameter, in torch's words (``eps``, ``num_heads``, ``padding``).
      torch: torch's value, or :data:`UNKNOWN`.
      jax: the target's value in the same form, or :data:`UNKNOWN`.
      fix: the target setting that would match torch (``"epsilon=1e-05"``), or
        why there is none.
    """

    what: str
    torch: Any
    jax: Any
    fix: str

    @property
    def differs(self) -> bool:
        if self.torch is UNKNOWN or self.jax is UNKNOWN:
            return False
        if isinstance(self.torch, float) and isinstance(self.jax, float):
            return not math.isclose(self.torch, self.jax, rel_tol=1e-6, abs_tol=0.0)
        return bool(self.torch != self.jax)


def _get(module: Any, *names: str, default: Any = UNKNOWN) -> Any:
    for name in names:
        if module is not None and hasattr(module, name):
            return getattr(module, name)
    return default


def _ints(x: Any, n: int, default: int = 1) -> Any:
    """An int or a sequence of ints (Flax, Equinox, torch) as an ``n``-tuple."""
    if x is UNKNOWN:
        return UNKNOWN
    if x is None:
        return (default,) * n
    if isinstance(x, int | np.integer):
        return (int(x),) * n
    try:
        t = tuple(int(v) for v in x)
    except TypeError:
        return UNKNOWN
    return t if len(t) == n else UNKNOWN


def _bias_setting(has_torch: bool, has_jax: bool) -> Setting:
    return Setting("bias", has_torch, has_jax, f"use_bias={has_torch}")


# ----------------------------------------------------------------------------
# Convolutions


def _pairs(padding: Any, n: int) -> Any:
    """A padding as given (int, ints, pairs) -> ``n`` explicit pairs; a string upper-cased."""
    if isinstance(padding, str):
        return padding.upper()
    if isinstance(padding, int | np.integer):
        return ((int(padding), int(padding)),) * n
    try:
        seq = tuple(padding)
    except TypeError:
        return UNKNOWN
    if len(seq) != n:
        return UNKNOWN
    out = []
    for p in seq:
        if isinstance(p, int | np.integer):
            out.append((int(p), int(p)))
        elif len(p) == 2:
            out.append((int(p[0]), int(p[1])))
        else:
            return UNKNOWN
    return tuple(out)


def _same(k_eff: Sequence[int], strides: Sequence[int], lower: bool = False) -> Any:
    """``"SAME"`` padding as pairs: input-independent only with stride 1."""
    if any(s != 1 for s in strides):
        return UNKNOWN
    out = []
    for k in k_eff:
        total = k - 1
        small, big = total // 2, total - total // 2
        out.append((big, small) if lower else (small, big))
    return tuple(out)


def _torch_conv_padding(m: Any, k_eff: Sequence[int]) -> tuple[Any, str]:
    n = len(k_eff)
    mode = str(m.padding_mode).lower()
    if isinstance(m.padding, str):
        if m.padding == "valid":
            return ((0, 0),) * n, mode
        return _same(k_eff, (1,) * n), mode  # torch allows 'same' only with stride 1
    return _pairs(m.padding, n), mode


def _flax_conv_padding(padding: Any, k_eff: Sequence[int], strides: Any) -> tuple[Any, str]:
    n = len(k_eff)
    p = _pairs(padding, n)
    if strides is UNKNOWN:
        strides = (0,) * n
    if p == "VALID":
        return ((0, 0),) * n, "zeros"
    if p in ("SAME", "SAME_LOWER"):
        return _same(k_eff, strides, lower=p == "SAME_LOWER"), "zeros"
    if p in ("CIRCULAR", "REFLECT"):
        return tuple(((k - 1) // 2, k // 2) for k in k_eff), p.lower()
    if p == "CAUSAL":
        return tuple((k - 1, 0) for k in k_eff), "zeros"
    return p, "zeros"


def _flax_padding_fix(pads: Any, mode: str, k_eff: Sequence[int]) -> str:
    if mode == "zeros":
        return f"padding={pads}"
    flax_pads = tuple(((k - 1) // 2, k // 2) for k in k_eff)
    if mode in ("circular", "reflect") and pads == flax_pads:
        return f"padding={mode.upper()!r}"
    return f"none: no Flax Conv padding is torch's padding_mode={mode!r} with pads {pads}"


def _conv(tm: Any, fm: Any, k: Sequence[int], eqx: bool) -> list[Setting]:
    n = len(k)
    stride, dil = tuple(tm.stride), tuple(tm.dilation)
    k_eff = [d * (kk - 1) + 1 for kk, d in zip(k, dil)]
    t_pads, t_mode = _torch_conv_padding(tm, k_eff)
    if eqx:
        j_stride = _ints(_get(fm, "stride"), n)
        j_dil = _ints(_get(fm, "dilation"), n)
        j_groups = _get(fm, "groups")
        pad = _get(fm, "padding")
        j_mode = str(_get(fm, "padding_mode", default="ZEROS")).lower()
        if pad in ("SAME", "SAME_LOWER"):
            j_pads = _same(
                k_eff, j_stride if j_stride is not UNKNOWN else (0,), pad == "SAME_LOWER"
            )
        else:
            j_pads = ((0, 0),) * n if pad == "VALID" else _pairs(pad, n)
        return [
            Setting("stride", stride, j_stride, f"stride={stride}"),
            Setting("dilation", dil, j_dil, f"dilation={dil}"),
            Setting("groups", tm.groups, j_groups, f"groups={tm.groups}"),
            Setting("padding", t_pads, j_pads, f"padding={t_pads}"),
            Setting("padding_mode", t_mode, j_mode, f"padding_mode={t_mode.upper()!r}"),
        ]
    j_stride = _ints(_get(fm, "strides"), n)
    j_dil = _ints(_get(fm, "kernel_dilation"), n)
    j_pads, j_mode = _flax_conv_padding(_get(fm, "padding"), k_eff, j_stride)
    fix = _flax_padding_fix(t_pads, t_mode, k_eff)
    return [
        Setting("stride", stride, j_stride, f"strides={stride}"),
        Setting("dilation", dil, j_dil, f"kernel_dilation={dil}"),
        Setting(
            "input dilation",
            (1,) * n,
            _ints(_get(fm, "input_dilation"), n),
            "none: a torch Conv has no input dilation (set input_dilation=1)",
        ),
        Setting(
            "groups", tm.groups, _get(fm, "feature_group_count"), f"feature_group_count={tm.groups}"
        ),
        Setting("padding", t_pads, j_pads, fix),
        Setting("padding_mode", t_mode, j_mode, fix),
    ]


def _lax_transpose_pads(pad: str, k_eff: Sequence[int], strides: Sequence[int]) -> Any:
    """What ``lax.conv_transpose`` pads the stride-dilated input by for ``"SAME"``/``"VALID"``."""
    out = []
    for k, s in zip(k_eff, strides):
        if pad == "SAME":
            total = k + s - 2
            lo = k - 1 if s > k - 1 else math.ceil(total / 2)
        elif pad == "VALID":
            total = k + s - 2 + max(k - s, 0)
            lo = k - 1
        else:
            return UNKNOWN
        out.append((lo, total - lo))
    return tuple(out)


def _eqx_transpose_pads(fm: Any, k: Sequence[int], n: int) -> Any:
    """Equinox's ``ConvTranspose._padding_transpose``: its (torch-like) padding as dilated-input pads."""
    stride = _ints(_get(fm, "stride"), n)
    dil = _ints(_get(fm, "dilation"), n)
    out_pad = _ints(_get(fm, "output_padding"), n, default=0)
    pad = _get(fm, "padding")
    if UNKNOWN in (stride, dil, out_pad, pad):
        return UNKNOWN
    out = []
    for i in range(n):
        span, a = dil[i] * (k[i] - 1), out_pad[i]
        if pad == "VALID":
            p0 = p1 = 0
        elif pad in ("SAME", "SAME_LOWER"):
            total = span - stride[i] + a + 1
            a, total = (-total, 0) if total < 0 else (a, total)
            p0 = (total + (pad == "SAME_LOWER")) // 2
            p1 = total - p0
        else:
            pairs = _pairs(pad, n)
            if pairs is UNKNOWN:
                return UNKNOWN
            p0, p1 = pairs[i]
        out.append((span - p0, span - p1 + a))
    return tuple(out)


def _conv_transpose(tm: Any, fm: Any, k: Sequence[int], eqx: bool) -> list[Setting]:
    n = len(k)
    stride, dil = tuple(tm.stride), tuple(tm.dilation)
    t_pads = tuple(
        (d * (kk - 1) - p, d * (kk - 1) - p + op)
        for kk, d, p, op in zip(k, dil, tm.padding, tm.output_padding)
    )
    t_mode = str(tm.padding_mode).lower()  # torch's ConvTranspose only pads with zeros
    if eqx:
        eqx_pad = tuple((int(p), int(p)) for p in tm.padding)
        j_mode = str(_get(fm, "padding_mode", default="ZEROS")).lower()
        return [
            Setting("padding_mode", t_mode, j_mode, f"padding_mode={t_mode.upper()!r}"),
            Setting("stride", stride, _ints(_get(fm, "stride"), n), f"stride={stride}"),
            Setting("dilation", dil, _ints(_get(fm, "dilation"), n), f"dilation={dil}"),
            Setting("groups", tm.groups, _get(fm, "groups"), f"groups={tm.groups}"),
            Setting(
                "padding",
                t_pads,
                _eqx_transpose_pads(fm, k, n),
                f"padding={eqx_pad}, output_padding={tuple(tm.output_padding)}",
            ),
        ]
    j_stride = _ints(_get(fm, "strides"), n)
    j_dil = _ints(_get(fm, "kernel_dilation"), n)
    pad = _pairs(_get(fm, "padding"), n)
    j_mode = "circular" if pad == "CIRCULAR" else "zeros"
    if isinstance(pad, str):
        k_eff = [d * (kk - 1) + 1 for kk, d in zip(k, j_dil if j_dil is not UNKNOWN else dil)]
        pad = UNKNOWN if j_stride is UNKNOWN else _lax_transpose_pads(pad, k_eff, j_stride)
    return [
        Setting("stride", stride, j_stride, f"strides={stride}"),
        Setting("dilation", dil, j_dil, f"kernel_dilation={dil}"),
        Setting("padding", t_pads, pad, f"padding={t_pads}"),
        Setting("padding_mode", t_mode, j_mode, f"padding={t_pads}"),
    ]


# ----------------------------------------------------------------------------
# Norms, attention, embeddings, cells

_NORMS = ("LayerNorm", "RMSNorm", "GroupNorm", "BatchNorm", "InstanceNorm")


def _norm_type(module: Any) -> Any:
    names = [c.__name__ for c in type(module).__mro__]
    if "_InstanceNorm" in names:
        return "InstanceNorm"
    if "_BatchNorm" in names or "SyncBatchNorm" in names:
        return "BatchNorm"
    return next((n for n in names if n in _NORMS), UNKNOWN)


def _torch_eps(tm: Any) -> float:
    if tm.eps is not None:
        return float(tm.eps)
    # torch's RMSNorm(eps=None) uses torch.finfo(input dtype).eps; the weight's dtype stands for it
    weight = getattr(tm, "weight", None)
    dtype = np.float32 if weight is None else P.to_numpy(weight).dtype
    return float(np.finfo(dtype).eps)


def _norm(tm: Any, fm: Any, fs: Mapping[Rel, tuple[int, ...]], eqx: bool) -> list[Setting]:
    t_type, j_type = _norm_type(tm), _norm_type(fm) if fm is not None else UNKNOWN
    t_eps = _torch_eps(tm)
    j_eps = _get(fm, "eps" if eqx else "epsilon")
    channels = next((s[0] for s in fs.values() if len(s) == 1), None)
    settings = []
    t_groups: Any = UNKNOWN
    if t_type == "GroupNorm":
        t_groups = tm.num_groups
    elif t_type == "InstanceNorm":
        t_groups = tm.num_features
    if eqx:
        j_groups = _get(fm, "groups")
    else:
        size = _get(fm, "group_size", default=None)
        j_groups = _get(fm, "num_groups") if size is None else UNKNOWN
        if size is not None and channels:
            j_groups = channels // size
    if j_type == "GroupNorm" and t_type == "InstanceNorm" and j_groups == t_groups:
        j_type = "InstanceNorm"  # GroupNorm with one channel per group is an instance norm
    settings.append(Setting("type", t_type, j_type, f"a {t_type} layer"))
    settings.append(Setting("eps", t_eps, j_eps, f"{'eps' if eqx else 'epsilon'}={t_eps!r}"))
    if t_type in ("GroupNorm", "InstanceNorm") and j_type in ("GroupNorm",):
        fix = f"groups={t_groups}" if eqx else f"num_groups={t_groups}"
        settings.append(Setting("num_groups", t_groups, j_groups, fix))
    return settings


def _attention(
    tm: Any,
    fm: Any,
    ts: Mapping[str, Any],
    fs: Mapping[Rel, tuple[int, ...]],
    eqx: bool,
) -> list[Setting]:
    heads = _get(fm, "num_heads")
    query = fs.get(("query", "kernel"))
    if heads is UNKNOWN and not eqx and query is not None and len(query) == 3:
        heads = query[1]  # Linen's query kernel (features, heads, head_dim)
    t_heads = tm.num_heads if tm is not None else UNKNOWN
    t_bias = "in_proj_bias" in ts
    j_bias = (("query_proj" if eqx else "query"), "bias") in fs
    bias_fix = "use_query_bias=..., use_output_bias=..." if eqx else f"use_bias={t_bias}"
    return [
        Setting("num_heads", t_heads, heads, f"num_heads={t_heads}"),
        Setting("bias", t_bias, j_bias, bias_fix),
    ]


def _rnn(tm: Any, fm: Any) -> list[Setting]:
    fn = _get(fm, "activation_fn")
    name = getattr(fn, "__name__", repr(fn)) if fn is not UNKNOWN else UNKNOWN
    nonlinearity = tm.nonlinearity
    return [Setting("nonlinearity", nonlinearity, name, f"activation_fn=jax.nn.{nonlinearity}")]


# ----------------------------------------------------------------------------

_LINEAR = (T.DENSE, T.DENSE_GENERAL, T.EQX_LINEAR)
_CONV = (T.CONV, T.EQX_CONV)
_CONV_T = (T.CONV_TRANSPOSE, T.EQX_CONV_TRANSPOSE)


def compare(
    tk: str | None,
    fk: str | None,
    tm: Any,
    fm: Any,
    ts: Mapping[str, tuple[int, ...]],
    fs: Mapping[Rel, tuple[int, ...]],
) -> list[Setting]:
    """The hyperparameters of one torch layer and the target layer it fills.

    Args:
      tk, fk: the layers' kinds as the conversion resolved them.
      tm, fm: the torch and target modules, where known (``None`` otherwise).
      ts: torch local name -> shape.
      fs: target relative path -> shape.

    Returns:
      Every setting both sides could be asked about; :attr:`Setting.differs`
      tells the mismatches.
    """
    eqx = fk is not None and fk.startswith("eqx_")
    both = tm is not None and fm is not None  # (a bare state_dict, a Linen dict without model=)
    has_bias = _bias_setting("bias" in ts, ("bias",) in fs)
    if fk in _LINEAR and tk in (P.LINEAR, P.HF_CONV1D):
        return [has_bias]
    if fk in _CONV and tk == P.CONV and "weight" in ts:
        return [has_bias, *(_conv(tm, fm, ts["weight"][2:], eqx) if both else ())]
    if fk in _CONV_T and tk == P.CONV_TRANSPOSE and "weight" in ts:
        return [has_bias, *(_conv_transpose(tm, fm, ts["weight"][2:], eqx) if both else ())]
    if fk in (T.NORM, T.EQX_NORM) and tk == P.NORM:
        scale = ("weight",) if eqx else ("scale",)
        use = "use_weight" if eqx else "use_scale"
        has_scale = Setting("scale", "weight" in ts, scale in fs, f"{use}={'weight' in ts}")
        return [has_scale, has_bias, *(_norm(tm, fm, fs, eqx) if both else ())]
    if fk in (T.ATTENTION, T.EQX_MHA) and tk == P.MHA:
        return _attention(tm, fm, ts, fs, eqx)
    if fk in (T.EMBED, T.EQX_EMBED) and tk == P.EMBEDDING and tm is not None:
        why = "none: Flax and Equinox embeddings never renormalize rows"
        return [Setting("max_norm", tm.max_norm, None, why)]
    if fk == T.SIMPLE_CELL and tk == P.RNN and both:
        return _rnn(tm, fm)
    return []
