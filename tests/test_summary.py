"""model_summary rows and totals against hand-computed costs, and the CLI."""

import json
from pathlib import Path

import flax.linen as nn
import jax.numpy as jnp
import pytest

from dwsep_jax import cli, layers
from dwsep_jax.models import IMAGENET_BLOCKS, mobilenet_v1_small
from dwsep_jax.summary import format_summary, model_summary
from tests.test_models import v1_closed_form


class Toy(nn.Module):
    """One layer of every kind, on (N, 10, 10, 3)."""

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = layers.Conv2D(features=8, kernel_size=3, strides=2, name="stem")(x)
        x = nn.BatchNorm(use_running_average=not train, name="norm")(x)
        x = layers.SeparableConv2D(
            features=16,
            kernel_size=3,
            channel_multiplier=2,
            padding="VALID",
            name="sep",
        )(x)
        x = layers.DepthwiseConv2D(kernel_size=3, dilation=2, name="dw")(x)
        x = layers.Conv2D(features=8, kernel_size=3, feature_group_count=4, name="grp")(
            x
        )
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(5, name="head")(x)


# Written out by hand from the cost formulas of each layer:
#   stem   10x10x3 -> 5x5x8 (stride 2, SAME): 3*3*3*8 + 8 params, 25 * 3*3*3*8 MACs
#   sep    depthwise C=8, M=2, VALID -> 3x3x16: 9*16 params, 9 * 8*2*9 MACs
#          pointwise 16 -> 16: 256 params, 9 * 16*16 MACs; bias 16 params
#   dw     C=16, dilation 2, SAME -> 3x3x16: 144 + 16 params, 9 * 16*9 MACs
#   grp    G=4, 16 -> 8: 3*3*4*8 + 8 params, 9 * 4*8*9 MACs
#   head   8 -> 5: 40 + 5 params, 40 MACs
TOY_ROWS = [
    ("stem", "Conv2D", (5, 5, 8), 224, 5400),
    ("sep/depthwise", "DepthwiseConv", (3, 3, 16), 144, 1296),
    ("sep/pointwise", "PointwiseConv", (3, 3, 16), 256, 2304),
    ("sep", "SeparableConv2D", (3, 3, 16), 16, 0),
    ("dw", "DepthwiseConv2D", (3, 3, 16), 160, 1296),
    ("grp", "Conv2D", (3, 3, 8), 296, 2592),
    ("head", "Dense", (5,), 45, 40),
]


def test_rows_match_hand_computed_costs():
    s = model_summary(Toy(), (10, 10, 3))
    got = [(r.path, r.kind, r.output_shape, r.params, r.macs) for r in s.rows]
    assert got == TOY_ROWS
    assert s.params == sum(r[3] for r in TOY_ROWS) == 1141
    assert s.macs == sum(r[4] for r in TOY_ROWS) == 12928
    assert s.bn_params == 4 * 8  # scale, offset, running mean and variance
    assert s.input_shape == (10, 10, 3)


class Shared(nn.Module):
    @nn.compact
    def __call__(self, x):
        dense = nn.Dense(4, name="shared")
        return dense(dense(x))


def test_shared_module_costs_twice_but_counts_weights_once():
    s = model_summary(Shared(), (4,))
    assert [r.macs for r in s.rows] == [16, 16]
    assert s.params == 20 and s.macs == 32 and s.bn_params == 0


def test_format_summary_lists_rows_and_totals():
    text = format_summary(model_summary(Toy(), (10, 10, 3)))
    assert "| sep/depthwise | DepthwiseConv | 3x3x16 | 144 | 1,296 |" in text
    assert "| **total** | | | 1,141 | 12,928 |" in text
    assert "batch-norm parameters and statistics (not in the total): 32" in text


@pytest.mark.parametrize("shape", [(10, 0, 3), (10, 10.0, 3), (-1,)])
def test_bad_input_shape_is_named(shape):
    with pytest.raises(ValueError, match="input_shape="):
        model_summary(Toy(), shape)


def _run(capsys, *argv):
    code = cli.main(["summary", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("conv_type", ["separable", "standard"])
def test_cli_json_totals(capsys, conv_type):
    code, out, _ = _run(
        capsys,
        "--model", "mobilenet_v1", "--width-multiplier", "0.5", "--resolution",
        "224", "--classes", "1000", "--conv-type", conv_type, "--json",
    )  # fmt: skip
    assert code == 0
    data = json.loads(out)
    assert data["model"] == "mobilenet_v1" and data["input_shape"] == [224, 224, 3]
    params, macs = v1_closed_form(
        IMAGENET_BLOCKS, 0.5, 224, 3, 32, 2, 1000, conv_type == "separable"
    )
    assert (data["params"], data["macs"]) == (params, macs)
    if conv_type == "separable":  # arXiv 1704.04861 Table 6: 149M, 1.3M
        assert abs(data["macs"] / 1e6 - 149) / 149 < 0.01
        assert abs(data["params"] / 1e6 - 1.3) < 0.1
    assert data["bn_params"] == 4 * sum(
        layer["output_shape"][-1]
        for layer in data["layers"]
        if layer["kind"] != "Dense"
    )
    assert sum(layer["params"] for layer in data["layers"]) == data["params"]
    assert sum(layer["macs"] for layer in data["layers"]) == data["macs"]


def test_cli_resolution_multiplier_and_table(capsys):
    code, out, _ = _run(capsys, "--resolution-multiplier", str(6 / 7), "--json")
    assert code == 0
    data = json.loads(out)
    assert data["input_shape"] == [192, 192, 3]
    assert abs(data["macs"] / 1e6 - 418) / 418 < 0.01
    code, out, _ = _run(
        capsys, "--model", "mobilenet_v1_small", "--width-multiplier", "0.5",
        "--resolution", "28", "--channels", "1", "--classes", "10",
    )  # fmt: skip
    assert code == 0
    assert "| **total** | | | 70,602 | 3,834,944 |" in out


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--conv-type", "grouped"], "conv_type='grouped'"),
        (["--model", "resnet"], "'resnet' is unknown"),
        (["--width-multiplier", "0.001"], "width_multiplier=0.001"),
        (["--resolution", "0"], "--resolution 0"),
        (["--resolution-multiplier", "-1"], "resolution_multiplier=-1"),
    ],
)
def test_cli_errors_name_the_field(capsys, argv, match):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and out == ""
    assert match in err


def test_summary_of_the_mnist_model_is_cheap_and_exact():
    s = model_summary(mobilenet_v1_small(10, 0.5), (28, 28, 1))
    assert s.rows[0].output_shape == (28, 28, 16)
    assert s.rows[-1].output_shape == (10,)
    assert (s.params, s.macs) == (70602, 3834944)


def test_docs_show_the_current_mnist_summary():
    docs = Path(__file__).resolve().parents[1] / "docs" / "models.md"
    table = format_summary(model_summary(mobilenet_v1_small(10, 0.5), (28, 28, 1)))
    assert table in docs.read_text()
