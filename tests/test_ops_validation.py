"""Every bad-input branch of the functional API, one test each.

Each test checks the exception type and that the message names the argument,
the value given and what was expected. A tripwire makes sure each error is
raised before any computation starts: ``ops._flatten_batch`` (the first step of
every op after validation) fails the test if it is reached.
"""

from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np
import pytest

from dwsep_jax import activations, convert, cost, ops

X2 = np.zeros((2, 8, 8, 4), np.float32)
K2 = np.zeros((3, 3, 1, 4), np.float32)
X1 = np.zeros((2, 10, 3), np.float32)
K1 = np.zeros((3, 1, 3), np.float32)
PW = np.zeros((4, 5), np.float32)


@pytest.fixture(autouse=True)
def tripwire(monkeypatch):
    def reached(*args, **kwargs):
        raise AssertionError("computation started before validation finished")

    monkeypatch.setattr(ops, "_flatten_batch", reached)


def check(exc, fn, *fragments):
    """Asserts ``fn()`` raises ``exc`` with every fragment in its message."""
    with pytest.raises(exc) as info:
        fn()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


# Inputs and kernels.


def test_input_rank_too_small():
    check(
        ValueError,
        lambda: ops.depthwise_conv(np.zeros((8, 4), np.float32), K2),
        "inputs",
        "(8, 4)",
        "rank >= 3",
    )


def test_input_spatial_size_zero():
    check(
        ValueError,
        lambda: ops.depthwise_conv(np.zeros((2, 0, 8, 4), np.float32), K2),
        "inputs",
        "(2, 0, 8, 4)",
        ">= 1",
    )


def test_input_not_floating():
    check(
        TypeError,
        lambda: ops.depthwise_conv(np.zeros((2, 8, 8, 4), np.int32), K2),
        "inputs",
        "int32",
        "floating-point",
    )


def test_kernel_not_floating():
    check(
        TypeError,
        lambda: ops.depthwise_conv(X2, np.zeros((3, 3, 1, 4), np.int8)),
        "kernel",
        "int8",
        "floating-point",
    )


@pytest.mark.parametrize("shape", [(3, 4), (1, 3, 3, 3, 1, 4)])
def test_kernel_wrong_rank(shape):
    check(
        ValueError,
        lambda: ops.depthwise_conv(X2, np.zeros(shape, np.float32)),
        "kernel",
        str(shape),
        "rank 3, 4 or 5",
    )


def test_kernel_in_keras_layout_is_rejected_with_a_hint():
    check(
        ValueError,
        lambda: ops.depthwise_conv(X2, np.zeros((3, 3, 4, 2), np.float32)),
        "kernel",
        "(3, 3, 4, 2)",
        "(*kernel_size, 1, 4 * channel_multiplier)",
        "dwsep_jax.convert",
    )


def test_kernel_channels_do_not_match_input():
    check(
        ValueError,
        lambda: ops.depthwise_conv(X2, np.zeros((3, 3, 1, 6), np.float32)),
        "(3, 3, 1, 6)",
        "4 channels",
    )


def test_kernel_with_zero_size_axis():
    check(
        ValueError,
        lambda: ops.depthwise_conv(X2, np.zeros((0, 3, 1, 4), np.float32)),
        "kernel_size",
        "(0, 3)",
        ">= 1",
    )


# Strides, dilation, multiplier.


@pytest.mark.parametrize("name", ["strides", "dilation"])
def test_non_positive_strides_and_dilation(name):
    check(
        ValueError,
        lambda: ops.depthwise_conv(X2, K2, **{name: 0}),
        f"{name}=0",
        ">= 1",
    )
    check(
        ValueError,
        lambda: ops.depthwise_conv(X2, K2, **{name: (1, -2)}),
        f"{name}=(1, -2)",
        ">= 1",
    )


@pytest.mark.parametrize("name", ["strides", "dilation"])
def test_sequence_of_wrong_length(name):
    check(
        ValueError,
        lambda: ops.depthwise_conv(X2, K2, **{name: (1, 1, 1)}),
        f"{name}=(1, 1, 1)",
        "3 entries",
        "sequence of 2 ints",
    )


