"""Model parameter counts and multiply-adds against closed-form formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dwsep_jax.models import SMALL_BLOCKS, MobileNetV1, mobilenet_v1_small
from dwsep_jax.summary import model_summary


def closed_form(blocks, alpha, hw, cin, stem, stem_stride, classes, separable):
    """Parameters and MACs of MobileNetV1 from the paper's per-layer formulas."""
    size = -(-hw // stem_stride)
    c = int(stem * alpha)
    params = 9 * cin * c
    macs = size * size * 9 * cin * c
    for features, stride in blocks:
        f = int(features * alpha)
        size = -(-size // stride)
        if separable:
            params += 9 * c + c * f  # depthwise K^2*C, pointwise C*F
            macs += size * size * (9 * c + c * f)
        else:
            params += 9 * c * f
            macs += size * size * 9 * c * f
        c = f
    params += c * classes + classes
    macs += c * classes
    return params, macs


@pytest.mark.parametrize("conv_type", ["separable", "standard"])
@pytest.mark.parametrize("alpha", [1.0, 0.5, 0.25])
def test_small_model_matches_closed_form(conv_type, alpha):
    model = mobilenet_v1_small(10, alpha, conv_type)
    s = model_summary(model, (28, 28, 1))
    want = closed_form(SMALL_BLOCKS, alpha, 28, 1, 32, 1, 10, conv_type == "separable")
    assert (s.params, s.macs) == want


def test_imagenet_model_matches_paper_table():
    s = model_summary(MobileNetV1(), (224, 224, 3))
    # arXiv 1704.04861 Table 4: 569M multiply-adds, 4.2M parameters.
    assert abs(s.macs / 1e6 - 569) / 569 < 0.01
    assert abs(s.params / 1e6 - 4.2) < 0.1
    std = model_summary(MobileNetV1(conv_type="standard"), (224, 224, 3))
    assert abs(std.macs / 1e6 - 4866) / 4866 < 0.01
    assert abs(std.params / 1e6 - 29.3) < 0.1


def test_separable_saves_at_least_5x_on_mnist_model():
    sep = model_summary(mobilenet_v1_small(10, 0.5, "separable"), (28, 28, 1))
    std = model_summary(mobilenet_v1_small(10, 0.5, "standard"), (28, 28, 1))
    assert std.params / sep.params >= 5
    assert std.macs / sep.macs >= 5


def test_forward_shapes_and_batch_norm_modes():
    model = mobilenet_v1_small(10, 0.25)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 28, 28, 1)), jnp.float32)
    variables = model.init(jax.random.key(0), x)
    logits, updates = model.apply(variables, x, train=True, mutable=["batch_stats"])
    assert logits.shape == (4, 10)
    before = jax.tree_util.tree_leaves(variables["batch_stats"])
    after = jax.tree_util.tree_leaves(updates["batch_stats"])
    assert any(not np.allclose(a, b) for a, b in zip(before, after))
    # Evaluation is deterministic and does not touch the statistics.
    e1 = model.apply(variables, x, train=False)
    e2 = model.apply(variables, x[:2], train=False)
    np.testing.assert_allclose(e1[:2], e2, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"conv_type": "grouped"}, "conv_type"),
        ({"width_multiplier": 0.001}, "width_multiplier"),
        ({"width_multiplier": -1.0}, "width_multiplier"),
    ],
)
def test_bad_model_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MobileNetV1(**kwargs)
