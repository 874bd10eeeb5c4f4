"""jaxinit quickstart: torch.nn.init's schemes in JAX and Flax. Run: python examples/quickstart.py"""

import argparse
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.traverse_util import flatten_dict

import jaxinit
import jaxinit.flax

argparse.ArgumentParser(
    description=__doc__, epilog="Prints the stds it draws next to torch's; writes no file."
).parse_args()
key = jax.random.key(0)

# 1. torch's in-place style on a torch-layout (out, in, kh, kw) weight; it returns a new array.
w = jaxinit.kaiming_normal_(jnp.zeros((64, 8, 3, 3)), mode="fan_out", key=key)
torch_std = math.sqrt(2 / (64 * 3 * 3))  # gain sqrt(2) / sqrt(fan_out), fan_out = out * kh * kw
print(f"kaiming_normal_ {w.shape}: std {w.std():.3f} (torch: {torch_std:.3f})")


# 2. The builder as a Flax kernel_init: the same scheme, read in the flax layout (kh, kw, in, out).
class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        conv = nn.Conv(64, (3, 3), kernel_init=jaxinit.kaiming_normal(mode="fan_out"), name="conv")
        x = nn.LayerNorm(name="norm")(nn.relu(conv(x)).mean(axis=(1, 2)))
        return nn.Dense(10, name="head")(x)


x = jnp.ones((1, 32, 32, 8))
kernel = Net().init(key, x)["params"]["conv"]["kernel"]
print(f"Conv kernel_init {kernel.shape}: std {kernel.std():.3f} (torch: {torch_std:.3f})")

# 3. The whole model started as its torch counterpart (the nn.Conv2d, nn.LayerNorm and
#    nn.Linear defaults), with one override: the first rule that matches a parameter wins.
rules = [("*/head/kernel", jaxinit.zeros()), *jaxinit.flax.TORCH_DEFAULTS]
variables = jaxinit.flax.init(Net(), key, x, rules=rules)
for path, leaf in flatten_dict(variables, sep="/").items():
    print(f"{path:18} {leaf.shape!s:15} std {leaf.std():.3f}  max|w| {abs(leaf).max():.3f}")
# torch: conv U(+-1/sqrt(8 * 3 * 3)), so max|w| <= 0.118; norm 1 and 0; head bias <= 1/sqrt(64)
