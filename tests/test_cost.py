"""Cost helpers against XLA's own flop count, PyTorch parameter counts and the
MobileNet paper.

XLA's ``compile().cost_analysis()`` counts a multiply-add as 2 flops; for a
grouped convolution (depthwise included) it counts only the products within each
group; and it skips products that land on zero padding. So XLA's flops equal
``2 * macs_in_bounds`` on every shape below, and ``2 * macs`` (every tap at every
output, the usual convention) where there is no zero padding. Bias is left out
of the XLA comparisons, since the bias add is a separate elementwise op.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import pytest

from dwsep_jax import cost, ops


def xla_flops(fn, *shapes):
    args = [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]
    analysis = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0]
    return analysis["flops"]


DEPTHWISE_CASES = [
    # input shape, kernel size, multiplier, kwargs
    ((2, 16, 16, 8), (3, 3), 1, {}),
    ((2, 17, 15, 8), (3, 3), 2, {"strides": 2}),
    ((1, 224, 224, 3), (7, 7), 1, {"strides": 2, "padding": "SAME"}),
    ((4, 40, 6), (5,), 3, {"dilation": 2, "padding": "CAUSAL"}),
    ((2, 6, 7, 8, 4), (3, 2, 3), 1, {"padding": "VALID", "strides": (1, 2, 1)}),
    ((2, 4, 12, 10), (3, 3), 2, {"data_format": "NCHW", "padding": ((1, 2), (0, 1))}),
    ((3, 2, 9, 9, 5), (3, 3), 1, {"padding": "REFLECT"}),
]


@pytest.mark.parametrize("shape,ksize,m,kwargs", DEPTHWISE_CASES)
def test_depthwise_macs_match_xla(shape, ksize, m, kwargs):
    c = shape[1] if kwargs.get("data_format") == "NCHW" else shape[-1]
    kshape = (*ksize, 1, c * m)
    fn = functools.partial(ops.depthwise_conv, impl="lax", **kwargs)
    got = cost.depthwise_cost(shape, ksize, channel_multiplier=m, **kwargs)
    assert (
        got.output_shape
        == jax.eval_shape(
            fn,
            jax.ShapeDtypeStruct(shape, jnp.float32),
            jax.ShapeDtypeStruct(kshape, jnp.float32),
        ).shape
    )
    assert got.flops_in_bounds == xla_flops(fn, shape, kshape)
    if kwargs.get("padding") in ("VALID", "REFLECT"):
        assert got.macs == got.macs_in_bounds


@pytest.mark.parametrize(
    "shape,features,data_format",
    [
        ((2, 14, 14, 32), 64, None),
        ((2, 32, 14, 14), 16, "NCHW"),
        ((5, 3, 40, 7), 9, None),
    ],
)
@pytest.mark.parametrize("impl", ["dot", "lax"])
def test_pointwise_macs_match_xla(shape, features, data_format, impl):
    c = shape[1] if data_format == "NCHW" else shape[-1]
    fn = functools.partial(ops.pointwise_conv, data_format=data_format, impl=impl)
    got = cost.pointwise_cost(shape, features, data_format=data_format)
    assert got.flops == xla_flops(fn, shape, (c, features))
    assert got.macs == got.macs_in_bounds


@pytest.mark.parametrize(
    "shape,ksize,features,groups,kwargs",
    [
        ((2, 16, 16, 8), (3, 3), 16, 1, {}),
        ((2, 16, 16, 8), (3, 3), 16, 4, {"strides": 2}),
        ((2, 30, 6), (5,), 12, 3, {"dilation": 3}),
    ],
)
def test_conv_macs_match_xla(shape, ksize, features, groups, kwargs):
    fn = functools.partial(ops.conv, feature_group_count=groups, **kwargs)
    kshape = (*ksize, shape[-1] // groups, features)
    got = cost.conv_cost(shape, ksize, features, feature_group_count=groups, **kwargs)
    assert got.flops_in_bounds == xla_flops(fn, shape, kshape)


def test_separable_macs_and_ratio_match_xla():
    shape, ksize, f = (2, 28, 28, 32), (3, 3), 64
    sep = functools.partial(ops.separable_conv, impl="lax")
    sep_flops = xla_flops(sep, shape, (*ksize, 1, 32), (32, f))
    std_flops = xla_flops(ops.conv, shape, (*ksize, 32, f))
    got = cost.separable_cost(shape, ksize, f)
    assert got.flops_in_bounds == sep_flops
    assert got.output_shape == (2, 28, 28, f)
    std = cost.conv_cost(shape, ksize, f)
    assert std.flops_in_bounds == std_flops
    ratio = cost.separable_ratio(ksize, f)
    assert ratio == pytest.approx(got.macs / std.macs, rel=1e-12)
    # XLA's in-bounds counts give the same ratio once both are VALID.
    valid = functools.partial(ops.separable_conv, impl="lax", padding="VALID")
    valid_std = functools.partial(ops.conv, padding="VALID")
    xla_ratio = xla_flops(valid, shape, (*ksize, 1, 32), (32, f)) / xla_flops(
        valid_std, shape, (*ksize, 32, f)
    )
    # The pointwise step of the VALID separable conv sees (H-2)(W-2) positions,
    # the same as the standard conv, so the paper's ratio holds exactly.
    assert xla_ratio == pytest.approx(1 / 64 + 1 / 9, rel=1e-12)
    assert ratio == pytest.approx(1 / 64 + 1 / 9, rel=1e-12)


def test_separable_ratio_with_multiplier_matches_xla():
    shape, ksize, f, m = (1, 20, 20, 8), (5, 5), 24, 2
    sep = functools.partial(ops.separable_conv, impl="lax", strides=2, padding="VALID")
    sep_flops = xla_flops(sep, shape, (*ksize, 1, 8 * m), (8 * m, f))
    std = functools.partial(ops.conv, strides=2, padding="VALID")
    std_flops = xla_flops(std, shape, (*ksize, 8, f))
    ratio = cost.separable_ratio(ksize, f, channel_multiplier=m)
    assert ratio == pytest.approx(sep_flops / std_flops, rel=1e-12)


def test_mobilenet_paper_example_layer():
    # Howard et al. 2017, section 3.2: a 14x14x512 feature map, 3x3 kernels and
    # 512 outputs cost 462M multiply-adds as a standard conv and 52.3M as a
    # depthwise separable one.
    std = cost.conv_cost((14, 14, 512), (3, 3), 512)
    sep = cost.separable_cost((14, 14, 512), (3, 3), 512)
    assert round(std.macs / 1e6) == 462
    assert round(sep.macs / 1e5) == 523


@pytest.mark.parametrize("num_spatial", [1, 2, 3])
@pytest.mark.parametrize("multiplier,use_bias", [(1, False), (2, True)])
def test_params_match_torch_modules(num_spatial, multiplier, use_bias):
    torch = pytest.importorskip("torch")
    c, f, k = 6, 10, 3
    conv_cls = getattr(torch.nn, f"Conv{num_spatial}d")

    def count(module):
        return sum(p.numel() for p in module.parameters())

    shape = (1, *([8] * num_spatial), c)
    dw = cost.depthwise_cost(
        shape,
        k,
        channel_multiplier=multiplier,
        num_spatial=num_spatial,
        use_bias=use_bias,
    )
    assert dw.params == count(conv_cls(c, c * multiplier, k, groups=c, bias=use_bias))
    pw = cost.pointwise_cost(dw.output_shape, f, use_bias=use_bias)
    assert pw.params == count(conv_cls(c * multiplier, f, 1, bias=use_bias))
    std = cost.conv_cost(
        shape, k, f, num_spatial=num_spatial, use_bias=use_bias, feature_group_count=2
    )
    assert std.params == count(conv_cls(c, f, k, groups=2, bias=use_bias))


def test_output_shape_matches_the_op_for_channels_first_and_no_batch():
    assert cost.conv_output_shape(
        (3, 20), 7, 6, num_spatial=1, dilation=2, padding="VALID", data_format="NCW"
    ) == (6, 8)
    assert cost.conv_output_shape((9, 224, 224, 3), (3, 3), 32, strides=2) == (
        9,
        112,
        112,
        32,
    )
    sep = cost.separable_cost(
        (2, 3, 10, 10),
        (2, 2),
        5,
        channel_multiplier=2,
        padding="VALID",
        data_format="channels_first",
    )
    assert sep.output_shape == (2, 5, 9, 9)
