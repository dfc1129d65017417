"""`data.folders`: the user's images from class subfolders or loose, and the mistakes named."""

import numpy as np
import pytest
from PIL import Image

from thesis_jax.data import folders
from thesis_jax.data.folders import FolderError


def _write(path, shape=(30, 40, 3), value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(shape, value, np.uint8)).save(path)


def test_class_subfolders_become_labels_and_loose_images_are_found_at_any_depth(tmp_path):
    for name, value in (("cat", 10), ("dog", 200)):
        for k in range(3):
            _write(tmp_path / "src" / name / f"{k}.png", value=value)
    _write(tmp_path / "src" / "cat" / "deeper" / "x.jpg", value=10)
    (tmp_path / "src" / "dog" / "notes.txt").write_text("not an image, not read")
    names, (images, labels) = folders.load_labelled_folder(tmp_path / "src", 28)
    assert names == ["cat", "dog"] and images.shape == (7, 28, 28, 3)
    assert labels.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert images[labels == 0].max() <= 12 and images[labels == 1].min() >= 198
    # a centred square: a wide picture's middle, not its squeezed whole
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, 20:40] = 255
    Image.fromarray(wide).save(tmp_path / "wide.png")
    assert folders.load_image(tmp_path / "wide.png", 10).min() >= 250
    _write(tmp_path / "loose" / "a" / "b" / "deep.png")
    _write(tmp_path / "loose" / "top.webp")
    _write(tmp_path / "loose" / ".hidden" / "skipped.png")
    assert folders.load_image_folder(tmp_path / "loose", 32).shape == (2, 32, 32, 3)
    # a test folder's classes must be the source's
    _write(tmp_path / "test" / "dog" / "1.png")
    _, (_, test_labels) = folders.load_labelled_folder(tmp_path / "test", 28, classes=names)
    assert test_labels.tolist() == [1]
    _write(tmp_path / "test" / "fox" / "1.png")
    with pytest.raises(FolderError, match="class folder 'fox' is not one of the source's"):
        folders.load_labelled_folder(tmp_path / "test", 28, what="test", classes=names)


def test_unusable_folders_are_named_in_one_line(tmp_path):
    with pytest.raises(FolderError, match="no such folder"):
        folders.load_image_folder(tmp_path / "missing", 28, what="--config.target_dir")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FolderError, match="no images"):
        folders.load_image_folder(tmp_path / "empty", 28)
    _write(tmp_path / "one" / "cat" / "1.png")
    with pytest.raises(FolderError, match=r"at least two \(only 'cat'\)"):
        folders.load_labelled_folder(tmp_path / "one", 28)
    (tmp_path / "one" / "dog").mkdir()
    with pytest.raises(FolderError, match="the class folder 'dog' holds no images"):
        folders.load_labelled_folder(tmp_path / "one", 28)
    (tmp_path / "one" / "dog" / "1.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(FolderError, match=r"cannot read .*dog/1\.png: not an image"):
        folders.load_labelled_folder(tmp_path / "one", 28)
