"""Kernel converters: exact round trips, and the same outputs as PyTorch/Keras.

The Keras side is checked against the definition of ``tf.nn.depthwise_conv2d``
(output channel ``c * M + m`` is ``filter[..., c, m]`` applied to input channel
``c``), written out as a loop here since TensorFlow is not installed.
"""

from __future__ import annotations

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from dwsep_jax import convert, ops


def _keras_depthwise_definition(x, kernel):
    """``out[n, y, x, c*M + m] = sum_ij K[i, j, c, m] * x[n, y+i, x+j, c]``, VALID."""
    kh, kw, c, m = kernel.shape
    n, h, w, _ = x.shape
    out = np.zeros((n, h - kh + 1, w - kw + 1, c * m))
    for i, j, ch, mm in itertools.product(range(kh), range(kw), range(c), range(m)):
        out[..., ch * m + mm] += (
            kernel[i, j, ch, mm] * x[:, i : i + h - kh + 1, j : j + w - kw + 1, ch]
        )
    return out


@pytest.mark.parametrize("ksize", [(5,), (3, 2), (2, 3, 2)])
@pytest.mark.parametrize("multiplier", [1, 3])
def test_depthwise_round_trips_are_exact(ksize, multiplier):
    rng = np.random.default_rng(0)
    c = 4
    torch_w = rng.normal(size=(c * multiplier, 1, *ksize))
    ours = convert.depthwise_from_torch(torch_w)
    assert ours.shape == (*ksize, 1, c * multiplier)
    np.testing.assert_array_equal(convert.depthwise_to_torch(ours), torch_w)
    keras_k = rng.normal(size=(*ksize, c, multiplier))
    ours = convert.depthwise_from_keras(keras_k)
    assert ours.shape == (*ksize, 1, c * multiplier)
    back = convert.depthwise_to_keras(ours, channel_multiplier=multiplier)
    np.testing.assert_array_equal(back, keras_k)


@pytest.mark.parametrize("num_spatial", [1, 2, 3])
def test_pointwise_round_trips_are_exact(num_spatial):
    rng = np.random.default_rng(1)
    torch_w = rng.normal(size=(5, 3, *([1] * num_spatial)))
    ours = convert.pointwise_from_torch(torch_w)
    assert ours.shape == (3, 5)
    np.testing.assert_array_equal(ours, torch_w[(...,) + (0,) * num_spatial].T)
    np.testing.assert_array_equal(
        convert.pointwise_to_torch(ours, num_spatial=num_spatial), torch_w
    )
    keras_k = rng.normal(size=(*([1] * num_spatial), 3, 5))
    ours = convert.pointwise_from_keras(keras_k)
    np.testing.assert_array_equal(
        convert.pointwise_to_keras(ours, num_spatial=num_spatial), keras_k
    )
    # A torch.nn.Linear weight (F, C_in) converts the same way.
    linear = torch_w.reshape(5, 3)
    np.testing.assert_array_equal(convert.pointwise_from_torch(linear), linear.T)


def test_grouped_conv_round_trip_is_exact():
    w = np.random.default_rng(2).normal(size=(6, 2, 3, 5))
    ours = convert.conv_from_torch(w)
    assert ours.shape == (3, 5, 2, 6)
    np.testing.assert_array_equal(convert.conv_to_torch(ours), w)


def test_jax_arrays_stay_jax_arrays():
    w = jnp.ones((8, 1, 3, 3))
    assert isinstance(convert.depthwise_from_torch(w), type(w))
    assert isinstance(convert.depthwise_from_torch(np.ones((8, 1, 3))), np.ndarray)


@pytest.mark.parametrize("num_spatial", [1, 2, 3])
@pytest.mark.parametrize("multiplier", [1, 2])
def test_ported_torch_separable_weights_give_torch_outputs(num_spatial, multiplier):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    c, f, k = 3, 5, 3
    conv_cls = getattr(torch.nn, f"Conv{num_spatial}d")
    dw = conv_cls(c, c * multiplier, k, padding=1, groups=c, bias=True).double()
    pw = conv_cls(c * multiplier, f, 1, bias=True).double()
    spatial = [7, 6, 5][:num_spatial]
    x = np.random.default_rng(3).normal(size=(2, c, *spatial))
    with torch.no_grad():
        want = pw(dw(torch.from_numpy(x))).numpy()
    layout = {1: "NCW", 2: "NCHW", 3: "NCDHW"}[num_spatial]
    got = ops.separable_conv(
        jnp.asarray(x, jnp.float32),
        convert.depthwise_from_torch(dw.weight),
        convert.pointwise_from_torch(pw.weight),
        pw.bias.detach().numpy(),
        depthwise_bias=dw.bias.detach().numpy(),
        padding=1,
        data_format=layout,
    )
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("multiplier", [1, 2])
def test_keras_kernel_follows_tensorflow_channel_order(multiplier):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 6, 5, 3))
    keras_k = rng.normal(size=(3, 2, 3, multiplier))
    got = ops.depthwise_conv(
        jnp.asarray(x, jnp.float32),
        jnp.asarray(convert.depthwise_from_keras(keras_k), jnp.float32),
        padding="VALID",
    )
    want = _keras_depthwise_definition(x, keras_k)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_pointwise_keras_kernel_accepted_directly_and_converted():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
    keras_pw = rng.normal(size=(1, 1, 3, 6)).astype(np.float32)
    direct = ops.pointwise_conv(x, keras_pw)
    converted = ops.pointwise_conv(x, convert.pointwise_from_keras(keras_pw))
    np.testing.assert_array_equal(np.asarray(direct), np.asarray(converted))
    np.testing.assert_allclose(
        np.asarray(direct), x @ keras_pw[0, 0], rtol=1e-5, atol=1e-5
    )
