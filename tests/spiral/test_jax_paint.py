"""JaxPaint: strokes land on the Bezier of eq. (6.4.1), appearance responds to the action, and
the pure functions agree with the stateful wrapper under jit, lax.scan and vmap."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thesis_jax.spiral.envs import jax_paint, spec
from thesis_jax.spiral.envs.jax_paint import JaxPaint, PaintState
from thesis_jax.spiral.envs.spec import PaintConfig

CONFIG = PaintConfig()
GRAY = PaintConfig(grayscale=True)


def cell(row: int, col: int, config: PaintConfig = CONFIG) -> int:
    return row * config.grid_size + col


def action(
    control=(8, 8), end=(16, 16), flag=1, pressure=9, size=2, rgb=(0, 0, 0), config=CONFIG
) -> dict[str, int]:
    out = dict(control=cell(*control), end=cell(*end), flag=flag, pressure=pressure, size=size)
    if not config.grayscale:
        out.update(red=rgb[0], green=rgb[1], blue=rgb[2])
    return out


def random_actions(rng: np.random.Generator, config: PaintConfig, shape) -> np.ndarray:
    sizes = list(spec.paint_action_spec(config).values())
    return np.stack([rng.integers(0, n, shape) for n in sizes], -1).astype(np.int32)


def ink(canvas: np.ndarray) -> float:
    return float(np.sum(1.0 - canvas))


def paint_one(act: dict[str, int], config: PaintConfig = CONFIG) -> np.ndarray:
    env = JaxPaint(config)
    env.reset()
    return env.step(act).canvas


def test_jump_paints_nothing_and_moves_the_brush():
    env = JaxPaint()
    env.reset()
    assert env.position == (0.0, 0.0)
    obs = env.step(action(end=(5, 25), flag=0))
    np.testing.assert_array_equal(obs.canvas, np.ones((64, 64, 3), np.float32))
    assert env.position == (51.0, 11.0)


def test_a_stroke_that_does_not_move_leaves_no_ink():
    env = JaxPaint()
    env.reset()
    env.step(action(end=(5, 25), flag=0))
    obs = env.step(action(control=(5, 25), end=(5, 25), size=5))
    np.testing.assert_array_equal(obs.canvas, 1.0)


def test_stroke_darkens_the_bezier_curve_and_nothing_far_from_it():
    start, control, end = np.array([0.0, 0.0]), np.array([57.0, 5.0]), np.array([41.0, 57.0])
    canvas = paint_one(action(control=(2, 28), end=(28, 20), size=1, pressure=9))[..., 0]
    t = np.linspace(0.0, 1.0, 200)[:, None]
    curve = spec.bezier(start, control, end, t)  # eq. (6.4.1)
    inside = curve[((curve > 1) & (curve < 63)).all(1)]
    on_curve = canvas[inside[:, 1].astype(int), inside[:, 0].astype(int)]
    assert on_curve.max() < 0.5, "every pixel the curve passes through is painted"
    ys, xs = np.mgrid[:64, :64] + 0.5
    distance = np.min(np.hypot(xs[..., None] - curve[:, 0], ys[..., None] - curve[:, 1]), -1)
    assert canvas[distance > 2.0 * jax_paint.RADIUS_SCALE + 0.5].min() == 1.0, "dabs end at r"


def test_closed_form_stroke_is_the_limit_of_dense_dabs():
    """Summing dab profiles every 1/2000 of the curve converges to the 16-chord line integral."""
    start, control, end, radius = (
        np.array([5.0, 9.0]),
        np.array([60.0, 20.0]),
        np.array([30, 55]),
        6,
    )
    chords = spec.bezier(start, control, end, np.linspace(0, 1, 17)[:, None])
    closed_form = jax_paint.dab_line_integral(
        jnp.asarray(chords[None, :-1]), jnp.asarray(chords[None, 1:]), jnp.array([radius]), 64
    )[0]
    dabs = spec.bezier(start, control, end, np.linspace(0, 1, 2001)[:, None])
    spacing = np.linalg.norm(np.diff(dabs, axis=0), axis=1)
    ys, xs = np.mgrid[:64, :64] + 0.5
    rr = ((xs[..., None] - dabs[1:, 0]) ** 2 + (ys[..., None] - dabs[1:, 1]) ** 2) / radius**2
    dense = np.sum(jax_paint.dab_profile(rr) * spacing, axis=-1)
    error = np.abs(np.asarray(closed_form) - dense)  # mostly the chords cutting a tight curve
    assert error.max() < 0.03 * dense.max() and error.mean() < 2e-3 * dense.max()


def test_more_pressure_and_bigger_brush_put_down_more_ink():
    by_pressure = [ink(paint_one(action(pressure=p))) for p in range(10)]
    by_size = [ink(paint_one(action(size=s))) for s in range(6)]
    assert np.all(np.diff(by_pressure) > 0), by_pressure
    assert np.all(np.diff(by_size) > 0), by_size


def test_colour_components_set_the_stroke_colour():
    reds = [paint_one(action(rgb=(r, 0, 19)))[..., 0].min() for r in (0, 10, 19)]
    assert np.all(np.diff(reds) > 0), reds
    canvas = paint_one(action(rgb=(19, 0, 19)))
    darkest = np.unravel_index(np.argmin(canvas[..., 1]), canvas.shape[:2])
    np.testing.assert_allclose(canvas[darkest], [1.0, 0.0, 1.0], atol=0.1)


def test_specs_and_observations_agree():
    env = JaxPaint()
    assert list(env.action_spec()) == list(spec.PAINT_COMPONENTS)
    assert env.action_spec()["control"] == 32 * 32 and env.action_spec()["pressure"] == 10
    obs = env.reset()
    for name, array_spec in env.observation_spec().items():
        value = getattr(obs, name)
        assert value.shape == array_spec.shape and value.dtype == array_spec.dtype, name
    np.testing.assert_array_equal(obs.last_action, np.zeros(8, np.int32))
    assert obs.step == 0 and not obs.done
    act = action(rgb=(3, 4, 5))
    obs = env.step(act)
    np.testing.assert_array_equal(obs.last_action, spec.validate_action(act, env.action_spec()))
    assert obs.step == 1 and obs.canvas.min() >= 0.0 and obs.canvas.max() <= 1.0


def test_grayscale_paints_black_on_one_channel():
    env = JaxPaint(GRAY)
    assert list(env.action_spec()) == ["control", "end", "flag", "pressure", "size"]
    assert env.observation_spec()["canvas"].shape == (64, 64, 1)
    env.reset()
    canvas = env.step(action(config=GRAY)).canvas
    assert canvas.shape == (64, 64, 1) and canvas.min() < 0.1


def test_rendering_is_deterministic():
    rng = np.random.default_rng(0)
    episode = random_actions(rng, CONFIG, (5,))
    canvases = []
    for _ in range(2):
        env = JaxPaint()
        env.reset(seed=0)
        for act in episode:
            obs = env.step(spec.action_from_array(act, env.action_spec()))
        canvases.append(obs.canvas)
    np.testing.assert_array_equal(*canvases)


def test_bad_actions_and_misuse_raise_clear_errors():
    env = JaxPaint()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(action())
    env.reset()
    with pytest.raises(KeyError, match="missing \\['blue'\\]"):
        env.step({k: v for k, v in action().items() if k != "blue"})
    with pytest.raises(ValueError, match="out of range"):
        env.step(action(pressure=10))
    with pytest.raises(TypeError, match="integer"):
        env.step({**action(), "flag": 0.5})
    batched = JaxPaint(batch_size=2)
    batched.reset()
    with pytest.raises(ValueError, match="shape"):
        batched.step(np.zeros((3, 8), np.int32))
    with pytest.raises(ValueError, match="shape \\(2,\\)"):
        batched.step({k: np.zeros(3, np.int32) for k in batched.action_spec()})
    with pytest.raises(ValueError, match="'size'\\] = 6 at batch index 1"):
        batched.step(np.array([[0] * 8, [0, 0, 0, 0, 6, 0, 0, 0]], np.int32))
    with pytest.raises(TypeError, match="integers"):
        batched.step(np.zeros((2, 8), np.float32))
    short = JaxPaint(PaintConfig(episode_length=2))
    short.reset()
    short.step(action())
    assert short.step(action()).done
    with pytest.raises(RuntimeError, match="episode is over"):
        short.step(action())


def test_scanned_jitted_episode_equals_stepping_the_wrapper():
    config = PaintConfig(episode_length=6)
    episode = random_actions(np.random.default_rng(1), config, (6, 1))

    @jax.jit
    def run(actions):
        def body(state, act):
            state = jax_paint.render_step(config, state, act)
            return state, jax_paint.observe(state, config)

        return jax.lax.scan(body, jax_paint.init_state(config, 1), actions)

    final, trajectory = run(jnp.asarray(episode))
    env = JaxPaint(config)
    env.reset()
    for t, act in enumerate(episode[:, 0]):
        obs = env.step(spec.action_from_array(act, env.action_spec()))
        np.testing.assert_allclose(trajectory.canvas[t, 0], obs.canvas, atol=1e-6)
        assert trajectory.step[t, 0] == obs.step and trajectory.done[t, 0] == obs.done
    assert bool(trajectory.done[-1, 0]) and not bool(trajectory.done[-2, 0])
    np.testing.assert_allclose(final.canvas[0], obs.canvas, atol=1e-6)


def test_batched_and_vmapped_renders_equal_single_renders():
    rng = np.random.default_rng(2)
    first, second = random_actions(rng, CONFIG, (2, 4))
    first[:, 2], second[:, 2] = 1, 1  # strokes, so every canvas differs
    render = jax.jit(functools.partial(jax_paint.render_step, CONFIG))
    state = render(jax_paint.init_state(CONFIG, 4), first)
    batched = render(state, {k: second[:, i] for i, k in enumerate(spec.PAINT_COMPONENTS)})
    for b in range(4):
        single = jax_paint.init_state(CONFIG, 1)
        single = render(render(single, first[b : b + 1]), second[b : b + 1])
        np.testing.assert_allclose(batched.canvas[b], single.canvas[0], atol=1e-5)
    vmapped = jax.vmap(render)(
        jax.tree.map(lambda x: x[:, None], state), jnp.asarray(second)[:, None]
    )
    np.testing.assert_allclose(vmapped.canvas[:, 0], batched.canvas, atol=1e-5)
    assert isinstance(vmapped, PaintState)


def test_stroke_after_a_jump_starts_at_the_jump_end_point():
    env = JaxPaint()
    env.reset()
    env.step(action(end=(5, 25), flag=0))  # jump to (x, y) = (51, 11)
    canvas = env.step(action(control=(5, 27), end=(5, 29), size=1)).canvas[..., 0]
    assert canvas[11, 51] < 0.5, "the stroke starts where the jump ended"
    assert canvas[11, 11] == pytest.approx(1.0) and canvas[51, 51] == pytest.approx(1.0)
