"""SPIRAL's public API: `init`, `loss`, `critic_loss`, `update`, `predict` from `thesis_jax.spiral`.

The first test is what another codebase writes: import the names, build a state from a preset,
jit `update` as it is (no partials: every static choice lives in the state's hparams) and loop.
The others run each pure function jitted and eagerly (the shared `variant` fixture) and check
what it computes against the networks it is made of.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.spiral.tiny import tiny_config
from thesis_jax.spiral import train

BATCH = 8
STATICS = ("apply_fn", "hparams")


def _targets() -> np.ndarray:
    images = np.ones((BATCH, 16, 16, 1), np.float32)
    for i in range(BATCH):
        images[i, 2 + i : 4 + i, 3:13] = 0.0  # a horizontal bar per target
    return images


def _policy(state: train.SpiralState) -> dict:
    """The keywords of the policy's functions (`predict`, `loss`)."""
    return {"apply_fn": state.policy.apply_fn, "hparams": state.hparams}


def _critic(state: train.SpiralState) -> dict:
    """The keywords of `critic_loss`."""
    return {"apply_fn": state.critic.apply_fn, "hparams": state.hparams}


@pytest.fixture(scope="module")
def state() -> train.SpiralState:
    return train.init(jax.random.PRNGKey(0), tiny_config())


@pytest.fixture(scope="module")
def episodes(state) -> dict:
    """Episodes the policy painted for `_targets()`, with their targets: a batch for `loss`."""
    predict = jax.jit(train.predict, static_argnames=STATICS)
    painted = predict(
        state.policy.params,
        {"target": _targets()},
        **_policy(state),
        rng=jax.random.PRNGKey(1),
    )
    return {**painted, "target": jnp.asarray(_targets())}


def test_another_codebase_trains_with_init_and_a_jitted_update():
    from thesis_jax.spiral import init, loss, predict, update

    state = init(jax.random.PRNGKey(0), tiny_config())
    step = jax.jit(chex.assert_max_traces(update, n=1))  # one compilation for the whole loop
    for _ in range(3):
        state, metrics = step(state, {"target": _targets()})
    assert int(state.step) == 3 and int(state.replay.size) == 3 * BATCH
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    statics = ("apply_fn", "hparams")
    painted = jax.jit(predict, static_argnames=statics)(
        state.policy.params,
        {"target": _targets()},
        apply_fn=state.policy.apply_fn,
        hparams=state.hparams,
        rng=jax.random.PRNGKey(4),
    )
    value, (loss_metrics, _) = jax.jit(loss, static_argnames=statics)(
        state.policy.params,
        {**painted, "target": _targets()},
        jax.random.PRNGKey(5),
        apply_fn=state.policy.apply_fn,
        hparams=state.hparams,
        model_state={"critic": state.critic.params},
    )
    assert np.isfinite(float(value)) and "l2" in loss_metrics


def test_predict_paints_batch_major_episodes_from_a_blank_canvas(state, variant):
    predict = variant(train.predict, static_argnames=STATICS)
    out = predict(
        state.policy.params,
        {"target": _targets()},
        **_policy(state),
        rng=jax.random.PRNGKey(1),
    )
    steps, components = state.hparams.episode_length, len(state.hparams.action_spec)
    chex.assert_shape(out["canvases"], (BATCH, steps, 16, 16, 1))
    chex.assert_shape(out["actions"], (BATCH, steps, components))
    chex.assert_shape(out["final_canvas"], (BATCH, 16, 16, 1))
    chex.assert_shape(out["log_prob"], (BATCH, steps))
    np.testing.assert_array_equal(out["canvases"][:, 0], 1.0)  # episodes start blank
    np.testing.assert_array_equal(out["last_actions"][:, 1:], out["actions"][:, :-1])
    assert np.all(np.asarray(out["log_prob"]) <= 0.0)


def test_loss_rewards_the_final_canvas_with_the_critic(state, episodes, variant):
    loss = variant(train.loss, static_argnames=STATICS)
    value, (metrics, model_state) = loss(
        state.policy.params,
        episodes,
        jax.random.PRNGKey(2),
        **_policy(state),
        model_state={"critic": state.critic.params},
    )
    d = state.critic.apply_fn(state.critic.params, episodes["final_canvas"], episodes["target"])
    np.testing.assert_allclose(metrics["reward"], jnp.mean(d), rtol=1e-5, atol=1e-6)  # eq. 6.3.4
    np.testing.assert_allclose(value, metrics["loss"], rtol=1e-6)
    assert model_state.keys() == {"critic"}  # handed back as it came


def test_loss_checks_its_batch_at_entry(state, episodes, variant):
    loss = variant(train.loss, static_argnames=STATICS)
    time_major = {**episodes, "canvases": episodes["canvases"][:, :, :, :, 0]}
    with pytest.raises(AssertionError, match="rank"):
        loss(
            state.policy.params,
            time_major,
            jax.random.PRNGKey(2),
            **_policy(state),
            model_state={"critic": state.critic.params},
        )
    with pytest.raises(ValueError, match="critic reward needs model_state"):
        train.loss(
            state.policy.params,
            episodes,
            jax.random.PRNGKey(2),
            **_policy(state),
        )


def test_critic_loss_scores_real_above_fake_in_its_metrics(state, episodes, variant):
    critic_loss = variant(train.critic_loss, static_argnames=STATICS)
    batch = {
        "real": episodes["target"],
        "fake": episodes["final_canvas"],
        "condition": episodes["target"],
    }
    value, (metrics, _) = critic_loss(
        state.critic.params,
        batch,
        jax.random.PRNGKey(3),
        **_critic(state),
    )
    apply = state.critic.apply_fn
    d_real = jnp.mean(apply(state.critic.params, batch["real"], batch["condition"]))
    d_fake = jnp.mean(apply(state.critic.params, batch["fake"], batch["condition"]))
    np.testing.assert_allclose(metrics["d_real"], d_real, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["d_fake"], d_fake, rtol=1e-5, atol=1e-6)
    assert np.isfinite(float(value)) and float(metrics["gradient_penalty"]) >= 0.0
    with pytest.raises(AssertionError):
        critic_loss(
            state.critic.params,
            {**batch, "fake": batch["fake"][:4]},
            jax.random.PRNGKey(3),
            **_critic(state),
        )


def test_update_learns_from_painted_episodes(state, episodes):
    """The host-renderer path; `{"target"}` alone (JaxPaint in the step) is the loop above.

    Jitted only: `update` is `loss` and `critic_loss`, each run eagerly above; op by op, the
    whole step would compile some hundred programs for nothing new.
    """
    update = jax.jit(train.update)
    new, metrics = update(state, episodes)
    assert int(new.step) == 1 and int(new.policy.step) == 1 and int(new.critic.step) == 1
    assert int(new.replay.size) == BATCH
    np.testing.assert_array_equal(new.replay.data["canvas"][:BATCH], episodes["final_canvas"])
    assert {"policy/loss", "policy/l2", "critic/loss"} <= set(metrics)
    assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
    with pytest.raises(AssertionError, match="rank"):
        update(state, {"target": episodes["target"][0]})
