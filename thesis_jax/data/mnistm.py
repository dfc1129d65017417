"""MNIST-M: MNIST digits blended over patches of colour photos (thesis sec. 5.4.4).

The target domain of the MNIST -> MNIST-M experiment is built by taking, for each digit, a patch
of the same size from a random position of a random BSDS500 photo and setting

    out_ijk = |I1_ijk - I2_ijk|                                          (sec. 5.4.4)

where I1 is the digit replicated over the 3 colour channels and I2 the patch; i.e. the patch's
pixels are inverted where the digit has ink. As in the released MNIST-M, patches come from the 200
photos of the BSDS500 *train* split.

`load_mnist_m` builds the set from MNIST (tensorflow-datasets) and a local BSDS500 folder, and
caches it as `<data_dir>/mnist_m/<split>-seed<seed>.npz` (uint8 images, int32 labels; written to a
temporary file, then renamed). Given the same MNIST split and photos, the result equals

    blend_mnistm(mnist_images / 255, bsds_photos(bsds_dir, "train"),
                 np.random.default_rng([seed, MNIST_M_SPLITS.index(split)]))

rounded to uint8. Delete the cache file to rebuild it (e.g. after changing `bsds_dir`).
"""

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from thesis_jax.data.cache import cached_arrays
from thesis_jax.data.embedded import bsds_photos
from thesis_jax.data.tfds_loader import load_tfds_arrays, resolve_data_dir

MNIST_M_SPLITS = ("train", "test")


def _photo_to_float(photo: np.ndarray, index: int) -> np.ndarray:
    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[-1] != 3:
        raise ValueError(f"photos[{index}] must be (H, W, 3) RGB, got shape {photo.shape}")
    if photo.dtype == np.uint8:
        return photo.astype(np.float32) / 255.0
    photo = photo.astype(np.float32)
    if photo.min() < 0.0 or photo.max() > 1.0:
        raise ValueError(f"float photos[{index}] must lie in [0, 1]")
    return photo


def blend_mnistm(
    digits: np.ndarray, photos: Sequence[np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    """Blends each digit over a random patch of a random photo: out = |digit - patch|.

    Args:
      digits: (N, H, W) float in [0, 1] (ink is 1); uint8 in 0..255 is accepted and scaled.
      photos: (Hp, Wp, 3) colour photos, uint8 or float in [0, 1], each at least H x W.
      rng: draws, per digit, the photo (uniformly) and the patch's top-left corner (uniformly
        over all positions where the patch fits).

    Returns:
      float32 (N, H, W, 3) in [0, 1].

    The patches are gathered with one fancy-indexing call per photo: 60,000 28x28 digits over the
    200 BSDS500 photos blend in about 2 s on one CPU core.
    """
    digits = np.asarray(digits)
    if digits.ndim != 3:
        raise ValueError(f"digits must be (N, H, W), got shape {digits.shape}")
    if digits.dtype == np.uint8:
        digits = digits.astype(np.float32) / 255.0
    digits = digits.astype(np.float32, copy=False)
    if digits.size and (digits.min() < 0.0 or digits.max() > 1.0):
        raise ValueError("digits must lie in [0, 1] (divide uint8 MNIST by 255)")
    if len(photos) == 0:
        raise ValueError("photos is empty")
    num, height, width = digits.shape
    photos = [_photo_to_float(photo, index) for index, photo in enumerate(photos)]
    for index, photo in enumerate(photos):
        if photo.shape[0] < height or photo.shape[1] < width:
            raise ValueError(
                f"photos[{index}] is {photo.shape[:2]}, smaller than the digits ({height}, {width})"
            )

    photo_index = rng.integers(len(photos), size=num)
    photo_heights = np.array([photo.shape[0] for photo in photos])[photo_index]
    photo_widths = np.array([photo.shape[1] for photo in photos])[photo_index]
    tops = np.floor(rng.random(num) * (photo_heights - height + 1)).astype(np.int64)
    lefts = np.floor(rng.random(num) * (photo_widths - width + 1)).astype(np.int64)

    rows = np.arange(height)[None, :, None]
    cols = np.arange(width)[None, None, :]
    out = np.empty((num, height, width, 3), np.float32)
    for index, photo in enumerate(photos):
        members = np.flatnonzero(photo_index == index)
        if members.size == 0:
            continue
        patches = photo[
            tops[members, None, None] + rows, lefts[members, None, None] + cols
        ]  # (n, H, W, 3)
        out[members] = np.abs(digits[members, :, :, None] - patches)  # sec. 5.4.4
    return out


def binarize_digits(digits: np.ndarray) -> np.ndarray:
    """uint8 digits with every inked pixel (> 0) set to 255, as the public MNIST-M builder does."""
    return np.where(np.asarray(digits) > 0, 255, 0).astype(np.uint8)


def mnist_m_cache_path(
    split: str, data_dir: str | os.PathLike[str] | None, seed: int, binarize: bool = False
) -> Path:
    """Where `load_mnist_m` caches a split: `<data_dir>/mnist_m/<split>[-binary]-seed<seed>.npz`."""
    name = f"{split}{'-binary' if binarize else ''}-seed{seed}.npz"
    return resolve_data_dir(data_dir) / "mnist_m" / name


def load_mnist_m(
    split: str,
    data_dir: str | os.PathLike[str] | None,
    bsds_dir: str | os.PathLike[str],
    seed: int = 0,
    binarize: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-M for one MNIST split, built once from tfds MNIST and a local BSDS500, then cached.

    Args:
      split: "train" (60,000 digits) or "test" (10,000).
      data_dir: tfds data directory holding prepared `mnist`; the cache goes to
        `<data_dir>/mnist_m/` (see `resolve_data_dir` for the default).
      bsds_dir: local BSDS500 folder (any layout `bsds_photos` accepts).
      seed: selects the patches; each (split, seed) pair is its own cache file.
      binarize: blend `binarize_digits(mnist)` instead of the grey digits.

    Returns:
      images: uint8 (N, 28, 28, 3); labels: int32 (N,), the MNIST labels.

    Raises:
      DatasetNotFoundError: MNIST is not prepared or the BSDS500 photos are missing.
    """
    if split not in MNIST_M_SPLITS:
        raise ValueError(f"split must be one of {MNIST_M_SPLITS}, got {split!r}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    cache = mnist_m_cache_path(split, data_dir, int(seed), binarize)

    def build() -> dict[str, np.ndarray]:
        mnist = load_tfds_arrays("mnist", split, data_dir)
        photos = bsds_photos(bsds_dir, "train")
        rng = np.random.default_rng([int(seed), MNIST_M_SPLITS.index(split)])
        digits = mnist["image"][..., 0]
        blended = blend_mnistm(binarize_digits(digits) if binarize else digits, photos, rng)
        images = np.round(blended * 255.0).astype(np.uint8)
        return {"images": images, "labels": mnist["label"].astype(np.int32)}

    stored = cached_arrays(cache, build)
    return stored["images"], stored["labels"]
