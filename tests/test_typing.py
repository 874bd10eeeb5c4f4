"""Type checkers see real signatures: correct calls pass mypy, incorrect ones are reported.

Every public builder, ``X_`` helper and ``jaxinit.flax`` variant has a typed
signature (``Literal`` modes and nonlinearities, real-number hyperparameters,
``key=`` keyword-only), not ``(*Any, **Any)``. The file below is checked by
mypy; each line marked ``# BAD`` must be reported, and nothing else.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

CALLS = textwrap.dedent(
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxinit
    import jaxinit.flax
    import jaxinit.port

    k = jax.random.key(0)
    w = jnp.zeros((4, 3))
    ok1 = jaxinit.xavier_uniform(gain=2.0)
    ok2 = jaxinit.flax.kaiming_normal(mode="fan_out", nonlinearity="relu")
    ok3: jax.Array = jaxinit.kaiming_normal_(w, mode="fan_out", key=k)
    ok4: jax.Array = jaxinit.flax.xavier_uniform_(w, 2.0, key=k)
    ok5 = jaxinit.normal(std=np.float32(0.02))
    ok6 = jaxinit.torch_linear_bias(np.int64(12))
    ok7: jax.Array = ok1(k, (3, 4), jnp.bfloat16)
    ok8 = jaxinit.dirac(groups=2, layout="flax")
    ok9 = jaxinit.calculate_fan_in_and_fan_out((3, 4), layout=jaxinit.FLAX)
    bad1 = jaxinit.xavier_uniform(gian=2.0)  # BAD
    bad2 = jaxinit.flax.kaiming_normal(mode="fanout")  # BAD
    bad3 = jaxinit.kaiming_normal_(w, nonlinearity="gelu", key=k)  # BAD
    bad4 = jaxinit.flax.sparse_(w, sparsity="a", key=k)  # BAD
    bad5 = jaxinit.normal_(w, std=1.0, seed=3)  # BAD
    bad6 = jaxinit.dirac(groups=1.5)  # BAD
    bad7 = jaxinit.uniform(layout="tensorflow")  # BAD
    bad8 = jaxinit.calculate_correct_fan((3, 4), "fan_avg")  # BAD
    bad9 = jaxinit.flax.torch_rnn(hidden_size="64")  # BAD
    """
)


def test_mypy_reports_exactly_the_bad_calls(tmp_path: Path) -> None:
    source = tmp_path / "calls.py"
    source.write_text(CALLS)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--no-error-summary",
            str(source),  # (the repo's .mypy_cache, warm after `mypy jaxinit`, is reused)
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    reported = {
        int(m.group(1))
        for m in re.finditer(rf"{re.escape(source.name)}:(\d+): error", result.stdout)
    }
    lines = CALLS.splitlines()
    bad = {i + 1 for i, line in enumerate(lines) if line.endswith("# BAD")}
    assert bad, "the file has no bad call: the test would be vacuous"
    assert reported == bad, (
        f"mypy reported lines {sorted(reported)}, expected {sorted(bad)}\n{result.stdout}"
    )
