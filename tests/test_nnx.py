"""flax.nnx modules: same parameters and outputs as linen, references, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.nn import initializers

from dwsep_jax import layers
from dwsep_jax import nnx as dnnx
from tests.reference import depthwise_ref, pointwise_ref, tf_same_pads


def _normal(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _shapes(module):
    return jax.tree_util.tree_map(
        lambda a: tuple(a.shape), nnx.to_pure_dict(nnx.state(module, nnx.Param))
    )


PAIRS = {
    "depthwise1d": (
        lambda: dnnx.DepthwiseConv1D(3, 5, 2, strides=2, rngs=nnx.Rngs(0)),
        lambda: layers.DepthwiseConv1D(kernel_size=5, channel_multiplier=2, strides=2),
        (2, 11, 3),
    ),
    "pointwise2d": (
        lambda: dnnx.PointwiseConv2D(3, 4, rngs=nnx.Rngs(0)),
        lambda: layers.PointwiseConv2D(features=4),
        (2, 5, 5, 3),
    ),
    "separable2d": (
        lambda: dnnx.SeparableConv2D(
            3, 4, 3, 2, strides=2, intermediate_activation="relu", rngs=nnx.Rngs(0)
        ),
        lambda: layers.SeparableConv2D(
            features=4,
            kernel_size=3,
            channel_multiplier=2,
            strides=2,
            intermediate_activation="relu",
        ),
        (2, 7, 7, 3),
    ),
    "separable3d_channels_first": (
        lambda: dnnx.SeparableConv3D(
            2, 3, (3, 1, 3), data_format="channels_first", rngs=nnx.Rngs(0)
        ),
        lambda: layers.SeparableConv3D(
            features=3, kernel_size=(3, 1, 3), data_format="channels_first"
        ),
        (1, 2, 4, 5, 4),
    ),
    "conv2d_grouped": (
        lambda: dnnx.Conv2D(4, 6, 3, feature_group_count=2, rngs=nnx.Rngs(0)),
        lambda: layers.Conv2D(features=6, kernel_size=3, feature_group_count=2),
        (2, 6, 6, 4),
    ),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_nnx_matches_linen_with_the_same_parameters(name):
    make_nnx, make_linen, shape = PAIRS[name]
    module, linen = make_nnx(), make_linen()
    x = _normal(shape)
    variables = jax.jit(linen.init)(jax.random.key(1), x)
    params = variables["params"]
    assert _shapes(module) == jax.tree_util.tree_map(lambda a: a.shape, params)
    # Biases start at zero: make them count.
    params = jax.tree_util.tree_map_with_path(
        lambda p, a: a + 0.5 if "bias" in jax.tree_util.keystr(p) else a, params
    )
    dnnx.load_linen_params(module, params)
    got = jax.jit(lambda m, x: m(x))(module, x)
    want = jax.jit(linen.apply)({"params": params}, x)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_nnx_separable_matches_reference():
    module = dnnx.SeparableConv2D(
        2, 3, 3, bias_init=initializers.normal(1.0), rngs=nnx.Rngs(0)
    )
    x = _normal((2, 6, 5, 2))
    pads = [tf_same_pads(6, 3, 1, 1), tf_same_pads(5, 3, 1, 1)]
    depth = depthwise_ref(x, module.depthwise.kernel[...], (1, 1), (1, 1), pads)
    want = pointwise_ref(depth, module.pointwise.kernel[...], module.bias[...])
    np.testing.assert_allclose(module(x), want, rtol=1e-5, atol=1e-5)


def test_nnx_module_trains_under_grad_and_jit():
    module = dnnx.DepthwiseConv2D(2, 3, rngs=nnx.Rngs(0))
    x = _normal((2, 5, 5, 2))

    @nnx.jit
    def loss_and_grad(m):
        return nnx.value_and_grad(lambda m: jnp.sum(m(x) ** 2))(m)

    _, grads = loss_and_grad(module)
    kernel_grad = grads["kernel"][...]
    assert kernel_grad.shape == (3, 3, 1, 2)
    # d/dK sum(y^2) = 2 * sum_pos y * window: check one tap against NumPy.
    y = np.asarray(module(x), np.float64)
    xp = np.pad(np.asarray(x, np.float64), [(0, 0), (1, 1), (1, 1), (0, 0)])
    want = 2 * np.sum(y[..., 0] * xp[:, 0:5, 2:7, 0])
    np.testing.assert_allclose(kernel_grad[0, 2, 0, 0], want, rtol=1e-4)


def test_nnx_defaults_dtype_and_initializers():
    module = dnnx.SeparableConv2D(
        4,
        8,
        3,
        depthwise_init=initializers.constant(1.0),
        pointwise_init=initializers.constant(2.0),
        bias_init=initializers.constant(3.0),
        param_dtype=jnp.bfloat16,
        use_bias=True,
        rngs=nnx.Rngs(0),
    )
    assert module.depthwise.kernel.dtype == jnp.bfloat16
    assert np.all(np.asarray(module.pointwise.kernel[...], np.float32) == 2.0)
    assert np.all(np.asarray(module.bias[...], np.float32) == 3.0)
    no_bias = dnnx.DepthwiseConv2D(4, 3, use_bias=False, rngs=nnx.Rngs(0))
    assert set(_shapes(no_bias)) == {"kernel"}
    compute = dnnx.DepthwiseConv2D(4, 3, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    assert compute(jnp.ones((1, 5, 5, 4))).dtype == jnp.bfloat16


NNX_ERRORS = [
    (
        lambda: dnnx.DepthwiseConv(4, 3, rngs=nnx.Rngs(0)),
        ValueError,
        "num_spatial_dims",
    ),
    (lambda: dnnx.DepthwiseConv2D(0, 3, rngs=nnx.Rngs(0)), ValueError, "in_features=0"),
    (
        lambda: dnnx.DepthwiseConv2D(4, 3, num_spatial_dims=3, rngs=nnx.Rngs(0)),
        ValueError,
        "num_spatial_dims=3",
    ),
    (
        lambda: dnnx.DepthwiseConv2D(4, 3, padding="FULL", rngs=nnx.Rngs(0)),
        ValueError,
        "padding='FULL'",
    ),
    (
        lambda: dnnx.DepthwiseConv2D(4, 3, impl="fft", rngs=nnx.Rngs(0)),
        ValueError,
        "impl='fft'",
    ),
    (
        lambda: dnnx.DepthwiseConv2D(4, 3, activation="nope", rngs=nnx.Rngs(0)),
        ValueError,
        "activation='nope'",
    ),
    (lambda: dnnx.PointwiseConv(4, 0, rngs=nnx.Rngs(0)), ValueError, "out_features=0"),
    (
        lambda: dnnx.PointwiseConv(
            4, 2, data_format="channels_first", rngs=nnx.Rngs(0)
        ),
        ValueError,
        "num_spatial_dims",
    ),
    (
        lambda: dnnx.SeparableConv2D(
            4, 2, 3, intermediate_activation="x", rngs=nnx.Rngs(0)
        ),
        ValueError,
        "intermediate_activation='x'",
    ),
    (
        lambda: dnnx.Conv2D(4, 6, 3, feature_group_count=4, rngs=nnx.Rngs(0)),
        ValueError,
        "feature_group_count=4",
    ),
    (
        lambda: dnnx.Conv2D(4, 6, (3, 3, 3), rngs=nnx.Rngs(0)),
        ValueError,
        "kernel_size=",
    ),
]


@pytest.mark.parametrize("make,exc,match", NNX_ERRORS)
def test_nnx_construction_errors_name_the_field(make, exc, match):
    with pytest.raises(exc, match=match.replace("(", r"\(")):
        make()


def test_nnx_call_errors():
    module = dnnx.SeparableConv2D(4, 2, 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="in_features=4"):
        module(jnp.zeros((1, 5, 5, 3)))
    with pytest.raises(ValueError, match="inputs has shape"):
        module(jnp.zeros((5, 4)))


def test_load_linen_params_rejects_mismatched_trees():
    module = dnnx.DepthwiseConv2D(4, 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="expects"):
        dnnx.load_linen_params(module, {"kernel": jnp.zeros((3, 3, 1, 4))})
    with pytest.raises(ValueError, match="shape"):
        dnnx.load_linen_params(
            module, {"kernel": jnp.zeros((5, 5, 1, 4)), "bias": jnp.zeros(4)}
        )
