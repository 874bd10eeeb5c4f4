"""Load a torch checkpoint file into a Flax port, in a process that never imports torch.

Two steps, each in its own process:

1. ``save`` (needs torch): a small torch model, a convolutional stem and a
   two-layer MLP head, with random weights, is saved with
   ``safetensors.torch.save_file``, with an input and torch's output for it.
2. ``load`` (no torch): the Flax port is filled from the file by
   ``jaxinit.port.from_torch(path, target)`` -- the target is only the
   shapes (``jax.eval_shape``), so no default init is drawn -- and its
   output is compared with torch's. It checks that torch was never imported.

Run ``python examples/load_checkpoint.py`` to do both (step 1 in a
subprocess), or each step alone: ``... save DIR`` then ``... load DIR``.
Exits 1 if the outputs differ.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

SAVE = "model.safetensors"
PROBE = "probe.npz"


def save(folder: str) -> None:
    """Step 1 (torch): the model, its checkpoint, an input and torch's output."""
    import numpy as np
    import safetensors.torch
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.BatchNorm2d(16),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(16 * 8 * 8, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )
    with torch.no_grad():  # running statistics that are not 0/1, so the port must carry them
        model[1].running_mean.normal_()
        model[1].running_var.uniform_(0.5, 2.0)
    model.eval()
    x = torch.randn(4, 3, 8, 8)
    with torch.no_grad():
        y = model(x)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    safetensors.torch.save_file(state, os.path.join(folder, SAVE))
    np.savez(os.path.join(folder, PROBE), x=x.numpy(), y=y.numpy())
    print(
        f"wrote {len(state)} tensors to {os.path.join(folder, SAVE)} and an input and torch's "
        f"output for it to {os.path.join(folder, PROBE)}"
    )


def load(folder: str) -> bool:
    """Step 2 (no torch): the Flax port filled from the file; its output against torch's."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxinit.port

    class Net(nn.Module):
        """torch's Sequential, in Flax: items 0, 1, 4, 6 are layers_0, layers_1, ..."""

        @nn.compact
        def __call__(self, x):  # x: (N, C, H, W), as torch takes it
            x = jnp.moveaxis(x, 1, -1)
            x = nn.Conv(16, (3, 3), padding=1, name="layers_0")(x)
            x = nn.BatchNorm(use_running_average=True, epsilon=1e-5, name="layers_1")(x)
            x = jnp.moveaxis(nn.relu(x), -1, 1).reshape(x.shape[0], -1)  # torch's Flatten order
            x = nn.relu(nn.Dense(64, name="layers_4")(x))
            return nn.Dense(10, name="layers_6")(x)

    probe = np.load(os.path.join(folder, PROBE))
    model = Net()
    target = jax.eval_shape(model.init, jax.random.key(0), probe["x"])
    variables = jaxinit.port.from_torch(os.path.join(folder, SAVE), target)
    got = np.asarray(jax.jit(model.apply)(variables, probe["x"]))
    diff = float(np.abs(got - probe["y"]).max())
    ok = diff < 1e-4 and "torch" not in sys.modules
    print(f"torch imported in this process: {'torch' in sys.modules}")
    print(f"outputs, Flax vs torch: max |difference| {diff:.2e} over {got.size} values")
    print("parity: OK" if ok else "parity: FAILED")
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=f"The save step writes {SAVE} and {PROBE} into FOLDER (the current folder by "
        "default); with no step, into a temporary folder removed at the end. Exits 1 if the "
        "Flax model's output differs from torch's.",
    )
    p.add_argument(
        "step", nargs="?", choices=["save", "load"], help="one step alone (default: both)"
    )
    p.add_argument(
        "folder", nargs="?", help="where the checkpoint goes (default: a temporary folder)"
    )
    args = p.parse_args(argv)
    if args.step == "save":
        save(args.folder or ".")
        return 0
    if args.step == "load":
        return 0 if load(args.folder or ".") else 1
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run([sys.executable, __file__, "save", folder], check=True)
        return 0 if load(folder) else 1


if __name__ == "__main__":
    sys.exit(main())
