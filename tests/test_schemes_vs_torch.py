"""Every scheme against real torch.nn.init (torch 2.13): distributions by KS and
moments, deterministic schemes bit for bit, structure (orthogonality, sparsity)
exactly, in the torch layout (``jaxinit.X``) and the flax layout
(``jaxinit.flax.X``, i.e. the flax variant)."""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.init as tinit

import jaxinit
from tests import records as R
from tests.records import RANDOM, SHAPES, Scheme

LAYOUTS = ("torch", "flax")


def _draw_both(scheme: Scheme, torch_shape, layout: str, seed: int = 0, dtype: str = "float32"):
    """Pooled jaxinit draws (moved to the torch layout) and torch draws, each >= 20k values."""
    needed = scheme.moments(torch_shape).samples_needed() if scheme.moments else R.MIN_SAMPLES
    if scheme.kind == "sparse":  # enough draws that the non-zeros alone suffice
        rows = torch_shape[0]
        keep = (rows - math.ceil(scheme.kwargs["sparsity"] * rows)) / rows
        needed = math.ceil(needed / keep)
    n = R.n_draws(torch_shape, needed)
    init = scheme.make(layout)
    shape = R.layout_shape(torch_shape, layout)
    ours = R.jax_draws(init, shape, n, seed=seed, dtype=R.JAX_DTYPES[dtype])
    ours = np.stack([R.to_torch_layout(w, layout) for w in ours])
    theirs = R.torch_draws(scheme, torch_shape, n, seed=seed, dtype=dtype)
    assert ours.shape == theirs.shape == (n, *torch_shape)
    return ours, theirs


def check_against_torch(scheme: Scheme, torch_shape, layout: str, seed: int = 0) -> None:
    ours, theirs = _draw_both(scheme, torch_shape, layout, seed)
    what = f"{scheme.id} {layout} {torch_shape}"
    m = scheme.moments(torch_shape)
    if scheme.kind == "sparse":
        # Exactly torch's number of zeros in every column (torch layout), ...
        rows = torch_shape[0]
        np.testing.assert_array_equal((ours == 0).sum(axis=1), (theirs == 0).sum(axis=1))
        assert ((ours == 0).sum(axis=1) == math.ceil(scheme.kwargs["sparsity"] * rows)).all()
        # ... and the non-zeros distributed as torch's.
        ours, theirs = ours[ours != 0], theirs[theirs != 0]
    R.assert_ks(ours, theirs, what)
    R.assert_moments(ours, m, what)
    R.assert_moments(theirs, m, f"torch {what}")  # the stated math is torch's
    if m.low is not None:
        R.assert_bounds(ours, m, what)
        R.assert_bounds(theirs, m, f"torch {what}")


def _cases(schemes, shapes, layouts=LAYOUTS):
    for scheme in schemes:
        for shape in shapes:
            if len(shape) not in scheme.ranks:
                continue
            for layout in layouts:
                yield pytest.param(scheme, shape, layout, id=f"{scheme.id}-{layout}-{shape}")


@pytest.mark.parametrize("scheme,torch_shape,layout", list(_cases(RANDOM, SHAPES)))
def test_distribution_matches_torch(scheme: Scheme, torch_shape, layout):
    check_against_torch(scheme, torch_shape, layout)


