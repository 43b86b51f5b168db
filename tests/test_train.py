"""Short training runs on a small subset of the real embedded MNIST digits."""

import json

import numpy as np
import pytest

from dwsep_jax import cli, config, data, metrics, train


@pytest.fixture(scope="module")
def small_mnist():
    full = data.load_mnist_5k(test_size=1000, seed=0)
    train_ix, _ = data.stratified_split(full.train.labels, 2800, seed=1)
    return data.Dataset(
        "mnist_5k",
        data.Split(full.train.images[train_ix], full.train.labels[train_ix]),
        data.Split(full.test.images[:500], full.test.labels[:500]),
        10,
    )


def test_embedded_mnist_is_real_and_stratified():
    ds = data.load_mnist_5k()
    assert ds.train.images.shape == (4000, 28, 28, 1)
    assert ds.test.images.shape == (1000, 28, 28, 1)
    assert np.bincount(ds.test.labels).tolist() == [100] * 10
    assert ds.train.images.dtype == np.uint8 and ds.train.images.max() == 255
    # Deterministic for a seed, different across seeds.
    again = data.load_mnist_5k()
    np.testing.assert_array_equal(ds.test.labels, again.test.labels)
    np.testing.assert_array_equal(ds.test.images, again.test.images)


def test_missing_dataset_names_the_file(tmp_path):
    missing = tmp_path / "nope.csv.gz"
    with pytest.raises(data.DatasetError, match="nope.csv.gz"):
        data.load_mnist_5k(path=str(missing))
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n")
    with pytest.raises(data.DatasetError, match="bad.csv"):
        data.load_mnist_5k(path=str(bad))


def test_short_training_learns(small_mnist):
    cfg = config.load_config(
        None,
        ["train.epochs=3", "model.width_multiplier=0.5", "train.batch_size=64"],
    )
    result = train.train_and_evaluate(cfg, "separable", small_mnist, progress=False)
    losses = [h["loss"] for h in result.history if "loss" in h]
    assert losses[-1] < 0.5 * losses[0]
    assert result.test_accuracy > 0.6  # chance is 0.1


def test_compare_cli_writes_results(tmp_path, monkeypatch, capsys, small_mnist):
    monkeypatch.setattr(train, "load_dataset", lambda cfg: small_mnist)
    out = tmp_path / "run"
    code = cli.main(
        [
            "compare",
            "--out",
            str(out),
            "--no-progress",
            "--set",
            "train.epochs=1",
            "--set",
            "model.width_multiplier=0.25",
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    for name in ("separable", "standard"):
        for key in (
            "params",
            "macs",
            "test_accuracy",
            "median_step_ms",
            "images_per_s",
        ):
            assert key in results[name]
    assert results["standard"]["macs"] > 5 * results["separable"]["macs"]

    # The run folder: config, table, plots, and per model metrics + checkpoints.
    steps = len(small_mnist.train) // 64
    for name in ("config.yaml", "report.md", "curves.png", "step_time.png"):
        assert (out / name).is_file()
    assert "| test accuracy |" in (out / "report.md").read_text()
    for name in ("separable", "standard"):
        records = metrics.read_jsonl(out / name / "metrics.jsonl")
        assert records[-1]["step"] == steps and "test_accuracy" in records[-1]
        assert records[-1]["test_accuracy"] == results[name]["test_accuracy"]
        assert (out / name / "checkpoints" / str(steps)).is_dir()

    # Starting again in the same folder without --resume is refused.
    before = (out / "separable" / "metrics.jsonl").read_text()
    code = cli.main(["compare", "--out", str(out), "--no-progress"])
    assert code == 2
    assert "already holds checkpoints" in capsys.readouterr().err
    assert (out / "separable" / "metrics.jsonl").read_text() == before

    # --resume without --config/--set continues from the run's own config.yaml;
    # a refused resume (changed config) leaves that file alone.
    saved = (out / "config.yaml").read_text()
    assert cli.main(["compare", "--out", str(out), "--no-progress", "--resume"]) == 0
    code = cli.main(
        ["compare", "--out", str(out), "--no-progress", "--resume"]
        + ["--set", "train.epochs=2"]
    )
    assert code == 2
    assert (out / "config.yaml").read_text() == saved


def test_non_finite_loss_is_a_one_line_cli_error(
    tmp_path, monkeypatch, capsys, small_mnist
):
    monkeypatch.setattr(train, "load_dataset", lambda cfg: small_mnist)
    code = cli.main(
        ["compare", "--out", str(tmp_path / "nan"), "--no-progress"]
        + ["--set", "train.epochs=1", "--set", "model.width_multiplier=0.25"]
        + [
            "--set",
            "train.learning_rate=1e6",
            "--set",
            "compare.conv_types=[separable]",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "error:" in err and "non-finite" in err and "Traceback" not in err


def test_config_rejects_unknown_keys_and_types(tmp_path):
    with pytest.raises(config.ConfigError, match="train.epoch"):
        config.load_config(None, ["train.epoch=3"])
    with pytest.raises(config.ConfigError, match="train.learning_rate"):
        config.load_config(None, ["train.learning_rate=fast"])
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  widht_multiplier: 0.5\n")
    with pytest.raises(config.ConfigError, match="model.widht_multiplier"):
        config.load_config(path)


def test_compare_cli_uses_the_given_config_file(tmp_path, monkeypatch, small_mnist):
    monkeypatch.setattr(train, "load_dataset", lambda cfg: small_mnist)
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "train:\n  epochs: 1\nmodel:\n  width_multiplier: 0.25\n"
        "compare:\n  conv_types: [separable]\n"
    )
    out = tmp_path / "run"
    code = cli.main(
        ["compare", "--config", str(path), "--out", str(out), "--no-progress"]
    )
    assert code == 0
    saved = config.load_config(out / "config.yaml")
    assert saved.train.epochs == 1 and saved.model.width_multiplier == 0.25
