"""Gaze correction on real images: landmark mapping, crops, mirroring, paste-back, the model."""

import jax
import numpy as np
import pytest
import skimage.data

from thesis_jax import core, deepwarp
from thesis_jax.data import eyes
from thesis_jax.deepwarp import gaze, landmarks

PRESETS = "experiments/configs/deepwarp.py"


@pytest.fixture(scope="module")
def astronaut_mesh():
    image = skimage.data.astronaut()
    with landmarks.FaceMesh() as mesh:
        return image, mesh(image)


@pytest.fixture(scope="module")
def random_model():
    """A small CFW + LCM with random (not zero) weights, so the flow and the mask move pixels."""
    config = core.get_config("eyes", PRESETS, {"model.widths": (4, 8, 4, 4)})
    config.model.variant = "cfw_lcm"
    state = deepwarp.init(jax.random.PRNGKey(0), config)
    leaves, tree = jax.tree.flatten(state.params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    params = jax.tree.unflatten(
        tree, [0.3 * jax.random.normal(k, x.shape) for k, x in zip(keys, leaves, strict=True)]
    )
    return params, state.model_state, deepwarp.Architecture.from_config(config)


def test_mediapipe_points_map_inside_the_astronauts_eyes(astronaut_mesh):
    image, meshes = astronaut_mesh
    assert meshes.shape == (1, 478, 2)
    points, mirrored = gaze.mesh_to_eyes(meshes)
    assert points.shape == (2, 7, 2) and mirrored.tolist() == [True, False]
    # Hand-labelled boxes around the eye openings of skimage's astronaut (x0, y0, x1, y1):
    # her right eye is on the image's left.
    boxes = [(190, 94, 217, 108), (233, 96, 260, 110)]
    for eye, (x0, y0, x1, y1) in zip(points, boxes, strict=True):
        assert np.all((eye[:, 0] >= x0) & (eye[:, 0] <= x1)), eye
        assert np.all((eye[:, 1] >= y0) & (eye[:, 1] <= y1)), eye
        upper, lower = eye[[1, 2], 1], eye[[5, 4], 1]
        assert np.all(upper < lower)  # lids open
        inner, outer = eye[3, 0], eye[0, 0]
        assert min(inner, outer) < eye[6, 0] < max(inner, outer)
        brightness = image.astype(float).mean(-1)
        x, y = np.round(eye[6]).astype(int)
        assert brightness[y, x] < 0.7 * brightness[y0:y1, x0:x1].mean()  # the dark iris
    right, left = points
    assert right[0, 0] < right[3, 0] and left[3, 0] < left[0, 0]  # outer corners outside


def test_eye_landmarks_sit_on_the_lids_at_thirds_of_the_corner_line():
    mesh = np.zeros((478, 2))
    inner, outer = np.array([10.0, 20.0]), np.array([40.0, 20.0])
    for side, sign in (("left", 1), ("right", -1)):
        idx = gaze.MESH_EYES[side]
        t = np.linspace(0, 1, 9)
        x = inner[0] + sign * (outer[0] - inner[0]) * t**1.3  # uneven spacing along the lid
        mesh[list(idx["upper"])] = np.stack([x, 20 - 8 * np.sin(np.pi * t**1.3)], -1)
        mesh[list(idx["lower"])] = np.stack([x, 20 + 4 * np.sin(np.pi * t**1.3)], -1)
        mesh[idx["iris"]] = [inner[0] + sign * 15, 19.0]
        points = gaze.eye_landmarks(mesh, side)
        s = np.array([2 / 3, 1 / 3])
        np.testing.assert_allclose(points[[1, 2], 0], inner[0] + sign * 30 * s, atol=1e-9)
        np.testing.assert_allclose(points[[1, 2], 1], 20 - 8 * np.sin(np.pi * s), atol=0.3)
        np.testing.assert_allclose(points[[5, 4], 1], 20 + 4 * np.sin(np.pi * s), atol=0.2)
        np.testing.assert_allclose(points[3], inner)
    with pytest.raises(ValueError, match="478"):
        gaze.eye_landmarks(np.zeros((468, 2)), "left")


def test_a_mirrored_crop_is_the_left_right_flip_with_flipped_landmarks(astronaut_mesh):
    image, meshes = astronaut_mesh
    points, _ = gaze.mesh_to_eyes(meshes)
    plain = gaze.cut_eyes(image, points, [False, False])
    flipped = gaze.cut_eyes(image, points, [True, True])
    np.testing.assert_array_equal(flipped.images, plain.images[:, :, ::-1])
    width = eyes.DEFAULT_CROP_SIZE[0]
    np.testing.assert_allclose(flipped.landmarks[..., 0], width - 1 - plain.landmarks[..., 0],
                               atol=1e-4)  # fmt: skip
    # A mirrored right eye is a left eye: its inner corner is on the left (sec. 4.3.1).
    mirrored = gaze.cut_eyes(image, points, [True, False])
    assert np.all(mirrored.landmarks[:, 3, 0] < mirrored.landmarks[:, 0, 0])


def test_paste_back_changes_only_pixels_inside_the_eye_boxes(astronaut_mesh, random_model):
    image, meshes = astronaut_mesh
    redirector = gaze.GazeRedirector(*random_model)
    out = redirector.redirect_faces(image, meshes, vertical=15.0)
    assert out.dtype == np.uint8 and out.shape == image.shape
    points, _ = gaze.mesh_to_eyes(meshes)
    inside = np.zeros(image.shape[:2], bool)
    for box in gaze.eye_boxes(points):
        rows, cols = gaze.box_pixels(box, *image.shape[:2])
        inside[rows, cols] = True
    np.testing.assert_array_equal(out[~inside], image[~inside])
    assert np.any(out[inside] != image[inside])
    floats = redirector.redirect_faces(image / 255.0, meshes, vertical=15.0)
    np.testing.assert_array_equal(floats[~inside], image[~inside] / 255.0)


def test_paste_eye_zero_flow_is_exact_and_a_shift_moves_pixels_by_the_box_scale():
    rng = np.random.default_rng(0)
    image = rng.random((60, 80, 3)).astype(np.float32)
    box = np.array([20.0, 10.0, 71.0, 51.0])  # one image pixel per crop pixel
    zero = np.zeros((41, 51, 2), np.float32)
    out = image.copy()
    gaze.paste_eye(out, image, box, zero, None, mirrored=False)
    np.testing.assert_array_equal(out, image)
    ramp = np.broadcast_to(np.arange(160, dtype=np.float32)[None, :, None], (60, 160, 3)).copy()
    wide = np.array([20.0, 10.0, 122.0, 51.0])  # two image pixels per crop pixel along x
    shift = np.zeros((41, 51, 2), np.float32)
    shift[..., 0] = 1.5
    for mirrored, sign in ((False, 1), (True, -1)):
        out = ramp.copy()
        gaze.paste_eye(out, ramp, wide, shift, None, mirrored=mirrored)
        centre = out[25:35, 60:80, 0]
        np.testing.assert_allclose(centre, ramp[25:35, 60:80, 0] + sign * 3.0, atol=1e-4)
    mask = np.ones((41, 51, 1), np.float32)
    out = image.copy()
    gaze.paste_eye(out, image, box, zero, mask, mirrored=False)
    np.testing.assert_allclose(out[28:33, 40:50], 1.0, atol=1e-6)  # the LCM whitens (eq. 4.3.6)


def test_predict_pads_the_batch_without_changing_any_eye(astronaut_mesh, random_model):
    image, meshes = astronaut_mesh
    redirector = gaze.GazeRedirector(*random_model)
    points, mirrored = gaze.mesh_to_eyes(np.concatenate([meshes, meshes]))
    crops = gaze.cut_eyes(image, points[:3], mirrored[:3])
    flows, masks = redirector.predict(crops, 10.0)
    assert flows.shape == (3, 41, 51, 2) and masks.shape == (3, 41, 51, 1)
    one = gaze.EyeCrops(crops.images[2:], crops.landmarks[2:], crops.boxes[2:], crops.mirrored[2:])
    flow, mask = redirector.predict(one, 10.0)
    np.testing.assert_allclose(flow[0], flows[2], atol=1e-5)
    np.testing.assert_allclose(mask[0], masks[2], atol=1e-5)


def test_angles_outside_the_trained_range_are_refused(random_model):
    redirector = gaze.GazeRedirector(*random_model)
    for bad in (31.0, -45.0, float("nan")):
        with pytest.raises(ValueError, match="degrees"):
            redirector.check_angle(bad)
    with pytest.raises(ValueError, match="vertically only"):
        redirector.check_angle(5.0, 5.0)
    np.testing.assert_array_equal(redirector.check_angle(12.0), [12.0])


def test_export_round_trip_and_loading_a_workdir(tmp_path, random_model):
    params, model_state, arch = random_model
    path = deepwarp.save_export(tmp_path / "m.msgpack", params, model_state, arch, np.float16)
    loaded, loaded_state, loaded_arch = deepwarp.load_export(path)
    assert loaded_arch == arch
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(params), strict=True):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    assert jax.tree.structure(loaded_state) == jax.tree.structure(model_state)
    # A workdir of experiments.deepwarp: config.json + <variant>/checkpoints.
    config = core.get_config("eyes", PRESETS, {"model.widths": (4, 8, 4, 4)})
    config.variants = ("ss", "cfw_lcm")
    core.presets.claim_workdir(config, tmp_path / "run")
    config.model.variant = "cfw_lcm"
    state = deepwarp.init(jax.random.PRNGKey(3), config)
    later = state.replace(params=jax.tree.map(lambda x: x + 1, state.params))
    with core.Checkpointer(tmp_path / "run" / "cfw_lcm" / "checkpoints", save_every=1) as ckpt:
        ckpt.save(7, state)
        ckpt.save(9, later)
    restored, _, restored_arch = gaze.load_model(tmp_path / "run")
    assert restored_arch.variant == "cfw_lcm" and restored_arch.widths == (4, 8, 4, 4)
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(later.params), strict=True):
        np.testing.assert_array_equal(a, b)  # the newest checkpoint
    # Any kept checkpoint by its step.
    assert gaze.checkpoint_steps(tmp_path / "run") == [7, 9]
    assert gaze.checkpoint_steps(tmp_path / "run" / "cfw_lcm") == [7, 9]
    earlier, _, _ = gaze.load_model(tmp_path / "run", step=7)
    for a, b in zip(jax.tree.leaves(earlier), jax.tree.leaves(state.params), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(FileNotFoundError, match=r"no checkpoint of step 8; it keeps \[7, 9\]"):
        gaze.load_model(tmp_path / "run", step=8)
    with pytest.raises(ValueError, match="an export file"):
        gaze.load_model(path, step=7)
    with pytest.raises(FileNotFoundError, match="no DeepWarp model"):
        gaze.load_model(tmp_path / "missing")


def test_the_shipped_model_loads_and_is_small():
    assert gaze.DEFAULT_MODEL.is_file()
    assert gaze.DEFAULT_MODEL.stat().st_size < 2_000_000
    redirector = gaze.GazeRedirector.load()
    assert redirector.arch.variant == "cfw_lcm" and redirector.arch.angle_dims == 1


def test_varied_appearance_is_opt_in_and_keeps_the_pair_geometry():
    default = eyes.generate_eye_pairs(6, identities=range(6), seed=0)
    again = eyes.generate_eye_pairs(6, identities=range(6), seed=0, appearance="default")
    np.testing.assert_array_equal(default.inputs, again.inputs)
    varied = eyes.generate_eye_pairs(6, identities=range(6), seed=0, appearance="varied")
    assert varied.inputs.shape == default.inputs.shape
    assert varied.inputs.min() >= 0 and varied.inputs.max() <= 1
    assert not np.allclose(varied.inputs, default.inputs, atol=0.05)
    np.testing.assert_array_equal(varied.angles, default.angles)
    images, points = eyes.render_eye([1, 2], 10.0, appearance="varied")
    assert images.shape == (2, 80, 96, 3) and points.shape == (2, 7, 2)
    with pytest.raises(ValueError, match="appearance"):
        eyes.generate_eye_pairs(2, identities=[0], appearance="cartoon")
