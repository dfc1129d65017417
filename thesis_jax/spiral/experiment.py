"""One SPIRAL experiment from a preset: its targets, its state, and a training run (sec. 6.4).

`train_agent(config, workdir)` trains one agent the way the preset says: on one host with the
core loop (JaxPaint actors inside the jitted step, or host actors over a `BatchedEnv` a step
behind the learner), or on Ray with `config.distributed` (`distributed.train`: actors, a policy
learner and a critic learner). It evaluates on held-out targets (l2, ink, the critic's score)
and draws samples and an episode GIF along the way.

`train_member` is one member of population-based training (app. A.3, `pbt.run_population`):
picklable by reference, so Ray workers import it from here. `make_program` is what distributed
workers rebuild the experiment from.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import NamedTuple

import jax
import ml_collections
import numpy as np
from absl import logging as absl_logging

from thesis_jax import core
from thesis_jax.core import parallel
from thesis_jax.data.sampling import epoch_indices
from thesis_jax.spiral import (
    actors,
    distributed,
    export,
    pbt,
    readability,
    renderers,
    report,
    train,
)

NUM_SAMPLES = 16  # held-out targets drawn in samples.png and episode.gif
EVAL_SEED = 12345

# No schedule depends on num_steps, so a run may be continued with a larger one; PBT changes
# the policy's learning rate and entropy cost between rounds (a resumed run takes the config's:
# `train.with_tuned`); the Ray layout is not the model.
MAY_DIFFER = (
    "agent",  # only where a fresh run starts from; a resumed run continues its checkpoint
    "log_every",
    "eval_every",
    "checkpoint_every",
    "sample_every",
    "num_steps",
    "entropy_cost",
    "policy_learning_rate",
    "num_actors",
    "ray_address",
    "queue_batches",
    "learner_gpus",
    "pbt_parallel",
)

PBT_BOUNDS = {"entropy_cost": (1e-5, 1.0), "policy_learning_rate": (1e-6, 1e-2)}


def check_config(config: ml_collections.ConfigDict) -> None:
    """Raises `core.ConfigError` for settings the experiment cannot run with."""
    if config.renderer not in renderers.RENDERERS:
        raise core.ConfigError(
            f"renderer must be one of {renderers.RENDERERS}, got {config.renderer!r}"
        )
    if config.renderer == "mujoco" and config.grayscale:
        raise core.ConfigError("the mujoco renderer paints colour: set --config.grayscale=False")
    if config.reward == "l2" and not config.conditional:
        raise core.ConfigError("the l2 reward needs targets: use it with conditional presets")
    if config.off_policy not in train.OFF_POLICY:
        raise core.ConfigError(
            f"off_policy must be one of {train.OFF_POLICY}, got {config.off_policy!r}"
        )
    if config.distributed:
        if config.num_actors < 1:
            raise core.ConfigError("distributed training needs --config.num_actors >= 1")
        if config.episodes_per_actor < 1 or config.batch_size % config.episodes_per_actor:
            raise core.ConfigError(
                f"episodes_per_actor ({config.episodes_per_actor}) must divide batch_size "
                f"({config.batch_size})"
            )
        if config.pbt_population:
            raise core.ConfigError(
                "PBT members train single-host: drop --config.distributed or pbt_population"
            )
    if config.pbt_population == 1 or config.pbt_population < 0:
        raise core.ConfigError("pbt_population must be 0 (off) or at least 2")
    if not config.distributed:  # Ray learners split their batch over their own devices
        parallel.check_batch_split(config.batch_size)
    if config.agent:
        try:
            export.resolve(config.agent)
        except FileNotFoundError as error:
            raise core.ConfigError(str(error)) from None


def _channels(images: np.ndarray, channels: int) -> np.ndarray:
    if images.shape[-1] == channels:
        return images
    if channels == 1:
        return images.mean(-1, keepdims=True)
    return np.repeat(images, channels, -1)


class Targets(NamedTuple):
    """What a preset paints: float32 [N, S, S, C] images in [0, 1], ink dark."""

    train: np.ndarray
    held_out: np.ndarray
    held_out_labels: np.ndarray | None  # int32 [N] where the set has labels (digits: 0-9)


def load_targets(config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
    """(training targets, held-out targets), float32 [N, S, S, C] in [0, 1]."""
    targets = load_data(config)
    return targets.train, targets.held_out


def load_data(config: ml_collections.ConfigDict) -> Targets:
    """The training and held-out targets of `config`, and the held-out labels."""
    size = config.canvas_size
    held_out = config.eval_batch_size
    data_dir = config.data_dir or None
    labels = None
    if config.dataset == "mujoco":
        from thesis_jax.spiral import scenes_dataset

        count = config.max_examples or scenes_dataset.DEFAULT_COUNT
        train_images, _ = scenes_dataset.load_mujoco_scenes(count, 0, data_dir, size)
        eval_images, _ = scenes_dataset.load_mujoco_scenes(
            held_out, scenes_dataset.HOLDOUT_SEED, data_dir, size
        )
        images = (train_images.astype(np.float32) / 255.0, eval_images.astype(np.float32) / 255.0)
    else:
        from thesis_jax.data import load_spiral_targets

        if config.dataset in ("digits", "faces", "omniglot_small"):  # one split: hold out a tail
            everything = load_spiral_targets(config.dataset, "train", data_dir, size)
            order = np.random.default_rng(0).permutation(len(everything.images))
            train_images = everything.images[order[held_out:]]
            eval_images = everything.images[order[:held_out]]
            if everything.labels is not None:
                labels = everything.labels[order[:held_out]]
            if config.max_examples:
                train_images = train_images[: config.max_examples]
        else:
            train_images = load_spiral_targets(
                config.dataset, "train", data_dir, size, config.max_examples
            ).images
            evaluation = load_spiral_targets(config.dataset, "test", data_dir, size, held_out)
            eval_images, labels = evaluation.images, evaluation.labels
        images = (train_images, eval_images)
    channels = renderers.image_shape(config)[-1]
    train_images, eval_images = (_channels(x, channels) for x in images)
    return Targets(train_images, eval_images, labels)


def init_state(config: ml_collections.ConfigDict) -> train.SpiralState:
    """The state a run of `config` starts from (seeded by `config.seed`): a fresh agent, or the
    policy of `config.agent` (a `save_agent` file or a shipped agent's name)."""
    state = train.init(jax.random.PRNGKey(config.seed), config)
    if config.agent:
        state = export.with_agent(state, export.load_agent(config.agent))
    return state


def make_program(config: ml_collections.ConfigDict, targets: np.ndarray) -> distributed.Program:
    """The picklable description of this experiment that Ray's workers rebuild it from."""
    on_host = config.renderer != "jax_paint"
    return distributed.Program(
        init_state=functools.partial(init_state, config),
        targets=targets,
        make_env=renderers.make_env_factory(config) if on_host else None,
        batch_size=config.batch_size,
        episodes_per_actor_step=config.episodes_per_actor,
        seed=config.seed,
    )


def distributed_settings(config: ml_collections.ConfigDict) -> distributed.Settings:
    """How `config.distributed` lays the system out on Ray."""
    return distributed.Settings(
        num_actors=config.num_actors,
        queue_batches=config.queue_batches,
        learner_gpus=config.learner_gpus,
        chunk_steps=max(1, min(config.log_every, 50)),
        ray_address=config.ray_address or None,
    )


READABLE = ("mnist", "digits")
"""Target sets of handwritten digits: the digit reader scores what the agent paints of them."""


def evaluator(
    config: ml_collections.ConfigDict,
    painters: actors.Actors,
    eval_images: np.ndarray,
    eval_labels: np.ndarray | None = None,
) -> Callable[[train.SpiralState], dict[str, float]]:
    """state -> held-out metrics: ink, l2 to the targets (conditional), the critic's score, and
    for digits what `readability`'s reader makes of the paintings."""
    reader = (
        readability.load_reader(config.data_dir or None) if config.dataset in READABLE else None
    )

    def evaluate(state: train.SpiralState) -> dict[str, float]:
        trajectory = painters.paint(state, eval_images, seed=EVAL_SEED)
        finals = np.asarray(trajectory.final_canvas)
        metrics = {"ink": float(np.mean(finals < 0.5))}
        if config.conditional:
            metrics.update(report.l2_to_targets(finals, eval_images))
            if reader is not None and eval_labels is not None:
                metrics.update(
                    readability.reconstruction_metrics(reader, finals, eval_images, eval_labels)
                )
        elif reader is not None:
            metrics.update(readability.sample_metrics(reader, finals))
        if config.reward == "critic":  # PBT's fitness (app. A.3)
            metrics["critic_score"] = actors.critic_score(state, finals, eval_images)
        return metrics

    return evaluate


def train_agent(config: ml_collections.ConfigDict, workdir: str) -> core.LoopResult:
    """Trains (or resumes) the agent of `config` in `workdir`; held-out metrics at the end."""
    check_config(config)
    core.presets.claim_workdir(config, workdir, may_differ=MAY_DIFFER)
    train_images, eval_images, eval_labels = load_data(config)
    absl_logging.info(
        "%s: %d training targets, %d held out, %s renderer",
        config.dataset,
        len(train_images),
        len(eval_images),
        config.renderer,
    )
    mesh = parallel.data_mesh()
    parallel.local_batch_size(config.batch_size, mesh)  # fails early on an uneven split
    state = init_state(config)
    painters = actors.Actors(config)
    sample_targets = eval_images[:NUM_SAMPLES]

    def samples(step: int, state: train.SpiralState) -> None:
        trajectory = painters.paint(state, sample_targets, seed=step)
        if jax.process_index() == 0:
            report.save_samples(trajectory, sample_targets, config.conditional, workdir, step)

    evaluate = evaluator(config, painters, eval_images, eval_labels)
    periodic = [core.Periodic(config.sample_every, samples)]
    try:
        if config.distributed:
            return distributed.train(
                make_program(config, train_images),
                distributed_settings(config),
                workdir=workdir,
                eval_fn=evaluate,
                periodic=periodic,
                desc=f"spiral/{config.preset}/ray",
                template=state,
                **core.loop_options(config),
            )
        batch_fn = _batch_fn(config, train_images, painters)
        if painters.on_host:
            painters.latest = parallel.replicate(state, mesh)
            periodic.insert(0, core.Periodic(1, _remember(painters), at_end=False))
        return core.train(
            state,
            train.update,
            batch_fn,
            workdir=workdir,
            mesh=mesh,
            eval_fn=evaluate,
            periodic=periodic,
            desc=f"spiral/{config.preset}",
            on_restore=lambda restored: train.with_tuned(restored, config),
            **core.loop_options(config),
        )
    finally:
        painters.close()


def _remember(painters: actors.Actors) -> Callable[[int, train.SpiralState], None]:
    def remember(step: int, state: train.SpiralState) -> None:
        painters.latest = state

    return remember


def _batch_fn(
    config: ml_collections.ConfigDict, train_images: np.ndarray, painters: actors.Actors
) -> Callable[[int], dict[str, np.ndarray]]:
    """step -> this process's batch: targets, and the episodes host actors painted for them."""

    def targets_for(step: int) -> np.ndarray:
        index = epoch_indices(len(train_images), config.batch_size, step, config.seed)
        return parallel.process_slice(train_images[index])

    if not painters.on_host:
        return lambda step: {"target": targets_for(step)}
    env = painters.env(len(targets_for(0)), config.num_actors)

    def batch_fn(step: int) -> dict[str, np.ndarray]:
        targets = targets_for(step)
        rng = jax.random.PRNGKey(config.seed * 1_000_003 + step)
        trajectory = actors.host_rollout(painters.latest, env, targets, rng)
        return train.trajectory_batch(trajectory, targets)

    return batch_fn


def pbt_fitness(config: ml_collections.ConfigDict) -> Callable[[Mapping[str, float]], float]:
    """Discriminator score (app. A.3); with the l2 reward there is no critic: -l2."""
    if config.reward == "critic":
        return lambda metrics: metrics["critic_score"]
    return lambda metrics: -metrics["l2"]


def initial_hyperparams(config: ml_collections.ConfigDict) -> list[dict[str, float]]:
    """Log-uniform draws around the preset's entropy cost and policy learning rate, x10^±0.5."""
    rng = np.random.default_rng(config.seed)
    names = pbt.SPIRAL_HYPERPARAMS
    return [
        {name: float(config[name] * 10 ** rng.uniform(-0.5, 0.5)) for name in names}
        for _ in range(config.pbt_population)
    ]


def train_member(
    config: ml_collections.ConfigDict,
    index: int,
    hyperparams: Mapping[str, float],
    workdir: str,
    until: int,
) -> dict[str, float]:
    """One PBT member trained to step `until` in `workdir` with `hyperparams` (picklable)."""
    member = ml_collections.ConfigDict(config.to_dict())
    member.pbt_population = 0
    member.seed = config.seed + index
    member.num_steps = until
    member.eval_every = until  # evaluation (the fitness) at the end of the round
    for name, value in hyperparams.items():
        member[name] = float(value)
    result = train_agent(member, workdir)
    report.write_results(result, workdir)
    if result.interrupted:
        raise KeyboardInterrupt(f"PBT member {index} was interrupted; rerun to resume")
    return dict(result.eval_metrics)
