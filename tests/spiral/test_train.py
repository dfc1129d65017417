"""SPIRAL's learners (`thesis_jax.spiral.train`) on a tiny canvas: shapes, rewards, learning.

A 16x16 canvas, an 8x8 grid and 3-step episodes keep compilation short; the functions are the
same ones the presets run.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.spiral.tiny import tiny_config
from thesis_jax.spiral import actors, train
from thesis_jax.spiral.envs import BatchedEnv, LibMyPaint, spec

PAINT = spec.PaintConfig(canvas_size=16, grid_size=8, episode_length=3, grayscale=True)
BATCH = 8


def _state(**overrides) -> train.SpiralState:
    return train.init(jax.random.PRNGKey(0), tiny_config(**overrides))


def _rollout(state, targets, rng):
    return train.rollout(
        state.policy.params,
        targets,
        rng,
        apply_fn=state.policy.apply_fn,
        hparams=state.hparams,
    )


def _targets(seed: int = 0) -> jnp.ndarray:
    rng = np.random.default_rng(seed)
    images = np.ones((BATCH, 16, 16, 1), np.float32)
    for i, row in enumerate(rng.integers(3, 13, BATCH)):
        images[i, row - 1 : row + 1, 2:14] = 0.0  # a horizontal bar per target
    return jnp.asarray(images)


@functools.cache
def _update():
    return jax.jit(train.update)


def test_rollout_paints_valid_episodes_with_jax_paint():
    state = _state()
    assert state.hparams.paint == PAINT
    trajectory = actors.jax_paint_rollout(state, _targets(), jax.random.PRNGKey(1))
    assert trajectory.canvases.shape == (3, BATCH, 16, 16, 1)
    assert trajectory.actions.shape == (3, BATCH, len(spec.paint_action_spec(PAINT)))
    np.testing.assert_array_equal(trajectory.canvases[0], 1.0)  # episodes start blank
    np.testing.assert_array_equal(trajectory.last_actions[0], 0)
    np.testing.assert_array_equal(trajectory.last_actions[1:], trajectory.actions[:-1])
    for row in np.asarray(trajectory.actions).reshape(-1, trajectory.actions.shape[-1]):
        spec.validate_action(
            spec.action_from_array(row, spec.paint_action_spec(PAINT)),
            spec.paint_action_spec(PAINT),
        )


@pytest.mark.parametrize("reward", ["critic", "l2"])
def test_update_steps_both_learners_and_fills_the_replay(reward):
    state = _state(reward=reward)
    new, metrics = _update()(state, {"target": _targets()})
    assert int(new.step) == 1 and int(new.policy.step) == 1
    assert int(new.replay.size) == BATCH
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    assert "policy/l2" in metrics
    changed = jax.tree.map(
        lambda a, b: bool(jnp.any(a != b)), state.policy.params, new.policy.params
    )
    assert any(jax.tree.leaves(changed))
    critic_changed = any(
        jax.tree.leaves(
            jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.critic.params, new.critic.params)
        )
    )
    assert critic_changed == (reward == "critic")  # the l2 reward trains no critic
    if reward == "critic":
        assert {"critic/d_real", "critic/d_fake", "critic/gradient_penalty"} <= set(metrics)


def test_the_l2_reward_is_the_negative_distance_to_the_target():
    state = _state(reward="l2")
    trajectory = _rollout(state, _targets(), jax.random.PRNGKey(2))
    reward, aux, metrics = train.final_rewards(
        state.critic.params,
        trajectory.final_canvas,
        _targets(),
        trajectory.actions,
        hparams=state.hparams,
    )
    distance = np.sqrt(((trajectory.final_canvas - _targets()) ** 2).sum(axis=(1, 2, 3)))
    np.testing.assert_allclose(reward, -distance / np.sqrt(16 * 16), rtol=1e-5)
    np.testing.assert_allclose(metrics["l2"], distance.mean(), rtol=1e-5)
    np.testing.assert_array_equal(aux, 0.0)


@pytest.mark.parametrize("reward", ["critic", "l2"])
def test_step_rewards_credit_each_stroke_with_its_change_and_sum_to_the_final_reward(reward):
    state = _state(reward=reward, step_rewards=True)
    trajectory = _rollout(state, _targets(), jax.random.PRNGKey(3))
    shaping = train.step_reward_shaping(
        state.critic.params, trajectory.canvases, _targets(), hparams=state.hparams
    )
    assert shaping.shape == (3, BATCH)

    def potential(canvas):
        return train.reward_potential(
            state.critic.params, canvas, _targets(), hparams=state.hparams
        )

    # F_t = Phi(C_{t+1}) - Phi(C_t) for t < N - 1, and -Phi(C_{N-1}) at the last step.
    np.testing.assert_allclose(
        shaping[0], potential(trajectory.canvases[1]) - potential(trajectory.canvases[0]), atol=1e-5
    )
    np.testing.assert_allclose(shaping[-1], -potential(trajectory.canvases[-1]), atol=1e-5)
    final = potential(trajectory.final_canvas)
    rewards = np.asarray(train.losses.final_step_rewards(final, 3) + shaping)
    blank = potential(jnp.ones_like(_targets()))  # every episode starts from a white canvas
    np.testing.assert_allclose(rewards.sum(0), final - blank, atol=1e-5)
    np.testing.assert_allclose(rewards[-1], final - potential(trajectory.canvases[-1]), atol=1e-5)

    batch = train.trajectory_batch(trajectory, _targets(), xp=jnp)
    values = [
        train.loss(
            state.policy.params,
            batch,
            None,
            apply_fn=state.policy.apply_fn,
            hparams=state.hparams._replace(step_rewards=shaped, discount=0.9),
            model_state={"critic": state.critic.params},
        )[0]
        for shaped in (False, True)
    ]
    assert np.all(np.isfinite(values)) and values[0] != values[1]


def test_auxiliary_rewards_penalise_stroke_starts_and_blank_canvases():
    state = _state(stroke_penalty=0.25, empty_penalty=2.0, conditional=False)
    actions = np.zeros((3, BATCH, len(spec.paint_action_spec(PAINT))), np.int32)
    actions[:, :, 2] = [[1], [0], [1]]  # flag: paint, jump, paint -> two stroke starts
    blank = jnp.ones((BATCH, 16, 16, 1))
    assert state.hparams.action_spec[2][0] == "flag"
    reward, aux, _ = train.final_rewards(
        state.critic.params, blank, None, jnp.asarray(actions), hparams=state.hparams
    )
    np.testing.assert_allclose(np.asarray(aux)[:, 0], [-0.25, 0.0, -0.25])
    d = state.critic.apply_fn(state.critic.params, blank, None)
    np.testing.assert_allclose(reward, d - 2.0, rtol=1e-5, atol=1e-6)


def test_the_policy_learns_to_lower_l2_on_a_fixed_target():
    """With the l2 reward the episodes get closer to the target within a few dozen steps."""
    state = _state(reward="l2", policy_learning_rate=3e-3, entropy_cost=0.0)
    targets = _targets()
    update = _update()
    history = []
    for _ in range(60):
        state, metrics = update(state, {"target": targets})
        history.append(float(metrics["policy/l2"]))
    first, last = np.mean(history[:10]), np.mean(history[-10:])
    assert last < 0.9 * first, history


def test_host_rollout_with_libmypaint_feeds_update_with_painted_episodes():
    state = _state()
    targets = np.asarray(_targets())
    with BatchedEnv(functools.partial(LibMyPaint, PAINT), BATCH) as env:
        trajectory = actors.host_rollout(state, env, targets, jax.random.PRNGKey(3))
    assert trajectory.canvases.shape == (3, BATCH, 16, 16, 1)
    assert trajectory.final_canvas.shape == (BATCH, 16, 16, 1)
    np.testing.assert_array_equal(trajectory.last_actions[1:], trajectory.actions[:-1])
    batch = train.trajectory_batch(trajectory, targets)
    assert batch["canvases"].shape == (BATCH, 3, 16, 16, 1)  # batch-major for the data mesh
    new, metrics = _update()(state, batch)
    assert int(new.step) == 1 and int(new.replay.size) == BATCH
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics


def test_l2_reward_needs_a_conditional_agent():
    with pytest.raises(ValueError, match="conditional"):
        _state(reward="l2", conditional=False)
    with pytest.raises(ValueError, match="reward must be one of"):
        _state(reward="hinge")


def test_pbt_hyperparameters_are_traced_state_and_a_restore_takes_the_configs():
    """PBT's entropy cost and learning rate (app. A.3) change without compiling `update` again."""
    import chex

    step = jax.jit(chex.assert_max_traces(train.update, n=1))
    moved = []
    for entropy_cost, rate in ((0.01, 0.0), (0.05, 3e-3)):
        state = _state(entropy_cost=entropy_cost, policy_learning_rate=rate)
        assert float(state.tuned.entropy_cost) == pytest.approx(entropy_cost)
        assert float(state.tuned.policy_learning_rate) == pytest.approx(rate)
        after, metrics = step(state, {"target": _targets()})
        assert np.isfinite(float(metrics["policy/loss"]))
        delta = jax.tree.map(
            lambda a, b: jnp.max(jnp.abs(a - b)), after.policy.params, state.policy.params
        )
        moved.append(max(float(d) for d in jax.tree.leaves(delta)))
    assert moved[0] == 0.0 and moved[1] > 0.0  # the step is scaled by the state's rate
    restored = train.with_tuned(after, tiny_config(entropy_cost=0.2, policy_learning_rate=1e-5))
    assert float(restored.tuned.entropy_cost) == pytest.approx(0.2)
    assert float(restored.tuned.policy_learning_rate) == pytest.approx(1e-5)
    chex.assert_trees_all_equal(restored.policy.params, after.policy.params)
