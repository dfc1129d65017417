"""The procedural BSDS500-like edge set for N4-Fields (thesis sec. 3.4): exact, one-pixel truth
boundaries, texture edges that are not boundaries, and ~5 human-like annotators per image."""

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from scipy.ndimage import distance_transform_edt, sobel
from skimage.segmentation import find_boundaries

from thesis_jax.data import shapes

SIZE = (96, 144)


@pytest.fixture(scope="module")
def data() -> shapes.ShapesDataset:
    return shapes.generate_shapes_dataset(8, seed=3, size=SIZE)


def bsds_boundaries(segmentation: np.ndarray) -> np.ndarray:
    """BSDS `seg2bdry(seg, 'imageSize')`, written out: pixel (i, j) is a boundary pixel when
    seg[i:i+2, j:j+2] (cut at the image edge) holds more than one label."""
    padded = np.pad(segmentation, ((0, 1), (0, 1)), mode="edge")
    windows = sliding_window_view(padded, (2, 2))
    return windows.max((-2, -1)) != windows.min((-2, -1))


def junction_free_blocks(boundaries: np.ndarray, segmentation: np.ndarray) -> int:
    """How many 2x2 all-boundary blocks are made by only two labels (a two-pixel-thick boundary;
    at a junction of three or more regions the BSDS convention can fill a 2x2 block)."""
    blocks = sliding_window_view(boundaries, (2, 2)).all((-2, -1))
    padded = np.pad(segmentation, ((0, 2), (0, 2)), mode="edge")
    labels = sliding_window_view(padded, (3, 3))[: blocks.shape[0], : blocks.shape[1]]
    count = 0
    for y, x in np.argwhere(blocks):
        count += len(np.unique(labels[y, x])) < 3
    return count


def test_shapes_types_and_ranges(data):
    n, (h, w) = 8, SIZE
    assert len(data) == n and data.num_annotators == 5
    assert data.images.shape == (n, h, w, 3) and data.images.dtype == np.float32
    assert data.images.min() >= 0 and data.images.max() <= 1
    assert data.segmentations.shape == (n, h, w) and data.segmentations.dtype == np.int32
    assert data.boundaries.shape == (n, h, w) and data.boundaries.dtype == bool
    assert data.annotator_segmentations.shape == (n, 5, h, w)
    assert len(data.annotations) == n and all(len(per_image) == 5 for per_image in data.annotations)
    for per_image in data.annotations:
        for annotation in per_image:
            assert annotation.shape == (h, w) and annotation.dtype == bool
    assert data.annotation_array().shape == (n, 5, h, w)
    for segmentation in data.segmentations:  # labels 0..R-1, several regions per image
        labels = np.unique(segmentation)
        np.testing.assert_array_equal(labels, np.arange(len(labels)))
        assert 3 <= len(labels) <= 40


def test_same_arguments_give_the_same_arrays_and_image_i_does_not_depend_on_count(data):
    again = shapes.generate_shapes_dataset(8, seed=3, size=SIZE)
    for field in ("images", "segmentations", "boundaries", "annotator_segmentations"):
        np.testing.assert_array_equal(getattr(again, field), getattr(data, field))
    np.testing.assert_array_equal(again.annotation_array(), data.annotation_array())
    prefix = shapes.generate_shapes_dataset(2, seed=3, size=SIZE)
    np.testing.assert_array_equal(prefix.images, data.images[:2])
    np.testing.assert_array_equal(prefix.annotation_array(), data.annotation_array()[:2])
    other = shapes.generate_shapes_dataset(2, seed=4, size=SIZE)
    assert np.abs(other.images - data.images[:2]).mean() > 0.05


def test_boundaries_are_exactly_where_the_label_changes_as_bsds_draws_them(data):
    for segmentation, boundaries in zip(data.segmentations, data.boundaries, strict=True):
        np.testing.assert_array_equal(boundaries, bsds_boundaries(segmentation))
        subpixel = find_boundaries(segmentation, mode="subpixel")[1::2, 1::2]
        np.testing.assert_array_equal(boundaries[:-1, :-1], subpixel)
    # A vertical step: only the column left of the change; a horizontal one: the row above it.
    step = np.zeros((4, 6), np.int32)
    step[:, 3:] = 1
    expected = np.zeros((4, 6), bool)
    expected[:, 2] = True
    np.testing.assert_array_equal(shapes.segmentation_boundaries(step), expected)
    np.testing.assert_array_equal(shapes.segmentation_boundaries(step.T), expected.T)
    stacked = shapes.segmentation_boundaries(data.annotator_segmentations[0])
    assert stacked.shape == (5, *SIZE)


