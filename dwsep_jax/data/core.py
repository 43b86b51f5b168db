"""In-memory datasets, normalisation and deterministic batch iteration.

A :class:`Dataset` holds a train and a test :class:`Split` as NumPy arrays:
images ``(N, H, W, C)`` as uint8 (0-255) or float32 (already in 0-1) and int32
labels ``(N,)`` in ``[0, num_classes)``. It also carries the per-channel mean and
standard deviation used by :func:`normalize`, given by the caller or computed
on the training images.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence

import numpy as np

from dwsep_jax.data.augment import SeedLike, augment

logger = logging.getLogger(__name__)

# Images per float64 chunk in channel_stats.
_STATS_CHUNK = 2048


class DatasetError(ValueError):
    """A dataset file is missing, unreadable or malformed, or labels are invalid."""


@dataclasses.dataclass(frozen=True)
class Split:
    """Images ``(N, H, W, C)`` (uint8 or float32) and integer labels ``(N,)``."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def check_split(images: np.ndarray, labels: np.ndarray, source: str) -> None:
    """Checks ranks, lengths and dtypes of one split, naming ``source`` on failure.

    Raises:
      DatasetError: images are not ``(N, H, W, C)`` uint8/float, labels are not
        an integer ``(N,)`` array, the lengths differ, a float image is not
        finite, or a label is negative.
    """
    if images.ndim != 4:
        raise DatasetError(
            f"{source}: images have shape {images.shape}; expected (N, H, W, C)."
        )
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
        raise DatasetError(
            f"{source}: images have dtype {images.dtype}; expected uint8 or float."
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(
            f"{source}: labels have shape {labels.shape} and dtype {labels.dtype}; "
            "expected an integer array of shape (N,)."
        )
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"{source}: {images.shape[0]} images but {labels.shape[0]} labels."
        )
    if images.shape[0] == 0:
        raise DatasetError(f"{source}: holds no examples.")
    if images.dtype != np.uint8 and not np.isfinite(images).all():
        raise DatasetError(f"{source}: images contain NaN or infinite values.")
    if labels.min() < 0:
        raise DatasetError(f"{source}: has negative label {int(labels.min())}.")


def check_labels(labels: np.ndarray, num_classes: int, source: str) -> None:
    """Raises :class:`DatasetError` naming ``source`` for a label outside the range."""
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise DatasetError(
            f"{source}: label {int(bad[0])} is outside the class range "
            f"0-{num_classes - 1}."
        )


def channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of ``(N, H, W, C)`` images.

    uint8 images are measured after scaling to 0-1, as :func:`normalize` sees them.
    Sums run in float64 over chunks of images, so a large uint8 dataset is never
    copied whole to float.
    """
    scale = 1.0 / 255.0 if images.dtype == np.uint8 else 1.0
    channels = images.shape[-1]
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    for start in range(0, images.shape[0], _STATS_CHUNK):
        chunk = images[start : start + _STATS_CHUNK].reshape(-1, channels)
        chunk = chunk.astype(np.float64) * scale
        total += chunk.sum(0)
        total_sq += np.square(chunk).sum(0)
    count = images.size // channels
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def _as_channels(values: float | Sequence[float], channels: int, name: str):
    array = np.atleast_1d(np.asarray(values, np.float32))
    if array.ndim != 1 or array.size not in (1, channels):
        raise ValueError(
            f"{name}={values!r}; expected one value or one per channel ({channels})."
        )
    return array


def normalize(
    images: np.ndarray, mean: float | Sequence[float], std: float | Sequence[float]
) -> np.ndarray:
    """Images to float32 ``(x - mean) / std``, per channel.

    Args:
      images: ``(..., C)``; uint8 values are first scaled by 1/255, float values
        are taken as already in 0-1.
      mean: one value, or one per channel ``C``.
      std: one positive value, or one per channel ``C``.

    Returns:
      float32 array of the shape of ``images``.
    """
    channels = images.shape[-1]
    mean_c = _as_channels(mean, channels, "mean")
    std_c = _as_channels(std, channels, "std")
    if (std_c <= 0).any():
        raise ValueError(f"std={std!r}; expected positive values.")
    x = images.astype(np.float32)
    if images.dtype == np.uint8:
        x *= np.float32(1.0 / 255.0)
    return (x - mean_c) / std_c


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A train/test pair with the number of classes and normalisation statistics.

    Attributes:
      name: the data source, e.g. ``'mnist_5k'``.
      train: training split.
      test: held-out split; same image shape as ``train``.
      num_classes: labels lie in ``[0, num_classes)``.
      mean: per-channel mean of the 0-1 scaled pixels; computed on ``train``
        when left empty.
      std: per-channel standard deviation, as ``mean``.
      class_names: optional human-readable name per class.
    """

    name: str
    train: Split
    test: Split
    num_classes: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for label, split in (("train", self.train), ("test", self.test)):
            source = f"dataset {self.name!r} {label} split"
            check_split(split.images, split.labels, source)
            check_labels(split.labels, self.num_classes, source)
        if self.train.images.shape[1:] != self.test.images.shape[1:]:
            raise DatasetError(
                f"dataset {self.name!r}: train images are "
                f"{self.train.images.shape[1:]} but test images are "
                f"{self.test.images.shape[1:]}."
            )
        channels = self.train.images.shape[-1]
        if not self.mean or not self.std:
            mean, std = channel_stats(self.train.images)
            object.__setattr__(self, "mean", self.mean or mean)
            object.__setattr__(self, "std", self.std or std)
        for field in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self, field))
            if len(values) == 1:
                values = values * channels
            if len(values) != channels:
                raise DatasetError(
                    f"dataset {self.name!r}: {field} has {len(values)} values for "
                    f"{channels} channels."
                )
            object.__setattr__(self, field, values)
        if min(self.std) <= 0:
            raise DatasetError(
                f"dataset {self.name!r}: std={self.std}; expected positive values "
                "(a constant channel has no spread; set data.std)."
            )

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.train.images.shape[1:])

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """``images`` normalised with this dataset's ``mean`` and ``std``."""
        return normalize(images, self.mean, self.std)


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


def batches(
    split: Split,
    batch_size: int,
    *,
    shuffle_seed: int | Sequence[int] | None = None,
    drop_remainder: bool = True,
    start_batch: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yields ``(images, labels, mask)`` batches.

    With ``shuffle_seed`` the order is a permutation drawn from that seed, so an
    epoch is reproducible from ``(seed, epoch)`` alone. Without
    ``drop_remainder`` the last batch is padded to ``batch_size`` and ``mask``
    marks the real examples (1.0) from the padding (0.0). ``start_batch`` skips
    that many batches of the same order, to resume inside an epoch.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}; expected a positive integer.")
    if start_batch < 0:
        raise ValueError(f"start_batch={start_batch}; expected >= 0.")
    n = len(split)
    order = (
        np.random.default_rng(shuffle_seed).permutation(n)
        if shuffle_seed is not None
        else np.arange(n)
    )
    stop = n - n % batch_size if drop_remainder else n
    for start in range(start_batch * batch_size, stop, batch_size):
        ix = order[start : start + batch_size]
        mask = np.ones(batch_size, np.float32)
        if len(ix) < batch_size:
            mask[len(ix) :] = 0.0
            ix = np.concatenate([ix, np.zeros(batch_size - len(ix), ix.dtype)])
        yield split.images[ix], split.labels[ix], mask


def train_batches(
    dataset: Dataset,
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    start_step: int = 0,
    crop_padding: int = 0,
    flip: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of shuffled, augmented, normalised training batches.

    The order comes from ``(seed, epoch)`` and the augmentation of step ``s``
    of the epoch from ``(seed, epoch, s)``, so any batch can be rebuilt from
    those numbers alone: resuming at ``start_step`` yields exactly the batches
    an uninterrupted epoch would have yielded from that step on. The last
    partial batch is dropped.

    Yields:
      ``(images, labels)``: float32 ``(batch_size, H, W, C)`` and int32
      ``(batch_size,)``.
    """
    for step, (images, labels, _) in enumerate(
        batches(
            dataset.train,
            batch_size,
            shuffle_seed=(seed, epoch),
            start_batch=start_step,
        ),
        start=start_step,
    ):
        key: SeedLike = (seed, epoch, step)
        images = augment(images, key, crop_padding=crop_padding, flip=flip)
        yield dataset.normalize(images), labels
