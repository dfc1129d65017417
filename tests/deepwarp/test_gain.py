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


def _eye(upper: float = 0.2, lower: float = -0.12) -> np.ndarray:
    """Landmarks of an 80-px eye centred at (50, 50): its lids `upper` and `lower` eye widths
    above the corner line at 1/3 and 2/3 of the way, the iris centre at the origin."""
    points = np.zeros((7, 2))
    points[0], points[3] = (90.0, 50.0), (10.0, 50.0)
    points[1], points[2] = (50 + 80 / 6, 50 - 80 * upper), (50 - 80 / 6, 50 - 80 * upper)
    points[4], points[5] = (50 - 80 / 6, 50 - 80 * lower), (50 + 80 / 6, 50 - 80 * lower)
    points[6] = (50.0, 50.0)
    return points


def test_eye_opening_lies_between_the_lid_curves():
    points = _eye()
    u = np.array([0.0, 0.0, 0.0, 0.0, -1 / 6, 0.45, 0.55, 0.0])
    v = np.array([0.1, 0.24, -0.1, -0.2, 0.19, 0.0, 0.0, 0.15])
    inside = gain.eye_opening(points, u, v)
    # The cubic through (-0.5, 0), (-1/6, 0.2), (1/6, 0.2), (0.5, 0) peaks at 0.225 over the
    # middle: 0.1 and 0.15 are inside, 0.24 above; beyond a corner is outside.
    np.testing.assert_array_equal(inside, [True, False, True, False, True, True, False, True])
    shrunk = gain.eye_opening(points, u, v, margin=0.08)
    np.testing.assert_array_equal(shrunk, [True, False, False, False, False, False, False, False])
    # Either eye: the corners' order does not matter.
    mirrored = points.copy()
    mirrored[[0, 1, 2, 3, 4, 5]] = points[[3, 2, 1, 0, 5, 4]]
    np.testing.assert_array_equal(gain.eye_opening(mirrored, u, v), inside)


def test_a_closed_eye_is_not_measured(rendered):
    _, images, points, _, _ = rendered
    closed = points[0].copy()
    corners = 0.5 * (closed[0] + closed[3])
    closed[[1, 2, 4, 5]] = corners + (closed[[1, 2, 4, 5]] - corners) * [1.0, 0.05]
    found = gain.iris_shift(images[0], images[0], closed)
    assert found.score == 0 and math.isnan(found.up) and math.isnan(found.along)


def test_iris_shift_follows_the_iris_under_lids_that_stay(rendered):
    # The template keeps inside the opening: an iris that slides under still lids is found
    # where it went, not held back by the lids.
    _, images, points, _, _ = rendered
    for image, landmarks in zip(images[:4], points[:4], strict=True):
        for shift in (-0.06, 0.06):
            moved = gain.move_iris(image, landmarks, shift, lids_still=True)
            origin, along, up, width = gain.eye_frame(landmarks)
            ys, xs = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
            u = ((xs - origin[0]) * along[0] + (ys - origin[1]) * along[1]) / width
            v = ((xs - origin[0]) * up[0] + (ys - origin[1]) * up[1]) / width
            outside = ~gain.eye_opening(landmarks, u, v)
            np.testing.assert_array_equal(moved[outside], image[outside])  # the lids stay
            found = gain.iris_shift(image, moved, landmarks)
            assert found.score > gain.MIN_SCORE
            assert found.up == pytest.approx(shift, abs=0.006)


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


def test_renderer_agreement_is_the_models_shift_over_the_renderers():
    # A stand-in that moves every eye 0.35 * radians(angle) eye widths (its first eye's width)
    # against the renderer's own shifts of the same eyes: the known ratio, per angle.
    ids, angles = range(HELD_OUT, HELD_OUT + 3), (-10.0, 20.0)
    _, points, truth = gain.rendered_eyes(ids, angles=angles)
    width = gain.eye_frame(points[0])[3]
    per_degree = 0.35 * math.radians(1.0)
    stand_ins = [_Translator(per_degree, width), _Translator(2 * per_degree, width)]
    agreement = gain.renderer_agreement(stand_ins, ids, angles)
    assert agreement.shape == (2, 2)
    widths = np.array([gain.eye_frame(p)[3] for p in points])
    moved = np.array(angles)[:, None] * per_degree * width / widths  # each eye's own widths
    np.testing.assert_allclose(agreement[0], np.median(moved / truth, axis=1), rtol=0.05)
    np.testing.assert_allclose(agreement[1], 2 * agreement[0], rtol=0.05)


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
