"""Targets of sec. 3.3.2 and eq. 3.4.1: annotation patches, PCA, the pairwise encoding, sampling."""

import numpy as np
import pytest

from thesis_jax import n4fields
from thesis_jax.n4fields import patches as geometry


def test_pca_round_trip_on_low_rank_patches(rng):
    basis = rng.normal(size=(10, 16 * 16))
    patches = (rng.normal(size=(300, 10)) @ basis + 0.5).reshape(300, 16, 16)
    pca = n4fields.fit_pca(patches, 16)
    codes = pca.encode(patches)
    assert codes.shape == (300, 16)
    np.testing.assert_allclose(pca.decode(codes), patches, atol=1e-4)
    np.testing.assert_allclose(pca.components @ pca.components.T, np.eye(16), atol=1e-5)
    assert np.all(np.diff(pca.variance) <= 1e-6)  # by decreasing variance
    np.testing.assert_allclose(pca.variance[10:], 0.0, atol=1e-4)  # rank 10


def test_pca_on_boundary_patches_is_the_best_rank_16_fit(shapes_data, rng):
    centers = np.stack(
        [rng.integers(0, 3, 500), rng.integers(0, 48, 500), rng.integers(0, 64, 500)], axis=1
    )
    patches = n4fields.annotation_patches(shapes_data.annotations, centers)
    pca = n4fields.fit_pca(patches, 16)
    flat = patches.reshape(500, -1).astype(np.float64)
    singular = np.linalg.svd(flat - flat.mean(0), compute_uv=False)
    np.testing.assert_allclose(pca.variance, singular[:16] ** 2 / 499, rtol=1e-4)
    # the reconstruction error is the variance PCA leaves out (Eckart-Young)
    error = np.sum((pca.decode(pca.encode(patches)) - patches) ** 2) / 499
    np.testing.assert_allclose(error, np.sum(singular[16:] ** 2) / 499, rtol=1e-3)


def test_annotation_patches_average_annotators_and_mirror_the_border():
    one = np.zeros((20, 20), bool)
    one[:, 3] = True  # a vertical boundary in column 3
    two = np.zeros((20, 20), bool)
    patch = n4fields.annotation_patches([[one, two]], np.array([[0, 10, 10]]))
    # rows 2..17, columns 2..17: column 3 is the patch's column 1; one annotator of two drew it
    expected = np.zeros((16, 16), np.float32)
    expected[:, 1] = 0.5
    np.testing.assert_array_equal(patch[0], expected)
    # centred at column 0: columns -8..7 mirror to 8..1, 0..7; column 3 appears twice
    corner = n4fields.annotation_patches(one, np.array([[10, 0]]))
    assert np.flatnonzero(corner[0, 0]).tolist() == [5, 11]


def test_pairwise_codes_of_two_regions():
    # 4 x 4 patch: columns 0-1 are segment 7, columns 2-3 segment 9 (eq. 3.4.1 with N = 4)
    seg = np.zeros((4, 4), np.int32)
    seg[:, :2], seg[:, 2:] = 7, 9
    bits = n4fields.pairwise_codes(seg[None])
    assert bits.shape == (1, 16 * 15 // 2)
    first, second = np.triu_indices(16, k=1)
    expected = (first % 4 < 2) == (second % 4 < 2)  # same side of the split
    np.testing.assert_array_equal(bits[0], expected.astype(np.uint8))
    assert bits[0, 0] == 1  # pixels (0,0) and (0,1)
    assert bits[0, 1] == 0  # pixels (0,0) and (0,2)
    assert bits.sum() == 2 * (8 * 7 // 2)  # pairs inside either region
    # two annotators, one of whom sees a single segment: bits are the fraction that agree
    both = n4fields.pairwise_codes(np.stack([seg, np.zeros_like(seg)])[None])
    np.testing.assert_allclose(both[0], (expected + 1) / 2)
    # a random subset of pairs is a subset of the full vector
    pairs = n4fields.pair_indices(4, 20, seed=3)
    np.testing.assert_array_equal(
        n4fields.pairwise_codes(seg[None], pairs=pairs)[0],
        expected[
            np.searchsorted(
                np.ravel_multi_index((first, second), (16, 16)),
                np.ravel_multi_index(tuple(pairs), (16, 16)),
            )
        ],
    )


def test_randomized_pca_of_pairwise_codes_matches_exact_svd(shapes_data, rng):
    samples = n4fields.sample_patches(
        shapes_data.images,
        shapes_data.annotations,
        0,
        120,
        segmentations=list(shapes_data.annotator_segmentations),
        rotation="none",
    )
    bits = n4fields.pairwise_codes(samples["segmentation"])
    assert bits.shape == (120, 32640)  # L = C(256, 2)
    pca = n4fields.fit_pca(bits, 16)  # 32,640 features: the randomized method
    centered = bits - bits.mean(0)
    gram = centered @ centered.T  # its eigenvalues are the squared singular values
    eigenvalues = np.linalg.eigvalsh(gram)[::-1]
    np.testing.assert_allclose(pca.variance, eigenvalues[:16] / 119, rtol=1e-3)
    codes = pca.encode(bits.astype(np.float32))
    np.testing.assert_allclose(codes.var(0, ddof=1), pca.variance, rtol=1e-3)


def test_sample_patches_is_deterministic_and_matches_the_test_time_crop(shapes_data):
    kwargs = {"rotation": "none", "flip": False}
    first = n4fields.sample_patches(shapes_data.images, shapes_data.annotations, 5, 40, **kwargs)
    again = n4fields.sample_patches(shapes_data.images, shapes_data.annotations, 5, 40, **kwargs)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    padded = [geometry.reflect_pad(im, 17, 16) for im in shapes_data.images]
    for (image, row, col), patch in zip(first["center"], first["image"], strict=True):
        np.testing.assert_array_equal(patch, padded[image][row : row + 34, col : col + 34])
    np.testing.assert_array_equal(
        first["annotation"], n4fields.annotation_patches(shapes_data.annotations, first["center"])
    )


@pytest.mark.parametrize("rotation", ["right_angles", "any"])
def test_rotation_and_flip_turn_patch_and_annotation_together(rotation):
    # an image whose colour is its own boundary map: any transform must keep them equal
    rng = np.random.default_rng(1)
    boundary = rng.random((40, 40)) < 0.3
    image = np.repeat(boundary[..., None].astype(np.float32), 3, axis=-1)
    out = n4fields.sample_patches([image], [boundary], 2, 64, rotation=rotation)
    central = out["image"][:, 9:25, 9:25, 0]  # the 16 x 16 centre of the 34 x 34 patch
    if rotation == "right_angles":
        np.testing.assert_array_equal(central, out["annotation"])
    else:  # bilinear image against nearest annotation: agree on most pixels
        assert np.mean(np.abs(central - out["annotation"]) < 0.5) > 0.8
    assert set(np.unique(out["annotation"])) <= {0.0, 1.0}
    unrotated = n4fields.sample_patches([image], [boundary], 2, 64, rotation="none", flip=False)
    assert not np.array_equal(unrotated["annotation"], out["annotation"])
