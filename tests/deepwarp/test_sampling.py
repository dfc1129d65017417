"""The batch sampler of sec. 4.4.2: 4 angle bins x (24 easy + 8 hard)."""

import numpy as np
import pytest

from thesis_jax import deepwarp


def _dataset(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    angles = rng.uniform(-30, 30, n)
    tilt = np.where(rng.random(n) < 0.1, rng.uniform(8, 15, n), rng.uniform(0, 7.9, n))
    return angles, tilt


def test_batches_hold_four_bins_with_24_easy_and_8_hard_pairs_each():
    angles, tilt = _dataset()
    sampler = deepwarp.BinnedSampler.create(angles, tilt)
    assert sampler.batch_size == 128 and len(sampler.bins) == 15
    edges = np.linspace(-30, 30, 16)
    for step in range(20):
        index = sampler.indices(step, seed=1)
        assert index.shape == (128,)
        groups = index.reshape(4, 32)
        bins = [set(np.digitize(angles[g], edges[1:-1])) for g in groups]
        assert all(len(b) == 1 for b in bins)  # each group of 32 comes from one angle bin
        assert len(set.union(*bins)) == 4  # four different bins
        for g in groups:
            assert np.all(tilt[g[:24]] < 8) and np.all(tilt[g[24:]] >= 8)


def test_batches_are_a_function_of_seed_and_step():
    sampler = deepwarp.BinnedSampler.create(*_dataset())
    np.testing.assert_array_equal(sampler.indices(7, 3), sampler.indices(7, 3))
    assert not np.array_equal(sampler.indices(7, 3), sampler.indices(8, 3))
    assert not np.array_equal(sampler.indices(7, 3), sampler.indices(7, 4))


def test_hard_pairs_are_oversampled_relative_to_the_data():
    angles, tilt = _dataset()
    sampler = deepwarp.BinnedSampler.create(angles, tilt)
    drawn = np.concatenate([sampler.indices(s) for s in range(50)])
    assert np.mean(tilt >= 8) < 0.15
    np.testing.assert_allclose(np.mean(tilt[drawn] >= 8), 0.25)


def test_bins_without_hard_pairs_fall_back_to_easy_ones():
    angles = np.linspace(-29, 29, 200)
    sampler = deepwarp.BinnedSampler.create(angles, np.zeros(200), easy_per_bin=3, hard_per_bin=1)
    index = sampler.indices(0)
    assert index.shape == (16,) and index.max() < 200


def test_bad_inputs_fail_clearly():
    with pytest.raises(ValueError, match="equal non-empty"):
        deepwarp.BinnedSampler.create(np.zeros(3), np.zeros(4))
