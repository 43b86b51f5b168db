"""Datasets from arrays: ``.npz`` files and scikit-learn's 8x8 digits."""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path

import numpy as np

from dwsep_jax.data.core import (
    Dataset,
    DatasetError,
    Split,
    check_labels,
    check_split,
    stratified_split,
)

logger = logging.getLogger(__name__)

NPZ_SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")
NPZ_SINGLE_KEYS = ("images", "labels")


def _as_nhwc(images: np.ndarray) -> np.ndarray:
    return images[..., None] if images.ndim == 3 else images


def _npz_images(images: np.ndarray, source: str) -> np.ndarray:
    if images.dtype == np.uint8:
        return images
    if np.issubdtype(images.dtype, np.floating):
        return images.astype(np.float32)
    raise DatasetError(
        f"{source}: images have dtype {images.dtype}; expected uint8 (0-255) or "
        "float (0-1)."
    )


def load_npz(
    path: str | os.PathLike,
    test_size: int = 1000,
    seed: int = 0,
    num_classes: int = 0,
) -> Dataset:
    """A dataset from a NumPy ``.npz`` archive (read with ``allow_pickle=False``).

    The archive holds either ``x_train``, ``y_train``, ``x_test``, ``y_test``
    (the Keras layout), or ``images`` and ``labels``, which are then split
    stratified with ``test_size`` and ``seed``. Images are ``(N, H, W)`` or
    ``(N, H, W, C)``, uint8 in 0-255 or float in 0-1; labels are integers.

    Args:
      path: the ``.npz`` file.
      test_size: held-out examples for the ``images``/``labels`` layout.
      seed: seed of that split.
      num_classes: the label range; 0 takes the largest label plus one.

    Raises:
      DatasetError: the file is missing or not a valid archive, holds neither
        layout, has arrays of the wrong rank, length or dtype, or a label
        outside ``[0, num_classes)``.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"npz file {path} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            if set(NPZ_SPLIT_KEYS) <= keys:
                arrays = {k: archive[k] for k in NPZ_SPLIT_KEYS}
            elif set(NPZ_SINGLE_KEYS) <= keys:
                arrays = {k: archive[k] for k in NPZ_SINGLE_KEYS}
            else:
                raise DatasetError(
                    f"npz file {path} holds {sorted(keys)}; expected "
                    f"{', '.join(NPZ_SPLIT_KEYS)} or {', '.join(NPZ_SINGLE_KEYS)}."
                )
    except DatasetError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise DatasetError(f"npz file {path} could not be read: {err}") from err

    if "images" in arrays:
        images = _npz_images(_as_nhwc(arrays["images"]), f"npz file {path}")
        labels = arrays["labels"]
        check_split(images, labels, f"npz file {path}")
        try:
            train_ix, test_ix = stratified_split(labels, test_size, seed)
        except ValueError as err:
            raise DatasetError(f"npz file {path}: {err}") from err
        train = Split(images[train_ix], labels[train_ix].astype(np.int32))
        test = Split(images[test_ix], labels[test_ix].astype(np.int32))
    else:
        splits = []
        for x_key, y_key in (("x_train", "y_train"), ("x_test", "y_test")):
            source = f"npz file {path} ({x_key}, {y_key})"
            images = _npz_images(_as_nhwc(arrays[x_key]), source)
            check_split(images, arrays[y_key], source)
            splits.append(Split(images, arrays[y_key].astype(np.int32)))
        train, test = splits
        if train.images.shape[1:] != test.images.shape[1:]:
            raise DatasetError(
                f"npz file {path}: x_train images are {train.images.shape[1:]} but "
                f"x_test images are {test.images.shape[1:]}."
            )

    found = int(max(train.labels.max(), test.labels.max())) + 1
    num_classes = num_classes or found
    for split in (train, test):
        check_labels(split.labels, num_classes, f"npz file {path}")
    logger.info("loaded %d + %d images from %s", len(train), len(test), path)
    return Dataset("npz", train, test, num_classes)


def load_sklearn_digits(test_size: int = 360, seed: int = 0) -> Dataset:
    """scikit-learn's 1,797 handwritten digits, 8x8, as uint8 ``(N, 8, 8, 1)``.

    The source pixels count 0-16 dark cells of a 4x4 block; they are scaled to
    0-255 and rounded. Requires the optional ``sklearn`` extra
    (``pip install 'dwsep-jax[sklearn]'``).
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise DatasetError(
            "dataset 'sklearn_digits' needs scikit-learn, which is not installed; "
            "run `pip install 'dwsep-jax[sklearn]'` (or `pip install scikit-learn`)."
        ) from err
    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    labels = digits.target.astype(np.int32)
    try:
        train_ix, test_ix = stratified_split(labels, test_size, seed)
    except ValueError as err:
        raise DatasetError(f"dataset 'sklearn_digits': {err}") from err
    return Dataset(
        "sklearn_digits",
        Split(images[train_ix], labels[train_ix]),
        Split(images[test_ix], labels[test_ix]),
        10,
    )
