"""Fans, gains and their error messages, against torch.nn.init's own."""

from __future__ import annotations

import math
import re

import jax.nn.initializers
import numpy as np
import pytest
import torch
import torch.nn.init as tinit

import jaxinit
from tests import records as R

FAN_SHAPES = [
    (3, 5),
    (5, 3),
    (1, 1),
    (64, 32),
    (0, 3),
    (3, 0),
    (7, 3, 5),
    (48, 16, 5),
    (1, 1, 1),
    (64, 32, 3, 3),
    (32, 16, 1, 7),
    (4, 2, 0, 3),
    (8, 6, 2, 3, 3),
    (2, 3, 4, 5, 6),
]


def torch_message(fn) -> str:
    """The message of the exception torch raises."""
    with pytest.raises(Exception) as info:
        fn()
    return str(info.value)


@pytest.mark.parametrize("shape", FAN_SHAPES, ids=str)
def test_fans_torch_layout(shape):
    expected = tinit._calculate_fan_in_and_fan_out(torch.empty(shape))
    assert jaxinit.calculate_fan_in_and_fan_out(shape) == expected
    assert jaxinit.calculate_fan_in_and_fan_out(shape, "torch") == expected
    assert jaxinit.calculate_fan_in_and_fan_out(shape, jaxinit.TORCH) == expected
    # an array works in place of its shape, as torch takes a tensor
    assert jaxinit.calculate_fan_in_and_fan_out(np.empty(shape)) == expected
    fans = jaxinit.calculate_fan_in_and_fan_out(shape)
    assert all(type(f) is int for f in fans)


@pytest.mark.parametrize("shape", FAN_SHAPES, ids=str)
def test_fans_flax_layout_equal_torch_fans_of_the_torch_shape(shape):
    expected = tinit._calculate_fan_in_and_fan_out(torch.empty(shape))
    fshape = R.flax_shape(shape)
    assert jaxinit.calculate_fan_in_and_fan_out(fshape, "flax") == expected
    assert jaxinit.calculate_fan_in_and_fan_out(fshape, jaxinit.FLAX) == expected
    for mode in ("fan_in", "fan_out"):
        want = tinit._calculate_correct_fan(torch.empty(shape), mode)
        assert jaxinit.calculate_correct_fan(fshape, mode, layout="flax") == want


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "FAN_IN", "Fan_Out"])
@pytest.mark.parametrize("shape", FAN_SHAPES, ids=str)
def test_correct_fan(shape, mode):
    # torch lower-cases the mode
    assert jaxinit.calculate_correct_fan(shape, mode) == tinit._calculate_correct_fan(
        torch.empty(shape), mode
    )


@pytest.mark.parametrize("shape", [(), (5,), (0,)], ids=str)
def test_fans_need_two_dims_with_torchs_message(shape):
    msg = torch_message(lambda: tinit._calculate_fan_in_and_fan_out(torch.empty(shape)))
    with pytest.raises(ValueError, match=re.escape(msg)):
        jaxinit.calculate_fan_in_and_fan_out(shape)
    with pytest.raises(ValueError, match=re.escape(msg)):
        jaxinit.calculate_correct_fan(shape, "fan_in")


@pytest.mark.parametrize("mode", ["fanin", "FANOUT", "in", ""])
def test_bad_mode_message_is_torchs(mode):
    msg = torch_message(lambda: tinit.kaiming_normal_(torch.empty(3, 4), mode=mode))
    assert msg == f"Mode {mode.lower()} not supported, please use one of ['fan_in', 'fan_out']"
    with pytest.raises(ValueError, match=re.escape(msg)):
        jaxinit.calculate_correct_fan((3, 4), mode)
    for build in (jaxinit.kaiming_normal, jaxinit.kaiming_uniform):
        with pytest.raises(ValueError, match=re.escape(msg)):
            build(mode=mode)


# ----------------------------------------------------------------------------
# Multi-axis layouts


def stated_fans(shape, in_axes, out_axes):
    """jax.nn.initializers' ``_compute_fans`` math: in_size = prod(shape[in_axes]),
    out_size = prod(shape[out_axes]), receptive = prod(shape) / in_size / out_size,
    fan_in = in_size * receptive, fan_out = out_size * receptive."""
    in_size = math.prod(shape[a] for a in in_axes)
    out_size = math.prod(shape[a] for a in out_axes)
    receptive = math.prod(shape) // (in_size * out_size)
    return in_size * receptive, out_size * receptive


MULTI = [
    ((4, 8, 16), (0, 1), 2),  # DenseGeneral kernel (heads, head_dim, features)
    ((16, 4, 8), 0, (1, 2)),  # DenseGeneral out-projection (features, heads, head_dim)
    ((2, 3, 5, 7), (0, 1), (3,)),  # one receptive axis (2)
    ((2, 3, 5, 7), (-4,), (-1, -2)),  # negative axes; no receptive axes
    ((3, 3, 8, 16), -2, -1),  # = FLAX
    ((16, 8, 3, 3), 1, 0),  # = TORCH
    ((5, 6, 7), 2, 0),
    ((2, 3, 4, 5, 6), (1, 3), (4,)),
]


@pytest.mark.parametrize("shape,in_axis,out_axis", MULTI, ids=str)
def test_multi_axis_layout_fans(shape, in_axis, out_axis):
    layout = jaxinit.Layout(in_axis=in_axis, out_axis=out_axis)
    ia = in_axis if isinstance(in_axis, tuple) else (in_axis,)
    oa = out_axis if isinstance(out_axis, tuple) else (out_axis,)
    expected = stated_fans(shape, ia, oa)
    assert jaxinit.calculate_fan_in_and_fan_out(shape, layout) == expected
    assert jaxinit.calculate_correct_fan(shape, "fan_in", layout) == expected[0]
    assert jaxinit.calculate_correct_fan(shape, "fan_out", layout) == expected[1]
    # jax's own fan computation (private; checked when present) agrees.
    compute_fans = getattr(getattr(jax._src.nn, "initializers", None), "_compute_fans", None)
    if compute_fans is not None:
        fan_in, fan_out = compute_fans(shape, in_axis, out_axis)
        assert (fan_in, fan_out) == expected


