"""The MuJoCo Scenes environment (thesis sec. 6.4.2): objects land where, and look how, asked."""

import math
import sys

import numpy as np
import pytest

from thesis_jax.spiral.envs import mujoco_scenes as ms
from thesis_jax.spiral.envs.spec import action_from_array

GRID = 16


@pytest.fixture(scope="module")
def env():
    with ms.MujocoScenes() as environment:
        yield environment


def _action(shape=0, row=8, col=8, size=1, rgb=(3, 0, 0), mode=ms.MODE_ADD):
    red, green, blue = rgb
    return dict(
        shape=shape,
        location=row * GRID + col,
        size=size,
        red=red,
        green=green,
        blue=blue,
        mode=mode,
    )


def _changed_mask(canvas, background, threshold=0.05):
    return np.abs(canvas - background).max(axis=-1) > threshold


def _centroid(mask):
    rows, cols = np.nonzero(mask)
    assert rows.size, "nothing changed"
    return rows.mean(), cols.mean()


def _project(point):
    """Pinhole projection of a world point through the environment's camera -> (row, col)."""
    position = np.asarray(ms.CAMERA_POSITION)
    axes = ms._camera_axes(ms.CAMERA_POSITION, ms.CAMERA_TARGET)
    right, up = axes[:3], axes[3:]
    forward = np.cross(up, right)
    offset = np.asarray(point) - position
    depth = offset @ forward
    focal = 32.0 / math.tan(math.radians(ms.CAMERA_FOVY) / 2)
    return 32.0 - focal * (offset @ up) / depth, 32.0 + focal * (offset @ right) / depth


def test_specs_are_consistent(env):
    spec = env.action_spec()
    assert list(spec) == ["shape", "location", "size", "red", "green", "blue", "mode"]
    assert math.prod(spec.values()) == 4 * 16**2 * 3 * 4**3 * 3  # M of sec. 6.4.6
    obs = env.reset()
    for name, array_spec in env.observation_spec().items():
        value = np.asarray(getattr(obs, name))
        assert value.shape == array_spec.shape and value.dtype == array_spec.dtype, name
    assert obs.canvas.min() >= 0.0 and obs.canvas.max() <= 1.0
    assert int(obs.step) == 0 and not obs.done and not obs.last_action.any()


def test_empty_scene_shows_grey_platform_filling_the_frame(env):
    canvas = env.reset().canvas
    platform = (np.ptp(canvas, axis=-1) < 0.02) & (canvas.mean(-1) > 0.2)
    assert platform.mean() > 0.65
    assert platform[32, 32] and platform[8, 32] and platform[55, 32]


@pytest.mark.parametrize("row,col", [(8, 8), (2, 3), (13, 12), (3, 13), (12, 2)])
def test_object_appears_over_its_grid_cell(env, row, col):
    background = env.reset().canvas
    canvas = env.step(_action(row=row, col=col)).canvas
    x, y = ms.cell_to_world(row * GRID + col)
    radius = ms.ScenesConfig().object_sizes[1]
    expected = _project((x, y, radius))
    centroid = _centroid(_changed_mask(canvas, background))
    assert np.hypot(*np.subtract(centroid, expected)) < 2.0, (centroid, expected)


def test_moving_on_the_grid_moves_the_object_in_the_image(env):
    def centroid_at(row, col):
        background = env.reset().canvas
        return _centroid(_changed_mask(env.step(_action(row=row, col=col)).canvas, background))

    centre = centroid_at(8, 8)
    assert centroid_at(8, 3)[1] < centre[1] - 8  # left
    assert centroid_at(8, 13)[1] > centre[1] + 8  # right
    assert centroid_at(3, 8)[0] < centre[0] - 6  # up (far)
    assert centroid_at(13, 8)[0] > centre[0] + 6  # down (near)


@pytest.mark.parametrize("channel", [0, 1, 2])
def test_object_has_the_colour_asked_for(env, channel):
    rgb = [0, 0, 0]
    rgb[channel] = 3
    background = env.reset().canvas
    canvas = env.step(_action(shape=1, size=2, rgb=rgb)).canvas
    pixels = canvas[_changed_mask(canvas, background)]
    means = pixels.mean(axis=0)
    others = np.delete(means, channel)
    assert means[channel] > 0.45 and (means[channel] - others > 0.35).all(), means


def test_sizes_grow(env):
    areas = []
    for size in range(3):
        background = env.reset().canvas
        areas.append(_changed_mask(env.step(_action(size=size)).canvas, background).sum())
    assert areas[0] < areas[1] < areas[2]


def test_shapes_render_differently(env):
    masks = []
    for shape in range(4):
        background = env.reset().canvas
        masks.append(_changed_mask(env.step(_action(shape=shape, size=2)).canvas, background))
    for i in range(4):
        for j in range(i + 1, 4):
            assert (masks[i] != masks[j]).sum() > 10, (ms.SHAPES[i], ms.SHAPES[j])


def test_skip_changes_nothing(env):
    env.reset()
    before = env.step(_action(row=4, col=4))
    after = env.step(_action(shape=2, row=10, col=10, mode=ms.MODE_SKIP))
    np.testing.assert_array_equal(after.canvas, before.canvas)
    assert ms.num_objects(env.scene) == 1 and int(after.step) == 2
    assert action_from_array(after.last_action, env.action_spec())["mode"] == ms.MODE_SKIP


