"""jaxinit's ndtri gives jax's ``jax.scipy.special.ndtri`` bits; without its far tail, where valid, too.

trunc_normal picks the inverse from its scalar interval; the values must not
depend on that choice, so each path must equal jax's ndtri bit for bit on
every probability it may see.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import ndtri as jax_ndtri

from jaxinit._src.schemes.ndtri import FAR_TAIL_LOG_P, ndtri


def _probabilities(dtype, far_tail: bool) -> np.ndarray:
    """Uniform and log-uniform probabilities, and every branch boundary with its neighbours."""
    rng = np.random.default_rng(0)
    info = np.finfo(dtype)
    low = np.exp(FAR_TAIL_LOG_P) if not far_tail else info.smallest_normal
    uniform = rng.uniform(low, 1.0, 1 << 20)
    log_uniform = np.exp(rng.uniform(np.log(low), 0.0, 1 << 20))
    edges = [np.exp(-2.0), -np.expm1(-2.0), 0.5, np.exp(FAR_TAIL_LOG_P) * 1.0001]
    if far_tail:
        edges += [np.exp(FAR_TAIL_LOG_P), info.smallest_normal, info.tiny]
    near = []
    for e in edges:
        x = np.array(e, dtype)
        for _ in range(64):  # 64 representable neighbours on each side
            near += [x]
            x = np.nextafter(x, dtype(1))
        x = np.array(e, dtype)
        for _ in range(64):
            x = np.nextafter(x, dtype(0))
            near += [x]
    ends = [0.0, 1.0, np.nextafter(dtype(1), dtype(0)), 1 - 2.0**-24]
    p = np.concatenate([uniform, log_uniform, 1 - log_uniform, near, ends]).astype(dtype)
    if not far_tail:  # what the fast path may see: min(p, 1 - p) > exp(-32), or p in {0, 1}
        mcp = np.minimum(p.astype(np.float64), 1 - p.astype(np.float64))
        p = p[(mcp > np.exp(FAR_TAIL_LOG_P)) | (p == 0) | (p == 1)]
    return p


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("far_tail", [True, False])
def test_ndtri_is_jax_ndtri_bit_for_bit(dtype, far_tail):
    with jax.enable_x64(dtype == np.float64):
        p = jnp.asarray(_probabilities(dtype, far_tail))
        ours = np.asarray(jax.jit(lambda q: ndtri(q, far_tail=far_tail))(p))
        theirs = np.asarray(jax.jit(jax_ndtri)(p))
    assert ours.dtype == dtype
    same = (ours == theirs) | (np.isnan(ours) & np.isnan(theirs))
    assert same.all(), (p[~same][:5], ours[~same][:5], theirs[~same][:5])


def test_without_the_far_tail_the_far_tail_is_wrong():
    """The test above can fail: the far polynomial matters below exp(-32)."""
    p = jnp.asarray(np.exp(np.linspace(-200.0, -40.0, 1000)), jnp.float32)
    assert not np.array_equal(np.asarray(ndtri(p, far_tail=False)), np.asarray(jax_ndtri(p)))
