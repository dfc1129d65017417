"""The redirection gain: a real eye's geometry, the iris-shift measurement, the shipped model."""

import math

import numpy as np
import pytest
from scipy import ndimage

from thesis_jax.data import eyes
from thesis_jax.deepwarp import gain, gaze

HELD_OUT = 1_000_000  # the renderer's test identities (deepwarp.pairs.FIRST_TEST_IDENTITY)


def test_real_eye_shift_is_the_rotated_iris_over_the_eye_width():
    # 10.5 mm * sin(15 deg) / 30 mm, and a turn from 10 to 25 degrees; the 12 mm eyeball's.
    assert gain.REAL_EYE.shift(15.0) == pytest.approx(0.35 * math.sin(math.radians(15)))
    assert gain.REAL_EYE.shift(15.0) == pytest.approx(0.09059, abs=1e-5)
    assert gain.REAL_EYE.shift(-25.0) == pytest.approx(-0.14792, abs=1e-5)
    moved = gain.REAL_EYE.shift(15.0, start=10.0)
    assert moved == pytest.approx(0.35 * (math.sin(math.radians(25)) - math.sin(math.radians(10))))
    assert gain.EYEBALL_SURFACE.shift(15.0) == pytest.approx(0.10353, abs=1e-5)


def test_eye_frame_axes_and_bad_landmarks():
    points = np.zeros((7, 2))
    points[0], points[3], points[6] = (90.0, 50.0), (10.0, 50.0), (50.0, 48.0)
    origin, along, up, width = gain.eye_frame(points)
    np.testing.assert_allclose(origin, (50, 50))
    np.testing.assert_allclose(along, (1, 0))
    np.testing.assert_allclose(up, (0, -1))  # image y grows downwards
    assert width == 80
    mirrored = points.copy()
    mirrored[[0, 3]] = points[[3, 0]]
    np.testing.assert_allclose(gain.eye_frame(mirrored)[2], (0, -1))  # either eye
    with pytest.raises(ValueError, match="7 finite"):
        gain.eye_frame(np.zeros((6, 2)))
    with pytest.raises(ValueError, match="pixels wide"):
        gain.eye_frame(np.zeros((7, 2)))


@pytest.fixture(scope="module")
def rendered():
    ids = np.arange(HELD_OUT, HELD_OUT + 12)
    images, points, truth = gain.rendered_eyes(ids, angles=(-15.0, 15.0))
    turned = [
        eyes.render_eye(ids, angle, nuisance=ids, roll=0.0, size=(192, 160), appearance="varied")[0]
        for angle in (-15.0, 15.0)
    ]
    return ids, images, points, truth, turned


def test_iris_shift_follows_a_known_translation(rendered):
    _, images, points, _, _ = rendered
    for image, landmarks in zip(images[:4], points[:4], strict=True):
        _, along, up, width = gain.eye_frame(landmarks)
        for dy, dx in ((-4.3, 1.7), (2.0, -3.2), (-7.6, 0.1)):
            moved = ndimage.shift(image, (dy, dx, 0), order=3, mode="nearest")
            found = gain.iris_shift(image, moved, landmarks)
            # The eye's frame follows its corner line, a few degrees off the image's axes.
            expected = np.array([[dx, dy] @ along, [dx, dy] @ up]) / width
            assert found.score > 0.99
            np.testing.assert_allclose((found.along, found.up), expected, atol=0.003)
    still = gain.iris_shift(images[0], images[0], points[0])
    assert (still.up, still.along, still.score) == pytest.approx((0, 0, 1), abs=1e-4)


def test_iris_shift_measures_the_renderers_true_gaze(rendered):
    # Eyes rendered at pitch 0 and +-15 degrees: the iris-centre landmark says how far it moved.
    _, images, points, truth, turned = rendered
    errors = []
    for row, after in enumerate(turned):
        for k in range(len(images)):
            found = gain.iris_shift(images[k], after[k], points[k])
            if found.score >= gain.MIN_SCORE:
                errors.append(found.up - truth[row, k])
    errors = np.abs(errors)
    assert len(errors) >= 16, "most of the renderer's eyes must be measurable"
    assert np.median(errors) < 0.004
    assert errors.max() < 0.03
    # The renderer's own geometry: about a real eye's shift, the right direction.
    assert np.all(truth[1] > 0) and np.all(truth[0] < 0)
    gains = truth / gain.REAL_EYE.shift(np.array([-15.0, 15.0]))[:, None]
    assert 0.9 < np.median(gains) < 1.1


