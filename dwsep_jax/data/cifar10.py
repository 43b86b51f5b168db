"""CIFAR-10 "python version" batches, read without executing pickled code.

The archive ``cifar-10-python.tar.gz`` unpacks to ``cifar-10-batches-py/`` with
``data_batch_1`` ... ``data_batch_5`` (10,000 training images each),
``test_batch`` (10,000) and ``batches.meta``. Each is a pickled dict with
``data``, a uint8 array ``(10000, 3072)`` holding each image's red, green and
blue 32x32 planes in turn, and ``labels``, a list of ints in 0-9.

``pickle.load`` would call any global a file names. :class:`SafeUnpickler`
resolves only the three globals a pickled NumPy array needs (the array
reconstructor, ``numpy.ndarray`` and ``numpy.dtype``, plus the protocol-5
buffer reader) and refuses every other one, so a tampered file raises
:class:`DatasetError` instead of running code.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from dwsep_jax.data.core import Dataset, DatasetError, Split

logger = logging.getLogger(__name__)

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = 10

try:  # NumPy >= 2 keeps the implementation in numpy._core.
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric

# (module, name) a pickle may ask for -> the object it gets. Files written by
# NumPy 1.x name ``numpy.core``, files written by NumPy 2.x ``numpy._core``.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _module in ("numpy.core", "numpy._core"):
    _ALLOWED_GLOBALS[(f"{_module}.multiarray", "_reconstruct")] = (
        _multiarray._reconstruct
    )
    _ALLOWED_GLOBALS[(f"{_module}.numeric", "_frombuffer")] = _numeric._frombuffer


class SafeUnpickler(pickle.Unpickler):
    """An unpickler for plain containers and NumPy arrays, and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only NumPy arrays and "
                "plain containers are allowed"
            ) from None


def safe_load_pickle(path: str | os.PathLike) -> Any:
    """Unpickles ``path`` with :class:`SafeUnpickler` (Python 2 strings as bytes).

    Raises:
      DatasetError: the file is missing, truncated, corrupt, or names a global
        other than the NumPy array machinery.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"CIFAR-10 file {path} does not exist.")
    try:
        with open(path, "rb") as f:
            return SafeUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as err:
        raise DatasetError(f"CIFAR-10 file {path} is not a valid batch: {err}") from err
    except (OSError, AttributeError, IndexError, KeyError, MemoryError) as err:
        raise DatasetError(f"CIFAR-10 file {path} could not be read: {err}") from err


def _text_keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {
            (k.decode("latin1") if isinstance(k, bytes) else k): v
            for k, v in obj.items()
        }
    return obj


def read_cifar_batch(path: str | os.PathLike) -> Split:
    """One CIFAR-10 batch file as uint8 images ``(N, 32, 32, 3)`` and labels.

    Raises:
      DatasetError: the file cannot be unpickled safely, lacks ``data`` or
        ``labels``, holds rows that are not 3072 bytes, or a label outside 0-9.
    """
    batch = _text_keys(safe_load_pickle(path))
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        raise DatasetError(
            f"CIFAR-10 file {path} is not a batch: expected a dict with 'data' and "
            "'labels'."
        )
    pixels = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"])
    rows = int(np.prod(IMAGE_SHAPE))
    if pixels.dtype != np.uint8 or pixels.ndim != 2 or pixels.shape[1] != rows:
        raise DatasetError(
            f"CIFAR-10 file {path}: 'data' is {pixels.dtype} {pixels.shape}; "
            f"expected uint8 (N, {rows})."
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(
            f"CIFAR-10 file {path}: 'labels' is {labels.dtype} {labels.shape}; "
            "expected a list of ints."
        )
    if labels.shape[0] != pixels.shape[0]:
        raise DatasetError(
            f"CIFAR-10 file {path}: {pixels.shape[0]} images but "
            f"{labels.shape[0]} labels."
        )
    bad = labels[(labels < 0) | (labels >= NUM_CLASSES)]
    if bad.size:
        raise DatasetError(
            f"CIFAR-10 file {path}: label {int(bad[0])} is outside the class "
            f"range 0-{NUM_CLASSES - 1}."
        )
    # Rows are channel planes (C, H, W); the library works in (H, W, C).
    images = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return Split(np.ascontiguousarray(images), labels.astype(np.int32))


def _batch_folder(path: Path) -> Path:
    nested = path / "cifar-10-batches-py"
    if not (path / TEST_BATCH).exists() and (nested / TEST_BATCH).exists():
        return nested
    return path


def load_cifar10(path: str | os.PathLike) -> Dataset:
    """CIFAR-10 from its python batches: 50,000 training and 10,000 test images.

    Args:
      path: the ``cifar-10-batches-py`` folder, or the folder holding it.

    Returns:
      A :class:`Dataset` of uint8 images ``(N, 32, 32, 3)``, with the class
      names from ``batches.meta`` when that file is present.

    Raises:
      DatasetError: the folder or a batch file is missing, or a batch is
        corrupt, truncated or unsafe to unpickle.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"CIFAR-10 folder {root} does not exist; expected the unpacked "
            "cifar-10-batches-py folder of cifar-10-python.tar.gz."
        )
    folder = _batch_folder(root)
    parts = [read_cifar_batch(folder / name) for name in TRAIN_BATCHES]
    train = Split(
        np.concatenate([p.images for p in parts]),
        np.concatenate([p.labels for p in parts]),
    )
    test = read_cifar_batch(folder / TEST_BATCH)

    class_names: tuple[str, ...] = ()
    if (folder / META).is_file():
        meta = _text_keys(safe_load_pickle(folder / META))
        names = meta.get("label_names", []) if isinstance(meta, dict) else []
        class_names = tuple(
            n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names
        )
        if len(class_names) != NUM_CLASSES:
            raise DatasetError(
                f"CIFAR-10 file {folder / META}: 'label_names' has "
                f"{len(class_names)} entries; expected {NUM_CLASSES}."
            )
    logger.info("loaded %d + %d CIFAR-10 images from %s", len(train), len(test), folder)
    return Dataset("cifar10", train, test, NUM_CLASSES, class_names=class_names)
