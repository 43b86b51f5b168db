"""Regression cases from other libraries' bug reports: module construction,
initializer fans and batch-norm statistics.

Each case is a named test with the value stated in the report, and a property
test covers the class of fault around it.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import errors, nnx
from hypothesis import given
from hypothesis import strategies as st

from dwsep_jax import layers
from dwsep_jax import nnx as dnnx
from dwsep_jax.initializers import (
    compute_fans,
    depthwise_glorot_uniform,
    depthwise_lecun_normal,
    grouped_conv_variance_scaling,
)
from dwsep_jax.models import MobileNetV1
from dwsep_jax.models.blocks import ConvBN

LINEN_2D = {
    "DepthwiseConv2D": lambda k: layers.DepthwiseConv2D(kernel_size=k),
    "SeparableConv2D": lambda k: layers.SeparableConv2D(features=6, kernel_size=k),
    "Conv2D": lambda k: layers.Conv2D(features=6, kernel_size=k),
}
NNX_2D = {
    "DepthwiseConv2D": lambda k: dnnx.DepthwiseConv2D(4, k, rngs=nnx.Rngs(0)),
    "SeparableConv2D": lambda k: dnnx.SeparableConv2D(4, 6, k, rngs=nnx.Rngs(0)),
    "Conv2D": lambda k: dnnx.Conv2D(4, 6, k, rngs=nnx.Rngs(0)),
}


def _spatial_kernel_shape(params):
    """Spatial axes of the (depthwise or standard) kernel in a parameter tree."""
    kernel = (
        params["depthwise"]["kernel"] if "depthwise" in params else params["kernel"]
    )
    return tuple(kernel.shape[:-2])


# Case 3: an int kernel_size on a 2-D module is K x K, never 1-D.


@pytest.mark.parametrize("name", sorted(LINEN_2D))
def test_case3_int_kernel_size_builds_5x5_linen(name):
    x = jnp.zeros((2, 12, 12, 4))
    params = jax.eval_shape(LINEN_2D[name](5).init, jax.random.key(0), x)["params"]
    assert _spatial_kernel_shape(params) == (5, 5)


@pytest.mark.parametrize("name", sorted(NNX_2D))
def test_case3_int_kernel_size_builds_5x5_nnx(name):
    module = NNX_2D[name](5)
    kernel = module.depthwise.kernel if hasattr(module, "depthwise") else module.kernel
    assert kernel.shape[:-2] == (5, 5)
    assert module(jnp.zeros((2, 12, 12, 4))).shape[1:3] == (12, 12)


@pytest.mark.parametrize("name", sorted(LINEN_2D))
@pytest.mark.parametrize("kernel_size", [(5,), (5, 5, 5)])
def test_case3_wrong_length_kernel_size_is_an_error(name, kernel_size):
    with pytest.raises(ValueError, match=r"kernel_size=.*2 spatial axes"):
        LINEN_2D[name](kernel_size)
    with pytest.raises(ValueError, match=r"kernel_size=.*2 spatial axes"):
        NNX_2D[name](kernel_size)


def test_case3_nnx_int_kernel_without_rank_is_an_error():
    # flax.nnx.Conv reads an int kernel_size as 1-D; here it must be explicit.
    with pytest.raises(ValueError, match="num_spatial_dims"):
        dnnx.DepthwiseConv(4, 5, rngs=nnx.Rngs(0))


_LINEN_BY_RANK = {
    1: (layers.DepthwiseConv1D, layers.SeparableConv1D, layers.Conv1D),
    2: (layers.DepthwiseConv2D, layers.SeparableConv2D, layers.Conv2D),
    3: (layers.DepthwiseConv3D, layers.SeparableConv3D, layers.Conv3D),
}


@given(
    n=st.integers(1, 3),
    k=st.integers(1, 4),
    wrong=st.integers(1, 4),
    which=st.integers(0, 2),
)
def test_case3_property_kernel_rank_follows_the_module(n, k, wrong, which):
    cls = _LINEN_BY_RANK[n][which]
    kwargs = {} if which == 0 else {"features": 3}
    x = jnp.zeros((1, *(5,) * n, 2))
    shapes = jax.eval_shape(
        lambda inp: cls(kernel_size=k, **kwargs).init(jax.random.key(0), inp), x
    )
    assert _spatial_kernel_shape(shapes["params"]) == (k,) * n
    if wrong != n:
        with pytest.raises(ValueError, match="kernel_size"):
            cls(kernel_size=(k,) * wrong, **kwargs)


# Case 8: initializer fans of a grouped kernel are per group.


def test_case8_depthwise_fans_are_per_group():
    assert compute_fans((3, 3, 1, 4), feature_group_count=4) == (9, 9)
    # What an ungrouped reading gives, the fault being guarded against:
    ungrouped = compute_fans((3, 3, 1, 4), feature_group_count=1)
    assert ungrouped == (9, 36)


def test_case8_default_init_variance_is_one_over_nine():
    # Fan-in 9, LeCun normal: variance 1/9. Many channels make the sample tight.
    init = jax.jit(layers.DepthwiseConv2D(kernel_size=3).init)
    kernel = init(jax.random.key(0), jnp.zeros((1, 3, 3, 4000)))["params"]["kernel"]
    assert kernel.shape == (3, 3, 1, 4000)
    assert abs(float(jnp.var(kernel)) - 1 / 9) < 0.03 / 9


def test_case8_fan_avg_uses_per_group_fan_out():
    # Glorot uniform: variance 2 / (fan_in + fan_out) = 2 / (9 + 9 M) for M = 2.
    kernel = depthwise_glorot_uniform(2)(jax.random.key(1), (3, 3, 1, 8000))
    assert abs(float(jnp.var(kernel)) - 2 / 27) < 0.03 * 2 / 27


@given(
    k=st.integers(1, 5),
    channels=st.integers(1, 6),
    multiplier=st.integers(1, 3),
    n=st.integers(1, 3),
)
def test_case8_property_fans_of_depthwise_kernels(k, channels, multiplier, n):
    shape = (k,) * n + (1, channels * multiplier)
    assert compute_fans(shape, channels) == (k**n, k**n * multiplier)


def test_case8_grouped_kernel_fans_and_variance():
    # Four groups of 2 -> 2 channels: fans 3*3*2 = 18 each way (ungrouped: 72 out).
    assert compute_fans((3, 3, 2, 8), feature_group_count=4) == (18, 18)
    assert compute_fans((3, 3, 2, 8)) == (18, 72)
    init = grouped_conv_variance_scaling(1.0, "fan_out", "normal", 4)
    keys = jax.random.split(jax.random.key(4), 2000)
    samples = jax.jit(jax.vmap(lambda k: init(k, (3, 3, 2, 8))))(keys)
    assert abs(float(jnp.var(samples)) - 1 / 18) < 0.03 / 18


def test_case8_default_init_preserves_unit_variance():
    # Independent of any fan formula: with unit-variance inputs, a kernel with
    # variance 1 / fan_in gives outputs of variance 1 at interior positions.
    x = jax.random.normal(jax.random.key(2), (8, 6, 6, 512))
    module = layers.DepthwiseConv2D(kernel_size=3, padding="VALID", use_bias=False)
    y = jax.jit(lambda x: module.apply(module.init(jax.random.key(3), x), x))(x)
    assert abs(float(jnp.var(y)) - 1.0) < 0.1


def test_case8_bad_initializer_shapes():
    with pytest.raises(ValueError, match="depthwise kernel"):
        depthwise_lecun_normal(3)(jax.random.key(0), (3, 3, 1, 4))
    with pytest.raises(ValueError, match="feature_group_count=3"):
        compute_fans((3, 3, 1, 4), 3)
    with pytest.raises(ValueError, match="at least 2 axes"):
        compute_fans((3,))


# Case 10: a non-integer or non-positive channel multiplier fails at construction.

BAD_MULTIPLIERS = [0.25, 2.0, 0, -1]
CONSTRUCTORS = {
    "linen.DepthwiseConv2D": lambda **kw: layers.DepthwiseConv2D(kernel_size=3, **kw),
    "linen.SeparableConv2D": lambda **kw: layers.SeparableConv2D(
        features=8, kernel_size=3, **kw
    ),
    "nnx.DepthwiseConv2D": lambda **kw: dnnx.DepthwiseConv2D(
        4, 3, rngs=nnx.Rngs(0), **kw
    ),
    "nnx.SeparableConv2D": lambda **kw: dnnx.SeparableConv2D(
        4, 8, 3, rngs=nnx.Rngs(0), **kw
    ),
}


@pytest.mark.parametrize("value", BAD_MULTIPLIERS)
@pytest.mark.parametrize("field", ["channel_multiplier", "depth_multiplier"])
@pytest.mark.parametrize("ctor", sorted(CONSTRUCTORS))
def test_case10_bad_channel_multiplier_rejected_at_construction(ctor, field, value):
    with pytest.raises((TypeError, ValueError)) as info:
        CONSTRUCTORS[ctor](**{field: value})
    message = str(info.value)
    assert f"{field}={value!r}" in message
    assert "width multiplier" in message and "not to a layer" in message


def test_case10_width_multiplier_error_names_the_other_multiplier():
    with pytest.raises(ValueError, match="not the per-layer channel_multiplier"):
        MobileNetV1(width_multiplier=0)


@given(
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(max_value=0),
        st.booleans(),
    )
)
def test_case10_property_only_positive_ints_are_multipliers(value):
    with pytest.raises((TypeError, ValueError), match="channel_multiplier"):
        layers.DepthwiseConv2D(kernel_size=3, channel_multiplier=value)


@given(value=st.integers(1, 4))
def test_case10_property_positive_ints_build(value):
    x = jnp.zeros((1, 5, 5, 2))
    module = layers.DepthwiseConv2D(kernel_size=3, channel_multiplier=value)
    assert jax.eval_shape(module.init, jax.random.key(0), x)["params"][
        "kernel"
    ].shape == (3, 3, 1, 2 * value)


# Case 11: batch-norm statistics update in training and are used in evaluation.


def _quadrant_images(n, seed):
    """4 classes: a bright 6x6 square in one quadrant of a noisy 16x16 image."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    images = rng.normal(0.0, 0.3, (n, 16, 16, 1)).astype(np.float32)
    for i, c in enumerate(labels):
        r, q = divmod(int(c), 2)
        images[i, 1 + 8 * r : 7 + 8 * r, 1 + 8 * q : 7 + 8 * q, 0] += 1.0
    return jnp.asarray(images), jnp.asarray(labels)


