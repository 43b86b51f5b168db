"""Hand-picked cases against independent references, and JAX transformations.

Covers: outputs against the NumPy loops in ``tests.reference`` and PyTorch; the
TensorFlow 'SAME' split; gradients to second order (``check_grads`` in float64);
``vmap`` over an ensemble of kernels against a Python loop; ``jit`` against
eager; dtypes kept, half precision accumulated in float32, ``precision`` and
``preferred_element_type`` passed through; leading batch axes; channels-first
through dimension numbers.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.test_util import check_grads

from dwsep_jax import _args, depthwise_impls, ops
from tests.reference import conv_ref, depthwise_ref, pointwise_ref, tf_same_pads

IMPLS = [name for name in depthwise_impls.IMPL_NAMES if name != "auto"]
POINTWISE_IMPLS = [name for name in ops.POINTWISE_IMPLS if name != "auto"]
HALF = [jnp.bfloat16, jnp.float16]
# Implementations built on ``jax.custom_vjp`` differentiate in reverse mode only
# (documented in dwsep_jax.depthwise_impls); all others support both modes.
REVERSE_ONLY = {"shift_vjp"}


def _modes(impl):
    return ("rev",) if impl in REVERSE_ONLY else ("fwd", "rev")


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


@pytest.mark.parametrize(
    "size,kernel,stride,dilation,want",
    [
        # TensorFlow: out = ceil(size / stride), total pad split with the odd
        # pixel at the end.
        (224, 3, 2, 1, (0, 1)),
        (224, 7, 2, 1, (2, 3)),
        (224, 3, 1, 1, (1, 1)),
        (5, 4, 1, 1, (1, 2)),
        (10, 3, 3, 1, (1, 1)),
        (9, 3, 2, 2, (2, 2)),
        (4, 1, 2, 1, (0, 0)),
    ],
)
def test_same_padding_follows_tensorflow(size, kernel, stride, dilation, want):
    assert _args.same_padding(size, kernel, stride, dilation) == want
    x = np.random.default_rng(0).normal(size=(1, size, 2)).astype(np.float32)
    w = np.random.default_rng(1).normal(size=(kernel, 1, 2)).astype(np.float32)
    got = ops.depthwise_conv(x, w, strides=stride, dilation=dilation, padding="SAME")
    assert got.shape == (1, -(-size // stride), 2)
    want_y = depthwise_ref(x, w, (stride,), (dilation,), [want])
    np.testing.assert_allclose(np.asarray(got), want_y, rtol=1e-5, atol=1e-5)


def _op_cases():
    """(name, function of (x, kernel), x shape, kernel shape, impl) per op."""
    cases = []
    for impl in IMPLS:
        cases.append(
            (
                f"depthwise-{impl}",
                lambda x, k, impl=impl: ops.depthwise_conv(
                    x, k, strides=(2, 1), dilation=(1, 2), impl=impl
                ),
                (1, 5, 4, 2),
                (3, 2, 1, 4),
                impl,
            )
        )
        cases.append(
            (
                f"depthwise1d-causal-{impl}",
                lambda x, k, impl=impl: ops.depthwise_conv(
                    x, k, padding="CAUSAL", dilation=2, impl=impl
                ),
                (2, 9, 2),
                (3, 1, 2),
                impl,
            )
        )
        cases.append(
            (
                f"depthwise3d-reflect-{impl}",
                lambda x, k, impl=impl: ops.depthwise_conv(
                    x, k, padding="REFLECT", impl=impl
                ),
                (1, 4, 4, 3, 2),
                (2, 2, 3, 1, 4),
                impl,
            )
        )
    for impl in POINTWISE_IMPLS:
        cases.append(
            (
                f"pointwise-{impl}",
                lambda x, k, impl=impl: ops.pointwise_conv(x, k, impl=impl),
                (2, 5, 4, 3),
                (3, 5),
                impl,
            )
        )
    cases.append(
        (
            "conv-grouped",
            lambda x, k: ops.conv(x, k, strides=2, feature_group_count=2),
            (2, 6, 5, 4),
            (3, 3, 2, 6),
            "lax",
        )
    )
    return cases


OP_CASES = _op_cases()
OP_IDS = [c[0] for c in OP_CASES]


@pytest.mark.parametrize("case", OP_CASES, ids=OP_IDS)
def test_check_grads_second_order(case):
    name, fn, x_shape, k_shape, impl = case
    rng = np.random.default_rng(6)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=x_shape), jnp.float64)
        k = jnp.asarray(rng.normal(size=k_shape), jnp.float64)
        order = 1 if ("1d" in name or "3d" in name) else 2
        check_grads(jax.jit(fn), (x, k), order=order, modes=_modes(impl))


@pytest.mark.parametrize("impl", sorted(REVERSE_ONLY & set(IMPLS)))
def test_reverse_only_impls_reject_forward_mode_clearly(impl):
    x = jnp.ones((1, 5, 5, 2))
    k = jnp.ones((3, 3, 1, 2))

    def fn(x):
        return ops.depthwise_conv(x, k, impl=impl)

    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(fn, (x,), (x,))


@pytest.mark.parametrize("impl", ["auto"])
def test_check_grads_separable_with_activations(impl):
    rng = np.random.default_rng(7)

    def fn(x, dw, pw, b):
        return ops.separable_conv(
            x, dw, pw, b, intermediate_activation="tanh", activation="silu", impl=impl
        )

    with jax.enable_x64(True):
        args = [
            jnp.asarray(rng.normal(size=s), jnp.float64)
            for s in [(1, 5, 5, 2), (3, 3, 1, 4), (4, 3), (3,)]
        ]
        geom, m = ops.depthwise_geometry(args[0], args[1])
        resolved = depthwise_impls.resolve_impl(impl, geom, m, args[0], args[1])
        check_grads(jax.jit(fn), args, order=2, modes=_modes(resolved))


@pytest.mark.parametrize("case", OP_CASES, ids=OP_IDS)
def test_vmap_over_kernel_ensemble_equals_loop(case):
    _, fn, x_shape, k_shape, _ = case
    rng = np.random.default_rng(8)
    x = jnp.asarray(rng.normal(size=x_shape), jnp.float32)
    kernels = jnp.asarray(rng.normal(size=(4, *k_shape)), jnp.float32)
    batched = jax.jit(jax.vmap(fn, in_axes=(None, 0)))(x, kernels)
    fn = jax.jit(fn)
    looped = jnp.stack([fn(x, k) for k in kernels])
    np.testing.assert_allclose(batched, looped, rtol=1e-5, atol=1e-5)
    # Kernels and inputs mapped together (one model per input batch).
    xs = jnp.asarray(rng.normal(size=(4, *x_shape)), jnp.float32)
    both = jax.jit(jax.vmap(fn))(xs, kernels)
    looped = jnp.stack([fn(xi, k) for xi, k in zip(xs, kernels)])
    np.testing.assert_allclose(both, looped, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("case", OP_CASES, ids=OP_IDS)
def test_jit_equals_eager(case):
    _, fn, x_shape, k_shape, _ = case
    rng = np.random.default_rng(9)
    x = jnp.asarray(rng.normal(size=x_shape), jnp.float32)
    k = jnp.asarray(rng.normal(size=k_shape), jnp.float32)
    np.testing.assert_allclose(jax.jit(fn)(x, k), fn(x, k), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("case", OP_CASES, ids=OP_IDS)
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_output_keeps_input_dtype(case, dtype):
    _, fn, x_shape, k_shape, _ = case
    x = jax.ShapeDtypeStruct(x_shape, dtype)
    k = jax.ShapeDtypeStruct(k_shape, dtype)
    assert jax.eval_shape(fn, x, k).dtype == dtype


@pytest.mark.parametrize("case", OP_CASES, ids=OP_IDS)
def test_float64_kept_and_exact(case):
    _, fn, x_shape, k_shape, _ = case
    rng = np.random.default_rng(10)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=x_shape), jnp.float64)
        k = jnp.asarray(rng.normal(size=k_shape), jnp.float64)
        y = jax.jit(fn)(x, k)
        assert y.dtype == jnp.float64
        # float64 against a float32 evaluation of the same function: the
        # float64 one must be the more precise (agreement only to float32 eps).
        y32 = jax.jit(fn)(x.astype(jnp.float32), k.astype(jnp.float32))
        np.testing.assert_allclose(y, y32, rtol=1e-4, atol=1e-4)


def _long_sum_weights(n_small=64):
    """Two weight vectors of ``1`` and ``n_small`` copies of ``2**-12``.

    In bfloat16 and float16, ``1 + 2**-12`` rounds back to ``1``, so a running
    half-precision sum that meets the ``1`` first loses every small term, and one
    that meets it last gets them all; column 0 has the ``1`` first, column 1
    last. The exact sum ``1 + n_small * 2**-12`` is representable in both
    dtypes, so a float32 accumulator returns it in both columns.
    """
    w = np.full((n_small + 1, 2), 2.0**-12, np.float32)
    w[0, 0] = 1.0
    w[-1, 1] = 1.0
    return w, 1.0 + n_small * 2.0**-12


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", HALF)
def test_half_precision_depthwise_accumulates_in_float32(impl, dtype):
    w, exact = _long_sum_weights()
    x = jnp.ones((1, w.shape[0], 2), dtype)
    k = jnp.asarray(w[:, None, :], dtype)
    y = ops.depthwise_conv(x, k, padding="VALID", impl=impl)
    assert y.dtype == dtype
    np.testing.assert_array_equal(np.asarray(y, np.float32), exact)


@pytest.mark.parametrize("impl", POINTWISE_IMPLS)
@pytest.mark.parametrize("dtype", HALF)
def test_half_precision_pointwise_and_conv_accumulate_in_float32(impl, dtype):
    w, exact = _long_sum_weights()
    x = jnp.ones((1, 2, 2, w.shape[0]), dtype)
    y = ops.pointwise_conv(x, jnp.asarray(w, dtype), impl=impl)
    assert y.dtype == dtype
    np.testing.assert_array_equal(np.asarray(y, np.float32), exact)
    y = ops.conv(x, jnp.asarray(w[None, None], dtype), padding="VALID")
    assert y.dtype == dtype
    np.testing.assert_array_equal(np.asarray(y, np.float32), exact)


@pytest.mark.parametrize("impl", IMPLS)
def test_preferred_element_type_sets_output_dtype(impl):
    x = jnp.ones((1, 6, 6, 2), jnp.bfloat16)
    k = jnp.ones((3, 3, 1, 2), jnp.bfloat16)
    y = ops.depthwise_conv(x, k, impl=impl, preferred_element_type=jnp.float32)
    assert y.dtype == jnp.float32
    pw = ops.pointwise_conv(
        x, jnp.ones((2, 3), jnp.bfloat16), preferred_element_type=jnp.float32
    )
    assert pw.dtype == jnp.float32
    sep = ops.separable_conv(
        x, k, jnp.ones((2, 3), jnp.bfloat16), preferred_element_type=jnp.float32
    )
    assert sep.dtype == jnp.float32


def _conv_eqns(fn, *args):
    jaxpr = jax.make_jaxpr(fn)(*args)
    return [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "conv_general_dilated"]


def test_precision_passes_through_to_lax():
    x = jnp.ones((1, 6, 6, 2))
    k = jnp.ones((3, 3, 1, 2))
    highest = lax.Precision.HIGHEST

    def fn(x, k):
        return ops.depthwise_conv(x, k, impl="lax", precision=highest)

    (eqn,) = _conv_eqns(fn, x, k)
    assert eqn.params["precision"] == (highest, highest)
    full = jnp.ones((3, 3, 2, 3))
    (eqn,) = _conv_eqns(lambda x, k: ops.conv(x, k, precision=highest), x, full)
    assert eqn.params["precision"] == (highest, highest)
    jaxpr = jax.make_jaxpr(
        lambda x: ops.pointwise_conv(x, jnp.ones((2, 3)), precision=highest)
    )(x)
    (dot,) = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "dot_general"]
    assert dot.params["precision"] == (highest, highest)


@pytest.mark.parametrize("layout", ["NCW", "NCHW", "NCDHW"])
def test_channels_first_uses_dimension_numbers_without_transposes(layout):
    n = len(layout) - 2
    x = jnp.ones((2, 3, *([5] * n)))
    k = jnp.ones((*([3] * n), 1, 6))

    def fn(x, k):
        return ops.depthwise_conv(x, k, impl="lax", data_format=layout)

    jaxpr = jax.make_jaxpr(fn)(x, k)
    names = [e.primitive.name for e in jaxpr.jaxpr.eqns]
    assert "transpose" not in names
    (eqn,) = _conv_eqns(fn, x, k)
    assert eqn.params["dimension_numbers"].lhs_spec == tuple(range(n + 2))
    assert fn(x, k).shape == (2, 6, *([5] * n))


@pytest.mark.parametrize("impl", IMPLS)
def test_leading_batch_axes_none_one_and_two(impl):
    rng = np.random.default_rng(11)
    x = jnp.asarray(rng.normal(size=(2, 3, 7, 6, 4)), jnp.float32)
    dw = jnp.asarray(rng.normal(size=(3, 3, 1, 8)), jnp.float32)
    pw = jnp.asarray(rng.normal(size=(8, 5)), jnp.float32)

    def fn(x):
        return ops.separable_conv(x, dw, pw, strides=2, impl=impl)

    flat = fn(x.reshape(6, 7, 6, 4))
    assert fn(x).shape == (2, 3, 4, 3, 5)
    np.testing.assert_allclose(fn(x).reshape(flat.shape), flat, rtol=1e-5, atol=1e-5)
    single = fn(x[0, 0])
    assert single.shape == (4, 3, 5)
    np.testing.assert_allclose(single, flat[0], rtol=1e-5, atol=1e-5)


def test_bias_and_activation_order():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
    dw = rng.normal(size=(3, 3, 1, 3)).astype(np.float32)
    db = rng.normal(size=(3,)).astype(np.float32)
    pw = rng.normal(size=(3, 4)).astype(np.float32)
    pb = rng.normal(size=(4,)).astype(np.float32)
    pads = [(1, 1), (1, 1)]
    mid = depthwise_ref(x, dw, (1, 1), (1, 1), pads) + db
    got = ops.depthwise_conv(x, dw, db, activation="relu")
    np.testing.assert_allclose(got, np.maximum(mid, 0), rtol=1e-5, atol=1e-5)
    # Keras semantics: no activation between the steps unless asked for.
    keras_like = ops.separable_conv(x, dw, pw, pb, depthwise_bias=db, activation="relu")
    want = np.maximum(pointwise_ref(mid, pw, pb), 0)
    np.testing.assert_allclose(keras_like, want, rtol=1e-4, atol=1e-4)
    mobilenet_like = ops.separable_conv(
        x, dw, pw, pb, depthwise_bias=db, intermediate_activation="relu6"
    )
    want = pointwise_ref(np.clip(mid, 0, 6), pw, pb)
    np.testing.assert_allclose(mobilenet_like, want, rtol=1e-4, atol=1e-4)
