"""Every scheme in both namespaces: builders and ``X_`` helpers, torch and flax layouts.

Nothing here defines a scheme: the builders come from :mod:`schemes`, the
flax variants change only the default layout, and every ``X_`` comes from
:func:`make_inplace`.
"""

from __future__ import annotations

from jaxinit._src import schemes, torch_defaults
from jaxinit._src.core import with_default_layout
from jaxinit._src.inplace import make_inplace
from jaxinit._src.layout import FLAX

# torch layout: jaxinit.X_ ------------------------------------------------------
_T = "jaxinit"
uniform_ = make_inplace(schemes.uniform, _T)
normal_ = make_inplace(schemes.normal, _T)
trunc_normal_ = make_inplace(schemes.trunc_normal, _T)
constant_ = make_inplace(schemes.constant, _T)
ones_ = make_inplace(schemes.ones, _T)
zeros_ = make_inplace(schemes.zeros, _T)
eye_ = make_inplace(schemes.eye, _T)
dirac_ = make_inplace(schemes.dirac, _T)
xavier_uniform_ = make_inplace(schemes.xavier_uniform, _T)
xavier_normal_ = make_inplace(schemes.xavier_normal, _T)
kaiming_uniform_ = make_inplace(schemes.kaiming_uniform, _T)
kaiming_normal_ = make_inplace(schemes.kaiming_normal, _T)
orthogonal_ = make_inplace(schemes.orthogonal, _T)
sparse_ = make_inplace(schemes.sparse, _T)

# flax layout: jaxinit.flax.X and jaxinit.flax.X_ ----------------------------------
_F = "jaxinit.flax"
flax_uniform = with_default_layout(schemes.uniform, FLAX, _F)
flax_normal = with_default_layout(schemes.normal, FLAX, _F)
flax_trunc_normal = with_default_layout(schemes.trunc_normal, FLAX, _F)
flax_constant = with_default_layout(schemes.constant, FLAX, _F)
flax_ones = with_default_layout(schemes.ones, FLAX, _F)
flax_zeros = with_default_layout(schemes.zeros, FLAX, _F)
flax_eye = with_default_layout(schemes.eye, FLAX, _F)
flax_dirac = with_default_layout(schemes.dirac, FLAX, _F)
flax_xavier_uniform = with_default_layout(schemes.xavier_uniform, FLAX, _F)
flax_xavier_normal = with_default_layout(schemes.xavier_normal, FLAX, _F)
flax_kaiming_uniform = with_default_layout(schemes.kaiming_uniform, FLAX, _F)
flax_kaiming_normal = with_default_layout(schemes.kaiming_normal, FLAX, _F)
flax_orthogonal = with_default_layout(schemes.orthogonal, FLAX, _F)
flax_sparse = with_default_layout(schemes.sparse, FLAX, _F)

flax_uniform_ = make_inplace(flax_uniform, _F)
flax_normal_ = make_inplace(flax_normal, _F)
flax_trunc_normal_ = make_inplace(flax_trunc_normal, _F)
flax_constant_ = make_inplace(flax_constant, _F)
flax_ones_ = make_inplace(flax_ones, _F)
flax_zeros_ = make_inplace(flax_zeros, _F)
flax_eye_ = make_inplace(flax_eye, _F)
flax_dirac_ = make_inplace(flax_dirac, _F)
flax_xavier_uniform_ = make_inplace(flax_xavier_uniform, _F)
flax_xavier_normal_ = make_inplace(flax_xavier_normal, _F)
flax_kaiming_uniform_ = make_inplace(flax_kaiming_uniform, _F)
flax_kaiming_normal_ = make_inplace(flax_kaiming_normal, _F)
flax_orthogonal_ = make_inplace(flax_orthogonal, _F)
flax_sparse_ = make_inplace(flax_sparse, _F)

# torch layer defaults, flax layout ---------------------------------------------------
flax_torch_linear_weight = with_default_layout(torch_defaults.torch_linear_weight, FLAX, _F)
flax_torch_linear_bias = with_default_layout(torch_defaults.torch_linear_bias, FLAX, _F)
flax_torch_embedding = with_default_layout(torch_defaults.torch_embedding, FLAX, _F)
flax_torch_rnn = with_default_layout(torch_defaults.torch_rnn, FLAX, _F)
flax_torch_mha_in_proj = with_default_layout(torch_defaults.torch_mha_in_proj, FLAX, _F)


flax_torch_conv_transpose_weight = with_default_layout(
    torch_defaults.torch_conv_transpose_weight, FLAX, _F
)
