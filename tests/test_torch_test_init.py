"""PyTorch's own ``test/nn/test_init.py``, run against jaxinit.

One test per test of torch's ``TestNNInit`` (and of ``TestNNInitDeviceType``,
where torch keeps its ``trunc_normal_`` tests), with torch's test names,
translated to jaxinit's API and written afresh:

- ``init.X_(tensor, ...)`` mutates a tensor; here ``w = jaxinit.X_(w, ..., key=key)``
  returns a new array, and the assertions look at the returned array.
- torch's global RNG, ``manual_seed`` and ``generator=`` become fixed jax keys.
- torch seeds Python's ``random`` with 123 before every test and draws
  random shapes and hyperparameters from it. Each test here draws the
  hyperparameters (and the shapes of the deterministic schemes) from its own
  ``random.Random(123)``. The random schemes get fixed shapes instead
  (``SHAPES``, one per rank): jax compiles one program per shape, and with jax's
  partitionable threefry a program of rank >= 3 takes about 2 s to compile
  on CPU, so torch's fresh shape per case would cost minutes. With the fixed
  keys, every run draws the same numbers, so a passing test always passes.
- The KS tests use scipy's ``stats.kstest`` against the stated distribution
  and accept at torch's threshold, p > 1e-4; exact checks stay exact and
  checks with tolerances keep torch's.
- Where jaxinit differs from torch by design (README, "Differences from torch,
  by design"), a comment says so and the test checks jaxinit's documented
  behaviour instead.

torch's ``test_deprecation`` (the ``init.normal(tensor)`` alias warns) is
not translated: that name is jaxinit's builder, so the alias cannot exist;
``test_deprecated_alias_is_a_type_error`` checks the documented ``TypeError``.
"""

from __future__ import annotations

import math
import random
import string

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxinit

# torch's acceptance threshold for every KS test in test_init.py.
P_MIN = 1e-4
# Fixed shapes for the random schemes, one per rank, shared by all of them so
# that each sampler compiles once per rank. torch draws each size from 30 to 50
# (uniform, normal, trunc_normal) or from 20 to 25 (xavier, kaiming); the 2-D
# shape is from the first range, the 4-D one from the second (a 4-D shape from
# 30 to 50 holds up to 6M values, and a KS test needs far fewer). Sizes differ,
# so that fan_in != fan_out.
SHAPES = {1: (41,), 2: (37, 45), 4: (22, 24, 21, 25)}
# torch's assertEqual tolerances for float32 (torch.testing defaults).
F32_RTOL, F32_ATOL = 1.3e-6, 1e-5


# ----------------------------------------------------------------------------
# Helpers: the same checks as torch's, in numpy


def _rng() -> random.Random:
    """Python's RNG as torch's setUp leaves it (``random.seed(123)``)."""
    return random.Random(123)


def _shape(rng: random.Random, dims: int, lo: int, hi: int) -> tuple[int, ...]:
    """A shape of ``dims`` sizes, each drawn from ``[lo, hi]``."""
    return tuple(rng.randint(lo, hi) for _ in range(dims))


def _between(rng: random.Random, lo: float, hi: float) -> float:
    """A float drawn uniformly from ``[lo, hi)``."""
    return lo + (hi - lo) * rng.random()


def _values(w) -> np.ndarray:
    """The entries of ``w`` as float64, flattened (as torch's ``.tolist()``)."""
    return np.asarray(w, dtype=np.float64).reshape(-1)


def _ks_p(samples: np.ndarray, dist: str, args: tuple[float, ...]) -> float:
    return float(stats.kstest(samples, dist, args=args).pvalue)


def _looks_normal(w, mean: float, std: float) -> bool:
    return _ks_p(_values(w), "norm", (mean, std)) > P_MIN


def _looks_uniform(w, low: float, high: float) -> bool:
    # scipy's uniform takes (loc, scale) = (low, high - low).
    return _ks_p(_values(w), "uniform", (low, high - low)) > P_MIN


