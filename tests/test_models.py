"""Models against the published numbers, closed-form counts and their contracts."""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dwsep_jax.models import (
    IMAGENET_V2_STAGES,
    MODELS,
    SMALL_BLOCKS,
    SMALL_V2_STAGES,
    ConvBN,
    InvertedResidual,
    MobileNetV1,
    MobileNetV2,
    build_model,
    mobilenet_v1_small,
    mobilenet_v2_small,
    resolution_from_multiplier,
)
from dwsep_jax.summary import model_summary

# Published totals at 1000 classes, convolution and classifier weights only:
# arXiv 1704.04861 Tables 4, 6 and 7; arXiv 1801.04381 Table 4 (Section 6.1).
PUBLISHED = [
    # (label, constructor, resolution, MACs in millions, params in millions, tol)
    ("V1 1.0-224", lambda: MobileNetV1(), 224, 569, 4.2, 0.1),
    (
        "V1 1.0-224 full conv",
        lambda: MobileNetV1(conv_type="standard"),
        224,
        4866,
        29.3,
        0.1,
    ),
    ("V1 0.75-224", lambda: MobileNetV1(width_multiplier=0.75), 224, 325, 2.6, 0.1),
    ("V1 0.5-224", lambda: MobileNetV1(width_multiplier=0.5), 224, 149, 1.3, 0.1),
    ("V1 0.25-224", lambda: MobileNetV1(width_multiplier=0.25), 224, 41, 0.5, 0.1),
    ("V1 1.0-192", lambda: MobileNetV1(), 192, 418, 4.2, 0.1),
    ("V1 1.0-160", lambda: MobileNetV1(), 160, 290, 4.2, 0.1),
    ("V1 1.0-128", lambda: MobileNetV1(), 128, 186, 4.2, 0.1),
    ("V2 1.0-224", lambda: MobileNetV2(), 224, 300, 3.4, 0.15),
]


@pytest.mark.parametrize(
    "label,make,resolution,macs,params,tol", PUBLISHED, ids=[r[0] for r in PUBLISHED]
)
def test_totals_match_the_papers(label, make, resolution, macs, params, tol):
    s = model_summary(make(), (resolution, resolution, 3))
    assert abs(s.macs / 1e6 - macs) / macs < 0.01, (label, s.macs)
    assert abs(s.params / 1e6 - params) < tol, (label, s.params)


@pytest.mark.parametrize(
    "rho,side", [(1.0, 224), (6 / 7, 192), (5 / 7, 160), (4 / 7, 128)]
)
def test_resolution_multiplier_gives_the_paper_sizes(rho, side):
    assert resolution_from_multiplier(rho) == side


def test_resolution_multiplier_errors():
    with pytest.raises(ValueError, match="resolution_multiplier=0"):
        resolution_from_multiplier(0)
    with pytest.raises(TypeError, match="resolution_multiplier='1'"):
        resolution_from_multiplier("1")


def v1_closed_form(blocks, alpha, hw, cin, stem, stem_stride, classes, separable):
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
def test_small_v1_matches_closed_form(conv_type, alpha):
    model = mobilenet_v1_small(10, alpha, conv_type)
    s = model_summary(model, (28, 28, 1))
    want = v1_closed_form(
        SMALL_BLOCKS, alpha, 28, 1, 32, 1, 10, conv_type == "separable"
    )
    assert (s.params, s.macs) == want


def test_mnist_model_totals_are_unchanged():
    # The MNIST comparison reports these; they must not drift.
    sep = model_summary(mobilenet_v1_small(10, 0.5, "separable"), (28, 28, 1))
    std = model_summary(mobilenet_v1_small(10, 0.5, "standard"), (28, 28, 1))
    assert (sep.params, sep.macs, sep.bn_params) == (70602, 3834944, 4480)
    assert (std.params, std.macs) == (578714, 30122752)
    assert std.params / sep.params >= 5 and std.macs / sep.macs >= 5


# Channels per stage after width scaling, from the paper's rounding to multiples
# of 8 (stem, seven stages); the head stays 1280 for alpha <= 1.
V2_CHANNELS = {
    1.0: (32, (16, 24, 32, 64, 96, 160, 320)),
    0.5: (16, (8, 16, 16, 32, 48, 80, 160)),
}