@pytest.mark.parametrize("name", ["strides", "dilation"])
def test_sequence_with_non_integer_entry(name):
    check(
        TypeError,
        lambda: ops.depthwise_conv(X2, K2, **{name: (1, 1.5)}),
        f"{name}=(1, 1.5)",
        "float",
        "integers",
    )


@pytest.mark.parametrize("name", ["strides", "dilation"])
def test_strides_of_wrong_type(name):
    check(
        TypeError,
        lambda: ops.depthwise_conv(X2, K2, **{name: 2.0}),
        f"{name}=2.0",
        "float",
        "an int or a sequence",
    )


@pytest.mark.parametrize("name", ["channel_multiplier", "depth_multiplier"])
@pytest.mark.parametrize("value,exc", [(0.25, TypeError), (2.0, TypeError)])
def test_multiplier_not_an_integer(name, value, exc):
    message = check(
        exc,
        lambda: ops.depthwise_conv(X2, K2, **{name: value}),
        f"{name}={value!r}",
        "positive integer",
    )
    assert "width multiplier" in message


@pytest.mark.parametrize("name", ["channel_multiplier", "depth_multiplier"])
@pytest.mark.parametrize("value", [0, -1])
def test_multiplier_not_positive(name, value):
    message = check(
        ValueError,
        lambda: ops.depthwise_conv(X2, K2, **{name: value}),
        f"{name}={value}",
        "positive integer",
    )
    assert "width multiplier" in message


@pytest.mark.parametrize("name", ["channel_multiplier", "depth_multiplier"])
def test_multiplier_disagrees_with_kernel(name):
    check(
        ValueError,
        lambda: ops.depthwise_conv(X2, K2, **{name: 2}),
        f"{name}=2",
        "(3, 3, 1, 4)",
        "1 filters per input channel",
    )


# Padding.


def test_unknown_padding_string():
    check(
        ValueError,
        lambda: ops.depthwise_conv(X2, K2, padding="FULL"),
        "padding='FULL'",
        "'SAME', 'VALID', 'CAUSAL', 'REFLECT', 'CIRCULAR', 'EDGE'",
    )


def test_negative_padding_int():
    check(
        ValueError,
        lambda: ops.depthwise_conv(X2, K2, padding=-1),
        "padding=-1",
        "non-negative",
    )


def test_padding_sequence_of_wrong_length():
    check(
        ValueError,
        lambda: ops.depthwise_conv(X2, K2, padding=((1, 1),)),
        "padding=((1, 1),)",
        "1 entries",
        "expected 2",
    )


@pytest.mark.parametrize("entry", [(1, 1, 1), 1.5, (1, 2.0)])
def test_padding_entry_malformed(entry):
    padding = (entry, (1, 1))
    check(
        ValueError,
        lambda: ops.depthwise_conv(X2, K2, padding=padding),
        f"padding={padding!r}",
        "(low, high) pairs of ints",
    )


def test_padding_pair_negative():
    check(
        ValueError,
        lambda: ops.depthwise_conv(X2, K2, padding=((1, -1), (0, 0))),
        "padding=((1, -1), (0, 0))",
        ">= 0",
    )


@pytest.mark.parametrize("padding", [1.5, None, True])
def test_padding_of_wrong_type(padding):
    check(
        TypeError,
        lambda: ops.depthwise_conv(X2, K2, padding=padding),
        f"padding={padding!r}",
        "a string, an int or a sequence",
    )


@pytest.mark.parametrize("padding,limit", [("REFLECT", 1), ("CIRCULAR", 2)])
def test_fill_padding_wider_than_input(padding, limit):
    x = np.zeros((1, 2, 2), np.float32)
    k = np.zeros((7, 1, 2), np.float32)
    check(
        ValueError,
        lambda: ops.depthwise_conv(x, k, padding=padding),
        f"padding={padding!r}",
        "(3, 3)",
        "size 2",
        f"at most {limit} per side",
    )


def test_valid_padding_with_kernel_larger_than_input():
    check(
        ValueError,
        lambda: ops.depthwise_conv(
            X1, np.zeros((7, 1, 3), np.float32), dilation=2, padding="VALID"
        ),
        "size 10",
        "dilated kernel extent 13",
        "kernel_size (7,)",
        "dilation (2,)",
    )


# Layout.


