"""jaxinit: torch.nn.init for JAX.

Every PyTorch initialization scheme as a pure, jit-compiled JAX initializer
``(key, shape, dtype) -> Array`` with torch's semantics. Top-level builders use
the torch layout ``(out, in, *kernel)``; :mod:`jaxinit.flax` has the same
builders in the flax layout ``(*kernel, in, out)`` and the Flax tree tools.
"""

from typing import Any

from jaxinit._src.core.builders import scheme as scheme
from jaxinit._src.core.distribution import Distribution as Distribution
from jaxinit._src.core.family import Family as Family
from jaxinit._src.core.gain import calculate_gain as calculate_gain
from jaxinit._src.core.initializer import Initializer as Initializer
from jaxinit._src.core.layout import FLAX as FLAX
from jaxinit._src.core.layout import TORCH as TORCH
from jaxinit._src.core.layout import Layout as Layout
from jaxinit._src.core.layout import calculate_correct_fan as calculate_correct_fan
from jaxinit._src.core.layout import calculate_fan_in_and_fan_out as calculate_fan_in_and_fan_out
from jaxinit._src.layers.context import LayoutWarning as LayoutWarning
from jaxinit._src.layers.leaf import Contextual as Contextual
from jaxinit._src.schemes.fans import kaiming_normal as kaiming_normal
from jaxinit._src.schemes.fans import kaiming_uniform as kaiming_uniform
from jaxinit._src.schemes.fans import xavier_normal as xavier_normal
from jaxinit._src.schemes.fans import xavier_uniform as xavier_uniform
from jaxinit._src.schemes.fill import constant as constant
from jaxinit._src.schemes.fill import ones as ones
from jaxinit._src.schemes.fill import zeros as zeros
from jaxinit._src.schemes.iid import normal as normal
from jaxinit._src.schemes.iid import uniform as uniform
from jaxinit._src.schemes.inplace import constant_ as constant_
from jaxinit._src.schemes.inplace import dirac_ as dirac_
from jaxinit._src.schemes.inplace import eye_ as eye_
from jaxinit._src.schemes.inplace import kaiming_normal_ as kaiming_normal_
from jaxinit._src.schemes.inplace import kaiming_uniform_ as kaiming_uniform_
from jaxinit._src.schemes.inplace import normal_ as normal_
from jaxinit._src.schemes.inplace import ones_ as ones_
from jaxinit._src.schemes.inplace import orthogonal_ as orthogonal_
from jaxinit._src.schemes.inplace import sparse_ as sparse_
from jaxinit._src.schemes.inplace import trunc_normal_ as trunc_normal_
from jaxinit._src.schemes.inplace import uniform_ as uniform_
from jaxinit._src.schemes.inplace import xavier_normal_ as xavier_normal_
from jaxinit._src.schemes.inplace import xavier_uniform_ as xavier_uniform_
from jaxinit._src.schemes.inplace import zeros_ as zeros_
from jaxinit._src.schemes.structured import dirac as dirac
from jaxinit._src.schemes.structured import eye as eye
from jaxinit._src.schemes.structured import orthogonal as orthogonal
from jaxinit._src.schemes.structured import sparse as sparse
from jaxinit._src.schemes.torch_defaults import (
    torch_conv_transpose_weight as torch_conv_transpose_weight,
)
from jaxinit._src.schemes.torch_defaults import torch_embedding as torch_embedding
from jaxinit._src.schemes.torch_defaults import torch_linear_bias as torch_linear_bias
from jaxinit._src.schemes.torch_defaults import torch_linear_weight as torch_linear_weight
from jaxinit._src.schemes.torch_defaults import torch_mha_in_proj as torch_mha_in_proj
from jaxinit._src.schemes.torch_defaults import torch_rnn as torch_rnn
from jaxinit._src.schemes.trunc_normal import trunc_normal as trunc_normal
from jaxinit._src.tree.explain import ExplainRow as ExplainRow
from jaxinit._src.tree.explain import Explanation as Explanation
from jaxinit._src.tree.explain import explain as explain
from jaxinit._src.tree.generic import reinit as reinit
from jaxinit._src.tree.keys import leaf_key as leaf_key
from jaxinit._src.tree.keys import stable_hash as stable_hash
from jaxinit._src.tree.rules import Layers as Layers
from jaxinit._src.tree.rules import Rule as Rule
from jaxinit._src.tree.torch_defaults import TORCH_DEFAULTS as TORCH_DEFAULTS

__version__ = "0.1.0"

__all__ = [
    "Contextual",
    "Distribution",
    "ExplainRow",
    "Explanation",
    "FLAX",
    "Family",
    "Initializer",
    "Layers",
    "Layout",
    "LayoutWarning",
    "Rule",
    "TORCH",
    "TORCH_DEFAULTS",
    "calculate_correct_fan",
    "calculate_fan_in_and_fan_out",
    "calculate_gain",
    "constant",
    "constant_",
    "dirac",
    "dirac_",
    "explain",
    "eye",
    "eye_",
    "kaiming_normal",
    "kaiming_normal_",
    "kaiming_uniform",
    "kaiming_uniform_",
    "leaf_key",
    "normal",
    "normal_",
    "ones",
    "ones_",
    "orthogonal",
    "orthogonal_",
    "reinit",
    "scheme",
    "sparse",
    "sparse_",
    "stable_hash",
    "torch_conv_transpose_weight",
    "torch_embedding",
    "torch_linear_bias",
    "torch_linear_weight",
    "torch_mha_in_proj",
    "torch_rnn",
    "trunc_normal",
    "trunc_normal_",
    "uniform",
    "uniform_",
    "xavier_normal",
    "xavier_normal_",
    "xavier_uniform",
    "xavier_uniform_",
    "zeros",
    "zeros_",
]


# Submodules loaded on first use: ``jaxinit.flax`` imports flax and ``jaxinit.port``
# torch's side lazily (optional extras); ``jaxinit.testing`` is for test suites.
_LAZY_SUBMODULES = ("flax", "port", "testing")


def __getattr__(name: str) -> Any:
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"jaxinit.{name}")
    raise AttributeError(f"module 'jaxinit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, *_LAZY_SUBMODULES])
