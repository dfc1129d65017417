"""Procedural gaze pairs and the folder reader for DeepWarp (thesis sec. 4.3.1, 4.4.1, 4.4.6)."""

import csv

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import map_coordinates

from thesis_jax.data import DatasetNotFoundError, eyes


def sample_at(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear values of a 2-D image at (x, y) points (N, 2)."""
    return map_coordinates(image, [points[:, 1], points[:, 0]], order=1, mode="nearest")


def luminance(images: np.ndarray) -> np.ndarray:
    return images @ np.array([0.299, 0.587, 0.114], np.float32)


@pytest.fixture(scope="module")
def pairs() -> eyes.EyePairs:
    return eyes.generate_eye_pairs(64, identities=range(10), seed=5)


def test_pairs_have_the_documented_shapes_types_and_ranges(pairs):
    assert len(pairs) == 64
    assert pairs.inputs.shape == (64, 41, 51, 3) and pairs.inputs.dtype == np.float32
    assert pairs.targets.shape == (64, 47, 57, 3) and pairs.targets.dtype == np.float32
    assert pairs.aligned_targets().shape == (64, 41, 51, 3)
    assert pairs.landmarks.shape == (64, 7, 2) and pairs.landmarks.dtype == np.float32
    assert pairs.angles.shape == (64, 2) and pairs.angles.dtype == np.float32
    assert pairs.tilt.shape == (64,) and pairs.tilt.dtype == np.float32
    assert pairs.identity.dtype == np.int32 and set(pairs.identity) <= set(range(10))
    for images in (pairs.inputs, pairs.targets):
        assert images.min() >= 0 and images.max() <= 1
    assert np.all(np.abs(pairs.angles[:, 0]) <= 30) and np.all(pairs.angles[:, 1] == 0)
    assert np.ptp(pairs.angles[:, 0]) > 30  # redirections spread over [-30, 30]
    assert np.all((pairs.tilt >= 0) & (pairs.tilt <= 90))
    assert 0 < np.mean(pairs.tilt >= eyes.HARD_TILT) < 0.5  # some, but few, "hard" pairs
    # Landmarks lie inside the crop; the corners are 1.0R = 51 px apart in a 51-px-wide crop.
    assert np.all((pairs.landmarks[..., 0] > -1) & (pairs.landmarks[..., 0] < 51))
    assert np.all((pairs.landmarks[..., 1] > -1) & (pairs.landmarks[..., 1] < 41))
    corners = np.linalg.norm(pairs.landmarks[:, 0] - pairs.landmarks[:, 3], axis=-1)
    np.testing.assert_allclose(corners, 51.0, atol=0.05)


def test_same_seed_same_pairs_and_pair_i_does_not_depend_on_count(pairs):
    again = eyes.generate_eye_pairs(64, identities=range(10), seed=5)
    for field in ("inputs", "targets", "landmarks", "angles", "tilt", "identity"):
        np.testing.assert_array_equal(getattr(pairs, field), getattr(again, field))
    prefix = eyes.generate_eye_pairs(5, identities=range(10), seed=5)
    np.testing.assert_array_equal(prefix.inputs, pairs.inputs[:5])
    np.testing.assert_array_equal(prefix.targets, pairs.targets[:5])
    other = eyes.generate_eye_pairs(64, identities=range(10), seed=6)
    assert not np.array_equal(other.angles, pairs.angles)
    assert np.abs(other.inputs - pairs.inputs).mean() > 0.02


def test_fixed_angle_and_two_d_redirections():
    fixed = eyes.generate_eye_pairs(20, identities=[3, 4], fixed_angle=15.0)
    np.testing.assert_array_equal(fixed.angles, np.tile([15.0, 0.0], (20, 1)))
    both = eyes.generate_eye_pairs(40, identities=[3, 4], two_d=True, max_angle=20.0)
    assert np.all(np.abs(both.angles) <= 20) and np.std(both.angles[:, 1]) > 5
    with pytest.raises(ValueError, match="two_d"):
        eyes.generate_eye_pairs(2, identities=[0], two_d=True, fixed_angle=15.0)
    with pytest.raises(ValueError, match="max_angle"):
        eyes.generate_eye_pairs(2, identities=[0], max_angle=90.0)


def test_target_moves_the_eye_by_the_redirection(pairs):
    """Looking up moves the dark pupil up; no redirection leaves the eye where it was."""
    up = eyes.generate_eye_pairs(12, identities=range(4), fixed_angle=25.0, seed=1)
    down = eyes.generate_eye_pairs(12, identities=range(4), fixed_angle=-25.0, seed=1)
    rows = np.arange(41, dtype=np.float32)[None, :, None]

    def dark_row(images):  # mean row of the darkest pixels (the pupil)
        lum = luminance(images)
        dark = lum <= np.quantile(lum.reshape(len(lum), -1), 0.02, axis=1)[:, None, None]
        return (dark * rows).sum(axis=(1, 2)) / dark.sum(axis=(1, 2))

    assert np.all(dark_row(up.aligned_targets()) < dark_row(up.inputs) - 2)
    assert np.all(dark_row(down.aligned_targets()) > dark_row(down.inputs) + 2)
    still = eyes.generate_eye_pairs(6, identities=range(4), fixed_angle=0.0, seed=2)
    assert np.abs(still.aligned_targets() - still.inputs).mean() < 0.03  # sensor noise only


def test_margin_target_centre_is_the_margin_zero_target():
    wide = eyes.generate_eye_pairs(8, identities=range(4), seed=9, margin=3)
    tight = eyes.generate_eye_pairs(8, identities=range(4), seed=9, margin=0)
    assert wide.targets.shape[1:3] == (47, 57) and tight.targets.shape[1:3] == (41, 51)
    np.testing.assert_array_equal(wide.inputs, tight.inputs)
    assert np.abs(wide.aligned_targets() - tight.targets).mean() < 0.02  # independent noise only
    np.testing.assert_array_equal(tight.aligned_targets(), tight.targets)


def test_subset_keeps_the_pairs_in_order(pairs):
    chosen = pairs.subset(np.array([5, 2]))
    assert len(chosen) == 2 and chosen.margin == pairs.margin
    np.testing.assert_array_equal(chosen.targets, pairs.targets[[5, 2]])
    np.testing.assert_array_equal(pairs.subset(pairs.identity == 3).identity, 3)
    assert len(pairs.subset(slice(0, 10))) == 10


# ---------------------------------------------------------------------------------------------
# The renderer.


def test_landmarks_land_on_the_drawn_features():
    rng = np.random.default_rng(0)
    n = 120
    ids = rng.integers(0, 10_000, n)
    pitch = rng.uniform(-30, 30, n)
    images, landmarks, masks = eyes.render_eye(
        ids, pitch, rng.uniform(-15, 15, n), nuisance=ids, return_mask=True
    )
    assert images.shape == (n, 80, 96, 3) and landmarks.shape == (n, 7, 2)
    for image, points, mask in zip(images, landmarks, masks, strict=True):
        # The four lid points sit on the edge of the eye opening (coverage 1/2 there).
        np.testing.assert_allclose(sample_at(mask, points[[1, 2, 4, 5]]), 0.5, atol=0.1)
        # The corners: the eye opens just inside them and is closed just outside.
        inward = (points[3] - points[0]) / np.linalg.norm(points[3] - points[0])
        corners = np.stack([points[0], points[3]])
        inside = corners + np.stack([2.5 * inward, -2.5 * inward])
        outside = corners - np.stack([2 * inward, -2 * inward])
        assert np.all(sample_at(mask, inside) > 0.2)
        assert np.all(sample_at(mask, outside) < 0.05)
        # The pupil point is on the eye and on dark pixels (a glint may cover part of them).
        assert sample_at(mask, points[6:])[0] == 1
        lum = luminance(image)
        x, y = np.round(points[6]).astype(int)
        assert lum[y - 1 : y + 2, x - 1 : x + 2].min() < 0.15
    pupil_lum = np.array(
        [sample_at(luminance(i), p[6:])[0] for i, p in zip(images, landmarks, strict=True)]
    )
    assert np.mean(pupil_lum < 0.15) > 0.9


def test_pitch_moves_the_iris_and_the_upper_lid_up():
    pitches = np.linspace(-25, 25, 6)
    for identity in (0, 7, 42):
        images, landmarks, masks = eyes.render_eye(
            identity, pitches, nuisance=identity, roll=0.0, return_mask=True
        )
        pupil_y = landmarks[:, 6, 1]
        assert np.all(np.diff(pupil_y) < -0.5)  # higher pitch -> pupil higher (smaller y)
        upper_y = landmarks[:, [1, 2], 1].mean(axis=1)
        assert np.all(np.diff(upper_y) < 0)  # the upper lid follows the gaze
        assert upper_y[0] - upper_y[-1] > 4
        # The drawn eye opening's top edge above the pupil moves up with it.
        column = np.round(landmarks[:, 6, 0]).astype(int)
        top = np.array([np.argmax(m[:, c] > 0.5) for m, c in zip(masks, column, strict=True)])
        assert np.all(np.diff(top) <= 0) and top[0] - top[-1] >= 4
        # Looking down hides sclera that looking up reveals (disocclusion, not a translation).
        assert masks[-1].sum() > masks[0].sum() * 1.15
        # Dark pupil pixels are where the landmark says.
        lum = luminance(images)
        for k in range(len(pitches)):
            x, y = landmarks[k, 6]
            dark = np.argwhere(lum[k] < 0.08)
            near = dark[np.hypot(dark[:, 0] - y, dark[:, 1] - x) < 4]
            assert len(near) >= 4
            assert np.hypot(*(near.mean(axis=0) - [y, x])) < 1.5


def test_render_is_a_pure_function_of_identity_gaze_and_nuisance():
    alone, landmarks = eyes.render_eye(5, 10.0, nuisance=3)
    batch, batch_landmarks = eyes.render_eye([5, 8], 10.0, nuisance=[3, 9])
    assert alone.shape == (80, 96, 3) and alone.dtype == np.float32
    np.testing.assert_array_equal(alone, batch[0])
    np.testing.assert_array_equal(landmarks, batch_landmarks[0])
    noisy, _ = eyes.render_eye(5, 10.0, nuisance=3, noise_seed=0)
    assert 0.002 < np.abs(noisy - alone).mean() < 0.03
    with pytest.raises(ValueError, match="identity"):
        eyes.render_eye(-1)


def test_disjoint_identity_sets_look_like_different_people():
    train, _ = eyes.render_eye(np.arange(30), 0.0, nuisance=0, roll=0.0)
    test, _ = eyes.render_eye(np.arange(1_000_000, 1_000_030), 0.0, nuisance=0, roll=0.0)
    differences = np.abs(train[:, None] - test[None, :]).mean(axis=(2, 3, 4))
    assert differences.min() > 0.01 and np.median(differences) > 0.08  # no test face is a copy
    # Appearance varies: skin tone (mean colour) and iris colour both spread over identities.
    skin = train[:, :8, :8].mean(axis=(1, 2))
    assert np.ptp(luminance(skin)) > 0.3
    pairs_a = eyes.generate_eye_pairs(100, identities=range(0, 20), seed=0)
    pairs_b = eyes.generate_eye_pairs(100, identities=range(20, 40), seed=0)
    assert set(pairs_a.identity).isdisjoint(pairs_b.identity)
    # Across lighting, pose and gaze, an identity keeps its look: the mean colour of its crops
    # varies less within an identity than between identities (a random grouping gives ~0.2).
    colour = pairs_a.inputs.mean(axis=(1, 2))
    people = [colour[pairs_a.identity == i] for i in np.unique(pairs_a.identity)]
    between = np.var([group.mean(axis=0) for group in people], axis=0)
    within = np.mean([group.var(axis=0) for group in people if len(group) > 1], axis=0)
    assert np.all(between > within)


# ---------------------------------------------------------------------------------------------
# Crop geometry.


def test_eye_crop_box_is_one_r_wide_point_eight_r_high_around_the_landmarks():
    points = np.array(
        [[80, 52], [70, 44], [50, 42], [30, 50], [48, 56], [68, 57], [55, 49]], np.float64
    )
    box = eyes.eye_crop_box(points)
    radius = np.hypot(50, 2)
    np.testing.assert_allclose(box[2] - box[0], radius)
    np.testing.assert_allclose(box[3] - box[1], radius * 41 / 51)  # 0.8R for 51 x 41
    np.testing.assert_allclose([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], [55, 49.5])
    crop_points = eyes.crop_landmarks(points, box)
    np.testing.assert_allclose(eyes.uncrop_landmarks(crop_points, box), points)
    np.testing.assert_allclose(np.hypot(*(crop_points[0] - crop_points[3])), 51, rtol=1e-3)
    batched = eyes.eye_crop_box(np.stack([points, points + 10]))
    np.testing.assert_allclose(batched[1], box + 10)


def test_cut_eye_crop_samples_a_linear_ramp_exactly():
    ys, xs = np.mgrid[0:100, 0:120].astype(np.float32)
    ramp = np.stack([2 * xs + 3 * ys + 1, xs - ys], axis=-1)
    for box in ([10.3, 20.7, 60.1, 55.2], [5.0, 10.0, 105.0, 90.0]):  # ~1 and ~2 px per output px
        crop = eyes.cut_eye_crop(ramp, box)
        assert crop.shape == (41, 51, 2) and crop.dtype == np.float32
        x = box[0] + (np.arange(51) + 0.5) * (box[2] - box[0]) / 51
        y = box[1] + (np.arange(41) + 0.5) * (box[3] - box[1]) / 41
        np.testing.assert_allclose(crop[..., 0], 2 * x[None, :] + 3 * y[:, None] + 1, rtol=1e-5)
        np.testing.assert_allclose(crop[..., 1], x[None, :] - y[:, None], atol=1e-3)
        wide = eyes.cut_eye_crop(ramp, box, margin=3)
        assert wide.shape == (47, 57, 2)
        np.testing.assert_allclose(wide[3:-3, 3:-3], crop, rtol=1e-6)
    # Outside the image the nearest border pixel is used.
    corner = eyes.cut_eye_crop(ramp[..., 0], [-30.0, -20.0, -10.0, -5.0], size=(4, 3))
    np.testing.assert_allclose(corner, 1.0)


def test_cut_eye_crop_of_a_render_matches_the_rendered_pair_geometry():
    image, landmarks = eyes.render_eye(3, 0.0, nuisance=1, roll=0.0)
    box = eyes.eye_crop_box(landmarks)
    crop = eyes.cut_eye_crop(image, box)
    crop_points = eyes.crop_landmarks(landmarks, box)
    lum = luminance(crop)
    x, y = np.round(crop_points[6]).astype(int)
    assert lum[y - 1 : y + 2, x - 1 : x + 2].min() < 0.15  # the pupil landmark is on the pupil
    with pytest.raises(ValueError, match="box"):
        eyes.cut_eye_crop(image, [10, 10, 5, 20])


# ---------------------------------------------------------------------------------------------
# Real captures.


def write_capture(root, person: str, sequence: str, identity: int, pitches) -> np.ndarray:
    """Renders one sequence as PNGs + frames.csv; returns its landmarks."""
    folder = root / person / sequence
    folder.mkdir(parents=True)
    images, landmarks = eyes.render_eye(identity, np.asarray(pitches), nuisance=identity)
    with open(folder / "frames.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "pitch", "yaw"] + [f"{a}{k}" for k in range(7) for a in "xy"])
        for k, (image, points) in enumerate(zip(images, landmarks, strict=True)):
            name = f"frame_{k:03d}.png"
            Image.fromarray(np.round(image * 255).astype(np.uint8)).save(folder / name)
            writer.writerow([name, pitches[k], 0.0, *points.ravel().tolist()])
    return landmarks


def test_folder_round_trip(tmp_path):
    pitches = [-10.0, 0.0, 10.0, 25.0]
    landmarks = write_capture(tmp_path, "anna", "seq1", 11, pitches)
    write_capture(tmp_path, "bob", "seq1", 12, pitches)
    pairs = eyes.load_eye_folder(tmp_path, max_angle=20.0, pairs_per_sequence=None)
    # Ordered pairs with |pitch difference| <= 20: (-10,0), (-10,10), (0,10), (10,25), reversed.
    assert len(pairs) == 16 and pairs.margin == 3
    np.testing.assert_array_equal(np.unique(pairs.identity), [0, 1])
    anna = pairs.subset(pairs.identity == 0)
    expected = sorted((b - a, 0.0) for a in pitches for b in pitches if a != b and abs(b - a) <= 20)
    assert sorted(map(tuple, anna.angles.tolist())) == expected
    first = pitches.index(-10.0)
    chosen = np.flatnonzero(anna.angles[:, 0] == 10.0)[0]  # -10 -> 0
    box = eyes.eye_crop_box(landmarks[first])
    np.testing.assert_allclose(anna.landmarks[chosen], eyes.crop_landmarks(landmarks[first], box))
    image = np.asarray(Image.open(tmp_path / "anna" / "seq1" / "frame_000.png"), np.float32) / 255
    np.testing.assert_allclose(anna.inputs[chosen], eyes.cut_eye_crop(image, box), atol=1e-6)
    assert anna.targets.shape[1:] == (47, 57, 3)
    few = eyes.load_eye_folder(tmp_path, max_angle=20.0, pairs_per_sequence=3)
    assert len(few) == 6


def test_folder_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"frames\.csv"):
        eyes.load_eye_folder(tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match=r"<person>/<sequence>/frames\.csv"):
        eyes.load_eye_folder(tmp_path)
    write_capture(tmp_path, "anna", "seq1", 11, [0.0, 10.0])
    (tmp_path / "anna" / "seq1" / "frame_001.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.raises(ValueError, match=r"frame_001\.png.*line 3"):
        eyes.load_eye_folder(tmp_path)
    frames = tmp_path / "anna" / "seq1" / "frames.csv"
    frames.write_text(frames.read_text() + "frame_002.png,abc,0" + ",1" * 14 + "\n")
    with pytest.raises(ValueError, match=r"frames\.csv line 4"):
        eyes.load_eye_folder(tmp_path)
    frames.write_text("file,pitch\nframe_000.png,0\n")
    with pytest.raises(ValueError, match="header lacks yaw"):
        eyes.load_eye_folder(tmp_path)
