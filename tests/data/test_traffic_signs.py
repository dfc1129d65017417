"""GTSRB and Syn Signs readers on small fake folders in the public archive layouts."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from thesis_jax.data import DatasetNotFoundError, load_gtsrb, load_syn_signs
from thesis_jax.data.traffic_signs import GTSRB_URL, SYN_SIGNS_URL

HEADER = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"
CLASS_COLOURS = {0: (220, 20, 20), 2: (20, 20, 220), 14: (240, 240, 240)}


def write_sign(path: Path, width: int, height: int, colour, border: int) -> str:
    """A black image with the sign's colour inside an inclusive ROI `border` px from the edge."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[border : height - border, border : width - border] = colour
    Image.fromarray(pixels).save(path)
    x2, y2 = width - border - 1, height - border - 1
    return f"{path.name};{width};{height};{border};{border};{x2};{y2}"


def make_gtsrb(root: Path) -> None:
    train = root / "GTSRB" / "Final_Training" / "Images"
    for label in (0, 2):
        folder = train / f"{label:05d}"
        folder.mkdir(parents=True)
        rows = [
            write_sign(
                folder / f"00000_0000{index}.ppm", 30 + 7 * index, 33, CLASS_COLOURS[label], 5
            )
            for index in range(2)
        ]
        (folder / f"GT-{label:05d}.csv").write_text(
            HEADER + "".join(f"{row};{label}\n" for row in rows)
        )
    test = root / "GTSRB" / "Final_Test" / "Images"
    test.mkdir(parents=True)
    rows = [
        write_sign(test / f"0000{index}.ppm", 50, 41 + index, CLASS_COLOURS[label], 6)
        + f";{label}\n"
        for index, label in enumerate((14, 0, 2))
    ]
    (root / "GTSRB" / "GT-final_test.csv").write_text(HEADER + "".join(rows))


def test_gtsrb_train_reads_classes_crops_the_roi_and_resizes(tmp_path):
    make_gtsrb(tmp_path)
    for root in (tmp_path, tmp_path / "GTSRB"):
        images, labels = load_gtsrb(root, "train")
        assert images.shape == (4, 40, 40, 3) and images.dtype == np.uint8
        np.testing.assert_array_equal(labels, [0, 0, 2, 2])
        assert labels.dtype == np.int32
        for image, label in zip(images, labels, strict=True):
            # Cropped to the ROI: no black border survives.
            np.testing.assert_array_equal(image, np.broadcast_to(CLASS_COLOURS[label], image.shape))


def test_gtsrb_roi_corners_are_inclusive(tmp_path):
    """A sign red in its left half and blue in its right half comes out mirror-symmetric."""
    folder = tmp_path / "Final_Training" / "Images" / "00007"
    folder.mkdir(parents=True)
    pixels = np.zeros((30, 34, 3), np.uint8)
    pixels[5:25, 5:17, 0] = 255  # ROI columns 5..28 (inclusive): 12 red, then 12 blue
    pixels[5:25, 17:29, 2] = 255
    Image.fromarray(pixels).save(folder / "a.ppm")
    (folder / "GT-00007.csv").write_text(HEADER + "a.ppm;34;30;5;5;28;24;7\n")
    images, labels = load_gtsrb(tmp_path, "train", size=40)
    np.testing.assert_array_equal(labels, [7])
    red, blue = images[0, ..., 0].astype(int), images[0, ..., 2].astype(int)
    np.testing.assert_allclose(red, blue[:, ::-1], atol=1)
    assert red[:, :18].min() == 255 and blue[:, 22:].min() == 255


def test_gtsrb_without_roi_crop_keeps_the_border(tmp_path):
    make_gtsrb(tmp_path)
    images, _ = load_gtsrb(tmp_path, "train", size=30, crop_to_roi=False)
    assert images.shape == (4, 30, 30, 3)
    assert images[:, 0, 0].max() == 0
    np.testing.assert_array_equal(images[0, 15, 15], CLASS_COLOURS[0])


def test_gtsrb_test_split_takes_labels_from_gt_final_test(tmp_path):
    make_gtsrb(tmp_path)
    images, labels = load_gtsrb(tmp_path, "test", size=24)
    assert images.shape == (3, 24, 24, 3)
    np.testing.assert_array_equal(labels, [14, 0, 2])
    for image, label in zip(images, labels, strict=True):
        np.testing.assert_array_equal(image, np.broadcast_to(CLASS_COLOURS[label], image.shape))