@pytest.mark.parametrize("data_format", ["NCHW", "NHC", "rows_first", 3])
def test_data_format_invalid_for_rank(data_format):
    check(
        ValueError,
        lambda: ops.depthwise_conv(X1, K1, data_format=data_format),
        f"data_format={data_format!r}",
        "1-D kernel",
        "'NWC' or 'NCW'",
    )


# Bias, activation, dtype options, impl.


def test_bias_wrong_shape():
    check(
        ValueError,
        lambda: ops.depthwise_conv(X2, K2, np.zeros((3,), np.float32)),
        "bias",
        "(3,)",
        "expected (4,)",
    )


def test_bias_not_floating():
    check(
        TypeError,
        lambda: ops.depthwise_conv(X2, K2, np.zeros((4,), np.int32)),
        "bias",
        "int32",
    )


def test_unknown_activation_name():
    check(
        ValueError,
        lambda: ops.depthwise_conv(X2, K2, activation="relu7"),
        "activation='relu7'",
        "relu6",
    )


def test_activation_of_wrong_type():
    check(
        TypeError,
        lambda: activations.get_activation(3),
        "activation=3",
        "int",
        "a callable",
    )


def test_preferred_element_type_not_a_dtype():
    check(
        TypeError,
        lambda: ops.depthwise_conv(X2, K2, preferred_element_type="fp32x"),
        "preferred_element_type='fp32x'",
        "floating dtype",
    )


def test_preferred_element_type_not_floating():
    check(
        TypeError,
        lambda: ops.depthwise_conv(X2, K2, preferred_element_type=jnp.int32),
        "preferred_element_type=",
        "floating dtype",
    )


def test_unknown_depthwise_impl():
    check(
        ValueError, lambda: ops.depthwise_conv(X2, K2, impl="fft"), "impl='fft'", "lax"
    )


# Pointwise.


def test_pointwise_kernel_wrong_shape():
    check(
        ValueError,
        lambda: ops.pointwise_conv(X2, np.zeros((3, 3, 4, 5), np.float32)),
        "kernel",
        "(3, 3, 4, 5)",
        "(C_in, F)",
        "pointwise_from_torch",
    )


def test_pointwise_channels_do_not_match():
    check(
        ValueError,
        lambda: ops.pointwise_conv(X2, np.zeros((3, 5), np.float32)),
        "4 channels",
        "(3, 5)",
        "3 input channels",
    )


def test_pointwise_channels_first_needs_explicit_rank():
    check(
        ValueError,
        lambda: ops.pointwise_conv(X2, PW, data_format="channels_first"),
        "data_format='channels_first'",
        "'NCHW'",
    )


@pytest.mark.parametrize("data_format", ["N", 5, "NHWCCC"])
def test_pointwise_invalid_data_format(data_format):
    check(
        ValueError,
        lambda: ops.pointwise_conv(X2, PW, data_format=data_format),
        f"data_format={data_format!r}",
        "'NCHW'",
    )


def test_pointwise_inputs_not_floating():
    check(
        TypeError,
        lambda: ops.pointwise_conv(X2.astype(np.int32), PW),
        "inputs",
        "int32",
    )


def test_unknown_pointwise_impl():
    check(ValueError, lambda: ops.pointwise_conv(X2, PW, impl="fft"), "impl='fft'")


# Separable.


def test_separable_step_channels_do_not_match():
    check(
        ValueError,
        lambda: ops.separable_conv(X2, K2, np.zeros((8, 5), np.float32)),
        "pointwise_kernel",
        "(8, 5)",
        "produces 4",
    )


def test_separable_pointwise_kernel_rank_mismatch():
    check(
        ValueError,
        lambda: ops.separable_conv(X2, K2, np.zeros((1, 1, 1, 4, 5), np.float32)),
        "pointwise_kernel",
        "3-D",
        "2-D",
    )


def test_separable_pointwise_kernel_wrong_shape():
    check(
        ValueError,
        lambda: ops.separable_conv(X2, K2, np.zeros((3, 3, 4, 5), np.float32)),
        "pointwise_kernel has shape (3, 3, 4, 5)",
    )


def test_separable_pointwise_kernel_not_floating():
    check(
        TypeError,
        lambda: ops.separable_conv(X2, K2, PW.astype(np.int32)),
        "pointwise_kernel",
    )


