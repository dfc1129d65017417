"""DeepWarp's objectives (sec. 4.4.2, eq. 4.4.1) and its evaluation metrics (sec. 4.4.3)."""

import numpy as np
import pytest

from thesis_jax import deepwarp


def _images(seed=0, shape=(3, 9, 11, 3)):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_registration_loss_equals_l2_when_only_the_zero_shift_is_allowed():
    output, target = _images(0), _images(1)
    value, shift = deepwarp.registration_loss(output, target, margin=0)
    np.testing.assert_allclose(value, deepwarp.l2_loss(output, target), rtol=1e-6)
    np.testing.assert_array_equal(shift, 0)


def test_registration_loss_at_the_aligned_shift_equals_l2_against_the_centre():
    output = _images(0)
    enlarged = _images(1, (3, 15, 17, 3))
    enlarged[:, 3:-3, 3:-3] = output  # the aligned crop matches exactly
    value, shift = deepwarp.registration_loss(output, enlarged, margin=3)
    np.testing.assert_allclose(value, 0.0, atol=1e-12)
    np.testing.assert_array_equal(shift, 0)
    np.testing.assert_allclose(deepwarp.center_crop(enlarged, 3), output)


@pytest.mark.parametrize("distance", ["l2", "l1"])
def test_registration_loss_finds_the_shift_of_a_shifted_copy(distance):
    rng = np.random.default_rng(2)
    big = rng.random((2, 30, 30, 3)).astype(np.float32)
    enlarged = big[:, 5:20, 6:23]  # H + 2k = 15, W + 2k = 17, k = 3
    # Output equals the ground truth crop moved by (-2, +1): rows 3 - 2, columns 3 + 1.
    output = enlarged[:, 1:10, 4:15]
    value, shift = deepwarp.registration_loss(output, enlarged, margin=3, distance=distance)
    np.testing.assert_allclose(value, 0.0, atol=1e-12)
    np.testing.assert_array_equal(shift, [[-2, 1], [-2, 1]])
    # Any other shift is worse, so the minimum is not a degenerate one.
    aligned = deepwarp.l2_loss(output, deepwarp.center_crop(enlarged, 3))
    assert np.all(np.asarray(aligned) > 1e-3)


def test_registration_loss_checks_the_margin():
    with pytest.raises(AssertionError):
        deepwarp.registration_loss(_images(0), _images(1, (3, 13, 17, 3)), margin=3)
    with pytest.raises(ValueError, match="unknown distance"):
        deepwarp.registration_loss(_images(0), _images(1), margin=0, distance="l3")


def test_redirection_errors_know_the_identity_and_a_perfect_model():
    inputs, targets = _images(0), _images(1)
    errors = deepwarp.redirection_errors(inputs, targets, inputs)
    np.testing.assert_allclose(errors["normalized"], 1.0)
    expected = np.mean((inputs.astype(np.float64) - targets) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(errors["mse"], expected)
    perfect = deepwarp.redirection_errors(targets, targets, inputs)
    np.testing.assert_allclose(perfect["normalized"], 0.0)
    halfway = deepwarp.redirection_errors((inputs + targets) / 2, targets, inputs)
    np.testing.assert_allclose(halfway["normalized"], 0.25, rtol=1e-5)  # MSE scales as d^2
    np.testing.assert_allclose(
        deepwarp.sorted_normalized_errors({"normalized": np.array([0.5, 0.1, 0.3])}),
        [0.1, 0.3, 0.5],
    )


def test_error_by_angle_averages_inside_bins_and_marks_empty_ones():
    mse = np.array([1.0, 3.0, 5.0, 7.0])
    angles = np.array([-25.0, -21.0, 2.0, 29.0])
    centres, means, counts = deepwarp.error_by_angle(mse, angles, [-30, -10, 10, 20, 30])
    np.testing.assert_allclose(centres, [-20, 0, 15, 25])
    np.testing.assert_allclose(means[[0, 1, 3]], [2.0, 5.0, 7.0])
    assert np.isnan(means[2])
    np.testing.assert_array_equal(counts, [2, 1, 0, 1])
