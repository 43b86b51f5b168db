"""Experiment configuration: a typed, locked ``ml_collections.ConfigDict``.

:func:`default_config` defines every key with its type and default. A YAML file
and ``--set key.path=value`` overrides are merged on top by :func:`load_config`;
a key that is not in the schema, a value of the wrong type, or a value outside
its allowed range is rejected with a :class:`ConfigError` naming the key's full
path and where the value came from (the file, or ``--set``).

Sections: ``data`` (source, split, normalisation, augmentation), ``model``
(architecture and width), ``train`` (optimizer, schedule, loop, checkpoints,
devices), ``compare`` (the conv types trained side by side) and ``sweep`` (the
width multipliers of a sweep). See ``docs/data_and_configs.md`` for every key.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ml_collections
import yaml

OPTIMIZERS = ("sgd", "adamw", "rmsprop")
SCHEDULES = ("cosine",)

# Element type of every tuple-valued key; a list in YAML becomes a tuple.
TUPLE_ELEMENT_TYPES: dict[str, type] = {
    "data.mean": float,
    "data.std": float,
    "data.image_size": int,
    "compare.conv_types": str,
    "sweep.width_multipliers": float,
}


class ConfigError(ValueError):
    """A configuration file or override does not fit the schema."""


def default_config() -> ml_collections.ConfigDict:
    """The schema with defaults: the MNIST separable-vs-standard comparison."""
    cfg = ml_collections.ConfigDict()
    cfg.seed = 0

    cfg.data = ml_collections.ConfigDict()
    # One of dwsep_jax.data.DATASETS; path is a file or folder for file sources.
    cfg.data.name = "mnist_5k"
    cfg.data.path = ""
    # Held-out examples for sources without their own test split.
    cfg.data.test_size = 1000
    # 0: infer from the labels (or the source's fixed class count).
    cfg.data.num_classes = 0
    # 0: every training example; else a stratified subset of this size.
    cfg.data.train_examples = 0
    # image_folder only: 0 infers 1 or 3 channels; (height, width) resizes.
    cfg.data.channels = 0
    cfg.data.image_size = ()
    # Per-channel statistics of the 0-1 scaled pixels (one value broadcasts);
    # empty: computed on the training split.
    cfg.data.mean = (0.1307,)
    cfg.data.std = (0.3081,)
    cfg.data.augment = ml_collections.ConfigDict()
    cfg.data.augment.crop_padding = 0
    cfg.data.augment.flip = False

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
    cfg.train.schedule = "cosine"
    cfg.train.warmup_epochs = 0.5
    cfg.train.weight_decay = 0.0001
    # Momentum of sgd (Nesterov) and rmsprop.
    cfg.train.momentum = 0.9
    cfg.train.label_smoothing = 0.0
    cfg.train.log_every = 20
    # Checkpoints (orbax) every N steps and at the end, keeping the newest few.
    cfg.train.checkpoint_every = 200
    cfg.train.keep_checkpoints = 2
    # Devices on the 'data' mesh axis; 0 means every device JAX sees.
    cfg.train.num_devices = 0

    cfg.compare = ml_collections.ConfigDict()
    cfg.compare.conv_types = ("separable", "standard")

    cfg.sweep = ml_collections.ConfigDict()
    cfg.sweep.width_multipliers = (1.0, 0.75, 0.5, 0.25)

    cfg.lock()
    return cfg


def _type_name(value: Any) -> str:
    return type(value).__name__


def _check_elements(path: str, value: tuple) -> tuple:
    element = TUPLE_ELEMENT_TYPES.get(path)
    if element is None:
        return value
    out = []
    for i, item in enumerate(value):
        if element is float and isinstance(item, int) and not isinstance(item, bool):
            item = float(item)
        if not isinstance(item, element) or isinstance(item, bool):
            raise ConfigError(
                f"config key {path!r} expects a list of {element.__name__}; item "
                f"{i} is {item!r} of type {_type_name(item)}."
            )
        out.append(item)
    return tuple(out)


def _assign(cfg: ml_collections.ConfigDict, path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = cfg
    for i, key in enumerate(parents):
        prefix = ".".join(parents[: i + 1])
        if key not in node:
            raise ConfigError(f"unknown config key {prefix!r} (in {path!r}).")
        if not isinstance(node[key], ml_collections.ConfigDict):
            raise ConfigError(
                f"config key {prefix!r} is a value, not a section (in {path!r})."
            )
        node = node[key]
    if leaf not in node:
        known = ", ".join(sorted(node.keys()))
        raise ConfigError(f"unknown config key {path!r}; known here: {known}.")
    current = node[leaf]
    if isinstance(current, ml_collections.ConfigDict):
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"config key {path!r} is a section; got {value!r} of type "
                f"{_type_name(value)}."
            )
        for key, sub in value.items():
            _assign(cfg, f"{path}.{key}", sub)
        return
    expected = _type_name(current)
    if isinstance(current, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(
                f"config key {path!r} expects a list; got {value!r} of type "
                f"{_type_name(value)}."
            )
        value = _check_elements(path, tuple(value))
    elif isinstance(current, bool) != isinstance(value, bool) or value is None:
        raise ConfigError(
            f"config key {path!r} expects {expected}; got {value!r} of type "
            f"{_type_name(value)}."
        )
    try:
        node[leaf] = value
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"config key {path!r} expects {expected}; got {value!r} of type "
            f"{_type_name(value)}."
        ) from err


def _leaf_paths(values: Mapping[str, Any], prefix: str = "") -> Iterable[str]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _leaf_paths(value, f"{path}.")
        else:
            yield path


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
        value = yaml.load(raw, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {err}") from err
    return key.strip(), value


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key repeated within one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (line {mark.line + 1})",
                    mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 (PyYAML) reads '3e-4' as a string because its float pattern needs a
# dot; YAML 1.2 and every config user read it as a float.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _read_yaml(path: str | os.PathLike) -> Mapping[str, Any]:
    try:
        with open(path) as f:
            values = yaml.load(f, Loader=_UniqueKeyLoader)
    except OSError as err:
        raise ConfigError(f"config file {path} could not be read: {err}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise ConfigError(
            f"config file {path} must hold a mapping at top level; got "
            f"{_type_name(values)}."
        )
    return values


def load_config(
    path: str | os.PathLike | None = None, overrides: Iterable[str] = ()
) -> ml_collections.ConfigDict:
    """Defaults, then the YAML file at ``path``, then ``key=value`` overrides.

    The result is checked by :func:`validate`; an error names the key and the
    source of its value.
    """
    cfg = default_config()
    sources: dict[str, str] = {}
    if path is not None:
        values = _read_yaml(path)
        try:
            merge(cfg, values)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from err
        sources.update((k, f"config file {path}") for k in _leaf_paths(values))
    for text in overrides:
        key, value = parse_override(text)
        try:
            _assign(cfg, key, value)
        except ConfigError as err:
            raise ConfigError(f"--set {text}: {err}") from err
        if isinstance(value, Mapping):
            sources.update((k, f"--set {text}") for k in _leaf_paths(value, key + "."))
        else:
            sources[key] = f"--set {text}"
    try:
        validate(cfg)
    except _InvalidValue as err:
        source = sources.get(err.key, "the defaults")
        raise ConfigError(f"{str(err).rstrip('.')} (from {source}).") from None
    return cfg


class _InvalidValue(ConfigError):
    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def _require(cfg: ml_collections.ConfigDict, key: str, ok: Callable, what: str):
    node: Any = cfg
    for part in key.split("."):
        node = node[part]
    if not ok(node):
        raise _InvalidValue(key, f"config key {key!r}={node!r}; expected {what}.")


def _choice(cfg: ml_collections.ConfigDict, key: str, choices: Iterable[str]):
    choices = tuple(choices)
    _require(
        cfg,
        key,
        lambda v: v in choices,
        "one of " + ", ".join(repr(c) for c in choices),
    )


def validate(cfg: ml_collections.ConfigDict) -> None:
    """Checks names against the registries and numbers against their ranges.

    Raises:
      ConfigError: naming the first offending key and its value.
    """
    from dwsep_jax.data import DATASETS
    from dwsep_jax.models import CONV_TYPES, MODELS

    positive = (lambda v: v > 0, "> 0")
    at_least_one = (lambda v: v >= 1, ">= 1")
    non_negative = (lambda v: v >= 0, ">= 0")
    fraction = (lambda v: 0 <= v < 1, "in [0, 1)")
    finite = math.isfinite

    _require(cfg, "seed", *non_negative)
    _choice(cfg, "data.name", DATASETS)
    _require(cfg, "data.test_size", *at_least_one)
    _require(cfg, "data.num_classes", *non_negative)
    _require(cfg, "data.train_examples", *non_negative)
    _require(cfg, "data.channels", lambda v: v in (0, 1, 3), "0 (infer), 1 or 3")
    _require(
        cfg,
        "data.image_size",
        lambda v: len(v) == 0 or (len(v) == 2 and min(v) >= 1),
        "[] or [height, width] of positive ints",
    )
    _require(cfg, "data.mean", lambda v: all(map(finite, v)), "finite values")
    _require(
        cfg, "data.std", lambda v: all(finite(s) and s > 0 for s in v), "values > 0"
    )
    mean_len, std_len = len(cfg.data.mean), len(cfg.data.std)
    _require(
        cfg,
        "data.std",
        lambda v: mean_len == std_len,
        f"as many values as data.mean ({mean_len})",
    )
    _require(cfg, "data.augment.crop_padding", *non_negative)

    _choice(cfg, "model.name", MODELS)
    _require(cfg, "model.width_multiplier", *positive)
    _require(cfg, "model.dropout_rate", *fraction)

    t = "train."
    for key in ("epochs", "batch_size", "eval_batch_size", "log_every"):
        _require(cfg, t + key, *at_least_one)
    _choice(cfg, t + "optimizer", OPTIMIZERS)
    _choice(cfg, t + "schedule", SCHEDULES)
    _require(cfg, t + "learning_rate", lambda v: finite(v) and v > 0, "> 0")
    _require(cfg, t + "warmup_epochs", *non_negative)
    _require(cfg, t + "weight_decay", *non_negative)
    _require(cfg, t + "momentum", *fraction)
    _require(cfg, t + "label_smoothing", *fraction)

    _require(
        cfg,
        "compare.conv_types",
        lambda v: 0 < len(v) == len(set(v)) and set(v) <= set(CONV_TYPES),
        "distinct entries from " + ", ".join(repr(c) for c in CONV_TYPES),
    )
    _require(
        cfg,
        "sweep.width_multipliers",
        lambda v: all(w > 0 for w in v),
        "values > 0",
    )


def to_dict(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
    """Plain nested dict (tuples as lists), for JSON and YAML output."""

    def plain(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(cfg.to_dict())
