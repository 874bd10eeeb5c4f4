"""jaxinit.port.compare_init: a correct port passes, a 10% std error and a wrong constant are caught.

Seeds and sizes are fixed, so these tests are deterministic. With the default
``false_failure=1e-6`` per check, a correct port fails one of this module's
~20 checks with probability about 2e-5 for a fresh choice of seeds; a 10%
std error on a 64x64 leaf pooled over 8 seeds (n = 32768 per side) is more
than 10 times the std tolerance (~0.017), so it is caught with probability
indistinguishable from 1.
"""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import torch

import jaxinit
import jaxinit.flax
import jaxinit.port as port
from jaxinit._src.port.compare import _ks_pvalue


class TModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(64, 64)
        self.fc = torch.nn.Linear(64, 64)
        self.ln = torch.nn.LayerNorm(64)


class LModel(nn.Module):
    @nn.compact
    def __call__(self, t):
        return nn.LayerNorm(name="ln")(nn.Dense(64, name="fc")(nn.Embed(64, 64, name="embed")(t)))


MODEL = LModel()
TOKENS = jnp.zeros((1, 2), jnp.int32)


def _jax_init(rules):
    return jax.jit(lambda k: jaxinit.flax.init(MODEL, k, TOKENS, rules=rules))


def _compare(rules):
    return port.compare_init(TModel, _jax_init(rules), model=MODEL, args=(TOKENS,))


def test_a_correct_port_passes(tmp_path):
    report = _compare(jaxinit.flax.TORCH_DEFAULTS)
    assert report.ok, str(report)
    rows = {r.path: r for r in report.rows}
    assert set(rows) == {
        "params/embed/embedding",
        "params/fc/kernel",
        "params/fc/bias",
        "params/ln/scale",
        "params/ln/bias",
    }
    assert rows["params/ln/scale"].deterministic and rows["params/ln/bias"].deterministic
    kernel = rows["params/fc/kernel"]
    assert not kernel.deterministic and kernel.family == "uniform"
    assert rows["params/embed/embedding"].family == "normal"
    assert kernel.torch_name == "fc.weight"
    assert abs(kernel.kurtosis - 1.8) < 0.05
    # the stated tolerance: z * sqrt((k - 1)/(4n) * 2), z for 1e-6 two-sided
    n = 8 * 64 * 64
    z = scipy.stats.norm.isf(0.5e-6)
    assert kernel.std_tol == pytest.approx(z * np.sqrt(2 * (kernel.kurtosis - 1) / (4 * n)))
    assert kernel.detectable == pytest.approx(2 * kernel.std_tol)
    text = str(report)
    assert "params/fc/kernel" in text and "all passed" in text
    assert "2 deterministic leaves" in text
    pytest.importorskip("matplotlib")
    report.plot(str(tmp_path / "hist.png"))
    assert (tmp_path / "hist.png").stat().st_size > 1000


def test_a_ten_percent_std_error_is_caught():
    bound = 1 / 8  # torch's Linear(64, 64) kernel: U(-1/sqrt(64), 1/sqrt(64))
    wrong = [("*/fc/kernel", jaxinit.flax.uniform(-1.1 * bound, 1.1 * bound))]
    report = _compare(wrong + list(jaxinit.flax.TORCH_DEFAULTS))
    assert not report.ok
    bad = {r.path: r for r in report.rows if r.failures}
    assert set(bad) == {"params/fc/kernel"}
    failures = " ".join(bad["params/fc/kernel"].failures)
    # a 10% wider uniform: the std and the max|w| ratios are 1.1 within sampling error
    ratio = float(re.search(r"std ratio (\d+\.\d+)", failures).group(1))
    assert abs(ratio - 1.1) < 0.02 and "max|w| ratio 1.1" in failures and "KS" in failures
    assert bad["params/fc/kernel"].detectable < 0.05
    assert "FAIL" in str(report)


def test_a_wrong_constant_is_caught_exactly():
    rules = [("*/ln/scale", jaxinit.flax.constant(1.0 + 2.0**-20))] + list(
        jaxinit.flax.TORCH_DEFAULTS
    )
    report = _compare(rules)
    assert [r.path for r in report.rows if r.failures] == ["params/ln/scale"]
    assert "deterministic" in report.failures[0]


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="seeds"):
        port.compare_init(TModel, lambda k: None, seeds=1)
    with pytest.raises(ValueError, match="false_failure"):
        port.compare_init(TModel, lambda k: None, false_failure=0.0)


def test_ks_pvalue_agrees_with_scipy():
    rng = np.random.default_rng(0)
    for shift in (0.0, 0.05, 0.2):
        x = rng.standard_normal(3000)
        y = rng.standard_normal(2000) + shift
        want = scipy.stats.ks_2samp(x, y, method="asymp").pvalue
        assert _ks_pvalue(x, y) == pytest.approx(want, rel=0.1, abs=1e-4)