def test_separable_bias_checked_before_computing():
    check(
        ValueError,
        lambda: ops.separable_conv(X2, K2, PW, np.zeros((4,), np.float32)),
        "bias",
        "expected (5,)",
    )


def test_separable_unknown_intermediate_activation():
    check(
        ValueError,
        lambda: ops.separable_conv(X2, K2, PW, intermediate_activation="relu7"),
        "intermediate_activation='relu7'",
    )


def test_separable_depthwise_kernel_wrong_rank():
    check(
        ValueError,
        lambda: ops.separable_conv(X2, np.zeros((3, 4), np.float32), PW),
        "depthwise_kernel",
        "(3, 4)",
    )


# Standard / grouped conv.


@pytest.mark.parametrize("groups,exc", [(0, ValueError), (1.0, TypeError)])
def test_conv_groups_not_positive_int(groups, exc):
    check(
        exc,
        lambda: ops.conv(
            X2, np.zeros((3, 3, 4, 4), np.float32), feature_group_count=groups
        ),
        f"feature_group_count={groups!r}",
    )


def test_conv_groups_do_not_divide_channels():
    check(
        ValueError,
        lambda: ops.conv(X2, np.zeros((3, 3, 1, 6), np.float32), feature_group_count=3),
        "feature_group_count=3",
        "(4)",
        "(6)",
    )


def test_conv_kernel_input_axis_mismatch():
    check(
        ValueError,
        lambda: ops.conv(X2, np.zeros((3, 3, 4, 6), np.float32), feature_group_count=2),
        "(3, 3, 4, 6)",
        "feature_group_count=2",
        "must be 2",
    )


# Converters.


@pytest.mark.parametrize(
    "fn,shape",
    [
        (convert.conv_from_torch, (4, 4)),
        (convert.conv_to_torch, (4,)),
        (convert.depthwise_from_torch, (8, 1)),
        (convert.depthwise_to_torch, (3, 8)),
        (convert.depthwise_from_keras, (3, 8)),
        (convert.pointwise_from_torch, (8,)),
        (convert.pointwise_from_keras, (4, 8)),
    ],
)
def test_converter_wrong_rank(fn, shape):
    check(ValueError, lambda: fn(np.zeros(shape)), str(shape), "rank")


def test_depthwise_from_torch_grouped_weight():
    check(
        ValueError,
        lambda: convert.depthwise_from_torch(np.zeros((8, 2, 3, 3))),
        "(8, 2, 3, 3)",
        "(C*M, 1, *K)",
        "conv_from_torch",
    )


def test_depthwise_to_torch_not_depthwise():
    check(
        ValueError,
        lambda: convert.depthwise_to_torch(np.zeros((3, 3, 4, 8))),
        "(3, 3, 4, 8)",
        "(*K, 1, C*M)",
    )


def test_depthwise_to_keras_multiplier_does_not_divide():
    check(
        ValueError,
        lambda: convert.depthwise_to_keras(
            np.zeros((3, 3, 1, 8)), channel_multiplier=3
        ),
        "(3, 3, 1, 8)",
        "channel_multiplier=3",
        "divisible by 3",
    )


def test_depthwise_to_keras_rejects_non_integer_multiplier():
    check(
        TypeError,
        lambda: convert.depthwise_to_keras(
            np.zeros((3, 3, 1, 8)), channel_multiplier=2.0
        ),
        "channel_multiplier=2.0",
    )


def test_pointwise_from_torch_not_one_by_one():
    check(
        ValueError,
        lambda: convert.pointwise_from_torch(np.zeros((5, 4, 3, 3))),
        "(5, 4, 3, 3)",
        "1x1",
    )


def test_pointwise_from_keras_not_one_by_one():
    check(
        ValueError,
        lambda: convert.pointwise_from_keras(np.zeros((3, 3, 4, 5))),
        "(3, 3, 4, 5)",
        "1x1",
    )


@pytest.mark.parametrize("fn", [convert.pointwise_to_torch, convert.pointwise_to_keras])
@pytest.mark.parametrize("num_spatial,exc", [(4, ValueError), (0, ValueError)])
def test_pointwise_export_bad_num_spatial(fn, num_spatial, exc):
    check(
        exc,
        lambda: fn(np.zeros((4, 5)), num_spatial=num_spatial),
        f"num_spatial={num_spatial}",
    )


