"""The libmypaint environment paints what the action says (thesis sec. 6.4.2, eq. 6.4.1)."""

import re

import numpy as np
import pytest
from PIL import Image

from thesis_jax.spiral.envs import _mypaint_ffi as ffi
from thesis_jax.spiral.envs.libmypaint import (
    BrushNotFoundError,
    LibMyPaint,
    LibMyPaintUnavailableError,
)
from thesis_jax.spiral.envs.spec import (
    PaintConfig,
    action_from_array,
    bezier,
    brush_radius,
    grid_to_canvas,
)

GRID = PaintConfig().grid_size


def cell(row: int, col: int) -> int:
    return row * GRID + col


def paint(env, control, end, *, flag=1, pressure=9, size=2, rgb=(0, 0, 0)) -> dict[str, int]:
    """A full action for `env` (control and end as (row, col) grid cells)."""
    action = {"control": cell(*control), "end": cell(*end), "flag": flag}
    action |= {"pressure": pressure, "size": size}
    if "red" in env.action_spec():
        action |= dict(zip(("red", "green", "blue"), rgb, strict=True))
    return action


def draw(env, start, control, end, **kwargs) -> np.ndarray:
    """The canvas after one stroke from grid cell `start` on a fresh canvas."""
    env.reset()
    env.step(paint(env, control=start, end=start, flag=0))
    return env.step(paint(env, control, end, **kwargs)).canvas


def ink(canvas: np.ndarray) -> np.ndarray:
    """How much paint covers each pixel: 0 on white paper, 1 under black paint."""
    return 1.0 - canvas.mean(axis=-1)


def distance_to_curve(p0, p1, p2, size: int) -> np.ndarray:
    """Distance from each pixel centre of a size x size canvas to the Bezier curve (eq. 6.4.1)."""
    curve = bezier(
        *(np.asarray(p, np.float64) for p in (p0, p1, p2)), np.linspace(0, 1, 256)[:, None]
    )
    centres = np.stack(np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5), axis=-1)
    return np.linalg.norm(centres[:, :, None, :] - curve, axis=-1).min(axis=-1)


def random_action(spec, rng: np.random.Generator) -> dict[str, int]:
    return {name: int(rng.integers(size)) for name, size in spec.items()}


@pytest.fixture(scope="module")
def env():
    with LibMyPaint() as env:
        yield env


@pytest.fixture(scope="module")
def gray_env():
    with LibMyPaint(PaintConfig(grayscale=True)) as env:
        yield env


def test_brush_setting_ids_match_the_header_enum():
    library = ffi.load_library()
    ids = {name: ffi.setting_id(library, name) for name in ("radius_logarithmic", "color_h")}
    ids |= {name: ffi.setting_id(library, name) for name in ("color_s", "color_v", "opaque")}
    assert ids == {
        "opaque": 0,
        "radius_logarithmic": 3,
        "color_h": 20,
        "color_s": 21,
        "color_v": 22,
    }
    with pytest.raises(ValueError, match="no brush setting named 'radius'"):
        ffi.setting_id(library, "radius")


def test_canvas_starts_white_and_a_jump_paints_nothing(env):
    observation = env.reset()
    np.testing.assert_array_equal(observation.canvas, 1.0)
    assert env.position == (0.0, 0.0)
    observation = env.step(paint(env, control=(20, 3), end=(10, 28), flag=0))
    np.testing.assert_array_equal(observation.canvas, 1.0)
    assert env.position == (57.0, 21.0)


def test_stroke_follows_the_bezier_curve(env):
    config = PaintConfig()
    env.reset()
    env.step(paint(env, control=(0, 0), end=(8, 4), flag=0))
    observation = env.step(paint(env, control=(2, 16), end=(24, 28), size=2))
    p0, p1, p2 = (grid_to_canvas(cell(*rc), config) for rc in ((8, 4), (2, 16), (24, 28)))
    distance = distance_to_curve(p0, p1, p2, config.canvas_size)
    radius = float(brush_radius(2, config))
    painted = ink(observation.canvas)
    assert painted[distance <= radius / 2].min() > 0.5
    assert painted[distance > radius + 1.5].max() == 0.0
    assert env.position == tuple(float(v) for v in p2)


