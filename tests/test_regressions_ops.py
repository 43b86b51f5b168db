"""Regression cases from faults users of other libraries met with depthwise and
grouped convolutions, each with the stated right value, plus a property test
for the class of fault where one fits.

Cases: per-example gradients (vmap of grad over unbatched images), per-example
kernels (vmap over kernels and inputs together), channels-first 1-D with a
dilated kernel wider than the input, channels-first 2-D against channels-last,
half-precision kernel gradients, TensorFlow 'SAME' split and PyTorch padding,
weight porting with a channel multiplier.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dwsep_jax import _args, convert, depthwise_impls, ops
from tests.reference import depthwise_ref, depthwise_ref_vectorized

IMPLS = [name for name in depthwise_impls.IMPL_NAMES if name != "auto"]


def examples(factor: float) -> settings:
    return settings(max_examples=max(1, int(settings.default.max_examples * factor)))


# Per-example gradients.


def _init_net(key):
    k = jax.random.split(key, 5)
    return {
        "stem": jax.random.normal(k[0], (3, 3, 1, 4)) * 0.3,
        "dw": jax.random.normal(k[1], (3, 3, 1, 8)) * 0.3,
        "pw": jax.random.normal(k[2], (8, 12)) * 0.3,
        "pb": jax.random.normal(k[3], (12,)) * 0.1,
        "head": jax.random.normal(k[4], (12, 10)) * 0.3,
    }


def _net_loss(params, image, impl="auto"):
    """A small separable network on ONE unbatched image ``(28, 28, 1)``."""
    h = ops.conv(image, params["stem"], strides=2, activation="relu")
    h = ops.separable_conv(
        h,
        params["dw"],
        params["pw"],
        params["pb"],
        strides=2,
        intermediate_activation="relu",
        activation="relu",
        impl=impl,
    )
    logits = h.mean(axis=(0, 1)) @ params["head"]
    return jax.nn.logsumexp(logits) - logits[3]


@pytest.mark.parametrize("impl", IMPLS)
def test_per_example_gradients_vmap_equals_loop(impl):
    params = _init_net(jax.random.key(0))
    images = jax.random.normal(jax.random.key(1), (8, 28, 28, 1))
    loss = functools.partial(_net_loss, impl=impl)
    assert loss(params, images[0]).shape == ()
    batched = jax.jit(jax.vmap(jax.grad(loss), in_axes=(None, 0)))(params, images)
    grad = jax.jit(jax.grad(loss))
    for i in range(8):
        single = grad(params, images[i])
        for name in params:
            assert batched[name].shape == (8, *params[name].shape)
            np.testing.assert_allclose(
                batched[name][i], single[name], rtol=1e-4, atol=1e-6, err_msg=name
            )
    # The examples really differ, so the test would notice a shared gradient.
    assert not np.allclose(batched["dw"][0], batched["dw"][1])


# Per-example kernels.


@pytest.mark.parametrize("impl", IMPLS)
def test_per_example_kernels_vmap_equals_loop(impl):
    rng = np.random.default_rng(2)
    kernels = jnp.asarray(rng.normal(size=(4, 3, 3, 1, 8)), jnp.float32)
    inputs = jnp.asarray(rng.normal(size=(4, 9, 7, 8)), jnp.float32)

    def f(x, k):
        return ops.depthwise_conv(x, k, impl=impl)

    batched = jax.jit(jax.vmap(f))(inputs, kernels)
    assert batched.shape == (4, 9, 7, 8)
    single = jax.jit(f)
    for i in range(4):
        np.testing.assert_allclose(
            batched[i], single(inputs[i], kernels[i]), rtol=1e-5, atol=1e-6
        )
        want = depthwise_ref(inputs[i][None], kernels[i], (1, 1), (1, 1), [(1, 1)] * 2)
        np.testing.assert_allclose(batched[i], want[0], rtol=1e-4, atol=1e-5)

    def loss(k, x):
        return jnp.sum(jnp.sin(f(x, k)))

    grads = jax.jit(jax.vmap(jax.grad(loss)))(kernels, inputs)
    grad = jax.jit(jax.grad(loss))
    for i in range(4):
        np.testing.assert_allclose(
            grads[i], grad(kernels[i], inputs[i]), rtol=1e-4, atol=1e-5
        )


@examples(0.2)
@given(
    n=st.integers(1, 2),
    channels=st.integers(1, 3),
    multiplier=st.integers(1, 2),
    stride=st.integers(1, 2),
    padding=st.sampled_from(["SAME", "VALID", "CAUSAL", "REFLECT"]),
    impl=st.sampled_from(IMPLS),
    seed=st.integers(0, 1000),
)
def test_vmap_of_grad_over_examples_and_kernels_equals_loop(
    n, channels, multiplier, stride, padding, impl, seed
):
    rng = np.random.default_rng(seed)
    xs = jnp.asarray(rng.normal(size=(3, *([6] * n), channels)), jnp.float32)
    ks = jnp.asarray(
        rng.normal(size=(3, *([3] * n), 1, channels * multiplier)), jnp.float32
    )

    def loss(k, x):
        y = ops.depthwise_conv(x, k, strides=stride, padding=padding, impl=impl)
        return jnp.sum(jnp.tanh(y))

    grad = jax.grad(loss, argnums=(0, 1))
    per_kernel, per_example = jax.jit(
        lambda ks, xs: (jax.vmap(grad)(ks, xs), jax.vmap(grad, (None, 0))(ks[0], xs))
    )(ks, xs)
    grad = jax.jit(grad)
    for i in range(3):
        for got, want in zip(per_kernel, grad(ks[i], xs[i])):
            np.testing.assert_allclose(got[i], want, rtol=1e-4, atol=1e-5)
        for got, want in zip(per_example, grad(ks[0], xs[i])):
            np.testing.assert_allclose(got[i], want, rtol=1e-4, atol=1e-5)


# Channels-first 1-D with a dilated kernel.


def test_channels_first_1d_dilated_kernel_wider_than_input_is_a_clear_error():
    x = np.zeros((4, 10, 12), np.float32)  # (N, C, W)
    k = np.zeros((7, 1, 20), np.float32)  # 7 taps, C * M = 10 * 2
    with pytest.raises(ValueError) as info:
        ops.depthwise_conv(
            x, k, dilation=2, padding="VALID", data_format="NCW", channel_multiplier=2
        )
    message = str(info.value)
    for fragment in ("size 12", "dilated kernel extent 13", "(7,)", "(2,)"):
        assert fragment in message, message


@pytest.mark.parametrize("impl", IMPLS)
def test_channels_first_1d_dilated_kernel_output(impl):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 10, 20)).astype(np.float32)
    k = rng.normal(size=(7, 1, 20)).astype(np.float32)
    y = ops.depthwise_conv(
        x,
        k,
        dilation=2,
        padding="VALID",
        data_format="NCW",
        channel_multiplier=2,
        impl=impl,
    )
    assert y.shape == (4, 20, 8)
    want = torch.nn.functional.conv1d(
        torch.from_numpy(x),
        torch.from_numpy(convert.depthwise_to_torch(k)),
        dilation=2,
        groups=10,
    ).numpy()
    np.testing.assert_allclose(np.asarray(y), want, rtol=1e-5, atol=1e-5)


# Channels-first 2-D.


@pytest.mark.parametrize("impl", IMPLS)
def test_channels_first_2d_equals_channels_last_transposed(impl):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 10, 10)).astype(np.float32)
    k = rng.normal(size=(2, 2, 1, 6)).astype(np.float32)
    first = ops.depthwise_conv(
        x, k, padding="VALID", data_format="NCHW", channel_multiplier=2, impl=impl
    )
    assert first.shape == (2, 6, 9, 9)
    last = ops.depthwise_conv(
        np.transpose(x, (0, 2, 3, 1)), k, padding="VALID", impl=impl
    )
    np.testing.assert_allclose(
        np.asarray(first), np.transpose(np.asarray(last), (0, 3, 1, 2)), rtol=1e-6
    )
    want = depthwise_ref(np.transpose(x, (0, 2, 3, 1)), k, (1, 1), (1, 1), [(0, 0)] * 2)
    np.testing.assert_allclose(
        np.asarray(first), np.transpose(want, (0, 3, 1, 2)), rtol=1e-5, atol=1e-5
    )


# Half precision kernel gradients.

#: Largest allowed |g_half - g_float32| / max|g_float32|: a few units of output
#: rounding (2**-9 for bfloat16, 2**-11 for float16) with float32 accumulation.
HALF_GRAD_TOL = {"bfloat16": 2.0**-7, "float16": 2.0**-9}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_kernel_gradient_close_to_float32(impl, dtype):
    rng = np.random.default_rng(5)
    half = jnp.dtype(dtype)
    # Values are rounded to the half dtype first, so float32 sees the same data.
    x = jnp.asarray(rng.normal(size=(8, 56, 56, 144)), half)
    k = jnp.asarray(rng.normal(size=(3, 3, 1, 144)) * 0.3, half)
    ct = jnp.asarray(rng.normal(size=(8, 56, 56, 144)), half)

    def loss(k, x, ct):
        y = ops.depthwise_conv(x, k, impl=impl)
        return jnp.vdot(y.astype(jnp.float32), ct.astype(jnp.float32))

    g_half = jax.jit(jax.grad(loss))(k, x, ct)
    g32 = jax.jit(jax.grad(loss))(
        k.astype(jnp.float32), x.astype(jnp.float32), ct.astype(jnp.float32)
    )
    assert g_half.dtype == half
    g_half = np.asarray(g_half, np.float32)
    assert np.isfinite(g_half).all()
    err = np.abs(g_half - np.asarray(g32)).max() / np.abs(np.asarray(g32)).max()
    assert err <= HALF_GRAD_TOL[dtype], err


# 'SAME' with stride 2 and PyTorch padding.


@pytest.mark.parametrize("kernel,want", [(3, (0, 1)), (7, (2, 3))])
def test_same_stride_two_split_on_224(kernel, want):
    assert _args.same_padding(224, kernel, 2, 1) == want
    rng = np.random.default_rng(6)
    x = rng.normal(size=(1, 224, 224, 2)).astype(np.float32)
    k = rng.normal(size=(kernel, kernel, 1, 2)).astype(np.float32)
    y = ops.depthwise_conv(x, k, strides=2, padding="SAME")
    assert y.shape == (1, 112, 112, 2)
    ref = depthwise_ref_vectorized(x, k, (2, 2), (1, 1), [want, want])
    np.testing.assert_allclose(np.asarray(y), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_explicit_pads_reproduce_torch_padding_exactly(impl):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    # Small integers: every sum is exact in float32, so outputs must be equal.
    x = rng.integers(-3, 4, size=(2, 3, 224, 224)).astype(np.float32)
    w = rng.integers(-3, 4, size=(6, 1, 3, 3)).astype(np.float32)
    want = torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(w), stride=2, padding=1, groups=3
    ).numpy()
    kwargs = dict(strides=2, data_format="NCHW", impl=impl)
    k = convert.depthwise_from_torch(w)
    ported = ops.depthwise_conv(x, k, padding=((1, 1), (1, 1)), **kwargs)
    np.testing.assert_array_equal(np.asarray(ported), want)
    # 'SAME' pads (0, 1) here: the windows sit one pixel later than PyTorch's.
    same = np.asarray(ops.depthwise_conv(x, k, padding="SAME", **kwargs))
    assert same.shape == want.shape
    assert not np.array_equal(same, want)
    shifted = torch.nn.functional.conv2d(
        torch.nn.functional.pad(torch.from_numpy(x), (0, 1, 0, 1)),
        torch.from_numpy(w),
        stride=2,
        groups=3,
    ).numpy()
    np.testing.assert_array_equal(same, shifted)


# Weight porting with a multiplier.


def _torch_to_keras_by_definition(torch_w, multiplier):
    """Keras ``K[i, j, c, m]`` is PyTorch ``W[c * M + m, 0, i, j]``."""
    cm, _, kh, kw = torch_w.shape
    keras = np.zeros((kh, kw, cm // multiplier, multiplier), torch_w.dtype)
    for c in range(cm // multiplier):
        for m in range(multiplier):
            keras[:, :, c, m] = torch_w[c * multiplier + m, 0]
    return keras


def test_torch_and_keras_weights_with_multiplier_give_identical_outputs():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    torch_w = rng.normal(size=(16, 1, 3, 3)).astype(np.float32)
    keras_k = _torch_to_keras_by_definition(torch_w, 2)
    assert keras_k.shape == (3, 3, 8, 2)
    x = rng.normal(size=(2, 9, 9, 8)).astype(np.float32)
    from_torch = convert.depthwise_from_torch(torch_w)
    from_keras = convert.depthwise_from_keras(keras_k)
    np.testing.assert_array_equal(from_torch, from_keras)
    y_torch = ops.depthwise_conv(x, from_torch, padding=1, depth_multiplier=2)
    y_keras = ops.depthwise_conv(x, from_keras, padding=1, depth_multiplier=2)
    np.testing.assert_array_equal(np.asarray(y_torch), np.asarray(y_keras))
    want = torch.nn.functional.conv2d(
        torch.from_numpy(np.transpose(x, (0, 3, 1, 2)).copy()),
        torch.from_numpy(torch_w),
        padding=1,
        groups=8,
    ).numpy()
    np.testing.assert_allclose(
        np.asarray(y_torch), np.transpose(want, (0, 2, 3, 1)), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(convert.depthwise_to_torch(from_keras), torch_w)
    np.testing.assert_array_equal(
        convert.depthwise_to_keras(from_torch, channel_multiplier=2), keras_k
    )


@examples(1)
@given(
    ksize=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    channels=st.integers(1, 5),
    multiplier=st.integers(1, 4),
)
def test_torch_keras_ours_round_trip_for_any_shape(ksize, channels, multiplier):
    rng = np.random.default_rng(len(ksize) * 100 + channels * 10 + multiplier)
    torch_w = rng.normal(size=(channels * multiplier, 1, *ksize))
    ours = convert.depthwise_from_torch(torch_w)
    keras = convert.depthwise_to_keras(ours, channel_multiplier=multiplier)
    # Keras K[..., c, m] must be torch W[c * M + m, 0, ...] for every c, m.
    for c in range(channels):
        for m in range(multiplier):
            np.testing.assert_array_equal(
                keras[..., c, m], torch_w[c * multiplier + m, 0]
            )
    np.testing.assert_array_equal(convert.depthwise_from_keras(keras), ours)
    np.testing.assert_array_equal(convert.depthwise_to_torch(ours), torch_w)
