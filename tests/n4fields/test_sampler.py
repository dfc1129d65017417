"""PatchSampler: the device-side twin of sample_patches gives the same patches for a seed."""

import jax
import numpy as np
import pytest

from thesis_jax import n4fields


def _uneven(shapes_data):
    """The fixture's images and annotator stacks, one of them cropped to another size."""
    images = list(shapes_data.images)
    annotations = [np.stack(a) for a in shapes_data.annotations]
    images[1] = images[1][:40, :50]
    annotations[1] = annotations[1][:, :40, :50]
    return images, annotations


@pytest.mark.parametrize("rotation", ["none", "right_angles", "any"])
@pytest.mark.parametrize("annotator", ["mean", "random"])
def test_sampler_matches_sample_patches(shapes_data, rotation, annotator):
    images, annotations = _uneven(shapes_data)
    options = dict(rotation=rotation, annotator=annotator)
    expected = n4fields.sample_patches(images, annotations, 11, 200, **options)
    sampler = n4fields.PatchSampler(images, annotations, **options)
    got = sampler(11, 200)
    assert isinstance(got["image"], jax.Array)
    assert got["image"].shape == expected["image"].shape
    # the float32 grid moves a bilinear sample by rounding only; nearest samples do not move
    np.testing.assert_allclose(np.asarray(got["image"]), expected["image"], atol=1e-4)
    np.testing.assert_array_equal(np.asarray(got["annotation"]), expected["annotation"])


def test_sampler_batches_feed_make_batch_and_update(shapes_data, tiny_arch):
    sampler = n4fields.PatchSampler(shapes_data.images, shapes_data.annotations)
    samples = sampler(0, 32)
    pca = n4fields.fit_pca(np.asarray(samples["annotation"]), 4)
    batch = n4fields.make_batch(samples, pca=pca)
    assert isinstance(batch["target"], jax.Array) and batch["target"].shape == (32, 4)
    expected = n4fields.make_batch(jax.tree.map(np.asarray, samples), pca=pca)
    np.testing.assert_allclose(np.asarray(batch["target"]), expected["target"], atol=1e-5)


def test_sampler_rejects_mismatched_annotations(shapes_data):
    with pytest.raises(ValueError, match="3 images but 2 annotation entries"):
        n4fields.PatchSampler(shapes_data.images, shapes_data.annotations[:2])
    bad = [np.zeros((1, 10, 10), bool)] * len(shapes_data.images)
    with pytest.raises(ValueError, match="vs image"):
        n4fields.PatchSampler(shapes_data.images, bad)
    with pytest.raises(ValueError, match="annotator"):
        n4fields.PatchSampler(shapes_data.images, shapes_data.annotations, annotator="vote")
