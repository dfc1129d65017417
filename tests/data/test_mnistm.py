"""MNIST-M: the blend of sec. 5.4.4 on hand-built cases, and the cached builder end to end."""

import numpy as np
import pytest

from thesis_jax.data import (
    DatasetNotFoundError,
    blend_mnistm,
    bsds_photos,
    load_mnist_m,
    load_tfds_arrays,
)
from thesis_jax.data import mnistm as mnistm_module


def test_blend_is_the_absolute_difference_with_the_patch():
    digit = np.array([[[0.0, 1.0], [0.5, 0.25]]], np.float32)
    photo = np.array(
        [[[0, 128, 255], [255, 255, 255]], [[51, 102, 153], [0, 0, 0]]], np.uint8
    )  # the same size as the digit: the only patch is the whole photo
    out = blend_mnistm(digit, [photo], np.random.default_rng(0))
    expected = np.array(
        [
            [[0.0, 128 / 255, 1.0], [0.0, 0.0, 0.0]],
            [[0.5 - 0.2, 0.5 - 0.4, 0.6 - 0.5], [0.25, 0.25, 0.25]],
        ],
        np.float32,
    )
    assert out.shape == (1, 2, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[0], expected, atol=1e-6)


def test_blank_digits_copy_a_patch_and_full_ink_inverts_it():
    photo = np.random.default_rng(1).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    scaled = photo.astype(np.float32) / 255.0
    patches = {
        (top, left): scaled[top : top + 4, left : left + 5] for top in range(6) for left in range(7)
    }
    blank = blend_mnistm(np.zeros((200, 4, 5)), [photo], np.random.default_rng(2))
    ink = blend_mnistm(np.ones((200, 4, 5)), [photo], np.random.default_rng(2))
    used = set()
    for blank_image, ink_image in zip(blank, ink, strict=True):
        position = next(key for key, patch in patches.items() if np.array_equal(patch, blank_image))
        used.add(position)
        np.testing.assert_allclose(ink_image, 1.0 - patches[position], atol=1e-6)
    assert len(used) > 0.8 * len(patches)  # positions are drawn all over the photo
    assert {top for top, _ in used} == set(range(6))


def test_every_photo_is_used_and_the_rng_decides():
    photos = [np.full((30, 30, 3), value, np.uint8) for value in (0, 100, 200)]
    digits = np.zeros((300, 28, 28), np.float32)
    out = blend_mnistm(digits, photos, np.random.default_rng(3))
    values = np.round(out[:, 0, 0, 0] * 255).astype(int)
    assert set(values) == {0, 100, 200}
    assert min(np.bincount(values // 100)) > 60
    np.testing.assert_array_equal(out, blend_mnistm(digits, photos, np.random.default_rng(3)))
    assert not np.array_equal(out, blend_mnistm(digits, photos, np.random.default_rng(4)))


def test_blend_rejects_bad_inputs():
    rng = np.random.default_rng(0)
    photo = np.zeros((40, 40, 3), np.uint8)
    with pytest.raises(ValueError, match="smaller than the digits"):
        blend_mnistm(np.zeros((1, 28, 28)), [photo[:20]], rng)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        blend_mnistm(np.full((1, 28, 28), 2.0), [photo], rng)
    with pytest.raises(ValueError, match="RGB"):
        blend_mnistm(np.zeros((1, 28, 28)), [photo[..., 0]], rng)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        blend_mnistm(np.zeros((28, 28)), [photo], rng)
    with pytest.raises(ValueError, match="empty"):
        blend_mnistm(np.zeros((1, 28, 28)), [], rng)


def test_uint8_digits_are_scaled_to_unit_range():
    photo = np.random.default_rng(5).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    digits = np.random.default_rng(6).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    np.testing.assert_array_equal(
        blend_mnistm(digits, [photo], np.random.default_rng(0)),
        blend_mnistm(digits.astype(np.float32) / 255, [photo], np.random.default_rng(0)),
    )


def test_mnist_m_is_built_from_tfds_mnist_and_bsds_then_cached(
    mock_mnist_dir, monkeypatch, shared_data
):
    import tensorflow_datasets as tfds

    BSDS500 = shared_data / "BSDS500"
    data_dir = str(mock_mnist_dir)
    with tfds.testing.mock_data(num_examples=12, data_dir=data_dir):
        images, labels = load_mnist_m("train", data_dir, BSDS500, seed=0)
        mnist = load_tfds_arrays("mnist", "train", data_dir)
        other_seed, other_labels = load_mnist_m("train", data_dir, BSDS500, seed=1)

    assert images.shape == (12, 28, 28, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int32
    np.testing.assert_array_equal(labels, mnist["label"])
    np.testing.assert_array_equal(other_labels, labels)
    assert not np.array_equal(other_seed, images)
    # The documented recipe, step by step.
    expected = blend_mnistm(
        mnist["image"][..., 0] / 255.0,
        bsds_photos(BSDS500, "train"),
        np.random.default_rng([0, 0]),
    )
    np.testing.assert_array_equal(images, np.round(expected * 255).astype(np.uint8))

    cache = mock_mnist_dir / "mnist_m" / "train-seed0.npz"
    assert cache.is_file()
    assert sorted(path.name for path in cache.parent.iterdir()) == [
        "train-seed0.npz",
        "train-seed1.npz",
    ]
    with np.load(cache, allow_pickle=False) as stored:
        np.testing.assert_array_equal(stored["images"], images)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(mnistm_module, "load_tfds_arrays", no_rebuild)
    monkeypatch.setattr(mnistm_module, "bsds_photos", no_rebuild)
    cached_images, cached_labels = load_mnist_m("train", data_dir, BSDS500, seed=0)
    np.testing.assert_array_equal(cached_images, images)
    np.testing.assert_array_equal(cached_labels, labels)


def test_mnist_m_without_bsds_fails_and_writes_no_cache(mock_mnist_dir):
    import tensorflow_datasets as tfds

    with (
        tfds.testing.mock_data(num_examples=5, data_dir=str(mock_mnist_dir)),
        pytest.raises(DatasetNotFoundError, match="BSDS500"),
    ):
        load_mnist_m("test", str(mock_mnist_dir), mock_mnist_dir / "no_bsds")
    assert not (mock_mnist_dir / "mnist_m").exists() or not any(
        (mock_mnist_dir / "mnist_m").iterdir()
    )


def test_mnist_m_without_mnist_says_how_to_prepare_it(tmp_path, shared_data):
    BSDS500 = shared_data / "BSDS500"
    with pytest.raises(DatasetNotFoundError, match="download_and_prepare --datasets=mnist"):
        load_mnist_m("train", str(tmp_path), BSDS500)
    with pytest.raises(ValueError, match="split"):
        load_mnist_m("validation", str(tmp_path), BSDS500)
