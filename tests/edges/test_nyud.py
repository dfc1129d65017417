"""The NYUD v2 reader (BSDS format, RGBD) on a tiny fake dataset written in the real layout."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from thesis_jax.data import DatasetNotFoundError
from thesis_jax.edges import load_nyud
from thesis_jax.edges.nyud import DEPTH_SCALE_MM

HEIGHT, WIDTH = 12, 16


def write_ground_truth(path: Path, boundaries: list[np.ndarray]) -> None:
    """A BSDS500 groundTruth .mat: a 1 x K cell array of structs with Boundaries and
    Segmentation, as MATLAB saves it (scipy writes a dict inside an object array as a struct)."""
    cells = np.empty((1, len(boundaries)), dtype=object)
    for k, boundary in enumerate(boundaries):
        cells[0, k] = {
            "Boundaries": boundary.astype(np.uint8),
            "Segmentation": (1 + boundary.cumsum(axis=1).clip(0, 1)).astype(np.uint16),
        }
    scipy.io.savemat(path, {"groundTruth": cells})


def make_nyud(root: Path, split: str = "val") -> dict[str, dict[str, np.ndarray]]:
    """Two frames: "0002" with 16-bit depth in millimetres and two annotators, "0001" with an
    8-bit depth image and one annotator (written first in reverse order, to check sorting)."""
    rng = np.random.default_rng(0)
    folders = {name: root / name / split for name in ("images", "depth", "groundTruth")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    depths = {
        "0002": np.array([0, 1000, 5000, 10_000, 20_000, 65535], np.uint16),
        "0001": np.array([0, 51, 102, 255], np.uint8),
    }
    frames = {}
    for name, values in depths.items():
        rgb = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        depth = np.resize(values, (HEIGHT, WIDTH)).astype(values.dtype)
        boundaries = [rng.random((HEIGHT, WIDTH)) < 0.1 for _ in range(2 if name == "0002" else 1)]
        Image.fromarray(rgb).save(folders["images"] / f"{name}.png")
        Image.fromarray(depth).save(folders["depth"] / f"{name}.png")
        write_ground_truth(folders["groundTruth"] / f"{name}.mat", boundaries)
        frames[name] = {"rgb": rgb, "depth": depth, "boundaries": boundaries}
    return frames


def test_reads_rgbd_images_boundaries_and_sorted_names(tmp_path):
    frames = make_nyud(tmp_path)
    images, ground_truths, names = load_nyud(tmp_path, "val")
    assert names == ["0001", "0002"]
    for image, truth, name in zip(images, ground_truths, names, strict=True):
        frame = frames[name]
        assert image.shape == (HEIGHT, WIDTH, 4) and image.dtype == np.float32
        assert image.min() >= 0.0 and image.max() <= 1.0
        np.testing.assert_allclose(image[..., :3], frame["rgb"] / 255.0, atol=1e-7)
        assert len(truth) == len(frame["boundaries"])
        for loaded, written in zip(truth, frame["boundaries"], strict=True):
            assert loaded.dtype == bool and loaded.shape == (HEIGHT, WIDTH)
            np.testing.assert_array_equal(loaded, written)
    # 8-bit depth: / 255. 16-bit depth: millimetres / 10 m, deeper than 10 m clipped to 1.
    np.testing.assert_allclose(images[0][0, :4, 3], [0.0, 0.2, 0.4, 1.0], atol=1e-7)
    np.testing.assert_allclose(images[1][0, :6, 3], [0.0, 0.1, 0.5, 1.0, 1.0, 1.0], atol=1e-7)
    assert DEPTH_SCALE_MM == 10_000.0


def test_depth_scale_overrides_the_default_and_data_folder_is_accepted(tmp_path):
    make_nyud(tmp_path / "data", split="test")
    images, _, names = load_nyud(tmp_path, "test", depth_scale=65535)
    assert names == ["0001", "0002"]
    np.testing.assert_allclose(images[0][0, :4, 3], [0.0, 51 / 65535, 102 / 65535, 255 / 65535])
    np.testing.assert_allclose(
        images[1][0, :6, 3], np.array([0, 1000, 5000, 1e4, 2e4, 65535]) / 65535
    )
    with pytest.raises(ValueError, match="depth_scale"):
        load_nyud(tmp_path, "test", depth_scale=0)
    with pytest.raises(ValueError, match="split"):
        load_nyud(tmp_path, "training")


def test_missing_root_explains_how_to_prepare_the_data(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"rgbdutils") as error:
        load_nyud(tmp_path / "nowhere", "val")
    message = str(error.value)
    assert "nyu_depth_v2" in message and "groundTruth" in message
    assert str(tmp_path / "nowhere" / "depth") in message
    make_nyud(tmp_path / "present", split="train")
    with pytest.raises(DatasetNotFoundError, match=r"split 'val'"):
        load_nyud(tmp_path / "present", "val")


def test_missing_files_are_named(tmp_path):
    make_nyud(tmp_path)
    (tmp_path / "depth" / "val" / "0002.png").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"depth map 0002\.png") as error:
        load_nyud(tmp_path, "val")
    assert "rgbdutils" in str(error.value)
    (tmp_path / "images" / "val" / "0001.png").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"image 0001\.png"):
        load_nyud(tmp_path, "val")


def test_missing_ground_truth_or_depth_folder_is_named(tmp_path):
    make_nyud(tmp_path)
    (tmp_path / "groundTruth" / "val" / "0001.mat").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"ground truth 0001\.mat"):
        load_nyud(tmp_path, "val")
    for path in (tmp_path / "depth" / "val").iterdir():
        path.unlink()
    (tmp_path / "depth" / "val").rmdir()
    (tmp_path / "depth").rmdir()
    with pytest.raises(DatasetNotFoundError, match=r"depth maps, split 'val'"):
        load_nyud(tmp_path, "val")


def test_size_mismatches_name_the_file(tmp_path):
    make_nyud(tmp_path)
    small = np.zeros((HEIGHT - 2, WIDTH), np.uint16)
    Image.fromarray(small).save(tmp_path / "depth" / "val" / "0002.png")
    with pytest.raises(ValueError, match=r"0002\.png.*\(10, 16\).*\(12, 16\)"):
        load_nyud(tmp_path, "val")
    make_nyud(tmp_path / "other")
    write_ground_truth(
        tmp_path / "other" / "groundTruth" / "val" / "0001.mat", [np.zeros((HEIGHT, 3), bool)]
    )
    with pytest.raises(ValueError, match=r"0001\.mat: boundary maps are \[\(12, 3\)\]"):
        load_nyud(tmp_path / "other", "val")


def test_corrupt_or_wrong_files_are_named(tmp_path):
    make_nyud(tmp_path)
    image = tmp_path / "images" / "val" / "0002.png"
    image.write_bytes(image.read_bytes()[:60])  # a truncated PNG
    with pytest.raises(ValueError, match=r"0002\.png: not a readable image"):
        load_nyud(tmp_path, "val")
    image.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"0002\.png: not a readable image"):
        load_nyud(tmp_path, "val")

    make_nyud(tmp_path / "colour_depth")
    depth = tmp_path / "colour_depth" / "depth" / "val" / "0001.png"
    Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(depth)
    with pytest.raises(ValueError, match=r"0001\.png: a depth map must have one channel"):
        load_nyud(tmp_path / "colour_depth", "val")

    make_nyud(tmp_path / "bad_mat")
    (tmp_path / "bad_mat" / "groundTruth" / "val" / "0001.mat").write_bytes(b"not a mat file")
    with pytest.raises(ValueError, match=r"0001\.mat"):
        load_nyud(tmp_path / "bad_mat", "val")