def v2_closed_form(stages, alpha, hw, cin, stem_stride, classes, separable):
    """Parameters, MACs and batch-norm entries of MobileNetV2, layer by layer."""
    stem, widths = V2_CHANNELS[alpha]
    size = -(-hw // stem_stride)
    c = stem
    params, macs, bn = 9 * cin * c, size * size * 9 * cin * c, 4 * c
    for (t, _, n, s), f in zip(stages, widths):
        for r in range(n):
            hidden = c * t
            if t != 1:
                params += c * hidden
                macs += size * size * c * hidden
                bn += 4 * hidden
            size = -(-size // (s if r == 0 else 1))
            if separable:
                params += 9 * hidden + hidden * f
                macs += size * size * (9 * hidden + hidden * f)
                bn += 4 * hidden + 4 * f
            else:
                params += 9 * hidden * f
                macs += size * size * 9 * hidden * f
                bn += 4 * f
            c = f
    params += c * 1280 + 1280 * classes + classes
    macs += size * size * c * 1280 + 1280 * classes
    bn += 4 * 1280
    return params, macs, bn


@pytest.mark.parametrize("conv_type", ["separable", "standard"])
@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_v2_matches_closed_form(conv_type, alpha):
    sep = conv_type == "separable"
    s = model_summary(
        MobileNetV2(width_multiplier=alpha, conv_type=conv_type), (224, 224, 3)
    )
    assert (s.params, s.macs, s.bn_params) == v2_closed_form(
        IMAGENET_V2_STAGES, alpha, 224, 3, 2, 1000, sep
    )


@pytest.mark.parametrize("side", [28, 32])
def test_small_v2_matches_closed_form_and_ends_at_4x4(side):
    s = model_summary(mobilenet_v2_small(10, 0.5), (side, side, 1))
    assert (s.params, s.macs, s.bn_params) == v2_closed_form(
        SMALL_V2_STAGES, 0.5, side, 1, 1, 10, True
    )
    head = next(r for r in s.rows if r.path == "head/conv")
    assert head.output_shape == (4, 4, 1280)


@pytest.mark.parametrize("make", [mobilenet_v1_small, mobilenet_v2_small])
@pytest.mark.parametrize("side", [28, 32])
def test_small_variants_end_at_4x4(make, side):
    s = model_summary(make(10, 0.25), (side, side, 1))
    last_conv = [r for r in s.rows if r.kind != "Dense"][-1]
    assert last_conv.output_shape[:2] == (4, 4)
    assert s.rows[0].output_shape[:2] == (side, side)  # stride-1 stem


@pytest.mark.parametrize(
    "model", [MobileNetV1(width_multiplier=0.25), MobileNetV2(width_multiplier=0.5)]
)
def test_standard_twin_replaces_each_separable_unit(model):
    sep = model_summary(model, (64, 64, 3))
    std = model_summary(model.clone(conv_type="standard"), (64, 64, 3))
    assert "DepthwiseConv" in {r.kind for r in sep.rows}
    assert "DepthwiseConv" not in {r.kind for r in std.rows}
    # Each depthwise + pointwise pair becomes one 3x3 conv with the pair's output.
    pairs = [
        (a, b)
        for a, b in zip(sep.rows, sep.rows[1:])
        if a.kind == "DepthwiseConv" and b.kind == "PointwiseConv"
    ]
    prefixes = {a.path.rsplit("/", 2)[0] for a, _ in pairs}
    replaced = [
        r for r in std.rows if r.kind == "Conv" and r.path.rsplit("/", 2)[0] in prefixes
    ]
    assert [b.output_shape for _, b in pairs] == [r.output_shape for r in replaced]


def _block_variables(block, x):
    return jax.jit(partial(block.init, train=False))(jax.random.key(0), x)


def _with_bn(variables, layer, fn):
    """``variables`` with ``fn`` applied to the batch-norm parameters of ``layer``."""
    params = dict(variables["params"])
    params[layer] = {
        **params[layer],
        "bn": jax.tree_util.tree_map(fn, params[layer]["bn"]),
    }
    return {**variables, "params": params}


def _evaluate(block, variables, x, **kwargs):
    return jax.jit(partial(block.apply, train=False, **kwargs))(variables, x)


def test_inverted_residual_adds_the_input_where_shapes_allow():
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 8))

    # With the projection's batch-norm scale and offset at zero, the block's
    # output is exactly its skip connection: the input, or zero without one.
    @partial(jax.jit, static_argnums=0)
    def output_without_projection(block, x):
        variables = block.init(jax.random.key(0), x, train=False)
        variables = _with_bn(variables, "project", jnp.zeros_like)
        return block.apply(variables, x, train=False)

    for block, skip in [
        (InvertedResidual(8, expansion=6, strides=1), x),
        (InvertedResidual(8, expansion=6, strides=2), None),
        (InvertedResidual(16, expansion=6, strides=1), None),
    ]:
        out = output_without_projection(block, x)
        np.testing.assert_allclose(out, 0.0 if skip is None else skip, atol=1e-6)


