"""Embedded digits and photos, and the BSDS500 reader on the real copy and fake layouts."""

import numpy as np
import pytest
from PIL import Image
from skimage.transform import resize
from sklearn.datasets import load_digits

from thesis_jax.data import DatasetNotFoundError, bsds_photos, embedded_photos, sklearn_digits
from thesis_jax.data.embedded import BSDS500_URL


def test_sklearn_digits_sit_like_mnist_digits():
    images, labels = sklearn_digits()
    assert images.shape == (1797, 28, 28) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    np.testing.assert_array_equal(labels, load_digits().target)
    assert labels.dtype == np.int32
    # A 20x20 digit box centred in 28x28: a 4-pixel empty frame.
    frame = np.ones((28, 28), bool)
    frame[4:24, 4:24] = False
    assert not images[:, frame].any()
    rows = np.arange(28)
    mass = images.sum(axis=(1, 2))
    centre_row = (images.sum(axis=2) * rows).sum(axis=1) / mass
    centre_col = (images.sum(axis=1) * rows).sum(axis=1) / mass
    assert abs(centre_row.mean() - 13.5) < 0.5 and abs(centre_col.mean() - 13.5) < 0.5


def test_sklearn_digits_keep_the_original_strokes():
    images, _ = sklearn_digits()
    original = load_digits().images / 16.0
    back = resize(images[:, 4:24, 4:24], (1797, 8, 8), order=1, anti_aliasing=True)
    correlation = np.corrcoef(back.ravel(), original.ravel())[0, 1]
    assert correlation > 0.95


def test_sklearn_digits_scale_the_box_with_size():
    images, _ = sklearn_digits(size=56)
    assert images.shape == (1797, 56, 56)
    assert not images[:, :8].any() and not images[:, 48:].any()
    assert images[:, 8:48, 8:48].max() == 1.0
    with pytest.raises(ValueError, match="size"):
        sklearn_digits(size=4)


def test_embedded_photos_are_colour_photos():
    photos = embedded_photos()
    assert len(photos) >= 8
    for photo in photos:
        assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3
        assert min(photo.shape[:2]) >= 300
        assert photo.std() > 20
        assert np.abs(photo[..., 0].astype(int) - photo[..., 2]).mean() > 5


def test_bsds_photos_reads_the_real_train_split(shared_data):
    BSDS500 = shared_data / "BSDS500"
    photos = bsds_photos(BSDS500, "train")
    assert len(photos) == 200
    assert {photo.shape for photo in photos} <= {(321, 481, 3), (481, 321, 3)}
    assert all(photo.dtype == np.uint8 for photo in photos)


@pytest.mark.parametrize(
    "layout", ["images", "BSR/BSDS500/data/images", "data/images"], ids=lambda x: x
)
def test_bsds_photos_accepts_the_bsr_nesting(tmp_path, layout):
    folder = tmp_path / layout / "val"
    folder.mkdir(parents=True)
    Image.new("RGB", (48, 32), (200, 30, 30)).save(folder / "2.jpg", quality=95)
    Image.new("RGB", (32, 48), (30, 30, 200)).save(folder / "1.jpg", quality=95)
    (folder / "notes.txt").write_text("not a photo")
    photos = bsds_photos(tmp_path, "val")
    assert [photo.shape for photo in photos] == [(48, 32, 3), (32, 48, 3)]
    np.testing.assert_allclose(photos[0].mean(axis=(0, 1)), (30, 30, 200), atol=3)
    np.testing.assert_allclose(photos[1].mean(axis=(0, 1)), (200, 30, 30), atol=3)


def test_missing_bsds_names_every_path_tried_and_the_download(tmp_path):
    with pytest.raises(DatasetNotFoundError) as raised:
        bsds_photos(tmp_path / "nowhere", "train")
    message = str(raised.value)
    for layout in ("images/train", "BSR/BSDS500/data/images/train", "data/images/train"):
        assert str(tmp_path / "nowhere" / layout) in message
    assert BSDS500_URL in message and "tar xzf" in message
    with pytest.raises(ValueError, match="split"):
        bsds_photos(tmp_path, "training")