def test_boundaries_are_one_pixel_wide_away_from_junctions(data):
    for i in range(len(data)):
        boundaries = data.boundaries[i]
        assert junction_free_blocks(boundaries, data.segmentations[i]) == 0
        blocks = sliding_window_view(boundaries, (2, 2)).all((-2, -1))
        assert blocks.sum() <= 0.01 * boundaries.sum()
        for k in range(data.num_annotators):
            annotation = data.annotations[i][k]
            assert junction_free_blocks(annotation, data.annotator_segmentations[i, k]) == 0


def test_annotators_are_close_to_the_truth_and_differ_from_each_other(data):
    within, recall = [], []
    for i in range(len(data)):
        to_truth = distance_transform_edt(~data.boundaries[i])
        for k in range(data.num_annotators):
            annotation = data.annotations[i][k]
            drawn = shapes.segmentation_boundaries(data.annotator_segmentations[i, k])
            assert not np.any(annotation & ~drawn)  # a drawn segmentation, less some pieces
            assert annotation.any()
            within.append(np.mean(to_truth[annotation] <= 3))
            to_annotation = distance_transform_edt(~annotation)
            recall.append(np.mean(to_annotation[data.boundaries[i]] <= 3))
        maps = data.annotations[i]
        for k in range(len(maps)):
            for other in range(k):
                assert not np.array_equal(maps[k], maps[other])
    assert min(within) >= 0.95
    assert np.mean(recall) > 0.75 and min(recall) > 0.3
    # Granularity differs: in some images annotators keep different numbers of regions.
    regions = data.annotator_segmentations.max((2, 3)) + 1
    assert np.any(regions.min(1) < regions.max(1))
    assert np.all(regions <= data.segmentations.max((1, 2))[:, None] + 1)


def test_texture_edges_inside_regions_are_as_strong_as_boundaries(data):
    stronger = 0
    for image, boundaries in zip(data.images, data.boundaries, strict=True):
        luminance = image @ np.array([0.299, 0.587, 0.114], np.float32)
        gradient = np.hypot(sobel(luminance, 0), sobel(luminance, 1)) / 8
        interior = distance_transform_edt(~boundaries) > 3
        stronger += np.percentile(gradient[interior], 99) > np.median(gradient[boundaries])
    assert stronger >= 0.75 * len(data)


def test_some_boundaries_have_low_contrast(data):
    weak = 0
    for image, segmentation in zip(data.images, data.segmentations, strict=True):
        count = segmentation.max() + 1
        flat = segmentation.ravel()
        area = np.bincount(flat, minlength=count)
        mean = np.stack(
            [np.bincount(flat, image[..., c].ravel(), count) / area for c in range(3)], -1
        )
        pairs = {
            (min(a, b), max(a, b))
            for a, b in zip(
                np.r_[segmentation[:, :-1].ravel(), segmentation[:-1].ravel()],
                np.r_[segmentation[:, 1:].ravel(), segmentation[1:].ravel()],
                strict=True,
            )
            if a != b
        }
        weak += sum(np.abs(mean[a] - mean[b]).max() < 0.06 for a, b in pairs)
    assert weak >= 2


def test_splits_are_disjoint_and_default_to_the_bsds500_sizes():
    assert shapes.SHAPES_SPLITS == {"train": 200, "val": 100, "test": 200}
    kwargs = {"num_images": 2, "size": (48, 64), "textures": "procedural"}
    sets = {split: shapes.load_shapes(split, **kwargs) for split in ("train", "val", "test")}
    sets["custom"] = shapes.generate_shapes_dataset(2, size=(48, 64), textures="procedural")
    images = [image for dataset in sets.values() for image in dataset.images]
    for k in range(len(images)):
        for other in range(k):
            assert not np.array_equal(images[k], images[other])
    again = shapes.load_shapes("val", **kwargs)
    np.testing.assert_array_equal(again.images, sets["val"].images)
    with pytest.raises(ValueError, match="split"):
        shapes.load_shapes("training")


def test_procedural_textures_and_bad_arguments():
    data = shapes.generate_shapes_dataset(2, size=(48, 64), num_annotators=3, textures="procedural")
    assert data.images.shape == (2, 48, 64, 3) and data.num_annotators == 3
    assert shapes.generate_shapes_dataset(0, size=(48, 64)).images.shape == (0, 48, 64, 3)
    for bad in (
        {"num_images": -1},
        {"num_images": 1, "size": (16, 64)},
        {"num_images": 1, "num_annotators": 0},
        {"num_images": 1, "textures": "photos"},
    ):
        with pytest.raises(ValueError):
            shapes.generate_shapes_dataset(**bad)


def test_contact_sheet_is_a_png_with_image_truth_annotators_and_mean(tmp_path):
    path = shapes.shapes_contact_sheet(
        tmp_path / "sheet.png", num_images=2, size=(48, 64), num_annotators=3
    )
    with Image.open(path) as sheet:
        assert sheet.format == "PNG"
        assert sheet.width == 6 * (64 + 4) - 4  # image, truth, 3 annotators, mean
        assert sheet.height == 14 + 2 * (48 + 4) - 4