def test_a_stroke_after_a_jump_starts_at_the_jump_end_point(env):
    env.reset()
    env.step(paint(env, control=(0, 0), end=(4, 28), flag=0))  # to (x, y) = (57, 9)
    observation = env.step(paint(env, control=(4, 20), end=(4, 12), size=1))  # to (25, 9)
    painted = ink(observation.canvas)
    assert painted[9, 26:56].min() > 0.5
    assert painted[:, :20].max() == 0.0  # a stroke from (y, y) = (9, 9) would paint here
    assert painted[20:].max() == 0.0


@pytest.mark.parametrize("channel", [0, 1, 2])
def test_colour_components_choose_the_paint_colour(env, channel):
    rgb = [0, 0, 0]
    rgb[channel] = 19
    canvas = draw(env, start=(16, 4), control=(16, 14), end=(16, 24), rgb=rgb)
    stroke = canvas[31:36, 16:44].reshape(-1, 3)
    others = [c for c in range(3) if c != channel]
    assert stroke[:, channel].min() > 0.95
    assert stroke[:, others].max() < 0.3


def test_larger_size_paints_more_pixels(env):
    areas = []
    for size in range(len(PaintConfig().brush_sizes)):
        canvas = draw(env, start=(16, 12), control=(16, 16), end=(16, 20), size=size)
        areas.append(int((ink(canvas) > 0.1).sum()))
    assert np.all(np.diff(areas) > 0), areas


def test_higher_pressure_puts_down_more_ink(env):
    totals = []
    for pressure in (0, 3, 6, 9):
        canvas = draw(env, start=(16, 8), control=(20, 16), end=(16, 24), pressure=pressure)
        totals.append(float(ink(canvas).sum()))
    assert np.all(np.diff(totals) > 0), totals


def test_grayscale_canvas_has_one_channel_and_no_colour_components(gray_env):
    assert list(gray_env.action_spec()) == ["control", "end", "flag", "pressure", "size"]
    assert gray_env.observation_spec()["canvas"].shape == (64, 64, 1)
    canvas = draw(gray_env, start=(16, 4), control=(16, 14), end=(16, 24))
    assert canvas.shape == (64, 64, 1)
    assert canvas[32:35, 16:44].max() < 0.2  # black paint


@pytest.mark.parametrize("config", [PaintConfig(episode_length=3), PaintConfig(grayscale=True)])
def test_observations_match_the_spec_and_count_steps(config):
    rng = np.random.default_rng(0)
    with LibMyPaint(config) as env:
        spec, observation_spec = env.action_spec(), env.observation_spec()
        with pytest.raises(RuntimeError, match="reset"):
            env.step(random_action(spec, rng))
        observation = env.reset()
        np.testing.assert_array_equal(observation.last_action, 0)
        for t in range(1, config.episode_length + 1):
            action = random_action(spec, rng)
            observation = env.step(action)
            for name, field in observation._asdict().items():
                assert field.shape == observation_spec[name].shape, name
                assert field.dtype == observation_spec[name].dtype, name
            assert 0.0 <= observation.canvas.min() and observation.canvas.max() <= 1.0
            assert action_from_array(observation.last_action, spec) == action
            assert observation.step == t
            assert bool(observation.done) == (t == config.episode_length)
        with pytest.raises(RuntimeError, match="call reset"):
            env.step(action)
        assert env.reset().step == 0


@pytest.mark.parametrize("brush_settings", [None, {}], ids=["steady", "as_in_file"])
def test_same_actions_give_identical_canvases(brush_settings):
    kwargs = {} if brush_settings is None else {"brush_settings": brush_settings}
    rng = np.random.default_rng(1)
    with LibMyPaint(**kwargs) as env, LibMyPaint(**kwargs) as other:
        actions = [random_action(env.action_spec(), rng) for _ in range(20)]

        def episode(env, seed):
            env.reset(seed=seed)
            return [env.step(action).canvas for action in actions]

        first = episode(env, seed=3)
        assert ink(first[-1]).sum() > 0
        for canvases in (episode(env, seed=3), episode(other, seed=3), episode(env, seed=None)):
            for expected, actual in zip(first, canvases, strict=True):
                np.testing.assert_array_equal(actual, expected)


