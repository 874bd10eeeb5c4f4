"""jaxinit.port.from_torch with checkpoint files (to_torch into files: test_checkpoint_write.py).

torch is the oracle twice over: the loaded JAX model must give torch's
outputs on the same input, and a file must load exactly like the torch
module it was saved from (same pairing, conversions, checks and messages).
Files are written by torch and safetensors themselves, never by jaxinit,
except where to_torch's own writing is under test (then torch reads them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as PS

import jaxinit.port as port
from jaxinit._src.port.files import sources
from tests.test_port import abstract_init, close, eqx_call, nnx_call, randomize, run_torch
from tests.test_port_names import ENet, LNet, NNet, TNet, X, abstract_nnet
from tests.test_port_roundtrip import APPLY, MODEL, TOKENS, TAll

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _save(module_or_state, path) -> str:
    """Saves with safetensors' own torch API (contiguous copies, as save_pretrained does)."""
    state = module_or_state
    if isinstance(module_or_state, torch.nn.Module):
        state = module_or_state.state_dict()
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return str(path)


def _leaves(tree):
    return jax.tree_util.tree_leaves_with_path(tree)


def _assert_trees_identical(a, b):
    la, lb = _leaves(a), _leaves(b)
    assert [p for p, _ in la] == [p for p, _ in lb]
    for (path, x), (_, y) in zip(la, lb):
        assert x.dtype == y.dtype, path
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=str(path))


@pytest.fixture
def reads(monkeypatch):
    """Records every box read from a checkpoint: [(name, box, nbytes)]."""
    log: list[tuple[str, tuple[slice, ...], int]] = []
    read = sources.Checkpoint.read

    def recording(self, name, box):
        out = read(self, name, box)
        log.append((name, box, out.nbytes))
        return out

    monkeypatch.setattr(sources.Checkpoint, "read", recording)
    return log


TALL = randomize(TAll())
TALL_ARGS = dict(model=MODEL, args=(TOKENS,))


def _tall_target():
    return abstract_init(MODEL, TOKENS)


# ----------------------------------------------------------------------------
# Loading: every conversion, every target flavor, every file format


def test_safetensors_file_loads_like_the_torch_module_and_runs_like_torch(tmp_path, reads):
    path = _save(TALL, tmp_path / "model.safetensors")
    from_module = port.from_torch(TALL, _tall_target(), **TALL_ARGS)
    from_file = port.from_torch(path, _tall_target(), **TALL_ARGS)
    _assert_trees_identical(from_module, from_file)
    close(APPLY(from_file, TOKENS), run_torch(TALL, TOKENS.astype(np.int64)))
    # every byte of every tensor is read once (a split in_proj in three boxes)
    read: dict[str, int] = {}
    for name, _, nbytes in reads:
        read[name] = read.get(name, 0) + nbytes
    state = TALL.state_dict()
    assert read == {k: v.numpy().nbytes for k, v in state.items() if "num_batches" not in k}


def _aligned_checkpoint(path, tensors: dict) -> None:
    """A safetensors file whose first tensor starts 64-byte aligned in the file (and so in a
    memory map of it), padding the header's metadata until it does."""
    for pad in range(64):
        safetensors.numpy.save_file(tensors, str(path), metadata={"pad": "x" * pad})
        with open(path, "rb") as f:
            if (8 + int.from_bytes(f.read(8), "little")) % 64 == 0:
                return
    raise AssertionError("no padding aligns the data")


@pytest.mark.parametrize("mesh_shape", [None, (8,)])
def test_loaded_arrays_do_not_share_memory_with_the_file(tmp_path, mesh_shape):
    """On CPU, device_put aliases an aligned contiguous buffer, a memory map's included:
    the loaded model must not change when the file does (nor live in a read-only map)."""
    path = tmp_path / "embed.safetensors"
    table = np.random.default_rng(0).standard_normal((1024, 64), dtype=np.float32)
    _aligned_checkpoint(path, {"weight": table})
    fmod = nn.Embed(1024, 64)
    mesh = jax.make_mesh(mesh_shape, ("model",)) if mesh_shape else None
    loaded = port.from_torch(path, abstract_init(fmod, np.zeros((1,), np.int32)), mesh=mesh)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:  # overwrite the tensor's bytes in place (the mapped pages)
        header = 8 + int.from_bytes(f.read(8), "little")
        f.seek(header)
        f.write(b"\x7f" * (size - header))
    np.testing.assert_array_equal(loaded["params"]["embedding"], table)


