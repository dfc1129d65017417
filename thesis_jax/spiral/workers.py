"""The workers of distributed SPIRAL as plain classes, without Ray (sec. 6.3.4, fig. 6.2b).

`distributed` runs each of these as a Ray actor; here they are plain Python, so they are tested
(and usable) without Ray:

- `HubCore`: the parameter store, the bounded trajectory queue, the replay store of generated
  images and the run's counters; plain Python and numpy, nothing in it touches JAX. Its replay
  store is saved with the learners' checkpoints (`save_replay`) and refilled on resume.
- `ActorCore`: paints `episodes_per_actor_step` episodes at a time with the newest policy it has
  been given (JaxPaint, jitted on the CPU, or a host renderer) and tags them with that policy's
  version and the behaviour log-probabilities.
- `PolicyLearnerCore`: steps A2C (or V-trace, `Hparams.off_policy`) on a batch of episodes with
  the newest critic it has been given, measures the off-policy lag, checkpoints itself.
- `CriticLearnerCore`: steps WGAN-GP on replayed generated images against real ones.

Every worker rebuilds the experiment from a picklable `Program`.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import json
import os
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from absl import logging as absl_logging

from thesis_jax.core.checkpoint import Checkpointer
from thesis_jax.core.metrics import write_atomic
from thesis_jax.spiral import actors
from thesis_jax.spiral import train as spiral_train


@dataclasses.dataclass(frozen=True)
class Program:
    """What every worker needs to rebuild one SPIRAL experiment. Picklable: Ray ships it.

    Attributes:
      init_state: () -> a fresh `spiral_train.SpiralState` (same seed everywhere: the template that
        parameters and checkpoints are loaded into).
      targets: float32 [N, H, W, C] training targets (conditional) or real images.
      make_env: () -> one host environment (LibMyPaint, MujocoScenes), or None: actors paint
        with JaxPaint inside a jitted rollout (the state's `hparams.paint`).
      batch_size: episodes per policy step; also the critic's batch (app. A.3).
      episodes_per_actor_step: episodes an actor paints per push.
      seed: seeds the actors' target draws and the critic's sampling.
    """

    init_state: Callable[[], spiral_train.SpiralState]
    targets: np.ndarray
    make_env: Callable[[], Any] | None = None
    batch_size: int = 64
    episodes_per_actor_step: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size % self.episodes_per_actor_step:
            raise ValueError(
                f"batch_size {self.batch_size} must be a multiple of episodes_per_actor_step "
                f"{self.episodes_per_actor_step}"
            )


# ----------------------------------------------------------------------------------------------
# The hub: parameter store, trajectory queue, replay store, counters. Plain Python and numpy.


class HubCore:
    """The shared state of one run. `Hub` is this class as a Ray actor."""

    def __init__(self, queue_capacity: int, replay_capacity: int, seed: int = 0) -> None:
        self._params: dict[str, tuple[int, Any]] = {}
        self._queue: collections.deque[dict[str, np.ndarray]] = collections.deque()
        self._queue_capacity = queue_capacity
        self._replay_capacity = replay_capacity
        self._replay: dict[str, np.ndarray] = {}
        self._replay_size = 0
        self._replay_next = 0
        self._rng = np.random.default_rng(seed)
        self._stopped = False
        self._counters: collections.Counter[str] = collections.Counter()
        self._started = time.monotonic()

    # Parameter store.
    def publish(self, name: str, version: int, params: Any) -> None:
        current = self._params.get(name)
        if current is None or version >= current[0]:
            self._params[name] = (int(version), params)

    def latest(self, name: str, newer_than: int = -1) -> tuple[int, Any] | None:
        """(version, params) of `name` if newer than `newer_than`, else None."""
        current = self._params.get(name)
        if current is None or current[0] <= newer_than:
            return None
        return current

    # Trajectory queue (bounded: actors wait while it is full).
    def put_trajectories(self, record: dict[str, np.ndarray]) -> bool:
        if len(self._queue) >= self._queue_capacity:
            return False
        self._queue.append(record)
        self._counters["episodes_painted"] += len(record["final_canvas"])
        return True

    def has_room(self) -> bool:
        """Whether a push would be taken now (actors ask this cheaply before sending a record)."""
        return len(self._queue) < self._queue_capacity

    def take_trajectories(self, count: int) -> list[dict[str, np.ndarray]]:
        """`count` records, oldest first, or [] if fewer are queued (the learner polls)."""
        if len(self._queue) < count:
            return []
        return [self._queue.popleft() for _ in range(count)]

    # Replay store of generated images for the critic.
    def add_generated(self, images: dict[str, np.ndarray]) -> None:
        count = len(images["canvas"])
        if not self._replay:
            self._replay = {
                k: np.zeros((self._replay_capacity, *v.shape[1:]), v.dtype)
                for k, v in images.items()
            }
        slots = (self._replay_next + np.arange(count)) % self._replay_capacity
        for k, v in images.items():
            self._replay[k][slots] = v
        self._replay_next = int((self._replay_next + count) % self._replay_capacity)
        self._replay_size = min(self._replay_capacity, self._replay_size + count)

    def sample_generated(self, count: int) -> dict[str, np.ndarray] | None:
        """`count` generated examples drawn uniformly, or None until the store holds that many."""
        if self._replay_size < count:
            return None
        index = self._rng.integers(0, self._replay_size, size=count)
        return {k: v[index] for k, v in self._replay.items()}

    def replay_snapshot(self) -> dict[str, np.ndarray]:
        """The replay store as arrays (its filled slots, the ring's capacity and write position,
        the sampling RNG's state), for `save_replay`; {} while it is empty."""
        if not self._replay_size:
            return {}
        return {
            **{f"replay/{k}": v[: self._replay_size] for k, v in self._replay.items()},
            "capacity": np.asarray(self._replay_capacity),
            "next": np.asarray(self._replay_next),
            "rng": np.asarray(json.dumps(self._rng.bit_generator.state)),
        }

    def restore_replay(self, snapshot: Mapping[str, np.ndarray]) -> int:
        """Refills the replay store from `replay_snapshot`'s arrays; returns how many it holds.

        A store of the saved capacity comes back exactly (slots, write position, sampling RNG);
        one of another capacity (a changed config) takes the newest examples, oldest first.
        """
        images = {k.removeprefix("replay/"): v for k, v in snapshot.items() if "/" in k}
        if not images:
            return 0
        count = len(images["canvas"])
        if int(snapshot["capacity"]) == self._replay_capacity:
            self._replay = {
                k: np.zeros((self._replay_capacity, *v.shape[1:]), v.dtype)
                for k, v in images.items()
            }
            for k, v in images.items():
                self._replay[k][:count] = v
            self._replay_size, self._replay_next = count, int(snapshot["next"])
            self._rng.bit_generator.state = json.loads(str(snapshot["rng"]))
            return count
        wrapped = count == int(snapshot["capacity"])  # a full ring: the oldest is at `next`
        start = int(snapshot["next"]) if wrapped else 0
        order = ((start + np.arange(count)) % count)[-self._replay_capacity :]
        self._replay, self._replay_size, self._replay_next = {}, 0, 0
        self.add_generated({k: v[order] for k, v in images.items()})
        return self._replay_size

    # Run control and counters.
    def stop(self) -> None:
        self._stopped = True

    def stopped(self) -> bool:
        return self._stopped

    def count(self, name: str, amount: int = 1) -> None:
        self._counters[name] += amount

    def stats(self) -> dict[str, float]:
        return {
            **{k: float(v) for k, v in self._counters.items()},
            "queue_size": float(len(self._queue)),
            "replay_size": float(self._replay_size),
            "seconds": time.monotonic() - self._started,
        }


def save_replay(path: str, snapshot: Mapping[str, np.ndarray], step: int) -> None:
    """Writes a replay snapshot beside the learners' checkpoints (atomically: a run killed
    while writing keeps the previous file)."""
    buffer = io.BytesIO()
    np.savez(buffer, step=np.asarray(step), **snapshot)
    write_atomic(path, buffer.getvalue())


def load_replay(path: str) -> tuple[int, dict[str, np.ndarray]] | None:
    """(step, snapshot) written by `save_replay`, or None if there is none or it is damaged
    (the critic then refills an empty store, as a fresh run does; a line says so)."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path) as saved:
            arrays = {k: saved[k] for k in saved.files}
        return int(arrays.pop("step")), arrays
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        absl_logging.warning(
            "replay store %s unreadable (%s): the critic starts empty", path, error
        )
        return None


# ----------------------------------------------------------------------------------------------
# Actors and learners.


def _numpy(tree: Any) -> Any:
    return jax.tree.map(np.asarray, jax.device_get(tree))


def with_policy(state: spiral_train.SpiralState, params: Any) -> spiral_train.SpiralState:
    return state.replace(policy=state.policy.replace(params=params))


class ActorCore:
    """Paints batches of episodes with the newest policy it has been given."""

    def __init__(self, program: Program, actor_id: int) -> None:
        self.program = program
        self.actor_id = actor_id
        self.state = program.init_state()
        self.version = -1
        self.params: Any = None
        self._rng = np.random.default_rng([program.seed, actor_id, int(time.time_ns() % 2**31)])
        self._env = None
        if program.make_env is not None:
            from thesis_jax.spiral.envs.batched import BatchedEnv

            self._env = BatchedEnv(program.make_env, program.episodes_per_actor_step, 0)

    def set_policy(self, version: int, params: Any) -> None:
        self.version, self.params = version, params

    def paint(self) -> dict[str, np.ndarray]:
        """One batch of episodes, batch-major numpy (`trajectory_batch` plus "version")."""
        if self.params is None:
            raise RuntimeError("no policy yet: call set_policy first")
        count = self.program.episodes_per_actor_step
        index = self._rng.integers(0, len(self.program.targets), size=count)
        targets = np.asarray(self.program.targets[index], np.float32)
        rng = jax.random.PRNGKey(int(self._rng.integers(0, 2**31)))
        if self._env is None:
            trajectory = actors.jax_paint_rollout(self.state, targets, rng, self.params)
        else:
            state = with_policy(self.state, self.params)
            trajectory = actors.host_rollout(state, self._env, targets, rng)
        record = spiral_train.trajectory_batch(trajectory, targets)
        record["version"] = np.full((count,), self.version, np.int32)
        return record

    def close(self) -> None:
        if self._env is not None:
            self._env.close()


def stack_records(records: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([r[k] for r in records]) for k in records[0]}


def mean_metrics(history: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    if not history:
        return {}
    fetched = jax.device_get(list(history))
    return {k: float(np.mean([np.asarray(m[k]) for m in fetched])) for k in fetched[0]}


class _LearnerCore:
    """A learner owns one part of `SpiralState` ("policy" or "critic") and its checkpoints."""

    part = ""

    def __init__(self, program: Program, directory: str, keep_checkpoints: int = 2) -> None:
        self.program = program
        self.state = program.init_state()
        self.checkpointer = Checkpointer(directory, save_every=1, keep=keep_checkpoints)
        restored = self.checkpointer.restore(self._train_state)
        if restored is not None:
            self.state = self.state.replace(**{self.part: restored})
            absl_logging.info("%s learner resumed at step %d", self.part, self.step)

    @property
    def _train_state(self) -> Any:
        return getattr(self.state, self.part)

    @property
    def step(self) -> int:
        return int(self._train_state.step)

    @property
    def params(self) -> Any:
        return _numpy(self._train_state.params)

    def save(self) -> None:
        self.checkpointer.save(self.step, self._train_state)


class PolicyLearnerCore(_LearnerCore):
    """The policy learner: batches trajectories, steps A2C / V-trace, checkpoints itself."""

    part = "policy"

    def __init__(self, program: Program, directory: str, keep_checkpoints: int = 2) -> None:
        super().__init__(program, directory, keep_checkpoints)
        self.critic_version = -1
        self._update = jax.jit(spiral_train.policy_update)

    def set_critic(self, version: int, params: Any) -> None:
        self.critic_version = version
        self.state = self.state.replace(critic=self.state.critic.replace(params=params))

    def learn(self, batch: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """One step on a batch-major batch of episodes (`ActorCore.paint` records, stacked)."""
        lag = self.step - np.asarray(batch["version"])
        episodes = {k: np.asarray(v) for k, v in batch.items() if k != "version"}
        self.state, metrics = self._update(self.state, episodes)
        return {**metrics, "policy/lag_mean": float(lag.mean()), "policy/lag_max": float(lag.max())}


class CriticLearnerCore(_LearnerCore):
    """The critic learner: WGAN-GP on replayed generated images against real ones."""

    part = "critic"

    def __init__(self, program: Program, directory: str, keep_checkpoints: int = 2) -> None:
        super().__init__(program, directory, keep_checkpoints)
        self._rng = np.random.default_rng([program.seed, 7919, self.step])
        self._update = jax.jit(spiral_train.critic_update)

    def learn(self, generated: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """One step on `generated` ({"canvas"} or {"canvas", "target"}) against real data."""
        count = len(generated["canvas"])
        real = None
        if not self.state.hparams.conditional:
            index = self._rng.integers(0, len(self.program.targets), size=count)
            real = np.asarray(self.program.targets[index], np.float32)
        conditional = self.state.hparams.conditional
        batch = spiral_train.critic_batch(generated, real, conditional)
        rng = jax.random.PRNGKey(int(self._rng.integers(0, 2**31)))
        self.state, metrics = self._update(self.state, batch, rng)
        return metrics