def _looks_trunc_normal(w, mean: float, std: float, a: float, b: float) -> bool:
    # scipy's truncnorm is standardized: test (w - mean) / std on the
    # standardized bounds [(a - mean) / std, (b - mean) / std].
    z = (_values(w) - mean) / std
    return _ks_p(z, "truncnorm", ((a - mean) / std, (b - mean) / std)) > P_MIN


def _torch_fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """torch's fans, written out: in = shape[1], out = shape[0], both times the kernel size."""
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _keys(n: int, seed: int = 0):
    return jax.random.split(jax.random.key(seed), n)


# ----------------------------------------------------------------------------
# calculate_gain


def test_calculate_gain_linear():
    # torch's list names conv_transpose2d twice and not conv_transpose1d; all three are here.
    for fn in (
        "linear",
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
    ):
        assert jaxinit.calculate_gain(fn) == 1


def test_calculate_gain_nonlinear():
    # torch's loop leaves "selu" out of its list, so its selu branch never runs;
    # it is included here.
    expected = {
        "sigmoid": 1,
        "tanh": 1.6666666666666667,  # 5 / 3
        "relu": 1.4142135623730951,  # sqrt(2)
        "leaky_relu": 1.4141428569978354,  # sqrt(2 / (1 + 0.01 ** 2))
        "selu": 0.75,
    }
    for fn, gain in expected.items():
        assert jaxinit.calculate_gain(fn) == gain, fn


def test_calculate_gain_leaky_relu():
    expected = [
        (None, 1.4141428569978354),  # default slope 0.01
        (0, 1.4142135623730951),  # no slope: relu's gain
        (0.01, 1.4141428569978354),
        (10, 0.14071950894605836),
    ]
    for param, gain in expected:
        assert jaxinit.calculate_gain("leaky_relu", param) == gain, param


def test_calculate_gain_leaky_relu_only_accepts_numbers():
    for param in (True, [1], {"a": "b"}):
        with pytest.raises(ValueError):
            jaxinit.calculate_gain("leaky_relu", param)


def test_calculate_gain_only_accepts_valid_nonlinearities():
    rng = _rng()
    for n in (2, 5, 25):
        name = "".join(rng.choice(string.ascii_lowercase) for _ in range(n))
        with pytest.raises(ValueError):
            jaxinit.calculate_gain(name)


# ----------------------------------------------------------------------------
# uniform, normal, trunc_normal, constant, ones, zeros


def test_uniform():
    rng = _rng()
    for dims, key in zip((1, 2, 4), _keys(3)):
        w = np.zeros(SHAPES[dims], np.float32)
        a = _between(rng, -3, 3)
        b = a + _between(rng, 1, 5)
        w = jaxinit.uniform_(w, a=a, b=b, key=key)
        assert _looks_uniform(w, a, b), (dims, a, b)


def test_normal():
    rng = _rng()
    for dims, key in zip((1, 2, 4), _keys(3)):
        w = np.zeros(SHAPES[dims], np.float32)
        mean = _between(rng, -3, 3)
        std = _between(rng, 1, 5)
        w = jaxinit.normal_(w, mean=mean, std=std, key=key)
        assert _looks_normal(w, mean, std), (dims, mean, std)


def test_trunc_normal_generator():
    # By design: torch's `generator=` is jaxinit's `key=`. torch checks that a
    # generator seeded 42 draws what the global RNG seeded 42 draws; here the
    # same key draws bitwise the same values through `trunc_normal_`, through
    # the builder, and again.
    key = jax.random.key(42)
    w = jaxinit.trunc_normal_(jnp.zeros(5), key=key)
    np.testing.assert_array_equal(w, jaxinit.trunc_normal()(key, (5,)))
    np.testing.assert_array_equal(w, jaxinit.trunc_normal_(jnp.zeros(5), key=key))
    assert not np.array_equal(w, jaxinit.trunc_normal_(jnp.zeros(5), key=jax.random.key(43)))
    # torch's KS check, with torch's arguments: it passes the bounds (0, 1)
    # although the values are drawn on the default (-2, 2); five values make
    # it a weak check either way. The drawn bounds are checked too.
    assert _looks_trunc_normal(w, mean=0, std=1, a=0, b=1)
    assert _looks_trunc_normal(w, mean=0, std=1, a=-2, b=2)


