"""chex-style assertions for your test suites: does an array, or a whole model, start as it should?

``assert_follows(array, initializer_or_distribution)`` tests one array (a
Kolmogorov-Smirnov and a variance test for the random families, exact checks
for the structured ones); ``assert_tree_follows(tree, rules)`` tests every
leaf the rules select. Tolerances come from the sample size; ``false_failure``
bounds the probability that a correct initialization fails.

>>> import jax, jaxinit
>>> from jaxinit.testing import assert_follows
>>> init = jaxinit.torch_linear_weight()
>>> assert_follows(init(jax.random.key(0), (512, 256)), init)
"""

from jaxinit._src.testing.asserts import assert_follows as assert_follows
from jaxinit._src.testing.asserts import assert_tree_follows as assert_tree_follows
from jaxinit._src.testing.asserts import ks_pvalue as ks_pvalue

__all__ = [
    "assert_follows",
    "assert_tree_follows",
    "ks_pvalue",
]
