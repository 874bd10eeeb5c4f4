"""Strict test configuration, for tests/ and the doctests in jaxinit/.

- 8 host CPU devices, so sharding is exercised on every run (set before jax
  is imported: XLA reads the flag once, at backend start-up).
- XLA optimization level 1 (faster compiles, the same bits; see below).
- strict dtype promotion and rank promotion errors, as equinox's conftest.
- warnings are errors (``filterwarnings = ["error"]`` in pyproject.toml).
"""

import os

_DEVICE_FLAG = "--xla_force_host_platform_device_count=8"
if _DEVICE_FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_DEVICE_FLAG}".strip()
# XLA's optimization level 1 compiles the suite's ~3600 small programs about 30%
# faster than the default (3), and draws the same bits: tests/test_xla_level.py
# checks that against a fresh process at the default level, every scheme and
# both drawing paths. A level already in XLA_FLAGS is kept (the whole suite at
# the default: XLA_FLAGS=--xla_backend_optimization_level=3 pytest).
if "--xla_backend_optimization_level" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_backend_optimization_level=1"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_dtype_promotion", "strict")
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
    """Runs the test with ``jax_enable_x64`` on (restored afterwards)."""
    with jax.enable_x64(True):
        yield