@pytest.mark.slow
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("scheme", RANDOM, ids=lambda s: s.id)
def test_distribution_matches_torch_large_sample(scheme: Scheme, layout):
    """~500k values a side: KS sees much smaller differences, and 5 standard
    errors of the std are ~0.5% (1% std errors are caught)."""
    torch_shape = (64, 32) if scheme.kind == "sparse" else (64, 32, 3, 3)
    n = 25 if scheme.kind != "sparse" else 360
    ours, theirs = _draw_both(scheme, torch_shape, layout, seed=3)
    ours = np.concatenate(
        [
            ours,
            *[
                _draw_both(scheme, torch_shape, layout, seed=100 + i)[0]
                for i in range(n // len(ours))
            ],
        ]
    )
    theirs = R.torch_draws(scheme, torch_shape, len(ours), seed=4)
    if scheme.kind == "sparse":
        ours, theirs = ours[ours != 0], theirs[theirs != 0]
    m = scheme.moments(torch_shape)
    R.assert_ks(ours, theirs, scheme.id)
    R.assert_moments(ours, m, scheme.id)
    assert R.N_SE * R.std_se(m.std, m.kurtosis, ours.size) <= 0.006 * m.std


# Hyperparameter variations: each row is a torch call with non-default arguments.
VARIATIONS = (
    R.kaiming_normal(mode="fan_out"),
    R.kaiming_uniform(mode="fan_out"),
    R.kaiming_normal(nonlinearity="relu"),
    R.kaiming_normal(mode="fan_out", nonlinearity="relu"),
    R.kaiming_normal(nonlinearity="tanh"),
    R.kaiming_uniform(nonlinearity="tanh"),
    R.kaiming_normal(a=0.2, nonlinearity="leaky_relu"),
    R.kaiming_uniform(a=0.2, mode="fan_out", nonlinearity="leaky_relu"),
    R.kaiming_normal(nonlinearity="selu"),
    R.kaiming_uniform(a=math.sqrt(5)),  # torch's nn.Linear / ConvNd default
    R.kaiming_normal(nonlinearity="linear"),
    R.xavier_uniform(gain=tinit.calculate_gain("relu")),
    R.xavier_normal(gain=0.5),
    R.xavier_normal(gain=tinit.calculate_gain("tanh")),
    R.trunc_normal(mean=0.0, std=0.02),
    R.trunc_normal(mean=1.0, std=2.0, a=-1.0, b=3.0),
    R.trunc_normal(mean=0.0, std=1.0, a=-0.5, b=0.5),
    R.trunc_normal(mean=0.5, std=1.0, a=0.0, b=10.0),
    R.uniform(-3.0, -1.0),
    R.uniform(0.0, 1e-3),
    R.normal(-1.0, 0.1),
    R.orthogonal(gain=2.0),
    R.sparse(0.1, std=0.5),
    R.sparse(0.75),
)


def _variation_cases():
    # Each variation on a conv shape in the torch layout and a dense shape in
    # the flax layout (layouts x shapes are covered by the test above).
    for scheme in VARIATIONS:
        if 4 in scheme.ranks:
            yield pytest.param(scheme, (32, 16, 3, 3), "torch", id=f"{scheme.id}-torch")
        yield pytest.param(scheme, (24, 40), "flax", id=f"{scheme.id}-flax")
        if 4 not in scheme.ranks:
            yield pytest.param(scheme, (40, 24), "torch", id=f"{scheme.id}-torch")


@pytest.mark.parametrize("scheme,torch_shape,layout", list(_variation_cases()))
def test_hyperparameters_match_torch(scheme: Scheme, torch_shape, layout):
    check_against_torch(scheme, torch_shape, layout, seed=1)


# Far tails: torch warns that the mean is more than 2 std from [a, b]; both
# must still sample the truncated normal exactly.
FAR_TAILS = (
    R.trunc_normal(mean=0.0, std=1.0, a=3.0, b=4.0),
    R.trunc_normal(mean=0.0, std=1.0, a=-4.0, b=-3.0),
    R.trunc_normal(mean=0.0, std=1.0, a=8.0, b=9.0),
    R.trunc_normal(mean=2.0, std=0.5, a=-1.0, b=-0.5),
)


@pytest.mark.parametrize("scheme", FAR_TAILS, ids=lambda s: s.id)
def test_trunc_normal_far_tail_matches_torch(scheme: Scheme):
    with pytest.warns(UserWarning, match="mean is more than 2 std from"):
        init = scheme.make()
    shape = (100, 200)
    m = scheme.moments(shape)
    n = R.n_draws(shape, m.samples_needed())
    ours = R.jax_draws(init, shape, n)
    theirs = R.torch_draws(scheme, shape, n)
    R.assert_ks(ours, theirs, scheme.id)
    R.assert_moments(ours, m, scheme.id)
    assert ours.min() >= scheme.kwargs["a"] and ours.max() <= scheme.kwargs["b"]


def test_trunc_normal_std_002_is_not_cut():
    """trunc_normal(std=0.02) keeps torch's absolute bounds (+-2 = +-100 std): nothing is cut,
    so it is N(0, 0.02^2), unlike jax's truncated_normal (bounds in std units)."""
    shape = (200, 200)
    ours = R.jax_draws(jaxinit.trunc_normal(std=0.02), shape, 1).ravel()
    untruncated = R.torch_draws(R.normal(0.0, 0.02), shape, 1).ravel()
    R.assert_ks(ours, untruncated, "trunc_normal(std=0.02) vs normal_(std=0.02)")
    R.assert_moments(ours, R.Moments(0.0, 0.02, 3.0), "trunc_normal(std=0.02)")
    # 40k draws of N(0, 1) reach beyond 3.5 std with probability 1 - (1 - 4.7e-4)^40000 ~ 1.
    assert np.abs(ours).max() > 3.5 * 0.02


@pytest.mark.parametrize(
    "mean,std,a,b",
    [
        (0.0, 1.0, -2.0, 2.0),
        (0.0, 0.02, -2.0, 2.0),
        (1.0, 2.0, -1.0, 3.0),
        (0.0, 1.0, 0.0, 1e-3),
        (5.0, 3.0, 4.0, 4.5),
        (-1.0, 10.0, -1.0, 1e6),
    ],
)
@pytest.mark.parametrize("dtype", R.REAL_DTYPES)
def test_trunc_normal_within_bounds(mean, std, a, b, dtype, request):
    if dtype == "float64":
        request.getfixturevalue("x64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        init = jaxinit.trunc_normal(mean, std, a, b)
    x = np.asarray(init(jax.random.key(3), (300, 100), R.JAX_DTYPES[dtype]), np.float64)
    # Bounds rounded to the dtype, as torch's rejection mask (lo/hi cast to the
    # tensor dtype); a bound beyond the dtype's range cuts nothing.
    finfo = jnp.finfo(R.JAX_DTYPES[dtype])
    lo, hi = (
        float(np.asarray(np.clip(v, float(finfo.min), float(finfo.max)), R.JAX_DTYPES[dtype]))
        for v in (a, b)
    )
    assert np.isfinite(x).all()
    assert x.min() >= lo and x.max() <= hi


# ----------------------------------------------------------------------------
# Degenerate hyperparameters torch allows


def test_uniform_a_equals_b_is_constant():
    t = torch.empty(4, 5)
    tinit.uniform_(t, 0.25, 0.25)
    x = jaxinit.uniform(0.25, 0.25)(jax.random.key(0), (4, 5))
    np.testing.assert_array_equal(np.asarray(x), t.numpy())


def test_normal_std_zero_is_constant():
    t = torch.empty(4, 5)
    tinit.normal_(t, 0.75, 0.0)
    x = jaxinit.normal(0.75, 0.0)(jax.random.key(0), (4, 5))
    np.testing.assert_array_equal(np.asarray(x), t.numpy())


# ----------------------------------------------------------------------------
# Deterministic schemes: bit for bit, both layouts


def _torch_det(fn, torch_shape, dtype, *args, **kwargs) -> np.ndarray:
    w = torch.full(torch_shape, float("nan"), dtype=R.TORCH_DTYPES[dtype])
    fn(w, *args, **kwargs)
    if dtype == "bfloat16":
        return w.float().numpy()
    return w.numpy()


def _ours(init, shape, dtype) -> np.ndarray:
    x = init(None, shape, R.JAX_DTYPES[dtype])
    assert x.dtype == R.JAX_DTYPES[dtype]
    return np.asarray(x.astype(jnp.float32) if dtype == "bfloat16" else x)


DET_DTYPES = ("float32", "bfloat16", "float16", "float64", "complex64")
# 1 + 2**-11 + 2**-40 sits just above a float16 tie: torch rounds it through
# float32 (to 1 + 2**-11, then to even: 1.0); a direct float64 -> float16
# rounding gives 1 + 2**-10.
CONSTANTS = (0.1, 1 / 3, -2.5, 0.0, 1e-8, 1 + 2**-11 + 2**-40, 1 + 2**-8 + 2**-40, 65504.0)


def _x64_if(dtype, request):
    if dtype in ("float64", "complex128"):
        request.getfixturevalue("x64")


@pytest.mark.parametrize("dtype", DET_DTYPES)
@pytest.mark.parametrize("val", CONSTANTS, ids=repr)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_constant_bitwise(val, dtype, layout, request):
    _x64_if(dtype, request)
    torch_shape = (4, 3, 2)
    expected = _torch_det(tinit.constant_, torch_shape, dtype, val)
    init = jaxinit.constant(val, layout=layout)
    got = _ours(init, R.layout_shape(torch_shape, layout), dtype)
    np.testing.assert_array_equal(R.to_torch_layout(got, layout), expected)


@pytest.mark.parametrize("dtype", ("float16", "bfloat16", "float32"))
def test_constant_overflow_raises_like_torch(dtype):
    big = {"float16": 65519.0, "bfloat16": 3.39e38, "float32": 3.5e38}[dtype]
    with pytest.raises(RuntimeError, match="without overflow"):
        tinit.constant_(torch.empty(2, dtype=R.TORCH_DTYPES[dtype]), big)
    with pytest.raises(ValueError, match="without overflow"):
        jaxinit.constant(big)(None, (2,), R.JAX_DTYPES[dtype])


@pytest.mark.parametrize(
    "dtype,a,b,match",
    [
        ("float16", -1e5, 1.0, "from is out of bounds"),
        ("float16", 0.0, 7e4, "to is out of bounds"),
        ("bfloat16", -3.5e38, 0.0, "from is out of bounds"),
        ("float32", -3.5e38, 0.0, "from is out of bounds"),
    ],
)
def test_uniform_out_of_bounds_raises_like_torch(dtype, a, b, match):
    with pytest.raises(RuntimeError, match=match):
        torch.empty(3, dtype=R.TORCH_DTYPES[dtype]).uniform_(a, b)
    with pytest.raises(ValueError, match=match):
        jaxinit.uniform(a, b)(jax.random.key(0), (3,), R.JAX_DTYPES[dtype])


@pytest.mark.parametrize("dtype", DET_DTYPES)
@pytest.mark.parametrize("name", ("ones", "zeros"))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_ones_zeros_bitwise(name, dtype, layout, request):
    _x64_if(dtype, request)
    torch_shape = (5, 3, 2, 2)
    expected = _torch_det(getattr(tinit, f"{name}_"), torch_shape, dtype)
    got = _ours(getattr(jaxinit, name)(layout=layout), R.layout_shape(torch_shape, layout), dtype)
    np.testing.assert_array_equal(R.to_torch_layout(got, layout), expected)


@pytest.mark.parametrize("dtype", DET_DTYPES)
@pytest.mark.parametrize("torch_shape", [(3, 5), (5, 3), (4, 4), (1, 7)])
def test_eye_bitwise(torch_shape, dtype, request):
    _x64_if(dtype, request)
    expected = _torch_det(tinit.eye_, torch_shape, dtype)
    np.testing.assert_array_equal(_ours(jaxinit.eye(), torch_shape, dtype), expected)
    # flax layout (in, out): torch's eye_ on (out, in), transposed.
    np.testing.assert_array_equal(
        _ours(jaxinit.eye(layout="flax"), torch_shape[::-1], dtype), expected.T
    )
    np.testing.assert_array_equal(_ours(jaxinit.flax.eye(), torch_shape[::-1], dtype), expected.T)


DIRAC_CASES = [
    ((6, 4, 3), 1),
    ((6, 4, 3), 2),
    ((6, 4, 3), 3),
    ((6, 2, 4), 3),
    ((4, 6, 3, 3), 1),
    ((6, 2, 3, 3), 2),
    ((6, 2, 3, 3), 3),
    ((12, 3, 4, 5), 3),
    ((2, 5, 1, 2), 2),
    ((4, 4, 3, 3, 3), 1),
    ((6, 3, 3, 2, 3), 2),
    ((6, 1, 3, 3, 3), 3),
]


@pytest.mark.parametrize("dtype", DET_DTYPES)
@pytest.mark.parametrize("torch_shape,groups", DIRAC_CASES, ids=str)
def test_dirac_bitwise(torch_shape, groups, dtype, request):
    _x64_if(dtype, request)
    expected = _torch_det(tinit.dirac_, torch_shape, dtype, groups)
    got = _ours(jaxinit.dirac(groups), torch_shape, dtype)
    np.testing.assert_array_equal(got, expected)
    got_flax = _ours(jaxinit.dirac(groups, layout="flax"), R.flax_shape(torch_shape), dtype)
    np.testing.assert_array_equal(got_flax, R.torch_to_flax(expected))


# ----------------------------------------------------------------------------
# orthogonal: structure to 1e-5, and the distribution of the entries


ORTHO_SHAPES = [
    (64, 32),
    (32, 64),
    (20, 300),
    (300, 20),
    (16, 16),
    (32, 16, 3, 3),
    (8, 16, 3, 3),
    (100, 4, 3, 3),
    (6, 4, 2, 2, 2),
    (48, 16, 5),
]


@pytest.mark.parametrize("gain", [1.0, 2.5])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("torch_shape", ORTHO_SHAPES, ids=str)
def test_orthogonal_is_orthogonal(torch_shape, layout, gain):
    init = jaxinit.orthogonal(gain, layout=layout)
    w = np.asarray(init(jax.random.key(7), R.layout_shape(torch_shape, layout)), np.float64)
    # torch flattens the (out, in, *k) weight to rows = out, cols = in * prod(k).
    q = R.to_torch_layout(w, layout).reshape(torch_shape[0], -1)
    rows, cols = q.shape
    gram = q @ q.T if rows <= cols else q.T @ q
    np.testing.assert_allclose(gram, gain**2 * np.eye(min(rows, cols)), atol=1e-5 * gain**2)


@pytest.mark.parametrize(
    "shape,in_axis,out_axis",
    [
        ((4, 8, 16), (0, 1), 2),
        ((16, 4, 8), 0, (1, 2)),
        ((3, 2, 5, 7), (1, 2), 3),
        ((6, 3, 4), 2, 0),
    ],
    ids=str,
)
def test_orthogonal_multi_axis_layout(shape, in_axis, out_axis):
    """With several in/out axes, the weight is orthogonal in torch's view:
    rows = prod(out axes), cols = prod(in axes) * prod(receptive axes)."""
    layout = jaxinit.Layout(in_axis, out_axis)
    w = np.asarray(jaxinit.orthogonal(layout=layout)(jax.random.key(0), shape), np.float64)
    ia = in_axis if isinstance(in_axis, tuple) else (in_axis,)
    oa = out_axis if isinstance(out_axis, tuple) else (out_axis,)
    ia, oa = tuple(a % len(shape) for a in ia), tuple(a % len(shape) for a in oa)
    rest = tuple(a for a in range(len(shape)) if a not in ia + oa)
    q = np.transpose(w, oa + ia + rest).reshape(math.prod(shape[a] for a in oa), -1)
    rows, cols = q.shape
    gram = q @ q.T if rows <= cols else q.T @ q
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=1e-5)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_orthogonal_half_precision(dtype):
    """Half precision is computed in float32 (jax's own orthogonal fails in bf16)."""
    key = jax.random.key(0)
    w = jaxinit.orthogonal()(key, (32, 64), R.JAX_DTYPES[dtype])
    assert w.dtype == R.JAX_DTYPES[dtype]
    w32 = jaxinit.orthogonal()(key, (32, 64), jnp.float32)
    np.testing.assert_array_equal(
        np.asarray(w.astype(jnp.float32)), np.asarray(w32.astype(w.dtype).astype(jnp.float32))
    )
    q = np.asarray(w.astype(jnp.float32), np.float64)
    # bf16 keeps 8 significant bits: each entry off by <= 2^-9 relative.
    eps = float(jnp.finfo(w.dtype).eps)
    np.testing.assert_allclose(q @ q.T, np.eye(32), atol=8 * eps)


def test_orthogonal_square_is_haar_sign_fixed():
    """With the sign fix, diag(R) > 0 in the QR of the result: Q is Haar, not biased.

    Without the fix (plain QR), for LAPACK's Householder QR the diagonal of R is
    mostly negative, and the first column of Q is biased; check the first
    column's first entry is symmetric about 0 over many draws (as torch's).
    """
    n, draws = 4, 2000
    init = jaxinit.orthogonal()
    ours = np.asarray(
        jax.vmap(lambda k: init(k, (n, n)))(jax.random.split(jax.random.key(0), draws))
    )
    np.testing.assert_allclose(
        ours @ ours.transpose(0, 2, 1), np.broadcast_to(np.eye(n), ours.shape), atol=1e-5
    )
    theirs = R.torch_draws(R.orthogonal(), (n, n), draws)
    for i, j in [(0, 0), (0, 1), (3, 3)]:
        p = scipy.stats.ks_2samp(ours[:, i, j], theirs[:, i, j]).pvalue
        assert p > R.KS_ALPHA, (i, j, p)
    # Sign symmetry of entry (0, 0): binomial, 5 sigma = 5 * sqrt(draws) / 2 ~ 112 of 2000.
    assert abs(int((ours[:, 0, 0] > 0).sum()) - draws // 2) < 5 * math.sqrt(draws) / 2


# ----------------------------------------------------------------------------
# sparse: exact counts, uniform positions


@pytest.mark.parametrize(
    "rows,cols,sparsity",
    # sparsity is traced: one compile per shape and layout.
    [
        (10, 7, 0.3),
        (10, 7, 0.0),
        (10, 7, 1.0),
        (10, 7, 0.5),
        (10, 7, 0.01),
        (10, 7, 0.999),
        (1, 5, 0.5),
        (1, 5, 1.0),
        (33, 2, 1 / 3),
        (33, 2, 0.25),
    ],
)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_sparse_exact_zero_count(rows, cols, sparsity, layout):
    # torch's count, from torch itself (e.g. 0.3 * 10 = 3.0000000000000004 -> 4 zeros).
    t = torch.empty(rows, cols)
    torch.manual_seed(0)
    tinit.sparse_(t, sparsity)
    torch_counts = (t == 0).sum(0).numpy()
    assert (torch_counts == math.ceil(sparsity * rows)).all()
    init = jaxinit.sparse(sparsity, layout=layout)
    for seed in range(3):
        if layout == "torch":
            w = np.asarray(init(jax.random.key(seed), (rows, cols)))
            counts = (w == 0).sum(axis=0)  # per column (per input unit)
        else:
            w = np.asarray(init(jax.random.key(seed), (cols, rows)))
            counts = (w == 0).sum(axis=1)  # flax (in, out): per row (per input unit)
        np.testing.assert_array_equal(counts, torch_counts)


@pytest.mark.parametrize(
    "rows,sparsity", [(10, 0.3), (25, 0.28), (100, 0.07), (100, 0.55), (30, 0.1)]
)
def test_sparse_count_is_torchs_float_ceil(rows, sparsity):
    """The count is Python's ceil(sparsity * rows) in float64, rounding included:
    0.3 * 10 == 3.0 gives 3, but 0.28 * 25 == 7.000000000000001 gives 8 (torch too)."""
    t = torch.empty(rows, 6)
    tinit.sparse_(t, sparsity)
    expected = (t == 0).sum(0).numpy()
    assert (expected == math.ceil(sparsity * rows)).all()
    w = np.asarray(jaxinit.sparse(sparsity)(jax.random.key(0), (rows, 6)))
    np.testing.assert_array_equal((w == 0).sum(axis=0), expected)


def test_sparse_zero_positions_are_uniform_per_row():
    """Each row is zeroed equally often. Chi-square over 10 rows (9 dof) at p > 1e-3:
    a correct sampler fails with probability <= 1e-3 for a given seed (the
    per-column draws are without replacement, which only makes the counts less
    dispersed than multinomial, so the test is conservative)."""
    rows, cols, draws = 10, 2000, 5
    init = jaxinit.sparse(0.3)
    zero_counts = np.zeros(rows)
    for k in jax.random.split(jax.random.key(11), draws):
        zero_counts += (np.asarray(init(k, (rows, cols))) == 0).sum(axis=1)
    assert zero_counts.sum() == math.ceil(0.3 * rows) * cols * draws
    assert R.chi2_uniform_pvalue(zero_counts) > R.KS_ALPHA, zero_counts


def test_sparse_zero_sets_are_uniform_subsets():
    """Each column's zero set is a uniformly random k-subset, as torch's randperm[:k]:
    with rows=5, k=2 all C(5, 2) = 10 subsets are equally likely (chi-square, 9 dof,
    p > 1e-3). This also catches dependence between the positions."""
    rows, cols = 5, 20_000
    w = np.asarray(jaxinit.sparse(0.4)(jax.random.key(5), (rows, cols)))
    zero = w == 0
    assert (zero.sum(axis=0) == 2).all()
    codes = (zero * (1 << np.arange(rows))[:, None]).sum(axis=0)
    subsets, counts = np.unique(codes, return_counts=True)
    assert len(subsets) == math.comb(rows, 2)
    assert R.chi2_uniform_pvalue(counts) > R.KS_ALPHA, counts
    # Columns are independent of each other: the zero pattern of column j
    # does not predict column j + 1's (2x2 contingency of "row 0 zeroed").
    a, b = zero[0, :-1], zero[0, 1:]
    table = np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]])
    assert scipy.stats.chi2_contingency(table).pvalue > R.KS_ALPHA