def test_move_iris_moves_the_iris_and_iris_shift_finds_it(rendered):
    _, images, points, _, _ = rendered
    for image, landmarks in zip(images[:3], points[:3], strict=True):
        moved = gain.move_iris(image, landmarks, 0.09)
        found = gain.iris_shift(image, moved, landmarks)
        assert found.score > 0.98
        assert found.up == pytest.approx(0.09, abs=0.003)
        assert found.along == pytest.approx(0.0, abs=0.003)
        # Only the eye's neighbourhood changes.
        width = gain.eye_frame(landmarks)[3]
        far = np.hypot(*(np.mgrid[0:160, 0:192][::-1] - landmarks[6][:, None, None])) > 0.4 * width
        np.testing.assert_allclose(moved[far], image[far], atol=1e-6)
    grey = gain.move_iris(images[0][..., 0], points[0], -0.05)
    assert grey.shape == images[0].shape[:2]
    assert gain.iris_shift(images[0][..., 0], grey, points[0]).up == pytest.approx(-0.05, abs=0.003)


class _Translator:
    """A stand-in for GazeRedirector that moves the whole image up by `per_degree` * angle
    eye widths (eye width: the first eye's)."""

    def __init__(self, per_degree: float, width: float):
        self.per_degree, self.width = per_degree, width

    def redirect(self, image, landmarks, mirrored, vertical, horizontal=0.0):
        up = self.per_degree * vertical * self.width
        return ndimage.shift(image, (-up, 0, 0), order=3, mode="nearest")


def test_redirection_gain_divides_by_the_real_eyes_shift(rendered):
    _, images, points, _, _ = rendered
    width = gain.eye_frame(points[0])[3]
    per_degree = 0.35 * math.radians(1.0)  # a small-angle real eye
    result = gain.redirection_gain(
        _Translator(per_degree, width), [images[0]], [points[:1]], [np.zeros(1, bool)],
        [-10.0, 10.0, 20.0],
    )  # fmt: skip
    assert result.shifts.shape == (3, 1)
    np.testing.assert_allclose(result.widths, [width])
    np.testing.assert_allclose(result.shifts[:, 0], np.array([-10, 10, 20]) * per_degree, atol=2e-3)
    expected = np.array([-10, 10, 20]) * per_degree / gain.REAL_EYE.shift(np.array([-10, 10, 20]))
    np.testing.assert_allclose(result.gains()[:, 0], expected, atol=0.03)
    stats = gain.summarise(np.array([1.0, 2.0, np.nan, 3.0]))
    assert stats == {"median": 2.0, "q25": 1.5, "q75": 2.5}
    assert math.isnan(gain.summarise(np.array([np.nan]))["median"])


@pytest.mark.slow
def test_shipped_model_gain_on_the_renderers_held_out_eyes():
    """The shipped model moves the renderer's held-out eyes 0.8-1.2 as far as a real eye turns,
    up and down at 10, 15 and 20 degrees, and further the more it is asked up to the trained
    +-30 degrees."""
    ids = range(HELD_OUT, HELD_OUT + 40)
    angles = [-30.0, -25.0, -20.0, -15.0, -10.0, 10.0, 15.0, 20.0, 25.0, 30.0]
    images, points, _ = gain.rendered_eyes(ids)
    result = gain.redirection_gain(
        gaze.GazeRedirector.load(), list(images), [p[None] for p in points],
        [np.zeros(1, bool)] * len(ids), angles,
    )  # fmt: skip
    medians = np.array([gain.summarise(g)["median"] for g in result.gains()])
    banded = np.abs(angles) <= 20
    assert np.all((medians[banded] > 0.8) & (medians[banded] < 1.2)), dict(
        zip(angles, medians.round(3), strict=True)
    )
    shifts = np.array([np.nanmedian(s) for s in result.shifts])
    assert np.all(np.diff(shifts) > 0), dict(zip(angles, shifts.round(4), strict=True))
