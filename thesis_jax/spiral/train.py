"""SPIRAL's learners as pure functions: `init`, `loss`, `critic_loss`, `update`, `predict`.

One `update(state, batch)` is one step of both learners of sec. 6.3.4 (fig. 6.2b) in a single
program:

1. actors: the policy paints a batch of episodes (`rollout`: JaxPaint inside the same jit, one
   `lax.scan` over the episode), or the episodes come in `batch`, painted by host environments
   (`actors.host_rollout` over LibMyPaint / MujocoScenes, a step of the parameters behind);
2. policy learner: A2C (eq. 6.3.3) with the reward only at the last step (eq. 6.3.4) from the
   critic D (or -l2 to the target, sec. 6.3.3), or at every step as the change of that score
   (`Hparams.step_rewards`), plus the auxiliary rewards of sec. 6.4.3/6.4.5, and an entropy
   bonus (`loss`);
3. the final renders join a replay buffer of 20 batches (app. A.3);
4. critic learner: `critic_steps` WGAN-GP steps (eq. 6.3.1, 6.3.6; `critic_loss`) on generated
   images sampled from the replay buffer against real data (unconditional) or the targets
   (conditional).

Batches are dicts of batch-major arrays (a data mesh splits episodes, never time):

    {"target": [B, H, W, C]}   images to reconstruct (conditional) or real data (unconditional;
                               the policy then paints B episodes from scratch); `update` paints
                               the episodes with JaxPaint inside the step
    + "canvases" [B, T, H, W, C] (the canvas before each action), "last_actions" and "actions"
      int32 [B, T, num_components], "final_canvas" [B, H, W, C], optionally "log_prob" [B, T]
      (the painting policy's, for V-trace): episodes painted elsewhere; `loss` takes these

Everything static (the renderer's `PaintConfig`, the action spec, network sizes, the reward and
loss variants) is in the hashable `Hparams` of the state, and the TrainStates hold the networks'
`apply` functions, so `update(state, batch)` is the whole signature and jit caches once. The
state is a pytree, so the step shards over a data mesh like any other `core` update.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from thesis_jax.core import TrainState, parallel
from thesis_jax.spiral import losses, networks, renderers, replay
from thesis_jax.spiral.envs import jax_paint
from thesis_jax.spiral.envs.spec import PaintConfig

REWARDS = ("critic", "l2")
DEFAULT_ENTROPY_COST = 0.01
OFF_POLICY = ("none", "vtrace")
ActionSpecTuple = tuple[tuple[str, int], ...]


class Hparams(NamedTuple):
    """What one SPIRAL update does; static (hashable), part of the state."""

    reward: str = "critic"  # "critic": D(x) or D(x | target); "l2": -||x - target||_2
    conditional: bool = True
    episode_length: int = 20
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
    # Temporal credit assignment (Mellor et al. 2019, SPIRAL's follow-up): reward every step by
    # how much it raised the reward's potential, r_t = Phi(C_{t+1}) - Phi(C_t) with Phi the
    # critic's score (or -l2), instead of Phi(C_N) at the last step alone. With discount 1 the
    # returns differ from eq. (6.3.4)'s only by -Phi(C_t), a baseline; a discount < 1 then credits
    # each stroke mostly with its own improvement.
    step_rewards: bool = False
    discount: float = 1.0
    # Episodes painted by an older policy (distributed actors): "none" treats them as on-policy
    # (A2C); "vtrace" reweights them by pi / mu (`losses.vtrace`).
    off_policy: str = "none"
    # The agent: its action components (spec order), canvases, networks and renderer.
    action_spec: ActionSpecTuple = ()
    image_shape: tuple[int, int, int] = (64, 64, 1)
    policy: networks.PolicyConfig = networks.DEFAULT_CONFIG
    critic_channels: tuple[int, ...] = (64, 128, 256, 512)
    paint: PaintConfig | None = None  # JaxPaint paints inside `update`; None: a host renderer


class Tuned(NamedTuple):
    """The hyperparameters PBT explores (app. A.3), float32 scalars in the state: traced, so a
    member that changes them reuses the compiled `update`."""

    entropy_cost: jax.Array
    policy_learning_rate: jax.Array


TUNED = Tuned._fields


def make_tuned(config: Mapping[str, Any]) -> Tuned:
    """`Tuned` with the values of `config` (its `entropy_cost` and `policy_learning_rate`)."""
    return Tuned(*(jnp.asarray(float(config[name]), jnp.float32) for name in TUNED))


@struct.dataclass
class SpiralState:
    step: jax.Array
    policy: TrainState  # apply_fn: PolicyNet.apply; tx: Adam's direction, scaled by `tuned`
    critic: TrainState  # apply_fn: Critic.apply; unused with the l2 reward
    replay: replay.ReplayState  # {"canvas"} or {"canvas", "target"}
    rng: jax.Array
    tuned: Tuned
    hparams: Hparams = struct.field(pytree_node=False)


def with_tuned(state: SpiralState, config: Mapping[str, Any]) -> SpiralState:
    """`state` with the entropy cost and policy learning rate of `config`: on resume the
    command's values win over the checkpoint's (PBT changes them between rounds)."""
    return state.replace(tuned=parallel.placed_like(make_tuned(config), state.tuned))


class Trajectory(NamedTuple):
    """Episodes, time-major: what the policy saw and did at each of T steps."""

    canvases: jax.Array  # float [T, B, H, W, C], the canvas before each action
    last_actions: jax.Array  # int32 [T, B, num_components]
    actions: jax.Array  # int32 [T, B, num_components]
    final_canvas: jax.Array  # float [B, H, W, C], the render R(a_1..a_N)
    log_prob: jax.Array | None = None  # float [T, B], log mu(a_t | s_t) of the painting policy


def _tuples(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def make_hparams(config: ml_collections.ConfigDict) -> Hparams:
    """The static hyperparameters of a preset (see experiments/configs/spiral.py)."""
    if config.reward not in REWARDS:
        raise ValueError(f"reward must be one of {REWARDS}, got {config.reward!r}")
    if config.reward == "l2" and not config.conditional:
        raise ValueError("the l2 reward needs a target: use it with conditional=True")
    if config.off_policy not in OFF_POLICY:
        raise ValueError(f"off_policy must be one of {OFF_POLICY}, got {config.off_policy!r}")
    policy = {k: _tuples(v) for k, v in config.policy.to_dict().items()}
    return Hparams(
        reward=config.reward,
        conditional=config.conditional,
        episode_length=config.episode_length,
        critic_learning_rate=config.critic_learning_rate,
        critic_steps=config.critic_steps,
        stroke_penalty=config.stroke_penalty,
        empty_penalty=config.empty_penalty,
        emd_weight=config.emd_weight,
        step_rewards=config.step_rewards,
        discount=config.discount,
        off_policy=config.off_policy,
        action_spec=tuple((str(k), int(v)) for k, v in renderers.action_spec(config).items()),
        image_shape=renderers.image_shape(config),
        policy=networks.PolicyConfig(**policy)._replace(conditional=config.conditional),
        critic_channels=tuple(config.critic_channels),
        paint=renderers.paint_config(config) if config.renderer == "jax_paint" else None,
    )


@functools.cache
def policy_net(action_spec: ActionSpecTuple, config: networks.PolicyConfig) -> networks.PolicyNet:
    """The policy module (one object per spec and config: equal hparams give equal apply_fns,
    so a jitted `update` compiles once for every state built from the same preset)."""
    return networks.make_policy(dict(action_spec), config)


@functools.cache
def critic_net(conditional: bool, channels: tuple[int, ...]) -> networks.Critic:
    """The critic module D(x) or D(x | target) (one object per setting, like `policy_net`)."""
    return networks.Critic(conditional=conditional, channels=channels)


def _jitted_init(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """`tx` whose state is made by one compiled program, not an eager op per parameter shape."""
    return optax.GradientTransformation(jax.jit(tx.init), tx.update)


@functools.cache
def policy_optimizer(max_grad_norm: float) -> optax.GradientTransformation:
    """Adam's direction on globally clipped gradients; `policy_update` steps it by the state's
    `tuned.policy_learning_rate` (one object per setting, like `policy_net`)."""
    tx = optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.scale_by_adam())
    return _jitted_init(tx)


@functools.cache
def critic_optimizer(learning_rate: float) -> optax.GradientTransformation:
    """Adam with beta1 = 0.5 (app. A.3; one object per setting, like `policy_net`)."""
    return _jitted_init(optax.adam(learning_rate, b1=0.5))


def init(rng: jax.Array, config: ml_collections.ConfigDict) -> SpiralState:
    """Fresh policy (Adam), critic (Adam 1e-4, beta1 0.5) and an empty replay buffer."""
    hp = make_hparams(config)
    module = policy_net(hp.action_spec, hp.policy)
    policy_rng, critic_rng, rng = jax.random.split(rng, 3)
    policy = TrainState.create(
        params=networks.init_policy(policy_rng, module, hp.image_shape),
        tx=policy_optimizer(hp.max_grad_norm),
        apply_fn=module.apply,
        rng=policy_rng,
    )
    critic_module = critic_net(hp.conditional, hp.critic_channels)
    critic = TrainState.create(
        params=networks.init_critic(critic_rng, critic_module, hp.image_shape),
        tx=critic_optimizer(hp.critic_learning_rate),
        apply_fn=critic_module.apply,
        rng=critic_rng,
    )
    example = {"canvas": jax.ShapeDtypeStruct(hp.image_shape, jnp.float32)}
    if hp.conditional:
        example["target"] = jax.ShapeDtypeStruct(hp.image_shape, jnp.float32)
    buffer = replay.replay_init_like(hp.replay_batches * config.batch_size, example)
    return SpiralState(
        step=jnp.zeros((), jnp.int32),
        policy=policy,
        critic=critic,
        replay=buffer,
        rng=rng,
        tuned=make_tuned(config),
        hparams=hp,
    )


def policy_inputs(canvas, last_action, target, conditional: bool) -> networks.PolicyInputs:
    """What the policy sees at one step (the target only when it is conditional)."""
    return networks.PolicyInputs(canvas, last_action, target if conditional else None)


def rollout(
    params: Any,
    targets: jax.Array,
    rng: jax.Array,
    *,
    apply_fn: Callable[..., Any],
    hparams: Hparams,
) -> Trajectory:
    """Paints `targets.shape[0]` episodes with JaxPaint, all inside one `lax.scan` (jit it).

    `targets` are the images to reconstruct (conditional) or only set the batch size.
    """
    chex.assert_rank(targets, 4)
    if hparams.paint is None:
        raise ValueError("this agent paints with a host renderer: use actors.host_rollout")
    batch = targets.shape[0]

    def body(carry, step_rng):
        paint, lstm = carry
        inputs = policy_inputs(paint.canvas, paint.last_action, targets, hparams.conditional)
        out = networks.policy_step(params, apply_fn, inputs, lstm, step_rng)
        actions = jax.lax.stop_gradient(out.actions)
        next_paint = jax_paint.render_step(hparams.paint, paint, actions)
        return (next_paint, out.carry), (paint.canvas, paint.last_action, actions, out.log_prob)

    start = (
        jax_paint.init_state(hparams.paint, batch),
        networks.initial_carry(batch, hparams.policy.lstm_size),
    )
    rngs = jax.random.split(rng, hparams.episode_length)
    (final, _), (canvases, last_actions, actions, log_prob) = jax.lax.scan(body, start, rngs)
    return Trajectory(canvases, last_actions, actions, final.canvas, log_prob)


def trajectory_batch(trajectory: Trajectory, targets: Any, xp: Any = np) -> dict[str, Any]:
    """A time-major `Trajectory` as the batch-major dict `loss` and `update` take.

    numpy arrays by default (episodes painted on the host); `xp=jnp` inside a jitted step.
    """
    batch_major = lambda x: xp.swapaxes(xp.asarray(x), 0, 1)
    batch = {
        "target": xp.asarray(targets, xp.float32),
        "canvases": batch_major(trajectory.canvases),
        "last_actions": batch_major(trajectory.last_actions),
        "actions": batch_major(trajectory.actions),
        "final_canvas": xp.asarray(trajectory.final_canvas, xp.float32),
    }
    if trajectory.log_prob is not None:
        batch["log_prob"] = batch_major(trajectory.log_prob).astype(xp.float32)
    return batch


def predict(
    params: Any,
    batch: Mapping[str, jax.Array],
    *,
    apply_fn: Callable[..., Any],
    hparams: Hparams,
    rng: jax.Array,
) -> dict[str, jax.Array]:
    """The policy paints `batch["target"]` with JaxPaint: batch-major episodes.

    Returns {"final_canvas" [B, H, W, C], "canvases" [B, T, H, W, C] (before each action),
    "last_actions", "actions" [B, T, num_components], "log_prob" [B, T]}; with "target" added it
    is a batch for `loss`.
    """
    chex.assert_rank(batch["target"], 4)
    trajectory = rollout(params, batch["target"], rng, apply_fn=apply_fn, hparams=hparams)
    episodes = trajectory_batch(trajectory, batch["target"], xp=jnp)
    del episodes["target"]
    return episodes


def reward_potential(
    critic_params: Any, canvas: jax.Array, targets: jax.Array | None, *, hparams: Hparams
) -> jax.Array:
    """Phi(canvas) [B]: the critic's score D(x) or D(x | target), or -||x - target||_2 per pixel
    (RMS, so its scale does not grow with the canvas). Eq. (6.3.4) rewards the final canvas by
    it."""
    hp = hparams
    if hp.reward == "critic":
        critic = critic_net(hp.conditional, hp.critic_channels)
        condition = targets if hp.conditional else None
        return losses.critic_reward(critic.apply(critic_params, canvas, condition))
    return losses.l2_reward(canvas, targets) / np.sqrt(np.prod(canvas.shape[1:]))


def final_rewards(
    critic_params: Any,
    final_canvas: jax.Array,
    targets: jax.Array | None,
    actions: jax.Array,
    *,
    hparams: Hparams,
) -> tuple[jax.Array, jax.Array, dict[str, jax.Array]]:
    """(final reward [B], per-step auxiliary rewards [T, B], metrics) of eq. (6.3.4).

    actions: int32 [T, B, num_components], time-major; targets: None for an unconditional agent.
    """
    chex.assert_rank([final_canvas, actions], [4, 3])
    chex.assert_axis_dimension(actions, 1, final_canvas.shape[0])
    hp = hparams
    reward = reward_potential(critic_params, final_canvas, targets, hparams=hp)
    metrics = {"reward": jnp.mean(reward)}
    if hp.empty_penalty:
        reward = reward + losses.empty_canvas_penalty(final_canvas, hp.empty_penalty)
    if hp.emd_weight and targets is not None:
        emd = losses.color_histogram_emd(final_canvas, targets)
        reward = reward - hp.emd_weight * emd
        metrics["color_emd"] = jnp.mean(emd)
    aux = jnp.zeros(actions.shape[:2], jnp.float32)
    names = [name for name, _ in hp.action_spec]
    if hp.stroke_penalty and "flag" in names:
        aux = losses.stroke_start_penalty(actions[..., names.index("flag")], hp.stroke_penalty)
    if targets is not None and targets.shape == final_canvas.shape:
        diff = (final_canvas - targets).reshape(final_canvas.shape[0], -1)
        metrics["l2"] = jnp.mean(jnp.sqrt(jnp.sum(diff**2, axis=1)))
    return jax.lax.stop_gradient(reward), jax.lax.stop_gradient(aux), metrics


def step_reward_shaping(
    critic_params: Any, canvases: jax.Array, targets: jax.Array | None, *, hparams: Hparams
) -> jax.Array:
    """F_t = Phi(C_{t+1}) - Phi(C_t), with Phi = 0 after the last step, [T, B] (`Hparams.
    step_rewards`). Added to eq. (6.3.4)'s rewards, step t earns the change its stroke made and
    the last step Phi(C_N) - Phi(C_{N-1}); over an episode they sum to -Phi(blank canvas).

    canvases: float [T, B, H, W, C], time-major, the canvas before each action.
    """
    chex.assert_rank(canvases, 5)
    steps, batch = canvases.shape[:2]
    if targets is not None:
        targets = jnp.broadcast_to(targets, (steps, *targets.shape))
        targets = targets.reshape(steps * batch, *targets.shape[2:])
    merged = canvases.reshape(steps * batch, *canvases.shape[2:])
    potential = reward_potential(critic_params, merged, targets, hparams=hparams)
    potential = potential.reshape(steps, batch)
    following = jnp.concatenate([potential[1:], jnp.zeros_like(potential[:1])])
    return jax.lax.stop_gradient(following - potential)


def loss(
    params: Any,
    batch: Mapping[str, jax.Array],
    rng: jax.Array,
    *,
    apply_fn: Callable[..., Any],
    hparams: Hparams,
    model_state: Mapping[str, Any] | None = None,
    entropy_cost: jax.Array | float = DEFAULT_ENTROPY_COST,
) -> tuple[jax.Array, tuple[dict[str, jax.Array], Any]]:
    """The policy's A2C loss (eq. 6.3.3; V-trace with `off_policy="vtrace"`) on painted episodes.

    Args:
      params: the policy's parameters.
      batch: batch-major episodes (module docstring); log pi(a_t | s_t) is recomputed by unrolling
        the policy over them.
      rng: unused (the loss is deterministic); there for the common signature.
      apply_fn: the PolicyNet's `apply` (`state.policy.apply_fn`).
      hparams: the state's `Hparams`.
      model_state: {"critic": the critic's parameters}, which reward the final canvases
        (eq. 6.3.4); not needed with the l2 reward. Returned unchanged.
      entropy_cost: the entropy bonus's weight (`update` passes `state.tuned.entropy_cost`).
    """
    del rng
    chex.assert_rank([batch["canvases"], batch["actions"], batch["final_canvas"]], [5, 3, 4])
    chex.assert_equal_shape([batch["last_actions"], batch["actions"]])
    chex.assert_equal_shape_prefix([batch["canvases"], batch["actions"]], 2)
    hp = hparams
    critic_params = (model_state or {}).get("critic")
    if hp.reward == "critic" and critic_params is None:
        raise ValueError("the critic reward needs model_state={'critic': critic parameters}")
    targets = batch["target"] if hp.conditional else None
    time_major = lambda x: jnp.swapaxes(x, 0, 1)
    actions = time_major(batch["actions"])
    carry = networks.initial_carry(actions.shape[1], hp.policy.lstm_size)
    log_prob, entropy, value = networks.unroll(
        params,
        apply_fn,
        time_major(batch["canvases"]),
        time_major(batch["last_actions"]),
        actions,
        target=targets,
        carry=carry,
    )
    reward, aux, metrics = final_rewards(
        critic_params, batch["final_canvas"], targets, actions, hparams=hp
    )
    rewards = losses.final_step_rewards(reward, hp.episode_length, aux)
    if hp.step_rewards:
        canvases = time_major(batch["canvases"])
        rewards = rewards + step_reward_shaping(critic_params, canvases, targets, hparams=hp)
    pg_advantages = None
    if hp.off_policy == "vtrace" and "log_prob" in batch:
        corrected = losses.vtrace(
            time_major(batch["log_prob"]), log_prob, rewards, value, discount=hp.discount
        )
        returns, pg_advantages = corrected.targets, corrected.pg_advantages
        metrics["importance_ratio"] = jnp.mean(corrected.rhos)
    else:
        returns = losses.returns_from_rewards(rewards, hp.discount)
    value_loss, a2c_metrics = losses.a2c_loss(
        log_prob,
        value,
        returns,
        entropy,
        entropy_cost=entropy_cost,
        baseline_cost=hp.baseline_cost,
        pg_advantages=pg_advantages,
    )
    return value_loss, ({**metrics, **a2c_metrics}, model_state)


def critic_loss(
    params: Any,
    batch: Mapping[str, jax.Array],
    rng: jax.Array,
    *,
    apply_fn: Callable[..., Any],
    hparams: Hparams,
    model_state: Any = None,
) -> tuple[jax.Array, tuple[dict[str, jax.Array], Any]]:
    """WGAN-GP (eq. 6.3.1; eq. 6.3.6 when conditional) with the centring term of app. A.3.

    batch: {"real", "fake"} float [B, H, W, C], plus "condition" (the targets the fakes
    reconstruct; then "real" is the targets too) for a conditional critic. rng: the gradient
    penalty's interpolation points. apply_fn: the Critic's `apply`. model_state is returned as is.
    """
    chex.assert_rank([batch["real"], batch["fake"]], 4)
    chex.assert_equal_shape([batch["real"], batch["fake"]])

    def critic_fn(images, cond):
        return apply_fn(params, images, cond)

    value, metrics = losses.wgan_gp_loss(
        critic_fn,
        batch["real"],
        batch["fake"],
        rng,
        gp_weight=hparams.gp_weight,
        centre_weight=hparams.centre_weight,
        condition=batch.get("condition"),
    )
    return value, (metrics, model_state)


def policy_update(
    state: SpiralState, batch: Mapping[str, jax.Array]
) -> tuple[SpiralState, dict[str, jax.Array]]:
    """The policy learner's step: `loss` on painted episodes, rewarded by `state.critic`.

    Only `state.policy` changes.
    """
    grads, (metrics, _) = jax.grad(loss, has_aux=True)(
        state.policy.params,
        batch,
        state.policy.rng,
        apply_fn=state.policy.apply_fn,
        hparams=state.hparams,
        model_state={"critic": state.critic.params},
        entropy_cost=state.tuned.entropy_cost,
    )
    policy = state.policy.apply_gradients(grads, learning_rate=state.tuned.policy_learning_rate)
    return state.replace(policy=policy), {f"policy/{k}": v for k, v in metrics.items()}


def critic_update(
    state: SpiralState, batch: Mapping[str, jax.Array], rng: jax.Array
) -> tuple[SpiralState, dict[str, jax.Array]]:
    """The critic learner's step: one WGAN-GP step (`critic_loss`). Only `state.critic` changes."""
    grads, (metrics, _) = jax.grad(critic_loss, has_aux=True)(
        state.critic.params, batch, rng, apply_fn=state.critic.apply_fn, hparams=state.hparams
    )
    critic = state.critic.apply_gradients(grads)
    return state.replace(critic=critic), {f"critic/{k}": v for k, v in metrics.items()}


def critic_batch(
    sample: Mapping[str, jax.Array], real: jax.Array | None, conditional: bool
) -> dict[str, jax.Array]:
    """The batch of `critic_loss` from a replay sample and a batch of real data."""
    if conditional:
        return {"real": sample["target"], "fake": sample["canvas"], "condition": sample["target"]}
    return {"real": real, "fake": sample["canvas"]}


def learn(
    state: SpiralState, batch: Mapping[str, jax.Array]
) -> tuple[SpiralState, dict[str, jax.Array]]:
    """Policy step on painted episodes, replay insert, then `critic_steps` critic steps.

    batch: batch-major episodes (module docstring); its "target" is also the critic's real data.
    """
    hp = state.hparams
    state, metrics = policy_update(state, batch)
    generated = {"canvas": batch["final_canvas"]}
    if hp.conditional:
        generated["target"] = batch["target"]
    state = state.replace(replay=replay.replay_add(state.replay, generated))
    rng = state.rng
    if hp.reward == "critic":
        size = batch["final_canvas"].shape[0]
        for _ in range(hp.critic_steps):
            rng, sample_rng, gp_rng = jax.random.split(rng, 3)
            sample = replay.replay_sample(state.replay, sample_rng, size)
            critic_data = critic_batch(sample, batch["target"], hp.conditional)
            state, critic_metrics = critic_update(state, critic_data, gp_rng)
        metrics.update(critic_metrics)
    return state.replace(step=state.step + 1, rng=rng), metrics


def update(
    state: SpiralState, batch: Mapping[str, jax.Array]
) -> tuple[SpiralState, dict[str, jax.Array]]:
    """One SPIRAL step (both learners); jit it as it is.

    batch: {"target"} alone: JaxPaint actors paint the episodes inside the step
    (`hparams.paint`); with painted episodes (module docstring): learn from those.
    """
    chex.assert_rank(batch["target"], 4)
    if "canvases" not in batch:
        rng, rollout_rng = jax.random.split(state.rng)
        trajectory = rollout(
            state.policy.params,
            batch["target"],
            rollout_rng,
            apply_fn=state.policy.apply_fn,
            hparams=state.hparams,
        )
        state = state.replace(rng=rng)
        batch = trajectory_batch(trajectory, batch["target"], xp=jnp)
    return learn(state, batch)
