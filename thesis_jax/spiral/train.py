"""SPIRAL's learners as pure functions: `init`, `rollout`, `policy_loss`, `critic_loss`, `update`.

One `update(state, batch)` is one step of both learners of sec. 6.3.4 (fig. 6.2b) in a single
program:

1. actors: the policy paints a batch of episodes (`rollout`: JaxPaint inside the same jit, one
   `lax.scan` over the episode) or the episodes come in `batch` from host environments
   (`host_rollout` over LibMyPaint / MujocoScenes, a step of the parameters behind);
2. policy learner: A2C (eq. 6.3.3) with the reward only at the last step (eq. 6.3.4) from the
   critic D (or -l2 to the target, sec. 6.3.3), plus the auxiliary rewards of sec. 6.4.3/6.4.5,
   and an entropy bonus;
3. the final renders join a replay buffer of 20 batches (app. A.3);
4. critic learner: `critic_steps` WGAN-GP steps (eq. 6.3.1, 6.3.6) on generated images sampled
   from the replay buffer against real data (unconditional) or the targets (conditional).

Everything is a pytree (`SpiralState`), so the step shards over a data mesh like any other
`core` update: the batch axis of the targets is split over devices, parameters are replicated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from thesis_jax.core import TrainState
from thesis_jax.spiral import losses, networks, replay
from thesis_jax.spiral.envs import jax_paint
from thesis_jax.spiral.envs.spec import PaintConfig

REWARDS = ("critic", "l2")
OFF_POLICY = ("none", "vtrace")


class Hparams(NamedTuple):
    """What one SPIRAL update does; static (hashable), part of the state."""

    reward: str = "critic"  # "critic": D(x) or D(x | target); "l2": -||x - target||_2
    conditional: bool = True
    episode_length: int = 20
    policy_learning_rate: float = 1e-4
    entropy_cost: float = 0.01
    baseline_cost: float = losses.BASELINE_COST
    critic_learning_rate: float = 1e-4  # Adam, beta1 = 0.5 (app. A.3)
    critic_steps: int = 1  # critic updates per policy update (sec. 6.3.4)
    gp_weight: float = losses.GRADIENT_PENALTY_WEIGHT
    centre_weight: float = losses.CENTRE_WEIGHT
    replay_batches: int = 20  # replay capacity in batches (app. A.3)
    stroke_penalty: float = 0.0  # per new continuous stroke (MNIST, sec. 6.4.3)
    empty_penalty: float = 0.0  # for an empty final canvas (MNIST, sec. 6.4.3)
    emd_weight: float = 0.0  # colour-histogram EMD to the target (CelebA, sec. 6.4.5)
    max_grad_norm: float = 40.0
    # Episodes painted by an older policy (distributed actors): "none" treats them as on-policy
    # (A2C); "vtrace" reweights them by pi / mu (`losses.vtrace`).
    off_policy: str = "none"


@struct.dataclass
class SpiralState:
    step: jax.Array
    policy: TrainState  # apply_fn: the PolicyNet module
    critic: TrainState  # apply_fn: Critic.apply; unused with the l2 reward
    replay: replay.ReplayState  # {"canvas"} or {"canvas", "target"}
    rng: jax.Array
    hparams: Hparams = struct.field(pytree_node=False)


class Trajectory(NamedTuple):
    """Episodes, time-major: what the policy saw and did at each of T steps."""

    canvases: jax.Array  # float [T, B, H, W, C], the canvas before each action
    last_actions: jax.Array  # int32 [T, B, num_components]
    actions: jax.Array  # int32 [T, B, num_components]
    final_canvas: jax.Array  # float [B, H, W, C], the render R(a_1..a_N)
    log_prob: jax.Array | None = None  # float [T, B], log mu(a_t | s_t) of the painting policy


def init(
    rng: jax.Array,
    action_spec: Mapping[str, int],
    image_shape: tuple[int, int, int],
    hparams: Hparams = Hparams(),  # noqa: B008 - an immutable NamedTuple
    policy_config: networks.PolicyConfig | None = None,
    critic_channels: tuple[int, ...] = (64, 128, 256, 512),
    batch_size: int = 64,
) -> SpiralState:
    """Fresh policy, critic (Adam 1e-4, beta1 0.5) and an empty replay buffer."""
    if hparams.reward not in REWARDS:
        raise ValueError(f"reward must be one of {REWARDS}, got {hparams.reward!r}")
    if hparams.reward == "l2" and not hparams.conditional:
        raise ValueError("the l2 reward needs a target: use it with conditional=True")
    if hparams.off_policy not in OFF_POLICY:
        raise ValueError(f"off_policy must be one of {OFF_POLICY}, got {hparams.off_policy!r}")
    policy_config = policy_config or networks.PolicyConfig()
    policy_config = policy_config._replace(conditional=hparams.conditional)
    module = networks.make_policy(action_spec, policy_config)
    policy_rng, critic_rng, rng = jax.random.split(rng, 3)
    policy_tx = optax.chain(
        optax.clip_by_global_norm(hparams.max_grad_norm), optax.adam(hparams.policy_learning_rate)
    )
    policy = TrainState.create(
        params=networks.init_policy(policy_rng, module, image_shape),
        tx=policy_tx,
        apply_fn=module,
        rng=policy_rng,
    )
    critic_module = networks.Critic(conditional=hparams.conditional, channels=critic_channels)
    critic_params = networks.init_critic(critic_rng, critic_module, image_shape)
    critic = TrainState.create(
        params=critic_params,
        tx=optax.adam(hparams.critic_learning_rate, b1=0.5),
        apply_fn=critic_module.apply,
        rng=critic_rng,
    )
    example = {"canvas": jax.ShapeDtypeStruct(image_shape, jnp.float32)}
    if hparams.conditional:
        example["target"] = jax.ShapeDtypeStruct(image_shape, jnp.float32)
    buffer = replay.replay_init_like(hparams.replay_batches * batch_size, example)
    return SpiralState(
        step=jnp.zeros((), jnp.int32),
        policy=policy,
        critic=critic,
        replay=buffer,
        rng=rng,
        hparams=hparams,
    )


def _inputs(canvas, last_action, target, conditional: bool) -> networks.PolicyInputs:
    return networks.PolicyInputs(canvas, last_action, target if conditional else None)


def rollout(
    state: SpiralState,
    paint_config: PaintConfig,
    targets: jax.Array,
    rng: jax.Array,
    params: Any = None,
) -> Trajectory:
    """Paints `targets.shape[0]` episodes with JaxPaint, all inside one `lax.scan` (jit it).

    `targets` are the images to reconstruct (conditional) or only set the batch size.
    """
    module: networks.PolicyNet = state.policy.apply_fn
    params = state.policy.params if params is None else params
    batch = targets.shape[0]
    conditional = state.hparams.conditional

    def body(carry, step_rng):
        paint, lstm = carry
        inputs = _inputs(paint.canvas, paint.last_action, targets, conditional)
        out = networks.policy_step(params, module, inputs, lstm, step_rng)
        actions = jax.lax.stop_gradient(out.actions)
        next_paint = jax_paint.render_step(paint_config, paint, actions)
        return (next_paint, out.carry), (paint.canvas, paint.last_action, actions, out.log_prob)

    start = (
        jax_paint.init_state(paint_config, batch),
        networks.initial_carry(batch, module.config.lstm_size),
    )
    rngs = jax.random.split(rng, state.hparams.episode_length)
    (final, _), (canvases, last_actions, actions, log_prob) = jax.lax.scan(body, start, rngs)
    return Trajectory(canvases, last_actions, actions, final.canvas, log_prob)


def host_rollout(
    state: SpiralState,
    env: Any,
    targets: np.ndarray | None,
    rng: jax.Array,
    step_fn: Callable[..., networks.PolicyOutput] | None = None,
) -> Trajectory:
    """Paints one episode per environment of a `BatchedEnv` (LibMyPaint, MujocoScenes).

    The policy runs jitted (`step_fn`, default `jax.jit(networks.policy_step, static_argnums=1)`)
    and the renderer on the host, one call per step. Returns numpy arrays, time-major.
    """
    module: networks.PolicyNet = state.policy.apply_fn
    step_fn = step_fn or _jitted_policy_step
    names = list(env.action_spec())
    observation = env.reset()
    batch = observation.canvas.shape[0]
    carry = networks.initial_carry(batch, module.config.lstm_size)
    canvases, last_actions, actions, log_probs = [], [], [], []
    for step_rng in jax.random.split(rng, state.hparams.episode_length):
        inputs = _inputs(
            jnp.asarray(observation.canvas),
            jnp.asarray(observation.last_action),
            None if targets is None else jnp.asarray(targets),
            state.hparams.conditional,
        )
        out = step_fn(state.policy.params, module, inputs, carry, step_rng)
        carry = out.carry
        chosen = np.asarray(out.actions)
        canvases.append(observation.canvas)
        last_actions.append(observation.last_action)
        actions.append(chosen)
        log_probs.append(np.asarray(out.log_prob))
        observation = env.step({name: chosen[:, i] for i, name in enumerate(names)})
    return Trajectory(
        np.stack(canvases).astype(np.float32),
        np.stack(last_actions).astype(np.int32),
        np.stack(actions).astype(np.int32),
        np.asarray(observation.canvas, np.float32),
        np.stack(log_probs).astype(np.float32),
    )


_jitted_policy_step = jax.jit(networks.policy_step, static_argnums=1)


def final_rewards(
    state: SpiralState,
    critic_params: Any,
    final_canvas: jax.Array,
    targets: jax.Array | None,
    flag_index: int | None,
    actions: jax.Array,
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    """(final reward [B], per-step auxiliary rewards [T, B], metrics) of eq. (6.3.4)."""
    hp = state.hparams
    conditional_target = targets if hp.conditional else None
    if hp.reward == "critic":
        d = state.critic.apply_fn(critic_params, final_canvas, conditional_target)
        reward = losses.critic_reward(d)
    else:  # -||x - target||_2 per pixel (RMS), so its scale does not grow with the canvas
        reward = losses.l2_reward(final_canvas, targets) / np.sqrt(np.prod(final_canvas.shape[1:]))
    metrics = {"reward": jnp.mean(reward)}
    if hp.empty_penalty:
        reward = reward + losses.empty_canvas_penalty(final_canvas, hp.empty_penalty)
    if hp.emd_weight and targets is not None:
        emd = losses.color_histogram_emd(final_canvas, targets)
        reward = reward - hp.emd_weight * emd
        metrics["color_emd"] = jnp.mean(emd)
    aux = jnp.zeros(actions.shape[:2], jnp.float32)
    if hp.stroke_penalty and flag_index is not None:
        aux = losses.stroke_start_penalty(actions[..., flag_index], hp.stroke_penalty)
    if targets is not None and targets.shape == final_canvas.shape:
        diff = (final_canvas - targets).reshape(final_canvas.shape[0], -1)
        metrics["l2"] = jnp.mean(jnp.sqrt(jnp.sum(diff**2, axis=1)))
    return jax.lax.stop_gradient(reward), jax.lax.stop_gradient(aux), metrics


def policy_loss(
    params: Any,
    state: SpiralState,
    trajectory: Trajectory,
    targets: jax.Array | None,
    flag_index: int | None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """A2C (eq. 6.3.3) on stored episodes; log-probabilities recomputed with `unroll`."""
    hp = state.hparams
    module: networks.PolicyNet = state.policy.apply_fn
    log_prob, entropy, value = networks.unroll(
        params,
        module,
        trajectory.canvases,
        trajectory.last_actions,
        trajectory.actions,
        target=targets if hp.conditional else None,
    )
    reward, aux, metrics = final_rewards(
        state,
        state.critic.params,
        trajectory.final_canvas,
        targets,
        flag_index,
        trajectory.actions,
    )
    rewards = losses.final_step_rewards(reward, hp.episode_length, aux)
    pg_advantages = None
    if hp.off_policy == "vtrace" and trajectory.log_prob is not None:
        corrected = losses.vtrace(trajectory.log_prob, log_prob, rewards, value)
        returns, pg_advantages = corrected.targets, corrected.pg_advantages
        metrics["importance_ratio"] = jnp.mean(corrected.rhos)
    else:
        returns = losses.returns_from_rewards(rewards)
    loss, a2c_metrics = losses.a2c_loss(
        log_prob,
        value,
        returns,
        entropy,
        entropy_cost=hp.entropy_cost,
        baseline_cost=hp.baseline_cost,
        pg_advantages=pg_advantages,
    )
    return loss, {**metrics, **a2c_metrics}


def critic_loss(
    params: Any, state: SpiralState, real: jax.Array, fake: jax.Array, condition, rng
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """WGAN-GP (eq. 6.3.1; eq. 6.3.6 when conditional: real = condition = the targets)."""

    def critic_fn(images, cond):
        return state.critic.apply_fn(params, images, cond)

    return losses.wgan_gp_loss(
        critic_fn,
        real,
        fake,
        rng,
        gp_weight=state.hparams.gp_weight,
        centre_weight=state.hparams.centre_weight,
        condition=condition,
    )


def _flag_index(module: networks.PolicyNet) -> int | None:
    names = [name for name, _ in module.action_spec]
    return names.index("flag") if "flag" in names else None


def policy_update(
    state: SpiralState, trajectory: Trajectory, targets: jax.Array | None
) -> tuple[SpiralState, dict[str, jax.Array]]:
    """The policy learner's step: A2C (or V-trace) on `trajectory`, rewarded by `state.critic`.

    Only `state.policy` changes. targets: [B, H, W, C] conditioning images, ignored when the
    policy is unconditional.
    """
    targets = targets if state.hparams.conditional else None
    flag_index = _flag_index(state.policy.apply_fn)
    grad_fn = jax.value_and_grad(policy_loss, has_aux=True)
    (_, metrics), grads = grad_fn(state.policy.params, state, trajectory, targets, flag_index)
    policy = state.policy.apply_gradients(grads)
    return state.replace(policy=policy), {f"policy/{k}": v for k, v in metrics.items()}


def critic_update(
    state: SpiralState, real: jax.Array, fake: jax.Array, condition: jax.Array | None, rng
) -> tuple[SpiralState, dict[str, jax.Array]]:
    """The critic learner's step: one WGAN-GP step on `real` against `fake` (generated) images.

    Only `state.critic` changes. condition: the targets the fakes reconstruct (conditional
    critic, eq. 6.3.6; then `real` is the targets too) or None.
    """
    (_, metrics), grads = jax.value_and_grad(critic_loss, has_aux=True)(
        state.critic.params, state, real, fake, condition, rng
    )
    critic = state.critic.apply_gradients(grads)
    return state.replace(critic=critic), {f"critic/{k}": v for k, v in metrics.items()}


def critic_batch(
    sample: Mapping[str, jax.Array], real: jax.Array | None, conditional: bool
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """(real, fake, condition) for `critic_update` from a replay sample and a real batch."""
    if conditional:
        return sample["target"], sample["canvas"], sample["target"]
    return real, sample["canvas"], None


def learn(
    state: SpiralState, trajectory: Trajectory, targets: jax.Array, real: jax.Array | None
) -> tuple[SpiralState, dict[str, jax.Array]]:
    """Policy step on `trajectory`, replay insert, then `critic_steps` critic steps.

    targets: [B, H, W, C] conditioning images (conditional) or None; real: a batch of real data
    for the unconditional critic (ignored when conditional: the targets are the real data).
    """
    hp = state.hparams
    targets = targets if hp.conditional else None
    state, metrics = policy_update(state, trajectory, targets)
    generated = {"canvas": trajectory.final_canvas}
    if hp.conditional:
        generated["target"] = targets
    state = state.replace(replay=replay.replay_add(state.replay, generated))
    rng = state.rng
    if hp.reward == "critic":
        batch = trajectory.final_canvas.shape[0]
        for _ in range(hp.critic_steps):
            rng, sample_rng, gp_rng = jax.random.split(rng, 3)
            sample = replay.replay_sample(state.replay, sample_rng, batch)
            state, critic_metrics = critic_update(
                state, *critic_batch(sample, real, hp.conditional), gp_rng
            )
        metrics.update(critic_metrics)
    return state.replace(step=state.step + 1, rng=rng), metrics


def update(
    state: SpiralState, batch: Mapping[str, jax.Array], paint_config: PaintConfig
) -> tuple[SpiralState, dict[str, jax.Array]]:
    """One SPIRAL step with JaxPaint actors inside the program (`functools.partial` the config).

    batch: {"target": [B, H, W, C]} images to reconstruct (conditional) or real data
    (unconditional; the policy then paints B episodes from scratch).
    """
    rng, rollout_rng = jax.random.split(state.rng)
    targets = batch["target"]
    trajectory = rollout(state, paint_config, targets, rollout_rng)
    state = state.replace(rng=rng)
    return learn(state, trajectory, targets, real=targets)


def update_from_trajectories(
    state: SpiralState, batch: Mapping[str, jax.Array]
) -> tuple[SpiralState, dict[str, jax.Array]]:
    """One SPIRAL step on episodes painted by host environments (`host_rollout`).

    batch: batch-major arrays (so a data mesh splits episodes, not time) — "target" [B, ...],
    "canvases" [B, T, H, W, C], "last_actions" / "actions" [B, T, num_components],
    "final_canvas" [B, H, W, C], optionally "log_prob" [B, T] (the painting policy's, for
    V-trace).
    """
    time_major = lambda x: jnp.swapaxes(x, 0, 1)
    trajectory = Trajectory(
        time_major(batch["canvases"]),
        time_major(batch["last_actions"]),
        time_major(batch["actions"]),
        batch["final_canvas"],
        time_major(batch["log_prob"]) if "log_prob" in batch else None,
    )
    return learn(state, trajectory, batch["target"], real=batch["target"])


def trajectory_batch(trajectory: Trajectory, targets: np.ndarray) -> dict[str, np.ndarray]:
    """A host `Trajectory` as the batch-major dict `update_from_trajectories` takes."""
    batch_major = lambda x: np.swapaxes(np.asarray(x), 0, 1)
    return {
        "target": np.asarray(targets, np.float32),
        "canvases": batch_major(trajectory.canvases),
        "last_actions": batch_major(trajectory.last_actions),
        "actions": batch_major(trajectory.actions),
        "final_canvas": np.asarray(trajectory.final_canvas, np.float32),
        **(
            {}
            if trajectory.log_prob is None
            else {"log_prob": batch_major(trajectory.log_prob).astype(np.float32)}
        ),
    }