def test_modify_replaces_the_last_object(env):
    env.reset()
    env.step(_action(shape=0, row=4, col=4, rgb=(3, 0, 0)))
    env.step(_action(shape=1, row=4, col=11, rgb=(0, 3, 0)))
    obs = env.step(_action(shape=2, row=11, col=8, rgb=(0, 0, 3), mode=ms.MODE_MODIFY))
    scene = env.scene
    assert ms.num_objects(scene) == 2
    np.testing.assert_array_equal(scene[0], [1, 0, 4 * GRID + 4, 1, 3, 0, 0])
    np.testing.assert_array_equal(scene[1], [1, 2, 11 * GRID + 8, 1, 0, 0, 3])
    expected = ms.scene_from_actions(
        [[0, 4 * GRID + 4, 1, 3, 0, 0, 0], [2, 11 * GRID + 8, 1, 0, 0, 3, 0]], max_objects=20
    )
    np.testing.assert_array_equal(obs.canvas, env.renderer.render(expected))


def test_modify_on_an_empty_scene_adds(env):
    env.reset()
    env.step(_action(mode=ms.MODE_MODIFY))
    assert ms.num_objects(env.scene) == 1


def test_episode_ends_and_step_after_end_raises(env):
    obs = env.reset()
    for t in range(env.config.episode_length):
        assert not obs.done
        obs = env.step(_action(row=t % GRID, col=(3 * t) % GRID, mode=ms.MODE_SKIP))
    assert obs.done and int(obs.step) == 20
    with pytest.raises(RuntimeError, match="reset"):
        env.step(_action())


def test_bad_actions_raise_clear_errors(env):
    env.reset()
    with pytest.raises(KeyError, match="location"):
        env.step({"shape": 0})
    with pytest.raises(ValueError, match=r"location.*out of range \[0, 256\)"):
        env.step(_action(row=16, col=0))
    with pytest.raises(TypeError, match="integer"):
        env.step({**_action(), "mode": 0.5})
    assert int(env.reset().step) == 0


def test_rendering_is_deterministic_across_renderers():
    scene = ms.scene_from_actions(
        [[1, 40, 2, 3, 1, 0, 0], [3, 200, 1, 0, 2, 3, 0], [2, 130, 0, 2, 2, 2, 0]]
    )
    with ms.SceneRenderer(max_objects=3) as first, ms.SceneRenderer(max_objects=5) as second:
        image = first.render(scene)
        np.testing.assert_array_equal(image, second.render(scene))
        np.testing.assert_array_equal(image, ms.render_scene(scene))
        assert image.dtype == np.float32 and image.shape == (64, 64, 3)


def test_editing_geom_types_in_place_matches_a_model_compiled_with_them(monkeypatch):
    """The renderer retypes its geom slots at run time; that must draw what compiling would."""
    actions = [[s, 35 + 50 * s, 2, 3, s % 4, 1, 0] for s in (3, 1, 2, 0)]
    scene = ms.scene_from_actions(actions)
    with ms.SceneRenderer(max_objects=4) as renderer:
        renderer.render(scene[::-1])  # leave other types in the slots first
        edited = renderer.render_pixels(scene)
    compile_with_types = ms._scene_xml
    monkeypatch.setattr(
        ms, "_scene_xml", lambda config, num: compile_with_types(config, num, (3, 1, 2, 0))
    )
    with ms.SceneRenderer(max_objects=4) as renderer:
        compiled = renderer.render_pixels(scene)
    np.testing.assert_array_equal(edited, compiled)


def test_scene_validation_and_full_scene():
    with pytest.raises(ValueError, match="shape"):
        ms.validate_scene(np.zeros((3, 5), np.int32))
    with pytest.raises(ValueError, match=r"location.*out of range"):
        ms.validate_scene([[1, 0, 256, 0, 0, 0, 0]])
    full = ms.scene_from_actions([[0, 0, 0, 0, 0, 0, 0]] * 2)
    with pytest.raises(ValueError, match="cannot add"):
        ms.apply_action(full, np.zeros(7, np.int32))


def test_closed_renderer_refuses_to_render():
    renderer = ms.SceneRenderer(max_objects=2)
    renderer.close()
    renderer.close()
    with pytest.raises(RuntimeError, match="closed"):
        renderer.render(ms.empty_scene(2))


def test_missing_mujoco_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "mujoco", None)
    with pytest.raises(ms.MujocoUnavailableError, match="pip install mujoco"):
        ms.SceneRenderer()


def test_missing_gl_backend_names_the_debian_packages(monkeypatch):
    mujoco = ms.import_mujoco()

    def no_context(*args, **kwargs):
        raise ImportError("Cannot load OSMesa")

    monkeypatch.setattr(mujoco, "Renderer", no_context)
    with pytest.raises(ms.MujocoUnavailableError, match="libosmesa6") as error:
        ms.SceneRenderer()
    assert "libegl1" in str(error.value) and "Cannot load OSMesa" in str(error.value)
    assert ms.default_gl_backend() in ("egl", "osmesa")


def test_a_dropped_renderer_is_closed_at_a_safe_point_not_by_the_garbage_collector():
    """GC must not free a GL context: it may run inside another renderer's draw (a segfault)."""
    import gc

    with ms.SceneRenderer(max_objects=2) as kept:
        empty = kept.render(ms.empty_scene(2))
        dropped = ms.SceneRenderer(max_objects=2)
        dropped.cycle = dropped  # only the cyclic collector can reclaim it
        del dropped
        gc.collect()
        assert len(ms._UNREACHABLE_RENDERERS) == 1  # parked, GL context still alive
        np.testing.assert_array_equal(kept.render(ms.empty_scene(2)), empty)
        assert ms._UNREACHABLE_RENDERERS == []  # closed at the next render