def _split_everywhere(target):
    """Every leaf as a ShapeDtypeStruct sharded along each of its axes that splits in two."""
    mesh = jax.make_mesh((2, 2, 2), ("a", "b", "c"))

    def place(x):
        names = iter(mesh.axis_names)
        spec = [next(names, None) if d % 2 == 0 and d > 1 else None for d in x.shape]
        sharding = NamedSharding(mesh, PS(*spec))
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    return jax.tree_util.tree_map(place, target)


def test_every_conversion_reads_blocks_exactly(tmp_path, reads):
    """Sharded every which way, every leaf of every conversion (packed attention, gates,
    convs, transposed convs) equals the unsharded load, reading no tensor byte twice."""
    path = _save(TALL, tmp_path / "model.safetensors")
    want = port.from_torch(TALL, _tall_target(), **TALL_ARGS)
    target = _split_everywhere(_tall_target())
    got = port.from_torch(path, target, **TALL_ARGS)
    _assert_trees_identical(got, want)
    for (_, x), (_, t) in zip(_leaves(got), _leaves(target)):
        assert x.sharding == t.sharding
    split = [x for _, x in _leaves(got) if not x.sharding.is_fully_replicated]
    assert len(split) > 20
    read: dict[str, int] = {}
    for name, _, nbytes in reads:
        read[name] = read.get(name, 0) + nbytes
    whole = {"lstm.bias_ih_l0", "lstm.bias_hh_l0", "gru.bias_ih_l0", "gru.bias_hh_l0"}
    for name, t in TALL.state_dict().items():
        if "num_batches" not in name and name not in whole:
            assert read[name] == t.numpy().nbytes, name  # each block once: no byte twice


def test_path_objects_and_strings_are_both_accepted(tmp_path):
    path = tmp_path / "model.safetensors"
    _save(TALL, path)
    _assert_trees_identical(
        port.from_torch(path, _tall_target(), **TALL_ARGS),
        port.from_torch(str(path), _tall_target(), **TALL_ARGS),
    )


def test_nnx_and_equinox_targets_from_a_file(tmp_path):
    tmod = randomize(TNet())
    path = _save(tmod, tmp_path / "tnet.safetensors")
    want = run_torch(tmod, X)
    nnet = port.from_torch(path, abstract_nnet())
    assert isinstance(nnet, NNet)
    close(nnx_call(nnet, np.moveaxis(X, 1, -1)), want)
    tgn = randomize(TNet(norm="gn"))
    enet = port.from_torch(_save(tgn, tmp_path / "gn.safetensors"), ENet(jax.random.key(0)))
    close(eqx_call(enet, X, vmap=True), run_torch(tgn, X))
    assert isinstance(enet, eqx.Module)


def test_sharded_index_and_its_directory(tmp_path):
    state = {k: v.contiguous() for k, v in TALL.state_dict().items()}
    names = list(state)
    shards = [names[0::3], names[1::3], names[2::3]]
    weight_map = {}
    for i, part in enumerate(shards):
        file = f"model-{i + 1:05d}-of-00003.safetensors"
        safetensors.torch.save_file({k: state[k] for k in part}, str(tmp_path / file))
        weight_map.update(dict.fromkeys(part, file))
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
    want = port.from_torch(TALL, _tall_target(), **TALL_ARGS)
    _assert_trees_identical(port.from_torch(index, _tall_target(), **TALL_ARGS), want)
    _assert_trees_identical(port.from_torch(tmp_path, _tall_target(), **TALL_ARGS), want)


