"""Experiment configuration: a typed, locked ``ml_collections.ConfigDict``.

:func:`default_config` defines every key with its type. A YAML file and
``--set key.path=value`` overrides are merged on top; a key that is not in the
schema, or a value of the wrong type, is rejected with the key's full path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import ml_collections
import yaml


class ConfigError(ValueError):
    """A configuration file or override does not fit the schema."""


def default_config() -> ml_collections.ConfigDict:
    """The schema with defaults: the MNIST separable-vs-standard comparison."""
    cfg = ml_collections.ConfigDict()
    cfg.seed = 0

    cfg.data = ml_collections.ConfigDict()
    cfg.data.name = "mnist_5k"
    cfg.data.path = ""
    cfg.data.test_size = 1000
    cfg.data.mean = 0.1307
    cfg.data.std = 0.3081

    cfg.model = ml_collections.ConfigDict()
    cfg.model.name = "mobilenet_v1_small"
    cfg.model.width_multiplier = 0.5
    cfg.model.dropout_rate = 0.0
    cfg.model.impl = "auto"

    cfg.train = ml_collections.ConfigDict()
    cfg.train.epochs = 10
    cfg.train.batch_size = 64
    cfg.train.eval_batch_size = 500
    cfg.train.optimizer = "adamw"
    cfg.train.learning_rate = 0.003
    cfg.train.warmup_epochs = 0.5
    cfg.train.weight_decay = 0.0001
    cfg.train.label_smoothing = 0.0
    cfg.train.log_every = 20

    cfg.compare = ml_collections.ConfigDict()
    cfg.compare.conv_types = ("separable", "standard")

    cfg.lock()
    return cfg


def _assign(cfg: ml_collections.ConfigDict, path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = cfg
    for i, key in enumerate(parents):
        if key not in node or not isinstance(node[key], ml_collections.ConfigDict):
            prefix = ".".join(parents[: i + 1])
            raise ConfigError(f"unknown config key {prefix!r} (in {path!r}).")
        node = node[key]
    if leaf not in node:
        known = ", ".join(sorted(node.keys()))
        raise ConfigError(f"unknown config key {path!r}; known here: {known}.")
    current = node[leaf]
    if isinstance(current, ml_collections.ConfigDict):
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"config key {path!r} is a section; got {value!r} of type "
                f"{type(value).__name__}."
            )
        for key, sub in value.items():
            _assign(cfg, f"{path}.{key}", sub)
        return
    if isinstance(current, tuple) and isinstance(value, list):
        value = tuple(value)
    if isinstance(current, bool) != isinstance(value, bool):
        raise ConfigError(
            f"config key {path!r} expects {type(current).__name__}; got {value!r}."
        )
    try:
        node[leaf] = value
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"config key {path!r} expects {type(current).__name__}; got {value!r} of "
            f"type {type(value).__name__}."
        ) from err


def merge(
    cfg: ml_collections.ConfigDict, values: Mapping[str, Any], prefix: str = ""
) -> None:
    """Merges a nested mapping into ``cfg`` in place, checking keys and types."""
    for key, value in values.items():
        _assign(cfg, f"{prefix}{key}", value)


def parse_override(text: str) -> tuple[str, Any]:
    """``'train.epochs=3'`` to ``('train.epochs', 3)``; the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.path=value.")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {err}") from err
    return key.strip(), value


def load_config(
    path: str | os.PathLike | None = None, overrides: Iterable[str] = ()
) -> ml_collections.ConfigDict:
    """Defaults, then the YAML file at ``path``, then ``key=value`` overrides."""
    cfg = default_config()
    if path is not None:
        try:
            with open(path) as f:
                values = yaml.safe_load(f) or {}
        except OSError as err:
            raise ConfigError(f"config file {path} could not be read: {err}") from err
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
        if not isinstance(values, Mapping):
            raise ConfigError(f"config file {path} must hold a mapping at top level.")
        try:
            merge(cfg, values)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from err
    for text in overrides:
        key, value = parse_override(text)
        _assign(cfg, key, value)
    return cfg


def to_dict(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
    """Plain nested dict (tuples as lists), for JSON and YAML output."""

    def plain(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(cfg.to_dict())
