"""A folder of images per class, read with Pillow.

Two layouts are accepted::

    root/<class>/<image>                  split stratified by test_size
    root/train/<class>/<image>            the given split; the test folder
    root/test/<class>/<image>             must use the same class names

Classes are the sub-folder names in sorted order, so label ``i`` is the
``i``-th name. Hidden files (``.name``) are ignored; any other file must be an
image Pillow can read.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from dwsep_jax.data.core import Dataset, DatasetError, Split, stratified_split

logger = logging.getLogger(__name__)

GRAYSCALE_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


def _class_folders(root: Path) -> list[Path]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name[0] != ".")
    if not folders:
        raise DatasetError(
            f"image folder {root} has no class sub-folders; expected "
            "root/<class>/<image> or root/train|test/<class>/<image>."
        )
    return folders


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name[0] != ".")


def _read_image(
    path: Path, channels: int, image_size: tuple[int, int] | None
) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            if image_size is not None and img.size != (image_size[1], image_size[0]):
                img = img.resize((image_size[1], image_size[0]), Image.BILINEAR)
            array = np.asarray(img, np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DatasetError(f"image file {path} could not be read: {err}") from err
    return array[..., None] if array.ndim == 2 else array


def _infer_channels(path: Path) -> int:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return 1 if img.mode in GRAYSCALE_MODES else 3
    except (UnidentifiedImageError, OSError) as err:
        raise DatasetError(f"image file {path} could not be read: {err}") from err


def _read_classes(
    folders: list[Path], channels: int, image_size: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    expected: tuple[int, ...] | None = None
    for label, folder in enumerate(folders):
        files = _image_files(folder)
        if not files:
            raise DatasetError(f"class folder {folder} holds no images.")
        for file in files:
            array = _read_image(file, channels, image_size)
            if expected is None:
                expected = array.shape
            elif array.shape != expected:
                raise DatasetError(
                    f"image file {file} is {array.shape[1]}x{array.shape[0]} pixels "
                    f"but earlier images are {expected[1]}x{expected[0]}; resize "
                    "them or set data.image_size."
                )
            images.append(array)
            labels.append(label)
    return np.stack(images), np.asarray(labels, np.int32)


def load_image_folder(
    path: str | os.PathLike,
    test_size: int = 1000,
    seed: int = 0,
    channels: int = 0,
    image_size: tuple[int, int] | tuple[()] = (),
) -> Dataset:
    """Images grouped in one sub-folder per class.

    Args:
      path: the root folder (see the module docstring for the two layouts).
      test_size: held-out examples when the root has no ``train``/``test`` split.
      seed: seed of that split.
      channels: 1 (grayscale) or 3 (RGB) to convert every image; 0 takes 1 when
        the first image is grayscale and 3 otherwise.
      image_size: ``(height, width)`` to resize every image to (bilinear); empty
        requires all images to share one size.

    Returns:
      A :class:`Dataset` of uint8 images ``(N, H, W, channels)`` with the class
      folder names as ``class_names``.

    Raises:
      DatasetError: the folder is missing or empty, an image is unreadable or of
        another size, or the train and test class folders differ.
    """
    try:
        import PIL  # noqa: F401
    except ImportError as err:
        raise DatasetError(
            "dataset 'image_folder' needs Pillow, which is not installed; run "
            "`pip install 'dwsep-jax[images]'` (or `pip install pillow`)."
        ) from err
    if channels not in (0, 1, 3):
        raise ValueError(f"channels={channels}; expected 0 (infer), 1 or 3.")
    if image_size and (len(image_size) != 2 or min(image_size) < 1):
        raise ValueError(
            f"image_size={image_size!r}; expected (height, width) of positive ints."
        )
    size = (int(image_size[0]), int(image_size[1])) if image_size else None
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DatasetError(f"image folder {root} does not exist.")

    has_split = (root / "train").is_dir() and (root / "test").is_dir()
    train_folders = _class_folders(root / "train" if has_split else root)
    names = tuple(f.name for f in train_folders)
    if channels == 0:
        first = next((f for d in train_folders for f in _image_files(d)), None)
        if first is None:
            raise DatasetError(f"image folder {root} holds no images.")
        channels = _infer_channels(first)

    images, labels = _read_classes(train_folders, channels, size)
    if has_split:
        test_folders = _class_folders(root / "test")
        if tuple(f.name for f in test_folders) != names:
            raise DatasetError(
                f"image folder {root}: test classes "
                f"{[f.name for f in test_folders]} differ from train classes "
                f"{list(names)}."
            )
        test_images, test_labels = _read_classes(test_folders, channels, size)
        if test_images.shape[1:] != images.shape[1:]:
            raise DatasetError(
                f"image folder {root}: test images are {test_images.shape[1:]} but "
                f"train images are {images.shape[1:]}; set data.image_size."
            )
        train, test = Split(images, labels), Split(test_images, test_labels)
    else:
        try:
            train_ix, test_ix = stratified_split(labels, test_size, seed)
        except ValueError as err:
            raise DatasetError(f"image folder {root}: {err}") from err
        train = Split(images[train_ix], labels[train_ix])
        test = Split(images[test_ix], labels[test_ix])
    logger.info("loaded %d + %d images from %s", len(train), len(test), root)
    return Dataset("image_folder", train, test, len(names), class_names=names)