def test_single_file_directory(tmp_path):
    _save(TALL, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text("{}")
    want = port.from_torch(TALL, _tall_target(), **TALL_ARGS)
    _assert_trees_identical(port.from_torch(tmp_path, _tall_target(), **TALL_ARGS), want)


@pytest.mark.parametrize("param_dtype", [jnp.float32, jnp.bfloat16])
def test_bfloat16_file_into_float32_and_bfloat16_targets(tmp_path, param_dtype):
    tmod = randomize(torch.nn.Linear(8, 16)).to(torch.bfloat16)
    path = _save(tmod, tmp_path / "bf16.safetensors")
    fmod = nn.Dense(16, param_dtype=param_dtype)
    got = port.from_torch(path, abstract_init(fmod, jnp.ones((1, 8), param_dtype)))
    kernel = got["params"]["kernel"]
    assert kernel.dtype == param_dtype
    want = tmod.weight.detach().float().numpy().T  # bf16 -> f32 is exact
    np.testing.assert_array_equal(np.asarray(kernel, np.float32), want)


@pytest.mark.parametrize("suffix", [".bin", ".pt"])
def test_torch_bin_and_pt_files(tmp_path, suffix, reads):
    path = tmp_path / f"model{suffix}"
    torch.save(TALL.state_dict(), path)
    want = port.from_torch(TALL, _tall_target(), **TALL_ARGS)
    _assert_trees_identical(port.from_torch(path, _tall_target(), **TALL_ARGS), want)
    assert reads  # read box by box through the memory map, like a safetensors file


def test_sharded_bin_index(tmp_path):
    state = TALL.state_dict()
    names = list(state)
    weight_map = {}
    for i, part in enumerate((names[: len(names) // 2], names[len(names) // 2 :])):
        file = f"pytorch_model-{i + 1:05d}-of-00002.bin"
        torch.save({k: state[k] for k in part}, tmp_path / file)
        weight_map.update(dict.fromkeys(part, file))
    index = tmp_path / "pytorch_model.bin.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    want = port.from_torch(TALL, _tall_target(), **TALL_ARGS)
    _assert_trees_identical(port.from_torch(tmp_path, _tall_target(), **TALL_ARGS), want)


def test_legacy_torch_file_is_read_whole_with_a_warning(tmp_path):
    path = tmp_path / "legacy.bin"
    torch.save(TALL.state_dict(), path, _use_new_zipfile_serialization=False)
    with pytest.warns(UserWarning, match="legacy .* read whole"):
        got = port.from_torch(path, _tall_target(), **TALL_ARGS)
    _assert_trees_identical(got, port.from_torch(TALL, _tall_target(), **TALL_ARGS))


def test_in_memory_source_into_a_mesh_matches_the_plain_port():
    mesh = jax.make_mesh((8,), ("model",))
    plain = port.from_torch(TALL, _tall_target(), **TALL_ARGS)
    placed = port.from_torch(TALL, _tall_target(), **TALL_ARGS, mesh=mesh)
    _assert_trees_identical(plain, placed)
    for _, x in _leaves(placed):
        assert x.sharding.mesh == mesh and x.sharding.is_fully_replicated


# ----------------------------------------------------------------------------
# Same checks and messages as for a module or a dict, before anything is read


def _message(source, target, **kw) -> str:
    with pytest.raises(ValueError) as info:
        port.from_torch(source, target, **kw)
    return str(info.value)


def test_strict_pairing_errors_are_the_dict_sources_and_nothing_is_read(tmp_path, reads):
    tmod = randomize(TNet())
    path = _save(tmod, tmp_path / "tnet.safetensors")
    fmod = LNet(head="heads")
    x = np.moveaxis(X, 1, -1)
    target = jax.tree_util.tree_map(jnp.zeros_like, abstract_init(fmod, x))
    state = safetensors.numpy.load_file(path)  # the same state_dict, read eagerly
    from_dict = _message(state, target, model=fmod, args=(x,))
    from_file = _message(path, target, model=fmod, args=(x,))
    assert from_file == from_dict
    assert "head.weight (5, 4)  nearest target: params/heads/kernel" in from_file
    assert reads == []


def test_shape_mismatch_is_reported_before_reading_and_the_nnx_target_is_untouched(tmp_path, reads):
    tmod = randomize(TNet())
    path = _save(tmod, tmp_path / "tnet.safetensors")
    fmod = abstract_nnet()
    fmod.head = nnx.Linear(4, 6, rngs=nnx.Rngs(1))
    before = jax.tree_util.tree_map(np.array, nnx.state(fmod))
    msg = _message(path, fmod)
    assert "head.weight (5, 4) -> head/kernel: converted (4, 5), target (4, 6)" in msg
    assert msg == _message(safetensors.numpy.load_file(path), fmod)
    assert reads == []
    after = jax.tree_util.tree_map(np.array, nnx.state(fmod))
    jax.tree_util.tree_map(np.testing.assert_array_equal, before, after)


def test_path_errors_say_what_is_expected(tmp_path):
    target = _tall_target()
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        port.from_torch(tmp_path / "absent.safetensors", target)
    (tmp_path / "weights.npz").write_bytes(b"")
    with pytest.raises(ValueError, match=r"expected a \.safetensors file"):
        port.from_torch(tmp_path / "weights.npz", target)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="it holds none"):
        port.from_torch(empty, target)
    two = tmp_path / "two"
    two.mkdir()
    _save(torch.nn.Linear(2, 2), two / "a.safetensors")
    _save(torch.nn.Linear(2, 2), two / "b.safetensors")
    with pytest.raises(ValueError, match="cannot tell which checkpoint"):
        port.from_torch(two, target)
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"w": "model-1.safetensors"}}))
    with pytest.raises(FileNotFoundError, match="model-1.safetensors"):
        port.from_torch(index, target)
    index.write_text(json.dumps({"shards": []}))
    with pytest.raises(ValueError, match="weight_map"):
        port.from_torch(index, target)


