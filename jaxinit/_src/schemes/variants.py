"""``jaxinit.flax``'s builders and ``X_`` helpers: the same schemes, flax layout by default.

Nothing here defines a scheme: each variant is the torch-layout builder or
helper with another default layout (:func:`~jaxinit._src.core.initializer.flax_variant`,
:func:`~jaxinit._src.schemes.inplace.flax_inplace`), so type checkers see the same
signatures.
"""

from __future__ import annotations

from jaxinit._src.core.builders import flax_variant
from jaxinit._src.schemes import fans, fill, iid, inplace, structured, torch_defaults
from jaxinit._src.schemes import trunc_normal as truncated
from jaxinit._src.schemes.inplace import flax_inplace

# builders ------------------------------------------------------------------------
flax_uniform = flax_variant(iid.uniform)
flax_normal = flax_variant(iid.normal)
flax_trunc_normal = flax_variant(truncated.trunc_normal)
flax_constant = flax_variant(fill.constant)
flax_ones = flax_variant(fill.ones)
flax_zeros = flax_variant(fill.zeros)
flax_eye = flax_variant(structured.eye)
flax_dirac = flax_variant(structured.dirac)
flax_xavier_uniform = flax_variant(fans.xavier_uniform)
flax_xavier_normal = flax_variant(fans.xavier_normal)
flax_kaiming_uniform = flax_variant(fans.kaiming_uniform)
flax_kaiming_normal = flax_variant(fans.kaiming_normal)
flax_orthogonal = flax_variant(structured.orthogonal)
flax_sparse = flax_variant(structured.sparse)

# X_ helpers ----------------------------------------------------------------------
flax_uniform_ = flax_inplace(inplace.uniform_)
flax_normal_ = flax_inplace(inplace.normal_)
flax_trunc_normal_ = flax_inplace(inplace.trunc_normal_)
flax_constant_ = flax_inplace(inplace.constant_)
flax_ones_ = flax_inplace(inplace.ones_)
flax_zeros_ = flax_inplace(inplace.zeros_)
flax_eye_ = flax_inplace(inplace.eye_)
flax_dirac_ = flax_inplace(inplace.dirac_)
flax_xavier_uniform_ = flax_inplace(inplace.xavier_uniform_)
flax_xavier_normal_ = flax_inplace(inplace.xavier_normal_)
flax_kaiming_uniform_ = flax_inplace(inplace.kaiming_uniform_)
flax_kaiming_normal_ = flax_inplace(inplace.kaiming_normal_)
flax_orthogonal_ = flax_inplace(inplace.orthogonal_)
flax_sparse_ = flax_inplace(inplace.sparse_)

# torch layer defaults --------------------------------------------------------------
flax_torch_linear_weight = flax_variant(torch_defaults.torch_linear_weight)
flax_torch_linear_bias = flax_variant(torch_defaults.torch_linear_bias)
flax_torch_conv_transpose_weight = flax_variant(torch_defaults.torch_conv_transpose_weight)
flax_torch_embedding = flax_variant(torch_defaults.torch_embedding, torch_defaults.EMBEDDING)
flax_torch_rnn = flax_variant(torch_defaults.torch_rnn)
flax_torch_mha_in_proj = flax_variant(torch_defaults.torch_mha_in_proj)
