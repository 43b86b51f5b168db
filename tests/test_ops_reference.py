"""Depthwise, pointwise and separable outputs against independent references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dwsep_jax import ops
from tests.reference import conv_ref, depthwise_ref, pointwise_ref, tf_same_pads

IMPLS = ["lax", "shift"]
CASES = [
    # (spatial, channels, multiplier, kernel, stride, dilation, padding)
    ((9, 10), 3, 1, (3, 3), (1, 1), (1, 1), "SAME"),
    ((9, 10), 3, 2, (3, 3), (2, 2), (1, 1), "SAME"),
    ((11, 8), 2, 3, (3, 2), (2, 1), (2, 1), "VALID"),
    ((12, 12), 4, 1, (5, 5), (2, 2), (1, 1), "SAME"),
    ((7, 9), 2, 1, (3, 3), (1, 1), (2, 3), "SAME"),
]


def _pads(padding, spatial, kernel, strides, dilation):
    if padding == "VALID":
        return [(0, 0)] * len(spatial)
    return [tf_same_pads(*a) for a in zip(spatial, kernel, strides, dilation)]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES)
def test_depthwise_matches_numpy_loop(impl, case):
    spatial, c, m, k, s, d, padding = case
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, *spatial, c)).astype(np.float32)
    w = rng.normal(size=(*k, 1, c * m)).astype(np.float32)
    got = ops.depthwise_conv(x, w, strides=s, dilation=d, padding=padding, impl=impl)
    want = depthwise_ref(x, w, s, d, _pads(padding, spatial, k, s, d))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_depthwise_does_not_mix_channels():
    # A signal in channel 0 only must leave every other output channel at zero.
    x = np.zeros((1, 6, 6, 3), np.float32)
    x[..., 0] = np.arange(36, dtype=np.float32).reshape(6, 6)
    w = np.ones((3, 3, 1, 6), np.float32)
    y = np.asarray(ops.depthwise_conv(x, w))
    assert np.abs(y[..., :2]).sum() > 0
    np.testing.assert_array_equal(y[..., 2:], 0.0)


def test_pointwise_matches_loop():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 4, 6)).astype(np.float32)
    w = rng.normal(size=(6, 7)).astype(np.float32)
    b = rng.normal(size=(7,)).astype(np.float32)
    for impl in ("dot", "lax"):
        got = ops.pointwise_conv(x, w, b, impl=impl)
        np.testing.assert_allclose(
            np.asarray(got), pointwise_ref(x, w, b), rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize("impl", IMPLS)
def test_separable_matches_reference(impl):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 9, 9, 4)).astype(np.float32)
    dw = rng.normal(size=(3, 3, 1, 8)).astype(np.float32)
    pw = rng.normal(size=(8, 5)).astype(np.float32)
    b = rng.normal(size=(5,)).astype(np.float32)
    got = ops.separable_conv(x, dw, pw, b, strides=2, impl=impl)
    pads = [tf_same_pads(9, 3, 2, 1)] * 2
    want = pointwise_ref(depthwise_ref(x, dw, (2, 2), (1, 1), pads), pw, b)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)


def test_standard_conv_matches_reference():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 8, 7, 3)).astype(np.float32)
    w = rng.normal(size=(3, 3, 3, 5)).astype(np.float32)
    got = ops.conv(x, w, strides=2, padding="SAME")
    pads = [tf_same_pads(8, 3, 2, 1), tf_same_pads(7, 3, 2, 1)]
    want = conv_ref(x, w, (2, 2), (1, 1), pads)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("stride,dilation,m", [(1, 1, 1), (2, 1, 2), (1, 2, 3)])
def test_depthwise_matches_torch(impl, stride, dilation, m):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    c = 5
    x = rng.normal(size=(2, 12, 11, c)).astype(np.float32)
    w = rng.normal(size=(3, 3, 1, c * m)).astype(np.float32)
    # PyTorch's padding=p is symmetric: give the same explicit pairs here.
    p = dilation
    got = ops.depthwise_conv(
        x, w, strides=stride, dilation=dilation, padding=((p, p), (p, p)), impl=impl
    )
    wt = torch.from_numpy(np.transpose(w, (3, 2, 0, 1)).copy())  # (C*M, 1, K, K)
    xt = torch.from_numpy(np.transpose(x, (0, 3, 1, 2)).copy())
    want = torch.nn.functional.conv2d(
        xt, wt, stride=stride, padding=p, dilation=dilation, groups=c
    ).numpy()
    np.testing.assert_allclose(
        np.asarray(got), np.transpose(want, (0, 2, 3, 1)), rtol=1e-4, atol=1e-4
    )


@pytest.mark.parametrize("impl", IMPLS)
def test_transforms_agree_with_eager(impl):
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(3, 8, 8, 4)), jnp.float32)
    dw = jnp.asarray(rng.normal(size=(3, 3, 1, 4)), jnp.float32)
    pw = jnp.asarray(rng.normal(size=(4, 6)), jnp.float32)

    def f(x, dw, pw):
        return ops.separable_conv(x, dw, pw, intermediate_activation="relu", impl=impl)

    eager = f(x, dw, pw)
    np.testing.assert_allclose(jax.jit(f)(x, dw, pw), eager, rtol=1e-5, atol=1e-5)
    per_example = jax.vmap(lambda xi: f(xi, dw, pw))(x)
    np.testing.assert_allclose(per_example, eager, rtol=1e-5, atol=1e-5)

    def loss(dw, pw):
        return jnp.sum(f(x, dw, pw) ** 2)

    g_eager = jax.grad(loss, argnums=(0, 1))(dw, pw)
    g_jit = jax.jit(jax.grad(loss, argnums=(0, 1)))(dw, pw)
    for a, b in zip(g_eager, g_jit):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    # Gradient of the depthwise kernel against central finite differences.
    eps = 1e-2
    e = np.zeros(dw.shape, np.float32)
    e[1, 2, 0, 3] = eps
    fd = (loss(dw + e, pw) - loss(dw - e, pw)) / (2 * eps)
    np.testing.assert_allclose(g_eager[0][1, 2, 0, 3], fd, rtol=2e-2)
