"""Pure NumPy image augmentation: random crop after zero padding, horizontal flip.

Both run on the host before a batch is sent to the device, for uint8 or float
images, with randomness drawn only from the seed given, so a batch's
augmentation is a function of ``(seed, epoch, step)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SeedLike = int | Sequence[int] | np.random.Generator


def augment(
    images: np.ndarray,
    rng_or_seed: SeedLike,
    crop_padding: int = 0,
    flip: bool = False,
) -> np.ndarray:
    """Random crop with zero padding and random horizontal flip of a batch.

    Each image is padded by ``crop_padding`` zeros on every side and a window of
    its original size is cut at an offset drawn uniformly from
    ``[0, 2 * crop_padding]`` in each direction; with ``flip`` each image is
    then mirrored left-right with probability 1/2. Offsets and flips are drawn
    independently per image.

    Args:
      images: ``(N, H, W, C)``, any dtype (uint8 or float); zero is the padding
        value in that dtype.
      rng_or_seed: a ``numpy.random.Generator``, or an int or a sequence of
        non-negative ints such as ``(seed, epoch, step)`` to seed a fresh one.
      crop_padding: pixels of padding per side; 0 disables cropping.
      flip: mirror half of the images horizontally (the ``W`` axis).

    Returns:
      An array of the shape and dtype of ``images``; ``images`` itself when
      neither augmentation is asked for.
    """
    if images.ndim != 4:
        raise ValueError(
            f"images has shape {images.shape}; expected (N, H, W, C) (rank 4)."
        )
    if isinstance(crop_padding, bool) or not isinstance(
        crop_padding, (int, np.integer)
    ):
        raise TypeError(f"crop_padding={crop_padding!r}; expected an int.")
    if crop_padding < 0:
        raise ValueError(f"crop_padding={crop_padding}; expected >= 0.")
    if not isinstance(flip, (bool, np.bool_)):
        raise TypeError(f"flip={flip!r}; expected a bool.")
    if crop_padding == 0 and not flip:
        return images

    rng = (
        rng_or_seed
        if isinstance(rng_or_seed, np.random.Generator)
        else np.random.default_rng(rng_or_seed)
    )
    n, height, width, _ = images.shape
    p = int(crop_padding)
    rows = np.broadcast_to(np.arange(height), (n, height))
    cols = np.broadcast_to(np.arange(width), (n, width))
    source = images
    if p:
        source = np.pad(images, ((0, 0), (p, p), (p, p), (0, 0)))
        rows = rows + rng.integers(0, 2 * p + 1, size=(n, 1))
        cols = cols + rng.integers(0, 2 * p + 1, size=(n, 1))
    if flip:
        mirrored = rng.random(n) < 0.5
        cols = np.where(mirrored[:, None], cols[:, ::-1], cols)

    batch = np.arange(n)[:, None, None]
    return source[batch, rows[:, :, None], cols[:, None, :]]