# ----------------------------------------------------------------------------
# Complex dtypes, where torch supports them


COMPLEX_SCHEMES = (
    R.uniform(-1.0, 3.0),
    R.normal(1.0, 2.0),
    R.kaiming_normal(),
    R.kaiming_uniform(mode="fan_out"),
    R.xavier_normal(),
    R.xavier_uniform(gain=2.0),
    R.sparse(0.3, std=0.5),
)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("scheme", COMPLEX_SCHEMES, ids=lambda s: s.id)
def test_complex_matches_torch(scheme: Scheme, layout):
    torch_shape = (40, 25) if scheme.kind == "sparse" else (20, 10, 3)
    ours, theirs = _draw_both(scheme, torch_shape, layout, seed=2, dtype="complex64")
    assert ours.dtype == np.complex64 and theirs.dtype == np.complex64
    if scheme.kind == "sparse":
        np.testing.assert_array_equal((ours == 0).sum(axis=1), (theirs == 0).sum(axis=1))
        ours, theirs = ours[ours != 0], theirs[theirs != 0]
    for part in (np.real, np.imag):
        R.assert_ks(part(ours), part(theirs), f"{scheme.id} {part.__name__}")
    # Real and imaginary parts are independent draws, not copies.
    corr = np.corrcoef(ours.real.ravel(), ours.imag.ravel())[0, 1]
    assert abs(corr) < 5 / math.sqrt(ours.size)