@pytest.mark.parametrize("fn", [convert.pointwise_to_torch, convert.pointwise_to_keras])
def test_pointwise_export_needs_two_d_kernel(fn):
    check(ValueError, lambda: fn(np.zeros((1, 1, 4, 5)), num_spatial=2), "(C_in, F)")


# Cost helpers.


def test_cost_int_kernel_needs_num_spatial():
    check(
        ValueError,
        lambda: cost.depthwise_cost((1, 8, 8, 4), 3),
        "kernel_size=3",
        "num_spatial",
    )


def test_cost_kernel_size_of_wrong_type():
    check(TypeError, lambda: cost.depthwise_cost((1, 8, 8, 4), "3x3"), "kernel_size")


def test_cost_kernel_size_of_wrong_length():
    check(
        ValueError,
        lambda: cost.depthwise_cost((1, 8, 8, 8, 8, 4), (3, 3, 3, 3)),
        "kernel_size=(3, 3, 3, 3)",
        "1, 2 or 3",
    )


def test_cost_input_shape_too_small():
    check(
        ValueError, lambda: cost.conv_cost((8, 4), (3, 3), 8), "input_shape", "(8, 4)"
    )


def test_cost_pointwise_bad_data_format():
    check(
        ValueError,
        lambda: cost.pointwise_cost((1, 4, 8, 8), 5, data_format="channels_first"),
        "data_format='channels_first'",
    )


def test_cost_groups_do_not_divide():
    check(
        ValueError,
        lambda: cost.conv_cost((1, 8, 8, 4), (3, 3), 6, feature_group_count=4),
        "feature_group_count=4",
        "(4)",
        "(6)",
    )


@pytest.mark.parametrize("features", [0, 2.5])
def test_cost_features_not_positive_int(features):
    check(
        (ValueError, TypeError),
        lambda: cost.separable_ratio((3, 3), features),
        f"features={features!r}",
    )


def test_messages_name_value_and_expectation_everywhere():
    # The common shape of every message: "<name>=<value> ...; expected ...".
    message = check(ValueError, lambda: ops.depthwise_conv(X2, K2, strides=(0, 1)))
    assert re.search(r"strides=\(0, 1\).*>= 1", message)


def test_zero_input_channels():
    check(
        ValueError,
        lambda: ops.depthwise_conv(X2[..., :0], K2[..., :0]),
        "inputs",
        "(2, 8, 8, 0)",
        "at least one channel",
    )


@pytest.mark.parametrize(
    "fn",
    [
        lambda p: ops.depthwise_conv(X2, K2, precision=p),
        lambda p: ops.pointwise_conv(X2, PW, precision=p),
        lambda p: ops.conv(X2, np.zeros((3, 3, 4, 2), np.float32), precision=p),
        lambda p: ops.separable_conv(X2, K2, PW, precision=p),
    ],
)
def test_unknown_precision(fn):
    check(ValueError, lambda: fn("bogus"), "precision='bogus'", "lax.Precision")


@pytest.mark.parametrize("value", [X2.tolist(), "abc", 3.0])
def test_inputs_that_are_not_arrays(value):
    check(TypeError, lambda: ops.depthwise_conv(value, K2), "inputs is a", "array")


def test_auto_avoids_materialising_huge_padding():
    # 'SAME' with dilation 1e5 would pad an 8x8 input to ~2e5 x 2e5; 'auto' must
    # pick the grouped convolution, which does not build the padded input.
    import jax

    from dwsep_jax import depthwise_impls

    geom, m = ops.depthwise_geometry(X2, K2, dilation=100_000)
    assert depthwise_impls.resolve_impl("auto", geom, m, X2, K2) == "lax"
    geom, m = ops.depthwise_geometry(X2, K2)
    if jax.default_backend() == "cpu":
        assert depthwise_impls.resolve_impl("auto", geom, m, X2, K2) == "shift_vjp"


def test_cost_helpers_reject_four_spatial_axes():
    check(
        ValueError,
        lambda: cost.depthwise_cost((1, 8, 8, 8, 8, 3), 3, num_spatial=4),
        "num_spatial=4",
        "1, 2 or 3",
    )