def _tiny_model(**kwargs):
    """A MobileNetV1 with a stem and two separable blocks (five batch norms)."""
    return MobileNetV1(
        num_classes=4,
        width_multiplier=0.5,
        blocks=((32, 2), (64, 2)),
        stem_strides=1,
        **kwargs,
    )


# One model, input shape and set of compiled functions for the two tests below.
TINY = _tiny_model(dropout_rate=0.5)
TINY_X = jax.random.normal(jax.random.key(0), (8, 8, 8, 1)) * 3.0 + 1.0


@jax.jit
def _tiny_init(x):
    return TINY.init(jax.random.key(1), x, train=False)


@jax.jit
def _tiny_apply(variables, x, key):
    return TINY.apply(
        variables, x, train=True, rngs={"dropout": key}, mutable=["batch_stats"]
    )


@jax.jit
def _tiny_evaluate(variables, x):
    return TINY.apply(variables, x, train=False, mutable=["batch_stats"])


def test_case11_one_step_updates_running_statistics():
    variables = _tiny_init(TINY_X)
    _, updates = _tiny_apply(variables, TINY_X, jax.random.key(2))
    before = jax.tree_util.tree_leaves_with_path(variables["batch_stats"])
    after = dict(jax.tree_util.tree_leaves_with_path(updates["batch_stats"]))
    # Every running mean and variance moved away from its initial 0 / 1.
    for path, value in before:
        assert not np.allclose(value, after[path]), jax.tree_util.keystr(path)
    # Evaluation changes nothing.
    _, same = _tiny_evaluate(variables, TINY_X)
    unchanged = jax.tree_util.tree_map(
        np.array_equal, same["batch_stats"], variables["batch_stats"]
    )
    assert all(jax.tree_util.tree_leaves(unchanged))


