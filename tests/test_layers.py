"""Linen modules against the NumPy references and PyTorch, plus every validation."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.nn import initializers

from dwsep_jax import layers
from tests.reference import (
    conv_ref,
    depthwise_ref,
    depthwise_ref_vectorized,
    grouped_conv_ref,
    pointwise_ref,
    tf_same_pads,
)


def _pads(padding, spatial, ksize, strides, dilation):
    if padding == "VALID":
        return [(0, 0)] * len(spatial)
    return [tf_same_pads(*a) for a in zip(spatial, ksize, strides, dilation)]


def _init(module, x):
    return jax.jit(module.init)(jax.random.key(0), x)


def _apply(module, variables, x):
    return jax.jit(module.apply)(variables, x)


def _normal(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


DEPTHWISE_CASES = [
    # (spatial, channels, kernel_size, strides, dilation, multiplier, padding)
    ((11,), 3, 5, 2, 2, 2, "SAME"),
    ((9, 8), 4, 3, (2, 1), 1, 1, "SAME"),
    ((9, 9), 2, (3, 2), 1, (2, 1), 3, "VALID"),
    ((5, 6, 4), 2, 3, (1, 2, 1), 1, 2, "SAME"),
]


@pytest.mark.parametrize("spatial,c,k,s,d,m,padding", DEPTHWISE_CASES)
def test_depthwise_matches_reference(spatial, c, k, s, d, m, padding):
    n = len(spatial)
    module = layers.DepthwiseConv(
        kernel_size=k,
        channel_multiplier=m,
        strides=s,
        dilation=d,
        padding=padding,
        num_spatial_dims=n,
        bias_init=initializers.normal(1.0),
    )
    x = _normal((2, *spatial, c))
    variables = _init(module, x)
    kernel = variables["params"]["kernel"]
    bias = variables["params"]["bias"]
    ksize, strides, dilation = (layers._args.to_tuple(v, n, "v") for v in (k, s, d))
    assert kernel.shape == (*ksize, 1, c * m)
    want = depthwise_ref(
        x, kernel, strides, dilation, _pads(padding, spatial, ksize, strides, dilation)
    ) + np.asarray(bias)
    np.testing.assert_allclose(_apply(module, variables, x), want, rtol=1e-5, atol=1e-5)


def test_separable_matches_reference_with_both_activations():
    module = layers.SeparableConv2D(
        features=5,
        kernel_size=3,
        channel_multiplier=2,
        strides=2,
        intermediate_activation="relu",
        activation="tanh",
        bias_init=initializers.normal(1.0),
    )
    x = _normal((2, 7, 8, 3))
    variables = _init(module, x)
    p = variables["params"]
    depth = depthwise_ref_vectorized(
        x, p["depthwise"]["kernel"], (2, 2), (1, 1), [(1, 1), (0, 1)]
    )
    want = np.tanh(
        pointwise_ref(np.maximum(depth, 0), p["pointwise"]["kernel"], p["bias"])
    )
    got = _apply(module, variables, x)
    assert got.shape == (2, 4, 4, 5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("groups", [1, 2])
def test_conv_matches_reference(groups):
    module = layers.Conv2D(
        features=4, kernel_size=(3, 2), dilation=(1, 2), feature_group_count=groups
    )
    x = _normal((2, 6, 7, 4))
    variables = _init(module, x)
    kernel = variables["params"]["kernel"]
    assert kernel.shape == (3, 2, 4 // groups, 4)
    pads = _pads("SAME", (6, 7), (3, 2), (1, 1), (1, 2))
    if groups == 1:
        want = conv_ref(x, kernel, (1, 1), (1, 2), pads)
    else:
        want = grouped_conv_ref(x, kernel, (1, 1), (1, 2), pads, groups)
    np.testing.assert_allclose(_apply(module, variables, x), want, rtol=1e-5, atol=1e-5)


def test_pointwise_matches_reference_with_extra_batch_axes():
    module = layers.PointwiseConv(features=3, bias_init=initializers.normal(1.0))
    x = _normal((2, 3, 4, 5, 6))
    variables = _init(module, x)
    p = variables["params"]
    assert p["kernel"].shape == (6, 3)
    want = pointwise_ref(x, p["kernel"], p["bias"])
    np.testing.assert_allclose(_apply(module, variables, x), want, rtol=1e-5, atol=1e-5)


def test_unbatched_input_equals_batched_row():
    module = layers.SeparableConv2D(features=4, kernel_size=3)
    x = _normal((3, 8, 8, 2))
    variables = _init(module, x)
    np.testing.assert_allclose(
        _apply(module, variables, x[1]), _apply(module, variables, x)[1], atol=1e-6
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda df: layers.DepthwiseConv2D(
            kernel_size=3, channel_multiplier=2, data_format=df
        ),
        lambda df: layers.SeparableConv2D(
            features=5, kernel_size=3, strides=2, data_format=df
        ),
        lambda df: layers.Conv2D(features=4, kernel_size=3, data_format=df),
        lambda df: layers.PointwiseConv2D(features=4, data_format=df),
    ],
)
def test_channels_first_equals_channels_last_transposed(make):
    x = _normal((2, 7, 6, 3))
    last = make("channels_last")
    variables = _init(last, x)
    want = np.moveaxis(np.asarray(_apply(last, variables, x)), -1, 1)
    x_first = jnp.moveaxis(x, -1, 1)
    for df in ("channels_first", "NCHW"):
        got = _apply(make(df), variables, x_first)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_parameter_names_read_as_architecture():
    x = jnp.zeros((1, 8, 8, 3))
    shapes = jax.eval_shape(
        layers.SeparableConv2D(features=6, kernel_size=3, channel_multiplier=2).init,
        jax.random.key(0),
        x,
    )["params"]
    assert jax.tree_util.tree_map(lambda a: a.shape, shapes) == {
        "depthwise": {"kernel": (3, 3, 1, 6)},
        "pointwise": {"kernel": (6, 6)},
        "bias": (6,),
    }
    no_bias = jax.eval_shape(
        layers.DepthwiseConv2D(kernel_size=3, use_bias=False).init, jax.random.key(0), x
    )["params"]
    assert set(no_bias) == {"kernel"}


def test_separate_initializers_are_used():
    module = layers.SeparableConv1D(
        features=2,
        kernel_size=3,
        depthwise_init=initializers.constant(1.0),
        pointwise_init=initializers.constant(2.0),
        bias_init=initializers.constant(3.0),
    )
    x = jnp.ones((1, 5, 2))
    p = _init(module, x)["params"]
    assert np.all(p["depthwise"]["kernel"] == 1.0)
    assert np.all(p["pointwise"]["kernel"] == 2.0)
    assert np.all(p["bias"] == 3.0)
    # Interior position: 3 taps of ones over 2 channels, pointwise 2 * 2 * 3 + 3.
    np.testing.assert_allclose(_apply(module, {"params": p}, x)[0, 2], [15.0, 15.0])


def test_dtype_and_param_dtype():
    x = _normal((1, 6, 6, 2))
    half = layers.SeparableConv2D(features=3, kernel_size=3, param_dtype=jnp.bfloat16)
    variables = _init(half, x)
    assert all(a.dtype == jnp.bfloat16 for a in jax.tree_util.tree_leaves(variables))
    assert _apply(half, variables, x).dtype == jnp.float32  # promoted with the input
    compute = layers.SeparableConv2D(features=3, kernel_size=3, dtype=jnp.bfloat16)
    variables = _init(compute, x)
    assert jax.tree_util.tree_leaves(variables)[0].dtype == jnp.float32
    assert _apply(compute, variables, x).dtype == jnp.bfloat16
    accumulate = layers.DepthwiseConv2D(
        kernel_size=3, dtype=jnp.bfloat16, preferred_element_type=jnp.float32
    )
    assert _apply(accumulate, _init(accumulate, x), x).dtype == jnp.float32


def test_precision_is_passed_to_the_convolution():
    module = layers.Conv2D(features=2, kernel_size=3, precision="highest")
    x = _normal((1, 5, 5, 2))
    variables = _init(module, x)
    lowered = jax.jit(module.apply).lower(variables, x).as_text()
    assert "HIGHEST" in lowered
    kernel = variables["params"]["kernel"]
    want = conv_ref(x, kernel, (1, 1), (1, 1), [(1, 1), (1, 1)])
    np.testing.assert_allclose(_apply(module, variables, x), want, rtol=1e-6, atol=1e-6)


def test_depthwise_matches_torch_groups():
    torch = pytest.importorskip("torch")
    module = layers.DepthwiseConv2D(kernel_size=3, channel_multiplier=2, strides=2)
    x = _normal((2, 9, 9, 3))
    variables = _init(module, x)
    kernel = np.asarray(variables["params"]["kernel"])  # (3, 3, 1, 6)
    bias = np.asarray(variables["params"]["bias"])
    weight = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())  # (6, 1, 3, 3)
    # 9x9, stride 2, 'SAME' pads (1, 1), which PyTorch's padding=1 matches.
    out = torch.nn.functional.conv2d(
        torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy()),
        weight,
        torch.from_numpy(bias.copy()),
        stride=2,
        padding=1,
        groups=3,
    )
    want = out.numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(_apply(module, variables, x), want, rtol=1e-5, atol=1e-5)


CONSTRUCTION_ERRORS = [
    (lambda: layers.DepthwiseConv(kernel_size="3"), TypeError, "kernel_size='3'"),
    (lambda: layers.DepthwiseConv(kernel_size=0), ValueError, "kernel_size=0"),
    (lambda: layers.DepthwiseConv(kernel_size=(3, 3, 3, 3)), ValueError, "1, 2 or 3"),
    (
        lambda: layers.DepthwiseConv(kernel_size=(3, 3), strides=(1, 1, 1)),
        ValueError,
        "strides=",
    ),
    (lambda: layers.DepthwiseConv(kernel_size=3, strides=0), ValueError, "strides=0"),
    (
        lambda: layers.DepthwiseConv(kernel_size=3, dilation=1.5),
        TypeError,
        "dilation=1.5",
    ),
    (
        lambda: layers.DepthwiseConv2D(kernel_size=3, dilation=(1, 0)),
        ValueError,
        "dilation",
    ),
    (
        lambda: layers.DepthwiseConv2D(kernel_size=3, padding="FULL"),
        ValueError,
        "padding='FULL'",
    ),
    (
        lambda: layers.DepthwiseConv(kernel_size=3, padding="FULL"),
        ValueError,
        "padding='FULL'",
    ),
    (
        lambda: layers.DepthwiseConv2D(kernel_size=3, padding=-1),
        ValueError,
        "padding=-1",
    ),
    (
        lambda: layers.DepthwiseConv2D(kernel_size=3, padding=(1, 1, 1)),
        ValueError,
        "padding=",
    ),
    (
        lambda: layers.DepthwiseConv(kernel_size=3, padding=1.5),
        TypeError,
        "padding=1.5",
    ),
    (
        lambda: layers.DepthwiseConv2D(kernel_size=3, data_format="NCW"),
        ValueError,
        "data_format='NCW'",
    ),
    (
        lambda: layers.DepthwiseConv(kernel_size=3, data_format="CHWN"),
        ValueError,
        "data_format='CHWN'",
    ),
    (lambda: layers.DepthwiseConv(kernel_size=3, impl="fft"), ValueError, "impl='fft'"),
    (
        lambda: layers.DepthwiseConv(kernel_size=3, activation="swishy"),
        ValueError,
        "activation='swishy'",
    ),
    (
        lambda: layers.DepthwiseConv(kernel_size=3, activation=3),
        TypeError,
        "activation=3",
    ),
    (
        lambda: layers.DepthwiseConv(kernel_size=3, num_spatial_dims=4),
        ValueError,
        "num_spatial_dims=4",
    ),
    (
        lambda: layers.DepthwiseConv(
            kernel_size=3, channel_multiplier=2, depth_multiplier=3
        ),
        ValueError,
        "disagree",
    ),
    (lambda: layers.SeparableConv(features=0, kernel_size=3), ValueError, "features=0"),
    (
        lambda: layers.SeparableConv(
            features=4, kernel_size=3, intermediate_activation="nope"
        ),
        ValueError,
        "intermediate_activation='nope'",
    ),
    (lambda: layers.PointwiseConv(features=2.5), TypeError, "features=2.5"),
    (
        lambda: layers.PointwiseConv(features=2, activation="nope"),
        ValueError,
        "activation='nope'",
    ),
    (
        lambda: layers.Conv(features=6, kernel_size=3, feature_group_count=4),
        ValueError,
        "feature_group_count=4",
    ),
    (
        lambda: layers.Conv(features=6, kernel_size=3, feature_group_count=0),
        ValueError,
        "feature_group_count=0",
    ),
    (lambda: layers.Conv2D(features=6, kernel_size=(3,)), ValueError, "kernel_size="),
]


@pytest.mark.parametrize("make,exc,match", CONSTRUCTION_ERRORS)
def test_construction_errors_name_the_field(make, exc, match):
    with pytest.raises(exc, match=match.replace("(", r"\(").replace(")", r"\)")):
        make()


def test_call_errors_name_the_input():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="inputs has shape"):
        layers.DepthwiseConv2D(kernel_size=3).init(key, jnp.zeros((4, 4)))
    with pytest.raises(ValueError, match="num_spatial_dims"):
        layers.DepthwiseConv(kernel_size=3).init(key, jnp.zeros((1, 2, 2, 2, 2, 2)))
    with pytest.raises(ValueError, match="does not divide the 3 input channels"):
        layers.Conv2D(features=4, kernel_size=3, feature_group_count=2).init(
            key, jnp.zeros((1, 5, 5, 3))
        )
    with pytest.raises(ValueError, match="inputs has shape"):
        layers.PointwiseConv2D(features=4).init(key, jnp.zeros((5, 3)))
    # Integer images are promoted with the float32 parameters, as in flax.linen.
    ints = jnp.ones((1, 5, 5, 3), jnp.int32)
    module = layers.DepthwiseConv2D(kernel_size=3)
    assert jax.eval_shape(module.init_with_output, key, ints)[0].dtype == jnp.float32


def test_rank_inferred_from_any_per_axis_field():
    x = jnp.zeros((1, 9, 3))
    shapes = jax.eval_shape(
        layers.DepthwiseConv(kernel_size=3, strides=(2,)).init, jax.random.key(0), x
    )
    assert shapes["params"]["kernel"].shape == (3, 1, 3)
    assert jax.eval_shape(
        layers.DepthwiseConv(kernel_size=3, strides=(2,)).apply, shapes, x
    ).shape == (1, 5, 3)


@pytest.mark.parametrize(
    "field,value,fragment",
    [
        ("use_bias", "no", "use_bias='no'"),
        ("dtype", "bogus", "dtype='bogus'"),
        ("dtype", jnp.int32, "floating-point"),
        ("param_dtype", jnp.int8, "floating-point"),
        ("precision", "bogus", "precision='bogus'"),
    ],
)
def test_numeric_fields_checked_at_construction(field, value, fragment):
    for cls, kwargs in (
        (layers.DepthwiseConv2D, {"kernel_size": 3}),
        (layers.SeparableConv2D, {"features": 4, "kernel_size": 3}),
        (layers.PointwiseConv, {"features": 4}),
        (layers.Conv2D, {"features": 4, "kernel_size": 3}),
    ):
        with pytest.raises((TypeError, ValueError), match=re.escape(fragment)):
            cls(**kwargs, **{field: value})


def test_model_rejects_unknown_impl_at_construction():
    from dwsep_jax.models import build_model

    with pytest.raises(ValueError, match="impl='fast'"):
        build_model("mobilenet_v1_small", num_classes=10, impl="fast")
    with pytest.raises(ValueError, match="impl=None"):
        build_model("mobilenet_v2_small", num_classes=10, impl=None)