def test_multi_axis_layout_scales_like_jax_variance_scaling():
    """A jaxinit kaiming_uniform(a=sqrt(5)) on a DenseGeneral kernel with a
    multi-axis layout has bound 1/sqrt(fan_in), as jax's variance_scaling(1/3,
    "fan_in", "uniform", in_axis, out_axis): both use the same fans."""
    import jax

    shape, in_axis, out_axis = (4, 8, 16), (0, 1), 2
    ours = jaxinit.kaiming_uniform(a=math.sqrt(5), layout=jaxinit.Layout(in_axis, out_axis))
    theirs = jax.nn.initializers.variance_scaling(
        1 / 3, "fan_in", "uniform", in_axis=in_axis, out_axis=out_axis
    )
    bound = 1 / math.sqrt(32)
    for init in (ours, theirs):
        x = np.asarray(init(jax.random.key(0), shape))
        assert np.abs(x).max() <= np.float32(bound) and np.abs(x).max() > 0.99 * bound


def test_layout_constants_and_strings():
    assert jaxinit.TORCH == jaxinit.Layout(in_axis=1, out_axis=0)
    assert jaxinit.FLAX == jaxinit.Layout(in_axis=-2, out_axis=-1)
    shape = (3, 3, 8, 16)
    assert jaxinit.calculate_fan_in_and_fan_out(shape, "flax") == (72, 144)
    assert jaxinit.calculate_fan_in_and_fan_out(shape, "FLAX") == (72, 144)
    assert jaxinit.Layout(in_axis=[0, 1], out_axis=2) == jaxinit.Layout(in_axis=(0, 1), out_axis=2)


@pytest.mark.parametrize(
    "make,exc,match",
    [
        (
            lambda: jaxinit.calculate_fan_in_and_fan_out((3, 4), "keras"),
            ValueError,
            "layout must be",
        ),
        (
            lambda: jaxinit.calculate_fan_in_and_fan_out((3, 4), jaxinit.Layout(0, 0)),
            ValueError,
            "overlap",
        ),
        (
            lambda: jaxinit.calculate_fan_in_and_fan_out((3, 4), jaxinit.Layout(2, 0)),
            ValueError,
            "out of range",
        ),
        (
            lambda: jaxinit.calculate_fan_in_and_fan_out((3, 4, 5), jaxinit.Layout((0, -3), 1)),
            ValueError,
            "twice",
        ),
        (lambda: jaxinit.Layout("a", 0), TypeError, "in_axis must be"),
        (lambda: jaxinit.Layout((), 0), TypeError, "in_axis must be"),
        (lambda: jaxinit.Layout(0, 1.5), TypeError, "out_axis must be"),
        (lambda: jaxinit.calculate_fan_in_and_fan_out((3, -4)), ValueError, "non-negative"),
        (
            lambda: jaxinit.calculate_fan_in_and_fan_out((3, 4.0)),
            TypeError,
            "sequence of concrete ints",
        ),
    ],
)
def test_layout_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


# ----------------------------------------------------------------------------
# Gains


NONLINEARITIES = [
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
    "tanh",
    "relu",
    "leaky_relu",
    "selu",
]
PARAMS = [None, 0, 0.0, 0.2, 1, -0.5, math.sqrt(5), np.float64(0.3), 3]


@pytest.mark.parametrize("param", PARAMS, ids=repr)
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_gain_equals_torch(nonlinearity, param):
    expected = tinit.calculate_gain(nonlinearity, param)
    got = jaxinit.calculate_gain(nonlinearity, param)
    assert got == expected  # same formula, so bit for bit
    assert isinstance(got, float)


def test_gain_table_values():
    # The documented values, stated independently of torch.
    assert jaxinit.calculate_gain("tanh") == 5 / 3
    assert jaxinit.calculate_gain("relu") == math.sqrt(2)
    assert jaxinit.calculate_gain("selu") == 0.75
    assert jaxinit.calculate_gain("leaky_relu") == math.sqrt(2 / (1 + 0.01**2))
    assert jaxinit.calculate_gain("leaky_relu", 1) == 1.0
    assert jaxinit.calculate_gain("leaky_relu", 0) == math.sqrt(2)


@pytest.mark.parametrize("nonlinearity", ["foo", "ReLU", "gelu", "", "Tanh"])
def test_unsupported_nonlinearity_message_is_torchs(nonlinearity):
    msg = torch_message(lambda: tinit.calculate_gain(nonlinearity))
    assert msg.startswith("Unsupported nonlinearity")
    with pytest.raises(ValueError, match=re.escape(msg)):
        jaxinit.calculate_gain(nonlinearity)
    for build in (jaxinit.kaiming_normal, jaxinit.kaiming_uniform):
        with pytest.raises(ValueError, match=re.escape(msg)):
            build(nonlinearity=nonlinearity)


@pytest.mark.parametrize("param", ["x", True, False, [0.1], "0.2"], ids=repr)
def test_bad_negative_slope_message_is_torchs(param):
    msg = torch_message(lambda: tinit.calculate_gain("leaky_relu", param))
    assert msg.startswith("negative_slope") and msg.endswith("not a valid number")
    with pytest.raises(ValueError, match=re.escape(msg)):
        jaxinit.calculate_gain("leaky_relu", param)