def test_fp8_tensors_are_refused_by_name(tmp_path):
    path = tmp_path / "fp8.safetensors"
    safetensors.torch.save_file({"weight": torch.zeros(2, 2, dtype=torch.float8_e4m3fn)}, path)
    with pytest.raises(TypeError, match="'weight' .* is F8_E4M3"):
        port.from_torch(path, {"kernel": jnp.zeros((2, 2))})


def test_a_bin_that_is_not_a_state_dict_is_refused(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"model": TALL.state_dict(), "epoch": 3}, path)
    with pytest.raises(TypeError, match=r"not a state_dict .*checkpoint\['model'\]"):
        port.from_torch(path, _tall_target(), **TALL_ARGS)


# ----------------------------------------------------------------------------
# Without torch; bounded memory (both in a fresh process)


def _python(code: str, *argv: str, timeout: float = 240) -> str:
    """Runs ``code`` in a fresh interpreter (one CPU device, this checkout on the path)."""
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


_NO_TORCH = """
import sys

class NoTorch:  # torch is "not installed": every import of it fails
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("No module named 'torch' (blocked by the test)")
        return None

sys.meta_path.insert(0, NoTorch())
import jax, jax.numpy as jnp, numpy as np, flax.linen as nn
import jaxinit.port as port

folder = sys.argv[1]
model = nn.Sequential([nn.Dense(8), nn.Dense(3)])
target = jax.eval_shape(model.init, jax.random.key(0), jnp.ones((1, 4)))
got = port.from_torch(folder + "/mlp.safetensors", target)
want = np.load(folder + "/want.npz")
for name in want:
    layer, leaf = name.split("-")
    np.testing.assert_array_equal(got["params"][layer][leaf], want[name])
assert "torch" not in sys.modules
try:
    port.from_torch(folder + "/mlp.bin", target)
except ImportError as e:
    print("bin:", e)
print("ok")
"""


def test_safetensors_load_without_torch_installed(tmp_path):
    tmod = randomize(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 3)))
    _save(tmod, tmp_path / "mlp.safetensors")
    torch.save(tmod.state_dict(), tmp_path / "mlp.bin")
    want = {}
    for i in (0, 1):
        want[f"layers_{i}-kernel"] = tmod[i].weight.detach().numpy().T
        want[f"layers_{i}-bias"] = tmod[i].bias.detach().numpy()
    np.savez(tmp_path / "want.npz", **want)
    out = _python(_NO_TORCH, str(tmp_path))
    assert out.splitlines()[-1] == "ok", out
    assert "pip install 'jaxinit[torch]'" in out


def test_peak_host_memory_is_about_the_largest_tensor(tmp_path):
    """8 tensors of 4 MiB: loading holds one of them at a time beyond what it keeps."""
    out = _python(
        f"""
        import tracemalloc
        import jax, jax.numpy as jnp, numpy as np, flax.linen as nn
        import safetensors.numpy
        import jaxinit.port as port

        rng = np.random.default_rng(0)
        state = {{f"layers.{{i}}.weight": rng.standard_normal((1024, 1024), dtype=np.float32)
                  for i in range(8)}}
        path = {str(tmp_path / "big.safetensors")!r}
        safetensors.numpy.save_file(state, path)
        largest = max(a.nbytes for a in state.values())
        total = sum(a.nbytes for a in state.values())
        del state
        model = nn.Sequential([nn.Dense(1024, use_bias=False) for _ in range(8)])
        target = jax.eval_shape(model.init, jax.random.key(0), jnp.ones((1, 1024)))
        jax.block_until_ready(port.from_torch(path, target))  # imports, caches
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        out = jax.block_until_ready(port.from_torch(path, target))
        now, peak = tracemalloc.get_traced_memory()
        print((peak - now) / largest, (peak - base) / total)
        """
    )
    extra_over_largest, over_total = map(float, out.split())
    # what loading holds beyond its result, in units of the largest tensor
    assert extra_over_largest <= 1.2, out
    assert over_total <= 0.2, out