def test_complex_normal_moments_are_torchs():
    """torch: each part of a complex normal_(mean, std) is N(mean, std^2 / 2)."""
    ours = np.asarray(jaxinit.normal(1.0, 2.0)(jax.random.key(0), (200, 200), jnp.complex64))
    theirs = R.torch_draws(R.normal(1.0, 2.0), (200, 200), 1, dtype="complex64")
    for x in (ours, theirs):
        for part in (x.real, x.imag):
            R.assert_moments(part, R.Moments(1.0, 2.0 / math.sqrt(2), 3.0), "complex normal part")


def test_complex_uniform_bounds():
    x = np.asarray(jaxinit.uniform(-1.0, 3.0)(jax.random.key(0), (200, 200), jnp.complex64))
    for part in (x.real, x.imag):
        R.assert_bounds(part, R.Moments(1.0, 4 / math.sqrt(12), 1.8, -1.0, 3.0), "complex uniform")


# ----------------------------------------------------------------------------
# One large pooled comparison per family, in the default run: a 1% std error fails
#
# The 5-SE tolerances above, on ~20k values, let a 1% error in a sampling kernel through.
# Here each family draws 2^20 values on each side (one cheap draw, torch's own init on
# the same shape) and the std ratio must lie within 1 +- 5 SE, SE = sqrt((kappa - 1) / 4 *
# (1/n_jax + 1/n_torch)) with kappa from the torch values: at most 0.49% for a normal
# (kappa 3), 0.31% for a uniform. A 1% error is then >= 10 SE off, 5 SE beyond the
# tolerance: it passes with odds below 3e-7; a correct kernel fails with odds 6e-7.