def test_brush_settings_override_the_brush_file():
    """The file's dry brush scatters dabs off the curve; the steady default does not."""
    canvases = []
    for kwargs in ({}, {"brush_settings": {}}):
        with LibMyPaint(**kwargs) as env:
            canvases.append(draw(env, start=(16, 4), control=(16, 14), end=(16, 24), size=1))
    steady, scattered = (ink(canvas) for canvas in canvases)
    assert steady[:10].max() == 0.0 and steady[-10:].max() == 0.0
    assert not np.array_equal(steady, scattered)
    with pytest.raises(ValueError, match="no brush setting named 'jitter'"):
        LibMyPaint(brush_settings={"jitter": 0.0})


def test_larger_canvas_spans_several_tiles():
    config = PaintConfig(canvas_size=128)
    with LibMyPaint(config) as env:
        canvas = draw(env, start=(28, 4), control=(28, 16), end=(28, 28), size=1)
    assert canvas.shape == (128, 128, 3)
    painted = ink(canvas)
    assert painted[114, 22:110].min() > 0.5  # (x, y) = (18, 114) to (114, 114), two tiles
    assert painted[:100].max() == 0.0


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"size": 6}, ValueError, r"action\['size'\] = 6 is out of range \[0, 6\)"),
        ({"control": -1}, ValueError, "out of range"),
        ({"flag": 1.0}, TypeError, "must be an integer"),
        ({"flag": True}, TypeError, "must be an integer"),
        ({"speed": 1}, KeyError, r"unknown \['speed'\]"),
        ({"red": None}, KeyError, r"missing \['red'\]"),
    ],
)
def test_malformed_actions_raise_clear_errors(env, change, error, message):
    action = paint(env, control=(1, 1), end=(2, 2))
    action |= change
    action = {name: value for name, value in action.items() if value is not None}
    env.reset()
    with pytest.raises(error, match=message):
        env.step(action)
    with pytest.raises(TypeError, match="mapping"):
        env.step([1, 2, 3])
    assert env.reset().step == 0


def test_missing_library_names_the_debian_packages(monkeypatch, tmp_path):
    monkeypatch.setenv(ffi.LIBRARY_ENV_VAR, str(tmp_path / "libmypaint-missing.so"))
    with pytest.raises(
        LibMyPaintUnavailableError,
        match=re.escape("apt-get install libmypaint-1.5-1 mypaint-brushes"),
    ):
        LibMyPaint()
    assert issubclass(LibMyPaintUnavailableError, OSError)


def test_missing_brush_lists_the_available_ones(tmp_path):
    with pytest.raises(BrushNotFoundError, match=r"'classic/no_such_brush'.*classic/brush"):
        LibMyPaint(brush="classic/no_such_brush")
    with pytest.raises(BrushNotFoundError, match="mypaint-brushes"):
        LibMyPaint(brush_dir=tmp_path / "no_brushes_here")
    (tmp_path / "mine").mkdir()
    with pytest.raises(BrushNotFoundError, match="mine/dry_brush"):
        LibMyPaint(brush="mine/dry_brush", brush_dir=tmp_path)


def test_closed_environment_refuses_to_step():
    with LibMyPaint() as env:
        env.reset()
    with pytest.raises(RuntimeError, match="closed"):
        env.reset()
    env.close()


def test_random_episodes_look_like_brush_strokes(tmp_path):
    """Writes random episodes to a PNG a person can open; every one leaves paint on the canvas."""
    rng = np.random.default_rng(2)
    rows = []
    for config in (PaintConfig(), PaintConfig(grayscale=True)):
        with LibMyPaint(config) as env:
            canvases = []
            for _ in range(4):
                env.reset()
                for _ in range(config.episode_length):
                    action = random_action(env.action_spec(), rng)
                    action["size"] = min(action["size"], 3)  # keep single strokes visible
                    observation = env.step(action)
                canvases.append(np.broadcast_to(observation.canvas, (64, 64, 3)))
        assert all(ink(canvas).max() > 0.5 for canvas in canvases)
        rows.append(np.concatenate(canvases, axis=1))
    image = (np.concatenate(rows, axis=0) * 255).round().astype(np.uint8)
    path = tmp_path / "libmypaint_episodes.png"
    Image.fromarray(image).resize((image.shape[1] * 4, image.shape[0] * 4), Image.NEAREST).save(
        path
    )
    assert np.asarray(Image.open(path)).shape == (128 * 4, 256 * 4, 3)
