"""The config schema: every shipped config loads, and every rejection branch."""

import functools
import pickle
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

from dwsep_jax import config, data
from dwsep_jax.models import MODELS, build_model

ROOT = Path(__file__).parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
# Input shape of each data source the shipped configs use.
IMAGE_SHAPES = {"mnist_5k": (28, 28, 1), "cifar10": (32, 32, 3)}


def _write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_configs_folder_holds_the_documented_runs():
    names = {p.stem for p in CONFIGS}
    assert {"mnist", "sweep_width", "mobilenet_v2", "cifar10"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_names_known_parts(path):
    cfg = config.load_config(path)
    raw = yaml.safe_load(path.read_text())
    # Every value written in the file arrives in the config.
    for section, values in raw.items():
        if not isinstance(values, dict):
            assert cfg[section] == values
            continue
        for key, value in values.items():
            if isinstance(value, dict):
                for sub, leaf in value.items():
                    assert cfg[section][key][sub] == leaf
            elif isinstance(value, list):
                assert list(cfg[section][key]) == value
            else:
                assert cfg[section][key] == value
    assert cfg.data.name in data.DATASETS and cfg.model.name in MODELS


def test_to_dict_round_trips_through_yaml(tmp_path):
    cfg = config.load_config(ROOT / "configs/mnist.yaml", ["train.epochs=2"])
    path = _write(tmp_path, yaml.safe_dump(config.to_dict(cfg)))
    assert config.to_dict(config.load_config(path)) == config.to_dict(cfg)


def test_sweep_config_covers_table_6_widths_on_embedded_data():
    cfg = config.load_config(ROOT / "configs/sweep_width.yaml")
    assert cfg.sweep.width_multipliers == (1.0, 0.75, 0.5, 0.25)
    assert set(cfg.compare.conv_types) == {"separable", "standard"}
    assert cfg.data.name == "mnist_5k"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_shipped_config_builds_its_models(path):
    cfg = config.load_config(path)
    shape = IMAGE_SHAPES[cfg.data.name]
    widths = cfg.sweep.width_multipliers if path.stem == "sweep_width" else ()
    for width in widths or (cfg.model.width_multiplier,):
        for conv_type in cfg.compare.conv_types:
            model = build_model(
                cfg.model.name,
                num_classes=10,
                width_multiplier=width,
                conv_type=conv_type,
                dropout_rate=cfg.model.dropout_rate,
                impl=cfg.model.impl,
            )
            x = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
            init = functools.partial(model.init, train=False)
            apply = functools.partial(model.apply, train=False)
            variables = jax.eval_shape(init, jax.random.key(0), x)
            logits = jax.eval_shape(apply, variables, x)
            assert logits.shape == (2, 10)


def test_mobilenet_v2_config_names_the_v2_model():
    cfg = config.load_config(ROOT / "configs/mobilenet_v2.yaml")
    assert cfg.model.name == "mobilenet_v2_small"


def test_cifar10_config_reads_cifar_batches(tmp_path):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
            b"labels": [0, 3, 7, 9],
        }
        (tmp_path / name).write_bytes(pickle.dumps(batch, 4))
    cfg = config.load_config(ROOT / "configs/cifar10.yaml", [f"data.path={tmp_path}"])
    ds = data.load_dataset(cfg.data, cfg.seed)
    assert ds.image_shape == (32, 32, 3) and ds.num_classes == 10
    assert len(ds.mean) == 3 and ds.mean == tuple(cfg.data.mean)
    assert cfg.data.augment.crop_padding > 0 and cfg.data.augment.flip