_B = 1 / math.sqrt(64)  # torch_rnn(64)'s bound


def _torch_rnn_sum(w: torch.Tensor) -> torch.Tensor:
    # b_ih + b_hh of an LSTM cell: two independent U(-1/sqrt(H), 1/sqrt(H)) summed
    return tinit.uniform_(w, -_B, _B) + tinit.uniform_(torch.empty_like(w), -_B, _B)


def _torch_padded(w: torch.Tensor) -> torch.Tensor:
    return torch.nn.Embedding(w.shape[0], w.shape[1], padding_idx=0).weight.detach()


LARGE = [
    ("uniform", jaxinit.uniform(-1.0, 3.0), lambda w: tinit.uniform_(w, -1.0, 3.0), (1024, 1024)),
    ("normal", jaxinit.normal(0.5, 2.0), lambda w: tinit.normal_(w, 0.5, 2.0), (1024, 1024)),
    (
        "trunc_normal",
        jaxinit.trunc_normal(0.0, 1.0, -1.5, 2.5),
        lambda w: tinit.trunc_normal_(w, 0.0, 1.0, -1.5, 2.5),
        (1024, 1024),
    ),
    ("uniform_sum", jaxinit.torch_rnn(64, terms=2), _torch_rnn_sum, (1024, 1024)),
    (
        "sparse",
        jaxinit.sparse(0.1, std=0.02),
        lambda w: tinit.sparse_(w, 0.1, std=0.02),
        (1024, 1152),  # 2^20 non-zero values after the 10% zeros
    ),
    ("padded_normal", jaxinit.torch_embedding(padding_idx=0), _torch_padded, (1024, 1024)),
    ("orthogonal", jaxinit.orthogonal(1.5), lambda w: tinit.orthogonal_(w, 1.5), (512, 2048)),
]


@pytest.mark.parametrize("init, torch_fn, shape", [r[1:] for r in LARGE], ids=[r[0] for r in LARGE])
def test_large_pooled_std_matches_torch_to_a_1_percent_error(init, torch_fn, shape):
    torch.manual_seed(1234)
    t = torch_fn(torch.empty(shape)).numpy().astype(np.float64).ravel()
    j = np.asarray(init(jax.random.key(1234), shape), np.float64).ravel()
    if init.distribution(shape).family.name == "sparse":  # the non-zero entries
        t, j = t[t != 0], j[j != 0]
    kappa = float(np.mean((t - t.mean()) ** 4) / np.var(t) ** 2)
    se = math.sqrt((kappa - 1.0) / 4.0 * (1.0 / j.size + 1.0 / t.size))
    assert 5.0 * se <= 0.005, "too few values to catch a 1% std error"
    ratio = float(j.std() / t.std())
    assert abs(ratio - 1.0) <= 5.0 * se, f"std ratio {ratio:.5f} outside 1 +- {5 * se:.5f}"
