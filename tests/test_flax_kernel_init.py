"""Flax layers with a jaxinit flax-layout ``kernel_init`` start as torch's layers
initialized by the same ``X_``: same distribution (KS + std), and for eye/dirac
the same kernel bit for bit, moved to the flax layout."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.init as tinit
from flax import nnx

import jaxinit
import jaxinit.flax
from tests import records as R


def _linen_kernels(module, x, n: int) -> np.ndarray:
    """``n`` kernels from ``module.init`` with independent keys, in the torch layout."""
    keys = jax.random.split(jax.random.key(0), n)
    out = [np.asarray(module.init(k, x)["params"]["kernel"]) for k in keys]
    return np.stack([R.flax_to_torch(w) for w in out])


def _check(ours: np.ndarray, scheme: R.Scheme, torch_shape, what: str) -> None:
    assert ours.shape[1:] == tuple(torch_shape)
    theirs = R.torch_draws(scheme, torch_shape, len(ours))
    m = scheme.moments(torch_shape)
    R.assert_ks(ours, theirs, what)
    R.assert_moments(ours, m, what)
    if m.low is not None:
        R.assert_bounds(ours, m, what)


DENSE = [
    (jaxinit.kaiming_normal(mode="fan_out", layout="flax"), R.kaiming_normal(mode="fan_out")),
    (
        jaxinit.flax.kaiming_normal(mode="fan_out", nonlinearity="relu"),
        R.kaiming_normal(mode="fan_out", nonlinearity="relu"),
    ),
    (jaxinit.flax.kaiming_uniform(a=math.sqrt(5)), R.kaiming_uniform(a=math.sqrt(5))),
    (jaxinit.xavier_uniform(layout="flax"), R.xavier_uniform()),
    (jaxinit.flax.xavier_normal(gain=2.0), R.xavier_normal(gain=2.0)),
    (jaxinit.flax.trunc_normal(std=0.02), R.trunc_normal(std=0.02)),
    (jaxinit.flax.orthogonal(), R.orthogonal()),
    (jaxinit.flax.sparse(0.25), None),
]


@pytest.mark.parametrize(
    "init,scheme", DENSE, ids=[f"{d[0].name}-{i}" for i, d in enumerate(DENSE)]
)
def test_linen_dense(init, scheme):
    features_in, features_out = 48, 80  # torch weight (80, 48)
    module = nn.Dense(features_out, kernel_init=init)
    x = jnp.ones((1, features_in))
    torch_shape = (features_out, features_in)
    if scheme is None:  # sparse: ceil(sparsity * out) zeros per input unit, as torch's sparse_
        kernel = module.init(jax.random.key(0), x)["params"]["kernel"]
        assert kernel.shape == (features_in, features_out)
        assert ((np.asarray(kernel) == 0).sum(axis=1) == math.ceil(0.25 * features_out)).all()
        return
    ours = _linen_kernels(module, x, R.n_draws(torch_shape))
    _check(ours, scheme, torch_shape, f"nn.Dense {init!r}")


CONV = [
    (jaxinit.kaiming_normal(mode="fan_out", layout="flax"), R.kaiming_normal(mode="fan_out")),
    (jaxinit.flax.kaiming_uniform(a=math.sqrt(5)), R.kaiming_uniform(a=math.sqrt(5))),
    (jaxinit.flax.xavier_uniform(), R.xavier_uniform()),
    (jaxinit.orthogonal(layout="flax"), R.orthogonal()),
]


@pytest.mark.parametrize("init,scheme", CONV, ids=[f"{d[0].name}-{i}" for i, d in enumerate(CONV)])
def test_linen_conv(init, scheme):
    c_in, c_out = 16, 32  # torch weight (32, 16, 3, 3), flax kernel (3, 3, 16, 32)
    module = nn.Conv(c_out, kernel_size=(3, 3), kernel_init=init)
    x = jnp.ones((1, 8, 8, c_in))
    torch_shape = (c_out, c_in, 3, 3)
    ours = _linen_kernels(module, x, R.n_draws(torch_shape))
    _check(ours, scheme, torch_shape, f"nn.Conv {init!r}")
    if scheme.kind == "orthogonal":
        q = ours[0].reshape(c_out, -1)  # torch's flattening: rows = out
        np.testing.assert_allclose(q @ q.T, np.eye(c_out), atol=1e-5)


def test_nnx_linear_and_conv():
    scheme = R.kaiming_uniform(a=math.sqrt(5))
    torch_shape = (40, 24)
    n = R.n_draws(torch_shape)
    kernels = [
        nnx.Linear(
            24, 40, kernel_init=jaxinit.flax.kaiming_uniform(a=math.sqrt(5)), rngs=nnx.Rngs(i)
        ).kernel[...]
        for i in range(n)
    ]
    ours = np.stack([R.flax_to_torch(np.asarray(k)) for k in kernels])
    _check(ours, scheme, torch_shape, "nnx.Linear")

    scheme = R.kaiming_normal(mode="fan_out", nonlinearity="relu")
    torch_shape = (32, 8, 3, 3)
    n = R.n_draws(torch_shape)
    init = jaxinit.kaiming_normal(mode="fan_out", nonlinearity="relu", layout="flax")
    kernels = [
        nnx.Conv(8, 32, kernel_size=(3, 3), kernel_init=init, rngs=nnx.Rngs(i)).kernel[...]
        for i in range(n)
    ]
    ours = np.stack([R.flax_to_torch(np.asarray(k)) for k in kernels])
    _check(ours, scheme, torch_shape, "nnx.Conv")


def test_eye_dense_equals_torch_and_is_identity():
    module = nn.Dense(6, kernel_init=jaxinit.flax.eye(), use_bias=False)
    x = jax.random.normal(jax.random.key(1), (3, 4))
    params = module.init(jax.random.key(0), x)
    kernel = np.asarray(params["params"]["kernel"])
    w = tinit.eye_(torch.empty(6, 4)).numpy()  # torch weight (out, in)
    np.testing.assert_array_equal(kernel, w.T)
    # y = x @ kernel: the first 4 outputs copy the inputs, the rest are 0
    y = module.apply(params, x)
    np.testing.assert_array_equal(np.asarray(y[:, :4]), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(y[:, 4:]), 0)
    kernel = nnx.Linear(4, 6, kernel_init=jaxinit.eye(layout="flax"), rngs=nnx.Rngs(0)).kernel[...]
    np.testing.assert_array_equal(np.asarray(kernel), w.T)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("kernel_size", [(3,), (3, 3), (3, 3, 3)])
def test_dirac_conv_equals_torch_and_is_identity(kernel_size, groups):
    c = 4
    module = nn.Conv(
        c,
        kernel_size=kernel_size,
        feature_group_count=groups,
        use_bias=False,
        kernel_init=jaxinit.flax.dirac(groups=groups),
    )
    x = jax.random.normal(jax.random.key(1), (2, *([5] * len(kernel_size)), c))
    params = module.init(jax.random.key(0), x)
    kernel = np.asarray(params["params"]["kernel"])
    torch_w = torch.empty(c, c // groups, *kernel_size)
    tinit.dirac_(torch_w, groups)
    np.testing.assert_array_equal(kernel, R.torch_to_flax(torch_w.numpy()))
    # a Dirac conv with "SAME" padding passes its input through
    np.testing.assert_allclose(np.asarray(module.apply(params, x)), np.asarray(x), atol=1e-6)