def test_constant():
    rng = _rng()
    for dims in (1, 2, 4):
        w = jnp.zeros(_shape(rng, dims, 1, 5))
        val = _between(rng, 1, 10)
        w2 = jaxinit.constant_(w, val)
        # torch's fill_ stores the Python float rounded to float32.
        assert w2.shape == w.shape and w2.dtype == jnp.float32
        np.testing.assert_array_equal(w2, np.full(w.shape, val, dtype=np.float32))


def test_ones_and_zeros():
    for fn, val in ((jaxinit.ones_, 1), (jaxinit.zeros_, 0)):
        rng = _rng()
        for dims in (1, 2, 4):
            # start from the other value, so that the result cannot be the input
            w = jnp.full(_shape(rng, dims, 1, 5), 1 - val, dtype=jnp.float32)
            w2 = fn(w)
            assert w2.shape == w.shape and w2.dtype == jnp.float32
            np.testing.assert_array_equal(w2, np.full(w.shape, val, dtype=np.float32))


# ----------------------------------------------------------------------------
# eye, dirac


def test_eye():
    rng = _rng()
    w = jaxinit.eye_(jnp.zeros(_shape(rng, 2, 1, 5)))
    w = np.asarray(w)
    rows, cols = w.shape
    for i in range(rows):
        for j in range(cols):
            assert w[i, j] == (1 if i == j else 0), (i, j, w[i, j])


def test_eye_only_works_on_2d_inputs():
    rng = _rng()
    for dims in (1, 3):
        with pytest.raises(ValueError):
            jaxinit.eye_(jnp.zeros(_shape(rng, dims, 1, 3)))