def test_case11_evaluation_normalises_with_running_statistics():
    layer = ConvBN("pointwise", 3, activation=None, bn_epsilon=1e-3)
    x = jax.random.normal(jax.random.key(0), (4, 5, 5, 2))
    variables = jax.jit(partial(layer.init, train=False))(jax.random.key(1), x)
    mean = jnp.array([0.5, -1.0, 2.0])
    var = jnp.array([4.0, 0.25, 1.0])
    scale = jnp.array([1.5, 2.0, -1.0])
    bias = jnp.array([0.1, 0.2, 0.3])
    variables = {
        "params": {
            "conv": variables["params"]["conv"],
            "bn": {"scale": scale, "bias": bias},
        },
        "batch_stats": {"bn": {"mean": mean, "var": var}},
    }
    kernel = np.asarray(variables["params"]["conv"]["kernel"], np.float64)
    conv = np.einsum("nhwc,cf->nhwf", np.asarray(x, np.float64), kernel)
    want = (conv - mean) / np.sqrt(var + 1e-3) * scale + bias
    got = layer.apply(variables, x, train=False)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # Training mode ignores the running statistics: batch mean 0 per channel.
    train_out, _ = layer.apply(variables, x, train=True, mutable=["batch_stats"])
    np.testing.assert_allclose(
        np.mean((np.asarray(train_out) - np.asarray(bias)) / scale, (0, 1, 2)),
        0.0,
        atol=1e-5,
    )