def test_gtsrb_test_csv_without_class_ids_is_refused(tmp_path):
    make_gtsrb(tmp_path)
    csv_path = tmp_path / "GTSRB" / "GT-final_test.csv"
    csv_path.write_text(
        "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2\n00000.ppm;50;41;6;6;43;34\n"
    )
    with pytest.raises(DatasetNotFoundError, match="ClassId") as raised:
        load_gtsrb(tmp_path, "test")
    assert "GTSRB_Final_Test_GT.zip" in str(raised.value)


def test_missing_gtsrb_names_the_paths_the_layout_and_the_download(tmp_path):
    with pytest.raises(DatasetNotFoundError) as raised:
        load_gtsrb(tmp_path, "train")
    message = str(raised.value)
    assert str(tmp_path / "GTSRB" / "Final_Training" / "Images") in message
    assert GTSRB_URL + "GTSRB_Final_Training_Images.zip" in message
    assert "GT-000NN.csv" in message
    with pytest.raises(DatasetNotFoundError, match=re.escape("GT-final_test.csv")) as raised:
        load_gtsrb(tmp_path, "test")
    assert str(tmp_path / "GTSRB" / "GT-final_test.csv") in str(raised.value)
    with pytest.raises(ValueError, match="split"):
        load_gtsrb(tmp_path, "val")


def test_gtsrb_missing_image_listed_in_csv_is_named(tmp_path):
    make_gtsrb(tmp_path)
    missing = tmp_path / "GTSRB" / "Final_Training" / "Images" / "00002" / "00000_00001.ppm"
    missing.unlink()
    with pytest.raises(DatasetNotFoundError, match=re.escape("00000_00001.ppm")) as raised:
        load_gtsrb(tmp_path, "train")
    assert str(missing) in str(raised.value)


def make_syn_signs(root: Path) -> list[tuple[str, int, tuple[int, int, int]]]:
    data = root / "synthetic_data"
    (data / "train").mkdir(parents=True)
    entries = [("train/1.png", 21, (10, 200, 30)), ("train/2.png", 5, (90, 0, 250))]
    entries.append(("train/10.png", 42, (250, 250, 0)))
    for name, _, colour in entries:
        Image.new("RGB", (40, 40), colour).save(data / name)
    (data / "train_labelling.txt").write_text(
        "".join(f"{name} {label} 0\n" for name, label, _ in entries) + "\n"
    )
    return entries


def test_syn_signs_reads_labels_and_images_in_file_order(tmp_path):
    entries = make_syn_signs(tmp_path)
    for root in (tmp_path, tmp_path / "synthetic_data"):
        images, labels = load_syn_signs(root)
        assert images.shape == (3, 40, 40, 3) and images.dtype == np.uint8
        np.testing.assert_array_equal(labels, [21, 5, 42])
        assert labels.dtype == np.int32
        for image, (_, _, colour) in zip(images, entries, strict=True):
            np.testing.assert_array_equal(image, np.broadcast_to(colour, image.shape))
    small, _ = load_syn_signs(tmp_path, size=32)
    assert small.shape == (3, 32, 32, 3)


def test_syn_signs_missing_folder_or_image_is_named(tmp_path):
    with pytest.raises(DatasetNotFoundError) as raised:
        load_syn_signs(tmp_path)
    message = str(raised.value)
    assert str(tmp_path / "synthetic_data" / "train_labelling.txt") in message
    assert SYN_SIGNS_URL in message and "synthetic_data.zip" in message
    make_syn_signs(tmp_path)
    (tmp_path / "synthetic_data" / "train" / "2.png").unlink()
    with pytest.raises(DatasetNotFoundError, match=re.escape("train/2.png")):
        load_syn_signs(tmp_path)


def test_syn_signs_malformed_labelling_is_refused(tmp_path):
    make_syn_signs(tmp_path)
    (tmp_path / "synthetic_data" / "train_labelling.txt").write_text("train/1.png stop 0\n")
    with pytest.raises(ValueError, match=re.escape("train_labelling.txt:1")):
        load_syn_signs(tmp_path)
    (tmp_path / "synthetic_data" / "train_labelling.txt").write_text("train/1.png 43 0\n")
    with pytest.raises(ValueError, match=re.escape("not in 0..42")):
        load_syn_signs(tmp_path)