def test_linear_bottleneck_and_relu6():
    x = 50.0 * jax.random.normal(jax.random.key(2), (2, 6, 6, 8))
    block = InvertedResidual(16, expansion=6, strides=2)
    variables = _with_bn(_block_variables(block, x), "depthwise", lambda a: 100 * a)
    out, state = _evaluate(
        block, variables, x, mutable=["intermediates"], capture_intermediates=True
    )
    inter = state["intermediates"]
    for layer in ("expand", "depthwise"):
        hidden = inter[layer]["__call__"][0]
        assert float(hidden.min()) == 0.0
        assert float(hidden.max()) == 6.0  # the cap is reached: ReLU6, not ReLU
    assert float(out.min()) < 0.0  # no activation after the projection
    assert "expand" not in _block_variables(InvertedResidual(16, 1), x)["params"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registered_models_follow_the_training_contract(name):
    model = build_model(
        name,
        num_classes=5,
        width_multiplier=0.25,
        conv_type="separable",
        dropout_rate=0.2,
        impl="lax",
    )
    # Traced, not compiled: the call convention and the collections it returns.
    x = jax.ShapeDtypeStruct((2, 32, 32, 1), jnp.float32)
    variables = jax.eval_shape(partial(model.init, train=False), jax.random.key(1), x)
    assert set(variables) == {"params", "batch_stats"}

    def train_step(v, x, key):
        return model.apply(
            v, x, train=True, rngs={"dropout": key}, mutable=["batch_stats"]
        )

    logits, updates = jax.eval_shape(train_step, variables, x, jax.random.key(2))
    assert logits.shape == (2, 5)
    assert set(updates) == {"batch_stats"}
    assert jax.tree_util.tree_structure(updates["batch_stats"]) == (
        jax.tree_util.tree_structure(variables["batch_stats"])
    )
    evaluated = jax.eval_shape(partial(model.apply, train=False), variables, x)
    assert evaluated.shape == (2, 5)
    s = model_summary(model, (32, 32, 1))
    assert s.params > 0 and s.macs > 0 and s.bn_params > 0


def test_build_model_rejects_unknown_names():
    with pytest.raises(ValueError, match="'mobilenet_v3' is unknown"):
        build_model("mobilenet_v3")


@pytest.mark.parametrize("cls", [MobileNetV1, MobileNetV2])
@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"conv_type": "grouped"}, ValueError, "conv_type='grouped'"),
        ({"width_multiplier": -1.0}, ValueError, "width_multiplier=-1.0"),
        ({"width_multiplier": "1"}, TypeError, "width_multiplier='1'"),
        ({"activation": "relu7"}, ValueError, "activation='relu7'"),
        ({"dropout_rate": 1.0}, ValueError, "dropout_rate=1.0"),
        ({"num_classes": 0}, ValueError, "num_classes=0"),
        ({"stem_strides": 0}, ValueError, "stem_strides=0"),
    ],
)
def test_bad_model_arguments(cls, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cls(**kwargs)


def test_width_multiplier_rounding_a_layer_to_zero_is_named():
    with pytest.raises(ValueError, match=r"width_multiplier=0.01 scales the stem \(32"):
        MobileNetV1(width_multiplier=0.01)
    with pytest.raises(ValueError, match="block 0"):
        MobileNetV1(width_multiplier=0.05, blocks=((16, 1),))
    with pytest.raises(ValueError, match=r"stages\[0\]"):
        MobileNetV2(stages=((6, 16, 1),))


@pytest.mark.parametrize("make", [mobilenet_v1_small, mobilenet_v2_small])
def test_wrong_input_shape_is_named(make):
    model = make(10, 0.25)
    for shape in [(28, 28, 1), (1, 28, 28, 1, 1), (1, 0, 28, 1)]:
        with pytest.raises(ValueError, match=r"inputs have shape .* \(N, H, W, C\)"):
            jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(shape))


def test_v2_width_035_channels_follow_the_reference_rounding():
    # Channels of the Keras / TF-slim MobileNetV2 0.35: stem 16, stages 8, 8, 16,
    # 24, 32, 56, 112, head 1280.
    s = model_summary(MobileNetV2(width_multiplier=0.35), (96, 96, 3))
    project = {
        r.path.split("/")[0]: r.output_shape[-1] for r in s.rows if "project" in r.path
    }
    firsts = [0, 1, 3, 6, 10, 13, 16]  # first block of each stage
    assert s.rows[0].output_shape[-1] == 16
    assert [project[f"block{i}"] for i in firsts] == [8, 8, 16, 24, 32, 56, 112]
    assert next(r for r in s.rows if r.path == "head/conv").output_shape[-1] == 1280
    wide = model_summary(MobileNetV2(width_multiplier=1.4), (96, 96, 3))
    assert next(r for r in wide.rows if r.path == "head/conv").output_shape[-1] == 1792


@pytest.mark.parametrize(
    "make,exc,match",
    [
        (lambda: MobileNetV1(dropout_rate="0.1"), TypeError, "dropout_rate='0.1'"),
        (lambda: MobileNetV1(blocks=((64, 0),)), ValueError, r"blocks\[0\] stride=0"),
        (
            lambda: MobileNetV2(stages=((6, 16, 0, 1),)),
            ValueError,
            r"stages\[0\] repeats=0",
        ),
        (lambda: MobileNetV2(round_to=0), ValueError, "round_to=0"),
        (lambda: ConvBN("grouped", 8), ValueError, "kind='grouped'"),
        (lambda: ConvBN("standard", 0), ValueError, "features=0"),
        (
            lambda: ConvBN("pointwise", 8, activation="relu7"),
            ValueError,
            "activation='relu7'",
        ),
    ],
)
def test_bad_block_and_layout_arguments(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_integer_images_are_rejected_by_name():
    model = mobilenet_v1_small(10, 0.25)
    with pytest.raises(TypeError, match="inputs has dtype int32"):
        jax.eval_shape(
            model.init, jax.random.key(0), jnp.zeros((1, 28, 28, 1), jnp.int32)
        )
