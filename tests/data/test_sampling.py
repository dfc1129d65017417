"""Batches as a function of the step, and random translation."""

import numpy as np

from thesis_jax.data.sampling import epoch_indices, random_translate


def test_epoch_indices_are_permutations_per_epoch_and_reproducible():
    first_epoch = np.concatenate([epoch_indices(10, 5, step, seed=1) for step in (0, 1)])
    assert sorted(first_epoch) == list(range(10))
    np.testing.assert_array_equal(epoch_indices(10, 5, 3, seed=1), epoch_indices(10, 5, 3, 1))
    assert not np.array_equal(epoch_indices(10, 5, 0, seed=1), epoch_indices(10, 5, 0, seed=2))
    across = epoch_indices(10, 4, 2, seed=0)  # items 8, 9 of epoch 0 then 0, 1 of epoch 1
    np.testing.assert_array_equal(across[:2], np.random.default_rng([0, 0]).permutation(10)[8:])
    np.testing.assert_array_equal(across[2:], np.random.default_rng([0, 1]).permutation(10)[:2])


def test_random_translate_shifts_whole_images_with_replicated_edges():
    images = np.arange(3 * 6 * 6 * 2, dtype=np.uint8).reshape(3, 6, 6, 2)
    shifted = random_translate(images, 2, np.random.default_rng(0))
    assert shifted.shape == images.shape and shifted.dtype == images.dtype
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    for image, out in zip(padded, shifted, strict=True):
        windows = [image[dy : dy + 6, dx : dx + 6] for dy in range(5) for dx in range(5)]
        assert any(np.array_equal(out, w) for w in windows)
    many = random_translate(np.repeat(images[:1], 200, 0), 2, np.random.default_rng(1))
    assert len({m.tobytes() for m in many}) == 25  # every offset in [-2, 2]^2 occurs
    np.testing.assert_array_equal(random_translate(images, 0, np.random.default_rng(0)), images)
