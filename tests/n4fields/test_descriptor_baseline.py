"""The SIFT + nearest-neighbour baseline of sec. 3.4."""

import numpy as np

from thesis_jax import n4fields
from thesis_jax.n4fields.patches import reflect_pad


def test_dense_sift_equals_sift_of_the_patch(shapes_data):
    image = shapes_data.images[0][:30, :40]
    dense = n4fields.dense_sift(image)
    assert dense.shape == (30, 40, n4fields.DESCRIPTOR_DIM)
    padded = reflect_pad(image, 17, 16)
    pixels = [(0, 0), (29, 39), (15, 20), (4, 33)]
    patches = np.stack([padded[y : y + 34, x : x + 34] for y, x in pixels])
    expected = n4fields.sift_descriptors(patches)
    np.testing.assert_allclose(np.stack([dense[y, x] for y, x in pixels]), expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(expected, axis=1), 1.0, rtol=1e-5)
    assert np.all(expected >= 0)
    np.testing.assert_array_equal(n4fields.dense_sift(image, stride=3), dense[::3, ::3])


def test_sift_sees_edge_orientation():
    ramp = np.zeros((34, 34, 3), np.float32)
    ramp[:, 17:] = 1.0  # a vertical step: gradients along +x, orientation bin 0
    turned = np.ascontiguousarray(np.transpose(ramp, (1, 0, 2)))  # horizontal: along +y, bin 2
    descriptors = n4fields.sift_descriptors(np.stack([ramp, turned])).reshape(2, 4, 4, 8)
    assert descriptors[0].sum(axis=(0, 1)).argmax() == 0
    assert descriptors[1].sum(axis=(0, 1)).argmax() == 2


def test_sift_baseline_transfers_the_matching_annotation(shapes_data):
    # dictionary: training patches of the image itself; the query image is that image
    data = shapes_data
    samples = n4fields.sample_patches(
        data.images, data.annotations, 0, 300, rotation="none", flip=False
    )
    dictionary = n4fields.build_sift_dictionary(samples)
    assert dictionary.codes.shape == (300, 128)
    edges = n4fields.predict_edges_sift(data.images[0], dictionary, stride=4)
    assert edges.shape == (48, 64) and 0.0 <= edges.min() and edges.max() <= 1.0
    # patches on a boundary retrieve boundary annotations more than patches away from one
    truth = np.mean(np.stack(data.annotations[0]), axis=0) > 0
    assert edges[truth].mean() > 1.5 * edges[~truth].mean()
