"""SPIRAL at scale on Ray: actors, a policy learner and a critic learner (sec. 6.3.4, fig. 6.2b).

The thesis ran each SPIRAL instance as many CPU actors, one policy learner and one discriminator
learner. This module is that system on Ray:

    actors (CPU, JAX_PLATFORMS=cpu)  --trajectories-->  [Hub: bounded queue]  --> policy learner
         ^  paint episodes with the newest         \\--final canvases--> [Hub: replay] --> critic
         |  policy they have pulled                                                     learner
         \\------------------------ [Hub: parameter store] <---- both learners publish ----/

- an actor paints `episodes_per_actor_step` episodes at a time with JaxPaint (jitted on
  the CPU) or a host renderer, tags them with the policy version it used and the behaviour
  log-probabilities, and pushes them into the Hub's bounded trajectory queue (it waits while the
  queue is full) and their final canvases into the Hub's replay store.
- the policy learner takes `batch_size` episodes from the queue, rewards them with the newest critic
  it has pulled, steps A2C (or V-trace, `Hparams.off_policy`) and publishes the policy. The
  off-policy lag (learner version minus the version that painted) is measured per batch.
- the critic learner samples generated canvases from the replay store and real images from the
  data, steps WGAN-GP and publishes the critic.
- the hub is one small Ray actor: the parameter store, the trajectory queue, the replay store
  and the run's counters; nothing in it touches JAX.

Each is a plain class of `workers` (`ActorCore`, `PolicyLearnerCore`, `CriticLearnerCore`,
`HubCore`); this module is the Ray wiring around them.

Fault tolerance: actors and learners are restartable Ray actors whose calls are retried. A dead
actor is restarted by Ray and goes on painting; a dead learner restarts, restores its last
checkpoint (`<workdir>/policy_learner`, `<workdir>/critic_learner`) and is asked again to train
"until step S", so the run continues. The driver (`train`) asks both learners to advance in
chunks, logs, evaluates, writes pictures and checkpoints between chunks, and stops cleanly on
Ctrl-C / SIGTERM (both learners save, the same command resumes). The hub's replay store of
generated images is saved with the checkpoints (`<workdir>/critic_learner/replay.npz`) and
refilled when a run resumes, so the critic does not restart from an empty replay.

The learners and actors rebuild the experiment from a picklable `Program`; `train` returns the
same `core.LoopResult` as the single-host `core.train`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from absl import logging as absl_logging

from thesis_jax.core.loop import LoopResult, Periodic, StopRequests, check_finite
from thesis_jax.core.metrics import MetricWriter, progress_bar
from thesis_jax.spiral import train as spiral_train
from thesis_jax.spiral.workers import (
    ActorCore,
    CriticLearnerCore,
    HubCore,
    PolicyLearnerCore,
    Program,
    load_replay,
    mean_metrics,
    save_replay,
    stack_records,
    with_policy,
)


@dataclasses.dataclass(frozen=True)
class Settings:
    """How the system is laid out on the Ray cluster."""

    num_actors: int = 4
    queue_batches: int = 4  # trajectory queue capacity, in policy batches (backpressure)
    replay_batches: int = 20  # replay store capacity, in critic batches (app. A.3)
    learner_gpus: float = 0.0  # GPUs per learner (0: CPU learners; < 0: 1 if the cluster has GPUs)
    actor_cpus: float = 1.0
    chunk_steps: int = 10  # policy steps per driver round trip (logging granularity)
    ray_address: str | None = None  # None: a local Ray instance; "auto" or host:port: a cluster


# ----------------------------------------------------------------------------------------------
# Ray wiring.

_POLL_SECONDS = 0.005  # first wait when there is nothing to do; doubles up to a maximum:
_ACTOR_MAX_POLL_SECONDS = 0.1  # waiting actors must not take the CPU from the busy learners,
_LEARNER_MAX_POLL_SECONDS = 0.02  # and a learner starts soon after its data arrives


class _Backoff:
    """Sleeps 5 ms, 10 ms, 20 ms ... up to `max_seconds` between polls; `reset` after progress."""

    def __init__(self, max_seconds: float = _ACTOR_MAX_POLL_SECONDS) -> None:
        self.delay = _POLL_SECONDS
        self.max_seconds = max_seconds

    def wait(self) -> None:
        time.sleep(self.delay)
        self.delay = min(2 * self.delay, self.max_seconds)

    def reset(self) -> None:
        self.delay = _POLL_SECONDS


def _require_ray():
    try:
        import ray
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "distributed SPIRAL needs Ray: pip install 'thesis_jax[ray]' (or pip install ray)"
        ) from e
    return ray


class _Actor:
    """Ray actor body: paint and push until the hub says stop."""

    def __init__(self, program: Program, hub: Any, actor_id: int) -> None:
        import ray

        self._ray = ray
        self.hub = hub
        self.core = ActorCore(program, actor_id)
        ray.get(hub.count.remote("actor_starts"))

    def run(self) -> int:
        try:
            return self._run()
        finally:
            self.core.close()

    def _run(self) -> int:
        ray, hub, core = self._ray, self.hub, self.core
        pushed = 0
        backoff = _Backoff()
        while not ray.get(hub.stopped.remote()):
            newer = ray.get(hub.latest.remote("policy", core.version))
            if newer is not None:
                core.set_policy(*newer)
            if core.params is None:
                backoff.wait()
                continue
            record = core.paint()
            generated = {"canvas": record["final_canvas"]}
            if core.state.hparams.conditional:
                generated["target"] = record["target"]
            hub.add_generated.remote(generated)
            if not self._push(record):
                return pushed
            pushed += 1
        return pushed

    def _push(self, record: dict[str, np.ndarray]) -> bool:
        """Waits for room in the queue (the learner is behind), then sends the record once;
        False if the run stops first."""
        ray, hub = self._ray, self.hub
        backoff = _Backoff()
        while True:
            # The record (hundreds of KB) travels only when the queue has room for it.
            if ray.get(hub.has_room.remote()) and ray.get(hub.put_trajectories.remote(record)):
                return True
            if ray.get(hub.stopped.remote()):
                return False
            backoff.wait()

    def pid(self) -> int:
        return os.getpid()


class _Learner:
    """Ray actor body shared by both learners: train until a step, publishing as it goes."""

    name = ""

    def __init__(self, core: Any, hub: Any) -> None:
        import ray

        self._ray = ray
        self.core = core
        self.hub = hub
        ray.get(hub.publish.remote(self.name, core.step, core.params))
        ray.get(hub.count.remote(f"{self.name}_learner_starts"))

    def step(self) -> int:
        return self.core.step

    def save(self) -> int:
        self.core.save()
        return self.core.step

    def pid(self) -> int:
        return os.getpid()


class _PolicyLearner(_Learner):
    name = "policy"

    def __init__(self, program: Program, hub: Any, directory: str, keep: int) -> None:
        super().__init__(PolicyLearnerCore(program, directory, keep), hub)
        self._records = program.batch_size // program.episodes_per_actor_step

    def train_until(self, step: int) -> dict[str, float]:
        ray, hub, core = self._ray, self.hub, self.core
        history = []
        backoff = _Backoff(_LEARNER_MAX_POLL_SECONDS)
        while core.step < step:
            newer = ray.get(hub.latest.remote("critic", core.critic_version))
            if newer is not None:
                core.set_critic(*newer)
            records = ray.get(hub.take_trajectories.remote(self._records))
            if not records:
                backoff.wait()
                continue
            backoff.reset()
            history.append(core.learn(stack_records(records)))
            hub.publish.remote("policy", core.step, core.params)
        return mean_metrics(history)


class _CriticLearner(_Learner):
    name = "critic"

    def __init__(self, program: Program, hub: Any, directory: str, keep: int) -> None:
        super().__init__(CriticLearnerCore(program, directory, keep), hub)
        self._batch = program.batch_size

    def train_until(self, step: int) -> dict[str, float]:
        ray, hub, core = self._ray, self.hub, self.core
        history = []
        backoff = _Backoff(_LEARNER_MAX_POLL_SECONDS)
        while core.step < step:
            generated = ray.get(hub.sample_generated.remote(self._batch))
            if generated is None:
                backoff.wait()
                continue
            backoff.reset()
            history.append(core.learn(generated))
            hub.publish.remote("critic", core.step, core.params)
        return mean_metrics(history)


def _actor_env(extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    env = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": "", **(extra or {})}
    return {"env_vars": env}


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """`ray.init` once: local (dashboard off, loopback) unless `address` names a cluster."""
    ray = _require_ray()
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    if address:
        kwargs["address"] = address
    else:
        kwargs["num_cpus"] = num_cpus
    ray.init(**kwargs)


@dataclasses.dataclass
class System:
    """Handles of a running system (what `train` builds; tests use it to kill workers)."""

    hub: Any
    policy_learner: Any
    critic_learner: Any | None
    actors: list[Any]
    actor_runs: list[Any]
    # The Program in Ray's object store, held for the run: Ray rebuilds a restarted worker from
    # its constructor arguments, which must not go out of scope while it may die.
    program_ref: Any = None

    def shutdown(self) -> None:
        import ray

        ray.get(self.hub.stop.remote())
        ray.wait(self.actor_runs, num_returns=len(self.actor_runs), timeout=60)
        for handle in [*self.actors, self.policy_learner, self.critic_learner, self.hub]:
            if handle is not None:
                ray.kill(handle)


def _cpus_needed(settings: Settings) -> int:
    return math.ceil(settings.num_actors * settings.actor_cpus) + 2  # + the two learners


def start(
    program: Program,
    settings: Settings,
    workdir: str,
    keep_checkpoints: int = 2,
    template: spiral_train.SpiralState | None = None,
) -> System:
    """Starts the hub, both learners (restored from `workdir` if it holds checkpoints), actors.

    template: a state from `program.init_state()` if the caller has one (saves building another).
    """
    ray = _require_ray()
    # Ray's CPUs are scheduling tokens: a local instance offers at least one per worker, so
    # actors and learners all start on a small machine (they share its cores).
    init_ray(settings.ray_address, max(os.cpu_count() or 1, _cpus_needed(settings)))
    state = template if template is not None else program.init_state()
    learner_gpus = settings.learner_gpus
    if learner_gpus < 0:
        learner_gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    hub = ray.remote(num_cpus=0)(HubCore).remote(
        settings.queue_batches * (program.batch_size // program.episodes_per_actor_step),
        settings.replay_batches * program.batch_size,
        program.seed,
    )
    program_ref = ray.put(program)
    learner_options = {
        "num_cpus": 1,
        "num_gpus": learner_gpus,
        "max_restarts": -1,
        "max_task_retries": -1,
    }
    if not learner_gpus:
        learner_options["runtime_env"] = _actor_env()
    workdir = os.path.abspath(workdir)
    policy_learner = (
        ray.remote(_PolicyLearner)
        .options(**learner_options)
        .remote(program_ref, hub, os.path.join(workdir, "policy_learner"), keep_checkpoints)
    )
    critic_learner = None
    if state.hparams.reward == "critic":
        critic_learner = (
            ray.remote(_CriticLearner)
            .options(**learner_options)
            .remote(program_ref, hub, os.path.join(workdir, "critic_learner"), keep_checkpoints)
        )
    if critic_learner is not None:
        saved = load_replay(_replay_path(workdir))
        if saved is not None:
            held = ray.get(hub.restore_replay.remote(saved[1]))
            absl_logging.info(
                "replay store restored: %d generated images (step %d)", held, saved[0]
            )
    actor_options = {
        "num_cpus": settings.actor_cpus,
        "max_restarts": -1,
        "max_task_retries": -1,
        "runtime_env": _actor_env(),
    }
    actors = [
        ray.remote(_Actor).options(**actor_options).remote(program_ref, hub, i)
        for i in range(settings.num_actors)
    ]
    runs = [actor.run.remote() for actor in actors]
    return System(hub, policy_learner, critic_learner, actors, runs, program_ref)


def train(
    program: Program,
    settings: Settings,
    *,
    num_steps: int,
    workdir: str,
    log_every: int = 50,
    checkpoint_every: int = 1000,
    keep_checkpoints: int = 2,
    eval_fn: Callable[[spiral_train.SpiralState], Mapping[str, float]] | None = None,
    eval_every: int = 0,
    periodic: Sequence[Periodic] = (),
    desc: str = "spiral-distributed",
    on_start: Callable[[System], None] | None = None,
    template: spiral_train.SpiralState | None = None,
) -> LoopResult:
    """Trains to `num_steps` policy steps with Ray actors and learners; resumes from `workdir`.

    The critic learner is asked for `critic_steps` (Hparams) steps per policy step. Between
    chunks the driver logs `metrics.jsonl` (policy, critic, actor throughput, off-policy lag,
    queue and replay sizes, restarts), runs `eval_fn` and `periodic` on a state holding the
    newest published parameters, and checkpoints both learners every `checkpoint_every` steps
    and at the end. `on_start(system)` is called once everything runs (tests kill workers).
    `template`: a fresh state from `program.init_state()` if the caller already built one.
    """
    ray = _require_ray()
    template = template if template is not None else program.init_state()
    critic_ratio = template.hparams.critic_steps
    system = start(program, settings, workdir, keep_checkpoints, template)
    writer = MetricWriter(workdir)
    interrupted = False
    eval_metrics: dict[str, float] = {}
    try:
        step = ray.get(system.policy_learner.step.remote())
        writer.truncate_after(step)
        if on_start is not None:
            on_start(system)
        bar = progress_bar(num_steps, initial=step, desc=desc)
        boundaries = sorted(
            {
                s
                for every in (log_every, checkpoint_every, eval_every, settings.chunk_steps)
                if every
                for s in range(every, num_steps + 1, every)
            }
            | {num_steps}
        )
        last_stats = ray.get(system.hub.stats.remote())
        with StopRequests() as stop:
            for target in (b for b in boundaries if b > step):
                if stop.requested:
                    stop.consumed = interrupted = True
                    break
                calls = [system.policy_learner.train_until.remote(target)]
                if system.critic_learner is not None:
                    calls.append(system.critic_learner.train_until.remote(target * critic_ratio))
                results = ray.get(calls)
                bar.update(target - step)
                step = target
                stats = ray.get(system.hub.stats.remote())
                if step % log_every == 0 or step == num_steps:
                    metrics = _progress_metrics(
                        results, stats, last_stats, settings.num_actors, step, workdir
                    )
                    writer.scalars(step, metrics)
                    last_stats = stats
                if step % checkpoint_every == 0 or step == num_steps:
                    _save(system, workdir)
                due = [
                    p for p in periodic if step % p.every == 0 or (p.at_end and step == num_steps)
                ]
                evaluate = eval_fn is not None and _due(step, eval_every, num_steps)
                if due or evaluate:  # only then pull the newest parameters from the hub
                    state = _newest_state(system, template)
                    for p in due:
                        p.fn(step, state)
                    if evaluate:
                        eval_metrics = dict(eval_fn(state))
                        writer.scalars(step, {f"eval/{k}": v for k, v in eval_metrics.items()})
            if interrupted:
                _save(system, workdir)
                absl_logging.warning(
                    "stopped at step %d (%s); checkpoints saved in %s: rerun to resume",
                    step,
                    stop.signal_name,
                    workdir,
                )
        bar.close()
        final = _newest_state(system, template)
    finally:
        writer.flush()
        writer.close()
        system.shutdown()
    return LoopResult(final, step, interrupted, eval_metrics)


def _due(step: int, every: int, num_steps: int) -> bool:
    return step == num_steps or bool(every and step % every == 0)


def _save(system: System, workdir: str) -> None:
    """Both learners' checkpoints, then the hub's replay store beside the critic's."""
    import ray

    calls = [system.policy_learner.save.remote()]
    if system.critic_learner is not None:
        calls.append(system.critic_learner.save.remote())
    steps = ray.get(calls)
    if system.critic_learner is not None:
        snapshot = ray.get(system.hub.replay_snapshot.remote())
        if snapshot:
            save_replay(_replay_path(workdir), snapshot, steps[-1])


