"""SPIRAL's actors on one host: episodes painted by host renderers, and by the current policy.

`host_rollout` paints one episode per environment of a `BatchedEnv` (LibMyPaint, MujocoScenes):
the policy runs jitted, the renderer on the host, one call per step (sec. 6.3.4's actors, in
this process or a pool of worker processes). `Actors` paints with a state's policy, with JaxPaint
(one jitted `train.rollout`) or host environments, for training batches, evaluation and pictures.
`critic_score` is the mean critic output PBT ranks members by (app. A.3).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from thesis_jax.spiral import networks, renderers, train

_jitted_policy_step = jax.jit(networks.policy_step, static_argnums=1)
_jitted_rollout = jax.jit(train.rollout, static_argnames=("apply_fn", "hparams"))


def host_rollout(
    state: train.SpiralState,
    env: Any,
    targets: np.ndarray | None,
    rng: jax.Array,
    step_fn: Callable[..., networks.PolicyOutput] | None = None,
) -> train.Trajectory:
    """Paints one episode per environment of a `BatchedEnv` (LibMyPaint, MujocoScenes).

    The policy runs jitted (`step_fn`, default `jax.jit(networks.policy_step, static_argnums=1)`)
    and the renderer on the host, one call per step. Returns numpy arrays, time-major.
    """
    hp = state.hparams
    step_fn = step_fn or _jitted_policy_step
    names = list(env.action_spec())
    observation = env.reset()
    batch = observation.canvas.shape[0]
    carry = networks.initial_carry(batch, hp.policy.lstm_size)
    canvases, last_actions, actions, log_probs = [], [], [], []
    for step_rng in jax.random.split(rng, hp.episode_length):
        inputs = train.policy_inputs(
            jnp.asarray(observation.canvas),
            jnp.asarray(observation.last_action),
            None if targets is None else jnp.asarray(targets),
            hp.conditional,
        )
        out = step_fn(state.policy.params, state.policy.apply_fn, inputs, carry, step_rng)
        carry = out.carry
        chosen = np.asarray(out.actions)
        canvases.append(observation.canvas)
        last_actions.append(observation.last_action)
        actions.append(chosen)
        log_probs.append(np.asarray(out.log_prob))
        observation = env.step({name: chosen[:, i] for i, name in enumerate(names)})
    return train.Trajectory(
        np.stack(canvases).astype(np.float32),
        np.stack(last_actions).astype(np.int32),
        np.stack(actions).astype(np.int32),
        np.asarray(observation.canvas, np.float32),
        np.stack(log_probs).astype(np.float32),
    )


def jax_paint_rollout(
    state: train.SpiralState, targets: np.ndarray, rng: jax.Array, params: Any = None
) -> train.Trajectory:
    """`train.rollout` jitted (policy `params`, default the state's), as numpy arrays."""
    params = state.policy.params if params is None else params
    trajectory = _jitted_rollout(
        params, targets, rng, apply_fn=state.policy.apply_fn, hparams=state.hparams
    )
    return jax.tree.map(np.asarray, jax.device_get(trajectory))


@dataclasses.dataclass
class Actors:
    """Paints episodes with the current policy: in the jitted step (JaxPaint) or on the host."""

    config: ml_collections.ConfigDict
    latest: Any = None  # the newest state, for host actors (a step behind the learner)
    _envs: dict[int, Any] = dataclasses.field(default_factory=dict)

    @property
    def on_host(self) -> bool:
        return self.config.renderer != "jax_paint"

    def env(self, batch: int, workers: int) -> Any:
        """A `BatchedEnv` of `batch` host environments (`workers` processes), made once."""
        if batch not in self._envs:
            from thesis_jax.spiral.envs.batched import BatchedEnv

            factory = renderers.make_env_factory(self.config)
            self._envs[batch] = BatchedEnv(factory, batch, workers)
        return self._envs[batch]

    def paint(self, state: train.SpiralState, targets: np.ndarray, seed: int) -> train.Trajectory:
        """Episodes for `targets` (numpy, this process's), time-major numpy arrays."""
        rng = jax.random.PRNGKey(seed)
        if self.on_host:
            return host_rollout(state, self.env(len(targets), 0), targets, rng)
        return jax_paint_rollout(state, targets, rng)

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def critic_score(state: train.SpiralState, images: np.ndarray, targets: np.ndarray) -> float:
    """Mean D(x) (or D(x | target)) of `images` under the state's critic: PBT's fitness."""
    condition = targets if state.hparams.conditional else None
    scores = _jitted_critic(state.critic.apply_fn, state.critic.params, images, condition)
    return float(np.mean(scores))


@functools.partial(jax.jit, static_argnums=0)
def _jitted_critic(apply_fn, params, images, condition):
    return apply_fn(params, images, condition)
