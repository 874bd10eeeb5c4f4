"""Property tests (hypothesis): for random schemes, hyperparameters, shapes,
dtypes and layouts, an initializer either raises ValueError/TypeError or
returns a finite array of the requested shape and dtype; builders validate
any hyperparameter without crashing; sparse counts and bounds always hold.

Shapes are small and drawn from few sizes, since every new shape compiles.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import jaxinit
from tests.records import SCHEME_NAMES

SETTINGS = settings(
    deadline=None,
    max_examples=30,
    derandomize=True,  # the same examples on every run
    suppress_health_check=[HealthCheck.too_slow],
)

KEY = jax.random.key(0)
DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16, jnp.complex64]
LAYOUTS = ["torch", "flax", jaxinit.Layout(in_axis=(0, 1), out_axis=-1), None]

# Hyperparameters in the range where every dtype can hold the result (float16's
# largest value is 65504), plus values that must be rejected.
moderate = st.floats(-100.0, 100.0, allow_nan=False)
positive = st.floats(1e-3, 100.0)
anything = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-3, 3),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.just(np.float32(0.5)),
    st.just(np.ones(2)),
)
modes = st.sampled_from(["fan_in", "fan_out", "FAN_IN", "fanin", "", 3])
nonlinearities = st.sampled_from(
    ["linear", "conv2d", "sigmoid", "tanh", "relu", "leaky_relu", "selu", "gelu", None]
)


@st.composite
def builders(draw, value=moderate):
    """(name, builder thunk) with hyperparameters drawn from ``value``."""
    name = draw(st.sampled_from(SCHEME_NAMES))
    kw = {}
    if name == "uniform":
        kw = {"a": draw(value), "b": draw(value)}
    elif name == "normal":
        kw = {"mean": draw(value), "std": draw(st.one_of(positive, value))}
    elif name == "trunc_normal":
        kw = {
            "mean": draw(value),
            "std": draw(st.one_of(positive, value)),
            "a": draw(value),
            "b": draw(value),
        }
    elif name == "constant":
        kw = {"val": draw(value)}
    elif name == "dirac":
        kw = {"groups": draw(st.one_of(st.integers(-1, 4), value))}
    elif name in ("xavier_uniform", "xavier_normal", "orthogonal"):
        kw = {"gain": draw(st.one_of(positive, value))}
    elif name in ("kaiming_uniform", "kaiming_normal"):
        kw = {"a": draw(value), "mode": draw(modes), "nonlinearity": draw(nonlinearities)}
    elif name == "sparse":
        kw = {
            "sparsity": draw(st.one_of(st.floats(0.0, 1.0), value)),
            "std": draw(st.one_of(positive, value)),
        }
    layout = draw(st.sampled_from(LAYOUTS))
    return name, kw, layout


shapes = st.lists(st.sampled_from([0, 1, 2, 3, 4]), min_size=0, max_size=4).map(tuple)


@SETTINGS
@given(builders(), shapes, st.sampled_from(DTYPES))
def test_init_raises_only_value_or_type_errors(spec, shape, dtype):
    name, kw, layout = spec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # trunc_normal's far-tail warning
        try:
            init = getattr(jaxinit, name)(**kw, layout=layout)
        except (ValueError, TypeError) as e:
            event(f"{type(e).__name__} at build")
            return
        try:
            x = init(KEY, shape, dtype)
        except (ValueError, TypeError) as e:
            event(f"{type(e).__name__} at call")
            return
    event("success")
    assert x.shape == shape
    assert x.dtype == dtype
    values = np.asarray(
        x.astype(jnp.complex64) if dtype == jnp.complex64 else x.astype(jnp.float32)
    )
    assert np.isfinite(values).all(), (name, kw, layout, shape, dtype)
    if name == "uniform":
        lo, hi = np.float32(kw["a"]), np.float32(kw["b"])
        parts = (values.real, values.imag) if dtype == jnp.complex64 else (values,)
        for part in parts:
            # float16/bfloat16 round the float32 samples: allow one rounding of slack
            eps = float(jnp.finfo(dtype).eps) * max(abs(lo), abs(hi))
            assert (part >= lo - eps).all() and (part <= hi + eps).all()
    if name == "trunc_normal":
        eps = float(jnp.finfo(dtype).eps) * max(abs(kw["a"]), abs(kw["b"]))
        assert (values >= kw["a"] - eps).all() and (values <= kw["b"] + eps).all()


@settings(deadline=None, max_examples=300, derandomize=True)
@given(builders(value=anything))
def test_builders_validate_anything(spec):
    """Builders never crash on junk: they return an Initializer or raise ValueError/TypeError."""
    name, kw, layout = spec
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            init = getattr(jaxinit, name)(**kw, layout=layout)
        except (ValueError, TypeError):
            return
    assert isinstance(init, jaxinit.Initializer)


@SETTINGS
@given(
    rows=st.sampled_from([1, 7, 10, 64]),
    cols=st.sampled_from([1, 3]),
    sparsity=st.floats(0.0, 1.0),
    layout=st.sampled_from(["torch", "flax"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_sparse_count_property(rows, cols, sparsity, layout, seed):
    """Exactly ceil(sparsity * rows) zeros per input unit, for any sparsity
    (torch's count: Python's float ceil, e.g. 0.28 * 25 -> 8)."""
    init = jaxinit.sparse(sparsity, std=1.0, layout=layout)
    key = jax.random.key(seed)
    if layout == "torch":
        zeros = (np.asarray(init(key, (rows, cols))) == 0).sum(axis=0)
    else:
        zeros = (np.asarray(init(key, (cols, rows))) == 0).sum(axis=1)
    assert (zeros == math.ceil(sparsity * rows)).all()


@SETTINGS
@given(
    mean=st.floats(-10.0, 10.0),
    std=st.floats(1e-2, 10.0),
    lower=st.floats(-12.0, 12.0),
    width=st.floats(1e-3, 24.0),
)
def test_trunc_normal_in_bounds_property(mean, std, lower, width):
    """Values lie in [a, b] (absolute bounds), are finite, and not all on a bound
    unless the interval is a sliver of a far tail."""
    a, b = mean + lower * std, mean + (lower + width) * std
    if not a < b:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        init = jaxinit.trunc_normal(mean, std, a, b)
    x = np.asarray(init(KEY, (64, 16)), np.float64)
    lo, hi = float(np.float32(a)), float(np.float32(b))
    assert np.isfinite(x).all()
    assert x.min() >= lo and x.max() <= hi
    if (hi - lo) > 1e-4 * max(1.0, abs(lo), abs(hi)):
        # a continuous distribution: many distinct values
        assert len(np.unique(x)) > 100


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@SETTINGS
@given(
    shape=st.sampled_from([(4, 4), (3, 7), (7, 3), (2, 3, 2, 2), (5, 1, 2)]),
    gain=st.floats(0.1, 10.0),
    layout=st.sampled_from(["torch", "flax"]),
)
def test_orthogonal_property(dtype, shape, gain, layout):
    w = np.asarray(
        jaxinit.orthogonal(gain, layout=layout)(KEY, shape, dtype).astype(jnp.float32), np.float64
    )
    if layout == "flax":  # back to torch order (out, in, *k)
        w = np.transpose(w, (w.ndim - 1, w.ndim - 2, *range(w.ndim - 2)))
    q = w.reshape(w.shape[0], -1)
    gram = q @ q.T if q.shape[0] <= q.shape[1] else q.T @ q
    tol = 1e-5 if dtype == jnp.float32 else 4 * float(jnp.finfo(dtype).eps)
    np.testing.assert_allclose(gram / gain**2, np.eye(gram.shape[0]), atol=tol)
