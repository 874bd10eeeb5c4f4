"""jaxinit for Flax: the same builders in the flax layout ``(*kernel, in, out)``,
``X_`` helpers, the torch layer defaults, and the tree tools.

>>> import flax.linen as nn, jaxinit
>>> layer = nn.Dense(128, kernel_init=jaxinit.flax.kaiming_normal(mode="fan_out"))
"""

from jaxinit._src.flax.explain import explain as explain
from jaxinit._src.flax.linen import init as init
from jaxinit._src.flax.linen import reinit as reinit
from jaxinit._src.schemes.variants import flax_constant as constant
from jaxinit._src.schemes.variants import flax_constant_ as constant_
from jaxinit._src.schemes.variants import flax_dirac as dirac
from jaxinit._src.schemes.variants import flax_dirac_ as dirac_
from jaxinit._src.schemes.variants import flax_eye as eye
from jaxinit._src.schemes.variants import flax_eye_ as eye_
from jaxinit._src.schemes.variants import flax_kaiming_normal as kaiming_normal
from jaxinit._src.schemes.variants import flax_kaiming_normal_ as kaiming_normal_
from jaxinit._src.schemes.variants import flax_kaiming_uniform as kaiming_uniform
from jaxinit._src.schemes.variants import flax_kaiming_uniform_ as kaiming_uniform_
from jaxinit._src.schemes.variants import flax_normal as normal
from jaxinit._src.schemes.variants import flax_normal_ as normal_
from jaxinit._src.schemes.variants import flax_ones as ones
from jaxinit._src.schemes.variants import flax_ones_ as ones_
from jaxinit._src.schemes.variants import flax_orthogonal as orthogonal
from jaxinit._src.schemes.variants import flax_orthogonal_ as orthogonal_
from jaxinit._src.schemes.variants import flax_sparse as sparse
from jaxinit._src.schemes.variants import flax_sparse_ as sparse_
from jaxinit._src.schemes.variants import (
    flax_torch_conv_transpose_weight as torch_conv_transpose_weight,
)
from jaxinit._src.schemes.variants import flax_torch_embedding as torch_embedding
from jaxinit._src.schemes.variants import flax_torch_linear_bias as torch_linear_bias
from jaxinit._src.schemes.variants import flax_torch_linear_weight as torch_linear_weight
from jaxinit._src.schemes.variants import flax_torch_mha_in_proj as torch_mha_in_proj
from jaxinit._src.schemes.variants import flax_torch_rnn as torch_rnn
from jaxinit._src.schemes.variants import flax_trunc_normal as trunc_normal
from jaxinit._src.schemes.variants import flax_trunc_normal_ as trunc_normal_
from jaxinit._src.schemes.variants import flax_uniform as uniform
from jaxinit._src.schemes.variants import flax_uniform_ as uniform_
from jaxinit._src.schemes.variants import flax_xavier_normal as xavier_normal
from jaxinit._src.schemes.variants import flax_xavier_normal_ as xavier_normal_
from jaxinit._src.schemes.variants import flax_xavier_uniform as xavier_uniform
from jaxinit._src.schemes.variants import flax_xavier_uniform_ as xavier_uniform_
from jaxinit._src.schemes.variants import flax_zeros as zeros
from jaxinit._src.schemes.variants import flax_zeros_ as zeros_
from jaxinit._src.tree.rules import Rule as Rule
from jaxinit._src.tree.torch_defaults import TORCH_DEFAULTS as TORCH_DEFAULTS

__all__ = [
    "Rule",
    "TORCH_DEFAULTS",
    "constant",
    "constant_",
    "dirac",
    "dirac_",
    "explain",
    "eye",
    "eye_",
    "init",
    "kaiming_normal",
    "kaiming_normal_",
    "kaiming_uniform",
    "kaiming_uniform_",
    "normal",
    "normal_",
    "ones",
    "ones_",
    "orthogonal",
    "orthogonal_",
    "reinit",
    "sparse",
    "sparse_",
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
