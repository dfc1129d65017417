"""JaxPaint paints what LibMyPaint paints (sec. 6.4.2): same actions, nearly the same canvases.

Random 20-step episodes (colour and grayscale) and a few hand-picked strokes go through both
renderers. The bounds come from measurement (libmypaint 1.6, `classic/dry_brush`): random
episodes differ by a mean absolute 0.004-0.009 per canvas, thirty times less than a blank canvas
or another episode's canvas does. A side-by-side image (libmypaint | JaxPaint | 4 x |difference|,
one row per canvas) is written beside the test and to /tmp/paint_parity.png.
"""

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from thesis_jax.spiral.envs import jax_paint
from thesis_jax.spiral.envs.libmypaint import LibMyPaint
from thesis_jax.spiral.envs.spec import PaintConfig, action_from_array, paint_action_spec

EPISODES = 8
PREVIEW = pathlib.Path("/tmp/paint_parity.png")


def random_episodes(config: PaintConfig, seed: int) -> np.ndarray:
    """int32 [EPISODES, episode_length, num_components] of uniformly random actions."""
    sizes = np.array(list(paint_action_spec(config).values()))
    rng = np.random.default_rng(seed)
    shape = (EPISODES, config.episode_length, len(sizes))
    return (rng.random(shape) * sizes).astype(np.int32)


def hand_picked_episodes(config: PaintConfig) -> np.ndarray:
    """One stroke per episode after a jump: thin and wide, faint and full, straight and curved."""
    grid = config.grid_size

    def stroke(start, control, end, pressure, size, rgb):
        jump = [0, start[0] * grid + start[1], 0, 0, 0, 0, 0, 0]
        paint = [control[0] * grid + control[1], end[0] * grid + end[1], 1, pressure, size, *rgb]
        return [jump, paint]

    return np.array(
        [
            stroke((4, 2), (4, 16), (4, 29), 9, 0, (0, 0, 0)),  # 1 px, horizontal
            stroke((28, 3), (2, 8), (20, 29), 9, 1, (19, 0, 0)),  # 2 px, curved
            stroke((3, 3), (16, 28), (29, 4), 4, 2, (0, 12, 19)),  # 4 px, half pressure
            stroke((6, 5), (26, 6), (26, 27), 0, 3, (5, 19, 2)),  # 8 px, faintest
            stroke((16, 2), (2, 16), (16, 29), 9, 4, (19, 10, 0)),  # 12 px, arch
            stroke((10, 10), (20, 20), (10, 22), 6, 5, (8, 0, 15)),  # 24 px
        ],
        np.int32,
    )


def libmypaint_canvases(config: PaintConfig, episodes: np.ndarray) -> np.ndarray:
    canvases = []
    with LibMyPaint(config) as env:
        for episode in episodes:
            env.reset()
            for action in episode:
                observation = env.step(action_from_array(action, env.action_spec()))
            canvases.append(observation.canvas)
    return np.stack(canvases)


@functools.partial(jax.jit, static_argnums=0)
def jax_paint_canvases(config: PaintConfig, episodes: jax.Array) -> jax.Array:
    """All episodes at once: one `lax.scan` over steps of a batch of canvases."""

    def step(state, actions):
        return jax_paint.render_step(config, state, actions), None

    state = jax_paint.init_state(config, episodes.shape[0])
    state, _ = jax.lax.scan(step, state, jnp.swapaxes(episodes, 0, 1))
    return state.canvas


def mean_abs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean absolute difference per canvas: [N, H, W, C] x [N, H, W, C] -> [N]."""
    return np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean(axis=(1, 2, 3))


def rgb(canvases: np.ndarray) -> np.ndarray:
    return np.broadcast_to(canvases, (*canvases.shape[:3], 3))


@pytest.fixture(scope="module")
def rendered() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{set name: (libmypaint canvases, JaxPaint canvases)}."""
    out = {}
    for name, config, episodes in (
        ("colour", PaintConfig(), random_episodes(PaintConfig(), seed=0)),
        ("grayscale", PaintConfig(grayscale=True), random_episodes(PaintConfig(), seed=1)[..., :5]),
        ("strokes", PaintConfig(), hand_picked_episodes(PaintConfig())),
    ):
        reference = libmypaint_canvases(config, episodes)
        ours = np.asarray(jax_paint_canvases(config, jnp.asarray(episodes)))
        out[name] = reference, ours
    return out


@pytest.mark.parametrize("name", ["colour", "grayscale"])
def test_random_episodes_match_libmypaint(rendered, name):
    reference, ours = rendered[name]
    error = mean_abs(reference, ours)
    assert error.max() < 0.015 and error.mean() < 0.01, error
    # The bound means something: JaxPaint is far closer to LibMyPaint's canvas for the same
    # actions than to a blank canvas or to LibMyPaint's canvas for other actions.
    blank = mean_abs(np.ones_like(ours), ours)
    other = mean_abs(np.roll(reference, 1, axis=0), ours)
    assert np.all(error < 0.1 * blank), (error, blank)
    assert np.all(error < 0.1 * other), (error, other)


def test_hand_picked_strokes_match_libmypaint(rendered):
    reference, ours = rendered["strokes"]
    error = mean_abs(reference, ours)
    assert error.max() < 0.01, error
    ink_ratio = (1.0 - ours).sum(axis=(1, 2, 3)) / (1.0 - reference).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(ink_ratio, 1.0, atol=0.06)


def test_side_by_side_image(rendered, tmp_path):
    rows = []
    for name in ("colour", "grayscale", "strokes"):
        reference, ours = (rgb(c) for c in rendered[name])
        for a, b in zip(reference[:4], ours[:4], strict=True):
            gap = np.ones((a.shape[0], 2, 3))
            difference = np.clip(4.0 * np.abs(a - b), 0.0, 1.0)
            rows.append(np.concatenate([a, gap, b, gap, difference], axis=1))
    grid = np.concatenate([np.pad(r, ((1, 1), (0, 0), (0, 0)), constant_values=1) for r in rows])
    image = Image.fromarray(np.round(grid * 255).astype(np.uint8)).resize(
        (grid.shape[1] * 4, grid.shape[0] * 4), Image.NEAREST
    )
    for path in (tmp_path / "paint_parity.png", PREVIEW):
        image.save(path)
    with Image.open(tmp_path / "paint_parity.png") as saved:
        assert saved.size == (4 * (3 * 64 + 4), 4 * 12 * 66)