def _replay_path(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), "critic_learner", "replay.npz")


def _newest_state(system: System, template: spiral_train.SpiralState) -> spiral_train.SpiralState:
    import ray

    state = template
    policy = ray.get(system.hub.latest.remote("policy"))
    if policy is not None:
        state = with_policy(state, policy[1]).replace(step=np.int32(policy[0]))
    critic = ray.get(system.hub.latest.remote("critic"))
    if critic is not None:
        state = state.replace(critic=state.critic.replace(params=critic[1]))
    return state


@dataclasses.dataclass(frozen=True)
class _LearnerCheckpoints:
    """What `core.check_finite` reports of a checkpointer: the policy learner's newest step."""

    directory: str

    @property
    def latest_step(self) -> int | None:
        if not os.path.isdir(self.directory):
            return None
        steps = [int(name) for name in os.listdir(self.directory) if name.isdigit()]
        return max(steps, default=None)


def _progress_metrics(
    results: Sequence[Mapping[str, float]],
    stats: Mapping[str, float],
    last: Mapping[str, float],
    num_actors: int,
    step: int,
    workdir: str,
) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for result in results:
        metrics.update(result)
    checkpoints = _LearnerCheckpoints(os.path.join(os.path.abspath(workdir), "policy_learner"))
    check_finite(metrics, step, checkpoints)
    seconds = max(stats["seconds"] - last["seconds"], 1e-9)
    painted = stats.get("episodes_painted", 0.0) - last.get("episodes_painted", 0.0)
    metrics["actors/episodes_per_second"] = painted / seconds
    metrics["actors/restarts"] = max(0.0, stats.get("actor_starts", 0.0) - num_actors)
    metrics["queue/size"] = stats["queue_size"]
    metrics["replay/size"] = stats["replay_size"]
    for name in ("policy", "critic"):
        starts = stats.get(f"{name}_learner_starts")
        if starts is not None:
            metrics[f"{name}/learner_restarts"] = starts - 1
    return metrics
