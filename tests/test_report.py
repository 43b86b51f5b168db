"""Run reports (config, results, markdown, PNG plots) and the metrics writer."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml
from PIL import Image

from dwsep_jax import cli, config, metrics, report, train


def make_result(conv_type, macs, accuracy, median_ms, width=1.0, offset=0.0):
    history = [
        {
            "step": s,
            "epoch": (s - 1) // 10,
            "loss": 2.0 / s + offset,
            "accuracy": s / 30,
        }
        for s in (1, 10, 20, 30)
    ] + [
        {
            "step": 10 * (e + 1),
            "epoch": e,
            "test_loss": 1.0 / (e + 1),
            "test_accuracy": accuracy - 0.1 * (2 - e),
        }
        for e in range(3)
    ]
    return train.RunResult(
        conv_type=conv_type,
        params=macs // 10,
        macs=macs,
        bn_params=64,
        compile_s=1.5,
        median_step_ms=median_ms,
        step_ms_p10=median_ms - 1.0,
        step_ms_p90=median_ms + 2.0,
        images_per_s=64 / (median_ms / 1e3),
        test_accuracy=accuracy,
        test_loss=0.3,
        train_time_s=12.0,
        temp_memory_bytes=2**20,
        width_multiplier=width,
        history=history,
    )


@pytest.fixture
def results():
    return {
        "separable": make_result("separable", 1_200_000, 0.95, 10.0),
        "standard": make_result("standard", 9_600_000, 0.97, 25.0, offset=0.1),
    }


def _png_size(path):
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


def test_compare_report_writes_config_results_table_and_plots(tmp_path, results):
    cfg = config.load_config(None, ["train.epochs=3", "model.width_multiplier=0.5"])
    md = report.write_compare_report(tmp_path, cfg, results)

    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == config.to_dict(cfg)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["separable"]["macs"] == 1_200_000
    assert saved["standard"]["test_accuracy"] == 0.97
    assert saved["standard"]["history"] == results["standard"].history

    text = md.read_text()
    assert train.format_comparison(results) in text
    assert "| multiply-adds / image | 1.20M | 9.60M |" in text
    assert "8.0x multiply-adds" in text
    assert "![loss and accuracy curves](curves.png)" in text
    # 13 x 3.8 and (1.1 * 2 models + 2) x 3.8 inches at 110 dpi.
    assert _png_size(tmp_path / "curves.png") == (1430, 418)
    assert _png_size(tmp_path / "step_time.png") == (462, 418)


def test_curve_and_step_time_plots_hold_the_run_data(tmp_path, results):
    fig = report.plot_curves(results, tmp_path / "c.png")
    loss_ax, acc_ax, test_ax = fig.axes
    for line, name in zip(loss_ax.lines, results):
        assert line.get_label() == name
        want = [(h["step"], h["loss"]) for h in results[name].history if "loss" in h]
        np.testing.assert_allclose(np.c_[line.get_xdata(), line.get_ydata()], want)
    assert loss_ax.get_yscale() == "log"
    np.testing.assert_allclose(test_ax.lines[1].get_ydata(), [0.77, 0.87, 0.97])
    np.testing.assert_allclose(acc_ax.lines[0].get_xdata(), [1, 10, 20, 30])

    fig = report.plot_step_time(results, tmp_path / "s.png")
    bars = fig.axes[0].patches
    assert [b.get_height() for b in bars] == [10.0, 25.0]


def test_sweep_report_plots_accuracy_against_macs(tmp_path):
    sweep = {
        alpha: {
            "separable": make_result(
                "separable", int(1e6 * alpha**2), 0.8 + 0.1 * alpha, 5 * alpha, alpha
            ),
            "standard": make_result(
                "standard", int(8e6 * alpha**2), 0.85 + 0.1 * alpha, 12 * alpha, alpha
            ),
        }
        for alpha in (1.0, 0.5, 0.25)
    }
    fig = report.plot_accuracy_vs_macs(sweep, tmp_path / "a.png")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lines = {line.get_label(): line for line in ax.lines}
    np.testing.assert_allclose(lines["separable"].get_xdata(), [0.0625, 0.25, 1.0])
    np.testing.assert_allclose(lines["separable"].get_ydata(), [0.825, 0.85, 0.9])
    np.testing.assert_allclose(lines["standard"].get_xdata(), [0.5, 2.0, 8.0])
    assert sorted(t.get_text() for t in ax.texts) == sorted(["0.25", "0.5", "1"] * 2)

    cfg = config.load_config(None, ["sweep.width_multipliers=[1.0, 0.5, 0.25]"])
    md = report.write_sweep_report(tmp_path / "sweep", cfg, sweep)
    text = md.read_text()
    assert "| 0.5 | standard | 200,000 | 2.00M | 90.00% | 6.0 ms | 10,667 |" in text
    assert text.count("| separable |") == 3
    for name in ("accuracy_vs_macs.png", "step_time.png", "config.yaml", "sweep.json"):
        assert (tmp_path / "sweep" / name).is_file()
    for alpha in ("1", "0.5", "0.25"):
        point = tmp_path / "sweep" / f"width_{alpha}"
        assert (point / "report.md").is_file() and (point / "curves.png").is_file()
        point_cfg = yaml.safe_load((point / "config.yaml").read_text())
        assert point_cfg["model"]["width_multiplier"] == float(alpha)
    assert set(json.loads((tmp_path / "sweep" / "sweep.json").read_text())) == {
        "1",
        "0.5",
        "0.25",
    }


def test_metric_writer_jsonl_and_csv_agree(tmp_path):
    with metrics.MetricWriter(tmp_path) as writer:
        writer.write_scalars(1, {"loss": 2.5, "epoch": 0})
        writer.write_scalars(5, {"loss": 1.25, "accuracy": 0.5})
        writer.write_scalars(5, {"test_loss": float("nan")})
    records = metrics.read_jsonl(tmp_path / "metrics.jsonl")
    assert records == [
        {"step": 1, "loss": 2.5, "epoch": 0},
        {"step": 5, "loss": 1.25, "accuracy": 0.5},
        {"step": 5, "test_loss": "nan"},
    ]
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["step", "name", "value"],
        ["1", "loss", "2.5"],
        ["1", "epoch", "0"],
        ["5", "loss", "1.25"],
        ["5", "accuracy", "0.5"],
        ["5", "test_loss", "nan"],
    ]


def test_metric_writer_resume_drops_records_after_the_checkpoint(tmp_path):
    with metrics.MetricWriter(tmp_path) as writer:
        for step in (2, 4, 6, 8):
            writer.write_scalars(step, {"loss": 1.0 / step})
    # A killed process can leave half a line behind.
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 10, "lo')
    with metrics.MetricWriter(tmp_path, resume_step=4) as writer:
        writer.write_scalars(6, {"loss": 0.1})
    assert metrics.read_jsonl(tmp_path / "metrics.jsonl") == [
        {"step": 2, "loss": 0.5},
        {"step": 4, "loss": 0.25},
        {"step": 6, "loss": 0.1},
    ]
    with open(tmp_path / "metrics.csv", newline="") as f:
        assert [r[0] for r in csv.reader(f)] == ["step", "2", "4", "6"]
    with metrics.MetricWriter(tmp_path) as writer:
        pass
    assert metrics.read_jsonl(tmp_path / "metrics.jsonl") == []


def test_metric_writer_bad_input(tmp_path):
    with pytest.raises(ValueError, match="resume_step=-1"):
        metrics.MetricWriter(tmp_path, resume_step=-1)
    with metrics.MetricWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match="'step'"):
            writer.write_scalars(1, {"step": 3})
    (tmp_path / "bad.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match="bad.jsonl line 2"):
        metrics.read_jsonl(tmp_path / "bad.jsonl")
    (tmp_path / "list.jsonl").write_text("[1, 2]\n")
    with pytest.raises(ValueError, match="not a metrics record"):
        metrics.read_jsonl(tmp_path / "list.jsonl")


def test_sweep_cli_end_to_end(tmp_path, monkeypatch):
    from tests.test_checkpoint_resume import tiny_dataset

    monkeypatch.setattr(train, "load_dataset", lambda cfg: tiny_dataset())
    out = tmp_path / "sweep"
    args = [
        "sweep",
        "--config",
        "configs/sweep_width.yaml",
        "--out",
        str(out),
        "--no-progress",
        "--set",
        "sweep.width_multipliers=[0.5, 0.25]",
        "--set",
        "compare.conv_types=[separable]",
        "--set",
        "train.epochs=1",
        "--set",
        "train.batch_size=64",
        "--set",
        "train.eval_batch_size=64",
    ]
    assert cli.main(args) == 0
    swept = json.loads((out / "sweep.json").read_text())
    assert set(swept) == {"0.5", "0.25"}
    assert swept["0.5"]["separable"]["macs"] > 2 * swept["0.25"]["separable"]["macs"]
    assert swept["0.5"]["separable"]["width_multiplier"] == 0.5
    assert _png_size(out / "accuracy_vs_macs.png") == (715, 495)
    for alpha in ("0.5", "0.25"):
        run = out / f"width_{alpha}" / "separable"
        assert (run / "checkpoints" / "4").is_dir()
        assert metrics.read_jsonl(run / "metrics.jsonl")[-1]["step"] == 4
    # A second, non-resuming sweep into the same folder is refused.
    assert cli.main(args) == 2