def test_case11_trained_model_evaluates_well_above_chance():
    model = _tiny_model(dropout_rate=0.1)
    x, y = _quadrant_images(512, 0)
    x_test, y_test = _quadrant_images(256, 1)
    variables = jax.jit(partial(model.init, train=False))(jax.random.key(0), x[:1])
    params, stats = variables["params"], variables["batch_stats"]
    tx = optax.adam(1e-2)
    opt = tx.init(params)

    @jax.jit
    def step(params, stats, opt, xb, yb, key):
        def loss_fn(p):
            logits, upd = model.apply(
                {"params": p, "batch_stats": stats},
                xb,
                train=True,
                rngs={"dropout": key},
                mutable=["batch_stats"],
            )
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb)
            return loss.mean(), upd["batch_stats"]

        (_, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt = tx.update(grads, opt, params)
        return optax.apply_updates(params, updates), stats, opt

    initial_stats = stats
    for i in range(30):
        j = (i * 32) % 512
        params, stats, opt = step(
            params, stats, opt, x[j : j + 32], y[j : j + 32], jax.random.key(i)
        )
    evaluate = jax.jit(lambda v, x: model.apply(v, x, train=False))
    logits = evaluate({"params": params, "batch_stats": stats}, x_test)
    accuracy = float(jnp.mean(jnp.argmax(logits, -1) == y_test))
    assert accuracy >= 0.7  # chance is 0.25
    # With the initial statistics (mean 0, variance 1) the same weights do worse:
    # evaluation really depends on the learned running averages.
    stale = evaluate({"params": params, "batch_stats": initial_stats}, x_test)
    stale_accuracy = float(jnp.mean(jnp.argmax(stale, -1) == y_test))
    assert stale_accuracy < accuracy


def test_case11_dropout_needs_a_key_only_in_training():
    variables = _tiny_init(TINY_X)
    with pytest.raises(errors.InvalidRngError):
        jax.eval_shape(
            lambda v: TINY.apply(v, TINY_X, train=True, mutable=["batch_stats"]),
            variables,
        )
    a, _ = _tiny_apply(variables, TINY_X, jax.random.key(1))
    b, _ = _tiny_apply(variables, TINY_X, jax.random.key(2))
    assert not np.allclose(a, b)
    # Evaluation needs no key and equals the same network without dropout.
    without = _tiny_model(dropout_rate=0.0)
    reference = jax.jit(lambda v: without.apply(v, TINY_X, train=False))(variables)
    evaluated, _ = _tiny_evaluate(variables, TINY_X)
    np.testing.assert_allclose(evaluated, reference, rtol=1e-6, atol=1e-6)