def test_dirac_properties():
    rng = _rng()
    values = np.random.default_rng(0)
    for dims in (3, 4, 5):
        for groups in (1, 2, 3):
            a, c, d, e = (rng.randint(1, 5) for _ in range(4))
            b = rng.randint(1, 5 * groups)
            shape = (a * groups, b, c, d, e)[:dims]
            # torch starts from a randn tensor; the result must not depend on it
            w = values.standard_normal(shape).astype(np.float32)
            w = jaxinit.dirac_(w, groups)
            w = np.asarray(w)
            min_d = min(shape[0] // groups, shape[1])
            assert np.count_nonzero(w) == min_d * groups, (shape, groups)
            np.testing.assert_allclose(w.sum(), min_d * groups, rtol=F32_RTOL, atol=F32_ATOL)


def _conv(x, w):
    """``F.convNd(x, w)`` (stride 1, no padding, one group), as ``lax.conv_general_dilated``."""
    spatial = "DHW"[3 - (x.ndim - 2) :]
    dn = ("NC" + spatial, "OI" + spatial, "NC" + spatial)
    return jax.lax.conv_general_dilated(
        x,
        w,
        window_strides=(1,) * (x.ndim - 2),
        padding="VALID",
        dimension_numbers=dn,
        precision=jax.lax.Precision.HIGHEST,
    )


def test_dirac_identity():
    # torch's F.conv1d/2d/3d become jax.lax.conv_general_dilated (see _conv),
    # with torch's (N, C, *spatial) inputs and (out, in, *k) weights.
    batch, in_c, out_c, size, kernel = 8, 3, 9, 5, 3
    values = np.random.default_rng(0)
    for groups in (1, 3):
        per_group = out_c // groups
        for n_spatial in (1, 2, 3):
            x = values.standard_normal((batch, in_c, *(size,) * n_spatial)).astype(np.float32)
            # torch concatenates `groups` zero weights of (per_group, in_c, *k)
            w = np.zeros((per_group * groups, in_c, *(kernel,) * n_spatial), np.float32)
            w = jaxinit.dirac_(w, groups)
            y = np.asarray(_conv(x, w))
            inner = x[(slice(None), slice(None), *(slice(1, -1),) * n_spatial)]
            for g in range(groups):
                start = per_group * g
                # the first in_c outputs of each group reproduce the input
                np.testing.assert_allclose(
                    y[:, start : start + in_c], inner, rtol=F32_RTOL, atol=F32_ATOL
                )
                # the group's other outputs are zero
                assert np.count_nonzero(y[:, start + in_c : per_group * (g + 1)]) == 0


def test_dirac_only_works_on_3_4_5d_inputs():
    rng = _rng()
    for dims in (1, 2, 6):
        with pytest.raises(ValueError):
            jaxinit.dirac_(jnp.zeros(_shape(rng, dims, 1, 3)))


# ----------------------------------------------------------------------------
# xavier


def test_xavier_uniform_errors_on_inputs_smaller_than_2d():
    rng = _rng()
    for dims in (0, 1):
        w = jnp.zeros(_shape(rng, dims, 1, 1))
        with pytest.raises(ValueError):
            jaxinit.xavier_uniform_(w, key=jax.random.key(0))


def test_xavier_normal_errors_on_inputs_smaller_than_2d():
    rng = _rng()
    for dims in (0, 1):
        w = jnp.zeros(_shape(rng, dims, 1, 1))
        with pytest.raises(ValueError):
            jaxinit.xavier_normal_(w, key=jax.random.key(0))


def _xavier_cases(fn):
    """Runs torch's xavier loop with ``fn``; yields (array, gain, fan_in, fan_out)."""
    rng = _rng()
    keys = iter(_keys(4))
    for use_gain in (True, False):
        for dims in (2, 4):
            w = np.zeros(SHAPES[dims], np.float32)
            key = next(keys)
            if use_gain:
                gain = _between(rng, 0.1, 2)
                w = fn(w, gain=gain, key=key)
            else:
                gain = 1
                w = fn(w, key=key)
            yield w, gain, *_torch_fans(w.shape)


def test_xavier_uniform():
    # torch marks this @slowTest; here it takes well under a second, so it is not slow.
    for w, gain, fan_in, fan_out in _xavier_cases(jaxinit.xavier_uniform_):
        bound = gain * math.sqrt(2.0 / (fan_in + fan_out)) * math.sqrt(3)
        assert _looks_uniform(w, -bound, bound), (w.shape, gain)


def test_xavier_normal():
    for w, gain, fan_in, fan_out in _xavier_cases(jaxinit.xavier_normal_):
        std = gain * math.sqrt(2.0 / (fan_in + fan_out))
        assert _looks_normal(w, 0, std), (w.shape, gain)


# ----------------------------------------------------------------------------
# kaiming


def test_kaiming_uniform_errors_on_inputs_smaller_than_2d():
    rng = _rng()
    for dims in (0, 1):
        with pytest.raises(ValueError):
            jaxinit.kaiming_uniform_(jnp.zeros(_shape(rng, dims, 1, 1)), key=jax.random.key(0))


def test_kaiming_normal_errors_on_inputs_smaller_than_2d():
    rng = _rng()
    for dims in (0, 1):
        with pytest.raises(ValueError):
            jaxinit.kaiming_normal_(jnp.zeros(_shape(rng, dims, 1, 1)), key=jax.random.key(0))


def test_kaiming_uniform_warning_on_0element_tensor():
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        w = jaxinit.kaiming_uniform_(jnp.zeros((0, 1)), key=jax.random.key(0))
    # the no-op: an empty array of the same shape and dtype
    assert w.shape == (0, 1) and w.dtype == jnp.float32


def test_kaiming_normal_warning_on_0element_tensor():
    with pytest.warns(UserWarning, match="Initializing zero-element tensors is a no-op"):
        w = jaxinit.kaiming_normal_(jnp.zeros((0, 1)), key=jax.random.key(0))
    assert w.shape == (0, 1) and w.dtype == jnp.float32


def _kaiming_cases(fn):
    """Runs torch's kaiming loop with ``fn``; yields (array, a, mode, fan for mode)."""
    rng = _rng()
    keys = iter(_keys(8))
    for use_a in (True, False):
        for dims in (2, 4):
            for mode in ("fan_in", "fan_out"):
                w = np.zeros(SHAPES[dims], np.float32)
                key = next(keys)
                if use_a:
                    a = _between(rng, 0.1, 2)
                    w = fn(w, a=a, mode=mode, key=key)
                else:
                    a = 0
                    w = fn(w, mode=mode, key=key)
                fan_in, fan_out = _torch_fans(w.shape)
                yield w, a, mode, fan_in if mode == "fan_in" else fan_out


def test_kaiming_uniform():
    for w, a, mode, n in _kaiming_cases(jaxinit.kaiming_uniform_):
        bound = math.sqrt(2.0 / ((1 + a**2) * n)) * math.sqrt(3.0)
        assert _looks_uniform(w, -bound, bound), (w.shape, a, mode)


def test_kaiming_normal():
    for w, a, mode, n in _kaiming_cases(jaxinit.kaiming_normal_):
        std = math.sqrt(2.0 / ((1 + a**2) * n))
        assert _looks_normal(w, 0, std), (w.shape, a, mode)


# ----------------------------------------------------------------------------
# sparse, orthogonal


def test_sparse_only_works_on_2d_inputs():
    rng = _rng()
    for dims in (1, 3):
        sparsity = _between(rng, 0.1, 0.9)
        w = jnp.zeros(_shape(rng, dims, 1, 3))
        with pytest.raises(ValueError):
            jaxinit.sparse_(w, sparsity, key=jax.random.key(0))


def test_sparse_default_std():
    rng = _rng()
    for use_random_std, key in zip((True, False), _keys(2)):
        w = np.zeros((33, 31), np.float32)  # torch: sizes from 30 to 35
        rows = w.shape[0]
        sparsity = _between(rng, 0.1, 0.2)
        if use_random_std:
            std = _between(rng, 0.01, 0.2)
            w = jaxinit.sparse_(w, sparsity=sparsity, std=std, key=key)
        else:
            std = 0.01  # the default
            w = jaxinit.sparse_(w, sparsity=sparsity, key=key)
        w = np.asarray(w)
        zeros_per_column = (w == 0).sum(axis=0)
        assert (zeros_per_column >= math.ceil(sparsity * rows)).all(), zeros_per_column
        assert _looks_normal(w[w != 0], 0, std), (w.shape, sparsity, std)


def test_orthogonal():
    rng = _rng()
    keys = iter(_keys(8))
    for use_gain in (True, False):
        for shape in ((3, 4), (4, 3), (20, 2, 3, 4), (2, 3, 4, 5)):
            key = next(keys)
            if use_gain:
                gain = _between(rng, 0.1, 2)
                w = jaxinit.orthogonal_(np.zeros(shape, np.float32), gain=gain, key=key)
            else:
                gain = 1.0
                w = jaxinit.orthogonal_(np.zeros(shape, np.float32), key=key)
            rows = shape[0]
            cols = math.prod(shape[1:])
            flat = np.asarray(w).reshape(rows, cols)
            # the float32 entries' products, computed in float64
            flat = flat.astype(np.float64)
            gram = flat.T @ flat if rows > cols else flat @ flat.T
            np.testing.assert_allclose(
                gram, np.eye(min(rows, cols)) * gain**2, atol=1e-6, rtol=0, err_msg=str(shape)
            )


def test_deprecated_alias_is_a_type_error():
    # torch's test_deprecation checks that `init.normal(tensor)` warns; by
    # design that alias cannot exist (`jaxinit.normal` is the builder), and
    # passing an array to the builder raises a TypeError naming `normal_`.
    with pytest.raises(TypeError, match="normal_"):
        jaxinit.normal(jnp.zeros((3, 3)))


# ----------------------------------------------------------------------------
# torch's TestNNInitDeviceType: trunc_normal_ across dtypes (CPU here).
# float64 needs jax_enable_x64 (by design), hence the x64 fixture.

_DTYPES = {
    "float32": jnp.float32,
    "float64": jnp.float64,
    "float16": jnp.float16,
    "bfloat16": jnp.bfloat16,
}


def _enable(dtype: str, request) -> None:
    if dtype == "float64":
        request.getfixturevalue("x64")


def _f64(x) -> np.ndarray:
    """A jax array (any float dtype, bfloat16 included) as float64 numpy values."""
    return np.asarray(x).astype(np.float64)


def _check_bounds(w, a: float, b: float, dtype: str) -> None:
    """No value outside [a, b], with a and b rounded to the array's dtype as torch rounds them."""
    values = _f64(w)
    lo = float(_f64(jnp.asarray(a, dtype=_DTYPES[dtype])))
    hi = float(_f64(jnp.asarray(b, dtype=_DTYPES[dtype])))
    assert values.min() >= lo, (dtype, values.min(), a)
    assert values.max() <= hi, (dtype, values.max(), b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("dims", [1, 2, 4])
def test_trunc_normal_all_dtypes(dims, dtype, request):
    # Its float32 cases are the former TestNNInit.test_trunc_normal.
    _enable(dtype, request)
    rng = _rng()
    shape = SHAPES[dims]
    mean = rng.uniform(-3, 3)
    std = rng.uniform(0.01, 1)
    a = rng.uniform(mean - 2 * std, mean)
    b = rng.uniform(mean, mean + 2 * std)
    w = jnp.zeros(shape, dtype=_DTYPES[dtype])
    w = jaxinit.trunc_normal_(w, mean=mean, std=std, a=a, b=b, key=jax.random.key(dims))
    assert w.dtype == _DTYPES[dtype]
    _check_bounds(w, a, b, dtype)
    assert _looks_trunc_normal(w, mean, std, a, b), (shape, mean, std, a, b)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_trunc_normal_low_precision(dtype):
    mean, std, a, b = 0.0, 1.0, -2.0, 2.0
    w = jnp.empty(10_000, dtype=_DTYPES[dtype])
    w = jaxinit.trunc_normal_(w, mean=mean, std=std, a=a, b=b, key=jax.random.key(0))
    assert w.dtype == _DTYPES[dtype]
    _check_bounds(w, a, b, dtype)
    assert _looks_trunc_normal(w, mean, std, a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_trunc_normal_narrow_interval(dtype, request):
    # an interval [2, 3] one std wide, two std from the mean (torch leaves out
    # bfloat16: its 65 values in [2, 3] fail a KS test legitimately)
    _enable(dtype, request)
    mean, std, a, b = 0.0, 1.0, 2.0, 3.0
    w = jnp.empty(10_000, dtype=_DTYPES[dtype])
    w = jaxinit.trunc_normal_(w, mean=mean, std=std, a=a, b=b, key=jax.random.key(0))
    assert w.dtype == _DTYPES[dtype]
    _check_bounds(w, a, b, dtype)
    assert _looks_trunc_normal(w, mean, std, a, b)


@pytest.mark.parametrize(
    "dtype,min_unique",
    [("float32", 5000), ("float64", 5000), ("float16", 3000), ("bfloat16", 1000)],
)
def test_trunc_normal_unique_values(dtype, min_unique, request):
    _enable(dtype, request)
    w = jnp.empty(10_000, dtype=_DTYPES[dtype])
    w = jaxinit.trunc_normal_(w, mean=0.0, std=1.0, a=-2.0, b=2.0, key=jax.random.key(0))
    assert w.dtype == _DTYPES[dtype]
    _check_bounds(w, -2.0, 2.0, dtype)
    values = _f64(w)
    assert np.unique(values).size > min_unique
    assert not np.isinf(values).any()
    assert not np.isnan(values).any()


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_trunc_normal_no_boundary_values_small_std(dtype, request):
    # bounds at 20 std: no value may be rounded onto them
    _enable(dtype, request)
    w = jnp.empty(10_000, dtype=_DTYPES[dtype])
    w = jaxinit.trunc_normal_(w, mean=0.0, std=0.1, a=-2.0, b=2.0, key=jax.random.key(0))
    values = _f64(w)
    assert (values == -2.0).sum() == 0
    assert (values == 2.0).sum() == 0