def test_overrides_convert_and_apply():
    cfg = config.load_config(
        None,
        [
            "train.epochs=3",
            "train.learning_rate=1",  # int accepted for a float key
            "data.augment.flip=true",
            "compare.conv_types=[separable]",  # list becomes a tuple
            "sweep.width_multipliers=[1, 0.5]",
            "data.augment={crop_padding: 4}",  # a section from a YAML mapping
            "data.path=/some/where=odd",  # only the first '=' splits
        ],
    )
    assert cfg.train.epochs == 3
    assert cfg.train.learning_rate == 1.0 and isinstance(cfg.train.learning_rate, float)
    assert cfg.data.augment.flip is True and cfg.data.augment.crop_padding == 4
    assert cfg.compare.conv_types == ("separable",)
    assert cfg.sweep.width_multipliers == (1.0, 0.5)
    assert cfg.data.path == "/some/where=odd"


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epoch=3", r"unknown config key 'train.epoch'; known here: .*epochs"),
        ("trian.epochs=3", r"unknown config key 'trian' \(in 'trian.epochs'\)"),
        ("data.augment.crop=2", "unknown config key 'data.augment.crop'"),
        ("train.epochs.max=3", r"'train.epochs' is a value, not a section"),
        ("data=3", "config key 'data' is a section; got 3 of type int"),
        ("data.augment=true", "'data.augment' is a section; got True"),
        ("train.learning_rate=fast", "'train.learning_rate' expects float; got 'fast'"),
        ("train.epochs=2.5", "'train.epochs' expects int; got 2.5"),
        ("train.epochs=true", "'train.epochs' expects int; got True of type bool"),
        ("data.augment.flip=1", "'data.augment.flip' expects bool; got 1 of type int"),
        ("data.path=", "'data.path' expects str; got None"),
        ("compare.conv_types=separable", "'compare.conv_types' expects a list"),
        ("compare.conv_types=[1]", "expects a list of str; item 0 is 1"),
        ("data.mean=[0.1, yes]", "'data.mean' expects a list of float; item 1"),
        ("data.image_size=[28, 28.5]", "'data.image_size' expects a list of int"),
        ("train.epochs", "must look like key.path=value"),
        ("train.epochs=[1", "value is not valid YAML"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(config.ConfigError, match=message):
        config.load_config(None, [override])


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.name=imagenet", "'data.name'='imagenet'; expected one of 'mnist_5k'"),
        ("model.name=resnet", "'model.name'='resnet'; expected one of"),
        ("train.optimizer=lamb", "'train.optimizer'='lamb'; expected one of 'sgd'"),
        ("train.schedule=step", "'train.schedule'='step'"),
        ("train.epochs=0", "'train.epochs'=0; expected >= 1"),
        ("train.batch_size=-8", "'train.batch_size'=-8"),
        ("train.learning_rate=0", "'train.learning_rate'=0.0; expected > 0"),
        ("train.learning_rate=.nan", "'train.learning_rate'=nan"),
        ("train.label_smoothing=1.0", r"expected in \[0, 1\)"),
        ("train.momentum=1.5", "'train.momentum'=1.5"),
        ("train.weight_decay=-1", "'train.weight_decay'=-1.0; expected >= 0"),
        ("train.warmup_epochs=-1", "'train.warmup_epochs'"),
        ("model.width_multiplier=0", "'model.width_multiplier'=0.0; expected > 0"),
        ("model.dropout_rate=1", "'model.dropout_rate'=1.0"),
        ("data.test_size=0", "'data.test_size'=0"),
        ("data.num_classes=-1", "'data.num_classes'=-1"),
        ("data.train_examples=-1", "'data.train_examples'=-1"),
        ("data.channels=2", "'data.channels'=2; expected 0 .infer., 1 or 3"),
        ("data.image_size=[28]", r"'data.image_size'=\(28,\)"),
        ("data.std=[0.0]", r"'data.std'=\(0.0,\); expected values > 0"),
        ("data.mean=[.inf]", r"'data.mean'=\(inf,\); expected finite"),
        ("data.std=[0.2, 0.2, 0.2]", r"as many values as data.mean \(1\)"),
        ("data.augment.crop_padding=-4", "'data.augment.crop_padding'=-4"),
        ("compare.conv_types=[separable, separable]", "distinct entries"),
        ("compare.conv_types=[grouped]", "'compare.conv_types'=.'grouped',."),
        ("compare.conv_types=[]", r"'compare.conv_types'=\(\)"),
        ("sweep.width_multipliers=[1.0, -0.5]", "'sweep.width_multipliers'"),
        ("seed=-1", "'seed'=-1; expected >= 0"),
    ],
)
def test_out_of_range_values_name_the_key_and_source(override, message):
    with pytest.raises(config.ConfigError, match=message) as err:
        config.load_config(None, [override])
    assert f"(from --set {override})" in str(err.value)


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(config.ConfigError, match="nope.yaml could not be read"):
        config.load_config(tmp_path / "nope.yaml")
    bad = _write(tmp_path, "train: [epochs: 3\n", "bad.yaml")
    with pytest.raises(config.ConfigError, match="bad.yaml is not valid YAML"):
        config.load_config(bad)
    top = _write(tmp_path, "- 1\n- 2\n", "list.yaml")
    with pytest.raises(config.ConfigError, match="list.yaml must hold a mapping.*list"):
        config.load_config(top)
    nested = _write(tmp_path, "model:\n  widht_multiplier: 0.5\n", "typo.yaml")
    with pytest.raises(config.ConfigError, match="typo.yaml: unknown.*widht"):
        config.load_config(nested)
    scalar = _write(tmp_path, "train: 3\n", "scalar.yaml")
    with pytest.raises(config.ConfigError, match="scalar.yaml: .*'train' is a section"):
        config.load_config(scalar)
    ranged = _write(tmp_path, "data:\n  augment:\n    crop_padding: -1\n", "r.yaml")
    with pytest.raises(config.ConfigError, match=r"from config file .*r\.yaml\)"):
        config.load_config(ranged)
    # The same range error from an override names the override instead.
    with pytest.raises(config.ConfigError, match=r"from --set data.augment=") as err:
        config.load_config(None, ["data.augment={crop_padding: -1}"])
    assert "crop_padding" in str(err.value)
    twice = _write(
        tmp_path, "train:\n  epochs: 3\n  batch_size: 8\n  epochs: 5\n", "d.yaml"
    )
    with pytest.raises(
        config.ConfigError, match=r"d.yaml .*duplicate key 'epochs' \(line 4\)"
    ):
        config.load_config(twice)
    # An empty file is the defaults.
    empty = _write(tmp_path, "", "empty.yaml")
    assert config.to_dict(config.load_config(empty)) == config.to_dict(
        config.default_config()
    )


def test_override_beats_file_and_defaults_are_blamed_last(tmp_path):
    path = _write(tmp_path, "train:\n  epochs: 7\n  batch_size: 32\n")
    cfg = config.load_config(path, ["train.epochs=2"])
    assert (cfg.train.epochs, cfg.train.batch_size) == (2, 32)
    # data.std and data.mean disagree in length only after an override of mean.
    with pytest.raises(config.ConfigError, match="from the defaults"):
        config.load_config(None, ["data.mean=[0.1, 0.2, 0.3]"])


@pytest.mark.parametrize(
    "text,value", [("3e-4", 3e-4), ("1e6", 1e6), ("2.5E-3", 2.5e-3), ("0.01", 0.01)]
)
def test_scientific_notation_reads_as_float(tmp_path, text, value):
    assert (
        config.load_config(None, [f"train.learning_rate={text}"]).train.learning_rate
        == value
    )
    path = tmp_path / "c.yaml"
    path.write_text(f"train:\n  learning_rate: {text}\n")
    assert config.load_config(path).train.learning_rate == value
