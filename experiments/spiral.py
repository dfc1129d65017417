r"""SPIRAL experiments (thesis ch. 6): train a painting (or scene-building) agent with a critic.

    python -m experiments.spiral                                # offline `digits` (conditional)
    python -m experiments.spiral --config=digits_l2             # the same with the l2 reward
    python -m experiments.spiral --config=celeba --config.data_dir=~/tensorflow_datasets
    python -m experiments.spiral --config=mnist_cond --config.renderer=libmypaint \
        --config.num_actors=8
    python -m experiments.spiral --config=digits --config.distributed=True --config.num_actors=4
    python -m experiments.spiral --config=digits --config.pbt_population=4 --config.pbt_rounds=5

Renderers: `jax_paint` paints inside the jitted training step (one program for actors and both
learners); `libmypaint` and `mujoco` run as host actors (`BatchedEnv`, `num_actors` processes).

`--config.distributed=True` runs the system of fig. 6.2b on Ray instead (`thesis_jax.spiral.
distributed`): `num_actors` CPU actors, a policy learner and a critic learner, on a local Ray
instance or the cluster at `--config.ray_address`. `--config.pbt_population=N` trains N
single-host instances under population-based training (app. A.3) in `workdir/member_<i>`.

Writes into the workdir: checkpoints, `metrics.jsonl` (policy and critic losses, reward, l2 to the
targets), `samples/step_NNNNNN.png` (targets beside reconstructions for conditional presets,
samples otherwise; the newest also as `samples.png`) and `episode.gif` (episodes painted stroke by
stroke). Ctrl-C or SIGTERM saves a checkpoint; the same command resumes.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging as absl_logging

from thesis_jax import core
from thesis_jax.core import parallel
from thesis_jax.data.sampling import epoch_indices
from thesis_jax.spiral import distributed, networks, pbt, train
from thesis_jax.spiral.envs import spec

_PRESETS = os.path.join(os.path.dirname(__file__), "configs", "spiral.py")
RENDERERS = ("jax_paint", "libmypaint", "mujoco")
NUM_SAMPLES = 16


def load_targets(config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
    """(training targets, held-out targets), float32 [N, S, S, C] in [0, 1]."""
    size = config.canvas_size
    held_out = config.eval_batch_size
    if config.dataset == "mujoco":
        from thesis_jax.spiral import scenes_dataset

        data_dir = config.data_dir or None
        count = config.max_examples or scenes_dataset.DEFAULT_COUNT
        train_images, _ = scenes_dataset.load_mujoco_scenes(count, 0, data_dir, size)
        eval_images, _ = scenes_dataset.load_mujoco_scenes(
            held_out, scenes_dataset.HOLDOUT_SEED, data_dir, size
        )
        images = (train_images.astype(np.float32) / 255.0, eval_images.astype(np.float32) / 255.0)
    else:
        from thesis_jax.data import load_spiral_targets

        data_dir = config.data_dir or None
        if config.dataset in ("digits", "faces", "omniglot_small"):  # one split: hold out a tail
            everything = load_spiral_targets(config.dataset, "train", data_dir, size).images
            order = np.random.default_rng(0).permutation(len(everything))
            everything = everything[order]
            train_images, eval_images = everything[held_out:], everything[:held_out]
            if config.max_examples:
                train_images = train_images[: config.max_examples]
        else:
            train_images = load_spiral_targets(
                config.dataset, "train", data_dir, size, config.max_examples
            ).images
            eval_images = load_spiral_targets(config.dataset, "test", data_dir, size, held_out)
            eval_images = eval_images.images
        images = (train_images, eval_images)
    channels = 1 if config.grayscale else 3
    return tuple(_channels(x, channels) for x in images)


def _channels(images: np.ndarray, channels: int) -> np.ndarray:
    if images.shape[-1] == channels:
        return images
    if channels == 1:
        return images.mean(-1, keepdims=True)
    return np.repeat(images, channels, -1)


def paint_config(config: ml_collections.ConfigDict) -> spec.PaintConfig:
    return spec.PaintConfig(
        canvas_size=config.canvas_size,
        grid_size=config.grid_size,
        episode_length=config.episode_length,
        grayscale=config.grayscale,
    )


def scenes_config(config: ml_collections.ConfigDict):
    from thesis_jax.spiral.envs import mujoco_scenes

    return mujoco_scenes.ScenesConfig(
        image_size=config.canvas_size,
        grid_size=config.grid_size,
        episode_length=config.episode_length,
    )


def make_env_factory(config: ml_collections.ConfigDict):
    """A picklable zero-argument factory of one host environment."""
    if config.renderer == "libmypaint":
        from thesis_jax.spiral.envs.libmypaint import LibMyPaint

        return functools.partial(LibMyPaint, paint_config(config))
    if config.renderer == "mujoco":
        from thesis_jax.spiral.envs import mujoco_scenes

        return functools.partial(mujoco_scenes.MujocoScenes, scenes_config(config))
    raise ValueError(f"{config.renderer!r} is not a host renderer")


def action_spec(config: ml_collections.ConfigDict) -> spec.ActionSpec:
    if config.renderer == "mujoco":
        from thesis_jax.spiral.envs import mujoco_scenes

        return mujoco_scenes.scenes_action_spec(scenes_config(config))
    return spec.paint_action_spec(paint_config(config))


def check_config(config: ml_collections.ConfigDict) -> None:
    if config.renderer not in RENDERERS:
        raise core.ConfigError(f"renderer must be one of {RENDERERS}, got {config.renderer!r}")
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


def init_state(config: ml_collections.ConfigDict) -> train.SpiralState:
    hparams = train.Hparams(
        reward=config.reward,
        conditional=config.conditional,
        episode_length=config.episode_length,
        policy_learning_rate=config.policy_learning_rate,
        entropy_cost=config.entropy_cost,
        critic_learning_rate=config.critic_learning_rate,
        critic_steps=config.critic_steps,
        stroke_penalty=config.stroke_penalty,
        empty_penalty=config.empty_penalty,
        emd_weight=config.emd_weight,
        off_policy=config.off_policy,
    )
    policy_config = networks.PolicyConfig(**config.policy.to_dict())
    channels = 1 if config.grayscale else 3
    return train.init(
        jax.random.PRNGKey(config.seed),
        action_spec(config),
        (config.canvas_size, config.canvas_size, channels),
        hparams,
        policy_config,
        tuple(config.critic_channels),
        config.batch_size,
    )


@dataclasses.dataclass
class Actors:
    """Paints episodes with the current policy: in the jitted step (JaxPaint) or on the host."""

    config: ml_collections.ConfigDict
    mesh: jax.sharding.Mesh
    latest: Any = None  # the newest state, for host actors (a step behind the learner)
    _envs: dict[int, Any] = dataclasses.field(default_factory=dict)

    @property
    def on_host(self) -> bool:
        return self.config.renderer != "jax_paint"

    def env(self, batch: int, workers: int):
        if batch not in self._envs:
            from thesis_jax.spiral.envs.batched import BatchedEnv

            self._envs[batch] = BatchedEnv(make_env_factory(self.config), batch, workers)
        return self._envs[batch]

    def paint(self, state: train.SpiralState, targets: np.ndarray, seed: int) -> train.Trajectory:
        """Episodes for `targets` (numpy, this process's), time-major numpy arrays."""
        rng = jax.random.PRNGKey(seed)
        if self.on_host:
            env = self.env(len(targets), 0)
            return train.host_rollout(state, env, targets, rng)
        trajectory = _jitted_rollout(state, paint_config(self.config), targets, rng)
        return jax.tree.map(np.asarray, jax.device_get(trajectory))

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


@functools.partial(jax.jit, static_argnums=1)
def _jitted_rollout(state, paint_cfg, targets, rng):
    return train.rollout(state, paint_cfg, targets, rng)


def _sample_pictures(
    trajectory: train.Trajectory, targets: np.ndarray, conditional: bool, workdir: str, step: int
) -> None:
    finals = trajectory.final_canvas
    if conditional:  # pairs: target | reconstruction
        tiles = [tile for pair in zip(targets, finals, strict=True) for tile in pair]
        grid = core.image_grid(tiles, ncols=8)
    else:
        grid = core.image_grid(list(finals), ncols=8)
    scale = max(1, 256 // finals.shape[1])
    core.save_png(os.path.join(workdir, "samples", f"step_{step:06d}.png"), grid, scale)
    core.save_png(os.path.join(workdir, "samples.png"), grid, scale)
    shown = min(8, len(finals))
    frames = [
        core.image_grid(list(canvases[:shown]), ncols=shown)
        for canvases in [*trajectory.canvases, finals]
    ]
    if conditional:
        frames = [
            np.concatenate([core.image_grid(list(targets[:shown]), ncols=shown), f]) for f in frames
        ]
    core.save_gif(os.path.join(workdir, "episode.gif"), frames, scale=scale)


def l2_to_targets(finals: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    diff = (np.asarray(finals) - np.asarray(targets)).reshape(len(targets), -1)
    return {
        "l2": float(np.mean(np.sqrt(np.sum(diff**2, axis=1)))),
        "mse": float(np.mean(diff**2)),
    }


# No schedule depends on num_steps, so a run may be continued with a larger one; PBT changes
# the policy's learning rate and entropy cost between rounds; the Ray layout is not the model.
MAY_DIFFER = (
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


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> core.LoopResult:
    check_config(config)
    core.presets.claim_workdir(config, workdir, may_differ=MAY_DIFFER)
    train_images, eval_images = load_targets(config)
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
    actors = Actors(config, mesh)
    sample_targets = eval_images[:NUM_SAMPLES]

    def targets_for(step: int) -> np.ndarray:
        index = epoch_indices(len(train_images), config.batch_size, step, config.seed)
        return parallel.process_slice(train_images[index])

    if actors.on_host:
        local = len(targets_for(0))
        env = actors.env(local, config.num_actors)

        def batch_fn(step: int) -> dict[str, np.ndarray]:
            targets = targets_for(step)
            rng = jax.random.PRNGKey(config.seed * 1_000_003 + step)
            trajectory = train.host_rollout(actors.latest, env, targets, rng)
            return train.trajectory_batch(trajectory, targets)

        update = train.update_from_trajectories
    else:

        def batch_fn(step: int) -> dict[str, np.ndarray]:
            return {"target": targets_for(step)}

        update = functools.partial(train.update, paint_config=paint_config(config))

    def remember(step: int, state: train.SpiralState) -> None:
        actors.latest = state

    def samples(step: int, state: train.SpiralState) -> None:
        trajectory = actors.paint(state, sample_targets, seed=step)
        if jax.process_index() == 0:
            _sample_pictures(trajectory, sample_targets, config.conditional, workdir, step)

    def evaluate(state: train.SpiralState) -> dict[str, float]:
        trajectory = actors.paint(state, eval_images, seed=12345)
        metrics = {"ink": float(np.mean(trajectory.final_canvas < 0.5))}
        if config.conditional:
            metrics.update(l2_to_targets(trajectory.final_canvas, eval_images))
        if config.reward == "critic":  # PBT's fitness (app. A.3)
            metrics["critic_score"] = critic_score(state, trajectory.final_canvas, eval_images)
        return metrics

    if config.distributed:
        try:
            result = _train_distributed(config, workdir, state, train_images, evaluate, samples)
        finally:
            actors.close()
        return _finish(result, workdir)
    actors.latest = parallel.replicate(state, mesh)
    periodic = [core.Periodic(1, remember, at_end=False)] if actors.on_host else []
    periodic.append(core.Periodic(config.sample_every, samples))
    try:
        result = core.train(
            state,
            update,
            batch_fn,
            num_steps=config.num_steps,
            workdir=workdir,
            mesh=mesh,
            log_every=config.log_every,
            checkpoint_every=config.checkpoint_every,
            keep_checkpoints=config.keep_checkpoints,
            eval_fn=evaluate,
            eval_every=config.eval_every,
            periodic=periodic,
            desc=f"spiral/{config.preset}",
        )
    finally:
        actors.close()
    return _finish(result, workdir)


def _finish(result: core.LoopResult, workdir: str) -> core.LoopResult:
    if jax.process_index() == 0 and not result.interrupted:
        summary = {"step": result.step, **result.eval_metrics}
        core.write_atomic(os.path.join(workdir, "results.json"), json.dumps(summary, indent=2))
        absl_logging.info("held-out %s; pictures in %s", summary, workdir)
    return result


def critic_score(state: train.SpiralState, images: np.ndarray, targets: np.ndarray) -> float:
    """Mean D(x) (or D(x | target)) of `images` under the state's critic: PBT's fitness."""
    condition = targets if state.hparams.conditional else None
    scores = _jitted_critic(state.critic.apply_fn, state.critic.params, images, condition)
    return float(np.mean(scores))


@functools.partial(jax.jit, static_argnums=0)
def _jitted_critic(apply_fn, params, images, condition):
    return apply_fn(params, images, condition)


def make_program(config: ml_collections.ConfigDict, targets: np.ndarray) -> distributed.Program:
    """The picklable description of this experiment that Ray's workers rebuild it from."""
    # Imported by name, so the functions pickle by reference even when this file is __main__.
    from experiments import spiral

    on_host = config.renderer != "jax_paint"
    return distributed.Program(
        init_state=functools.partial(spiral.init_state, config),
        targets=targets,
        paint_config=None if on_host else spiral.paint_config(config),
        make_env=spiral.make_env_factory(config) if on_host else None,
        batch_size=config.batch_size,
        episodes_per_actor_step=config.episodes_per_actor,
        seed=config.seed,
    )


def _train_distributed(config, workdir, state, train_images, evaluate, samples) -> core.LoopResult:
    settings = distributed.Settings(
        num_actors=config.num_actors,
        queue_batches=config.queue_batches,
        learner_gpus=config.learner_gpus,
        chunk_steps=max(1, min(config.log_every, 50)),
        ray_address=config.ray_address or None,
    )
    return distributed.train(
        make_program(config, train_images),
        settings,
        num_steps=config.num_steps,
        workdir=workdir,
        log_every=config.log_every,
        checkpoint_every=config.checkpoint_every,
        keep_checkpoints=config.keep_checkpoints,
        eval_fn=evaluate,
        eval_every=config.eval_every,
        periodic=[core.Periodic(config.sample_every, samples)],
        desc=f"spiral/{config.preset}/ray",
        template=state,
    )


def pbt_fitness(config: ml_collections.ConfigDict):
    """Discriminator score (app. A.3); with the l2 reward there is no critic: -l2."""
    if config.reward == "critic":
        return lambda metrics: metrics["critic_score"]
    return lambda metrics: -metrics["l2"]


def train_member(
    config: ml_collections.ConfigDict, index: int, hyperparams, workdir: str, until: int
) -> dict[str, float]:
    """One PBT member trained to step `until` in `workdir` with `hyperparams` (picklable)."""
    member = ml_collections.ConfigDict(config.to_dict())
    member.pbt_population = 0
    member.seed = config.seed + index
    member.num_steps = until
    member.eval_every = until  # evaluation (the fitness) at the end of the round
    for name, value in hyperparams.items():
        member[name] = float(value)
    result = train_and_evaluate(member, workdir)
    if result.interrupted:
        raise KeyboardInterrupt(f"PBT member {index} was interrupted; rerun to resume")
    return dict(result.eval_metrics)


def run_pbt(config: ml_collections.ConfigDict, workdir: str) -> pbt.PopulationResult:
    """Population-based training of `config.pbt_population` members (app. A.3).

    Members start from log-uniform draws around the preset's entropy cost and policy learning
    rate (x10^[-0.5, 0.5]); every `num_steps / pbt_rounds` steps the bottom `pbt_fraction`
    copy the checkpoint of a top member and perturb its hyperparameters by 0.8 or 1.25.
    Writes `workdir/pbt.jsonl`, `pbt.png` and `pbt.json` (the best member and its metrics).
    """
    from experiments import spiral

    check_config(config)
    if config.num_steps % config.pbt_rounds:
        raise core.ConfigError(
            f"num_steps ({config.num_steps}) must be a multiple of pbt_rounds ({config.pbt_rounds})"
        )
    core.presets.claim_workdir(config, workdir, may_differ=MAY_DIFFER)
    rng = np.random.default_rng(config.seed)
    names = pbt.SPIRAL_HYPERPARAMS
    initial = [
        {name: float(config[name] * 10 ** rng.uniform(-0.5, 0.5)) for name in names}
        for _ in range(config.pbt_population)
    ]
    if config.pbt_parallel:
        distributed.init_ray(config.ray_address or None)
    result = pbt.run_population(
        functools.partial(spiral.train_member, config),
        initial,
        workdir,
        rounds=config.pbt_rounds,
        round_steps=config.num_steps // config.pbt_rounds,
        fitness=pbt_fitness(config),
        seed=config.seed,
        fraction=config.pbt_fraction,
        bounds={"entropy_cost": (1e-5, 1.0), "policy_learning_rate": (1e-6, 1e-2)},
        parallel=config.pbt_parallel,
    )
    if jax.process_index() == 0:
        summary = {
            "best_member": result.best,
            "fitness": result.fitness,
            "hyperparams": result.hyperparams,
            "plot": pbt.plot_population(result.history, os.path.join(workdir, "pbt.png")),
        }
        core.write_atomic(os.path.join(workdir, "pbt.json"), json.dumps(summary, indent=2))
        absl_logging.info("PBT done: best member %d, %s", result.best, summary)
    return result


def plot_l2_curves(runs: dict[str, str], path: str) -> str:
    """Held-out l2 over training for several runs (fig. 6.9a: critic reward vs l2 reward).

    runs: {label: workdir}; each workdir's `metrics.jsonl` must hold `eval/l2` records. Labels
    of the form "NAME (anything)" share one colour per NAME, so seeds of one reward match.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4), dpi=120)
    colours: dict[str, str] = {}
    for label, workdir in runs.items():
        records = [r for r in core.metrics.read_metrics(workdir) if "eval/l2" in r]
        if not records:
            raise ValueError(f"{workdir} has no eval/l2 records yet")
        group = label.split(" (")[0]
        colour = colours.setdefault(group, f"C{len(colours)}")
        axis.plot(
            [r["step"] for r in records],
            [r["eval/l2"] for r in records],
            color=colour,
            label=label,
        )
    axis.set_xlabel("policy steps")
    axis.set_ylabel("l2 distance to held-out targets")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return core.save_figure(figure, path)


def compare_rewards(
    workdir: str,
    *,
    preset: str = "digits",
    seeds: tuple[int, ...] = (0,),
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fig. 6.9a: train a conditional preset with the critic reward and with the l2 reward.

    Runs `preset` and `preset_l2` for every seed (in `workdir/<reward>_seed<N>`, resumable),
    writes `workdir/l2_curves.png` and `workdir/comparison.json`, and returns the final held-out
    l2 of every run and the mean per reward.
    """
    runs: dict[str, str] = {}
    final: dict[str, list[float]] = {"critic": [], "l2": []}
    for seed in seeds:
        for reward, name in (("critic", preset), ("l2", f"{preset}_l2")):
            config = core.get_config(name, _PRESETS, {**(overrides or {}), "seed": seed})
            if not config.conditional:
                raise ValueError(f"{preset!r} is unconditional; the l2 reward needs targets")
            run_dir = os.path.join(workdir, f"{reward}_seed{seed}")
            result = train_and_evaluate(config, run_dir)
            if result.interrupted:
                raise KeyboardInterrupt(f"{run_dir} was interrupted; rerun to resume")
            runs[f"{reward} reward (seed {seed})"] = run_dir
            final[reward].append(result.eval_metrics["l2"])
    summary = {
        "preset": preset,
        "seeds": list(seeds),
        "final_l2": final,
        "mean_l2": {reward: float(np.mean(values)) for reward, values in final.items()},
        "curves": plot_l2_curves(runs, os.path.join(workdir, "l2_curves.png")),
    }
    if jax.process_index() == 0:
        core.write_atomic(os.path.join(workdir, "comparison.json"), json.dumps(summary, indent=2))
    return summary


def tour(workdir: str, budget: float = 1.0) -> Any:
    """The SPIRAL section of `experiments.tour`: critic vs l2 reward on `digits` (fig. 6.9a)."""
    from experiments.tour_section import TourSection

    steps = max(20, int(400 * budget))
    every = max(10, steps // 8)
    overrides = {
        "num_steps": steps,
        "eval_every": every,
        "log_every": every,
        "sample_every": steps,
        "checkpoint_every": steps,
    }
    summary = compare_rewards(workdir, overrides=overrides)
    critic_dir = os.path.join(workdir, "critic_seed0")
    return TourSection(
        title="SPIRAL: painting agents trained against a critic (thesis ch. 6)",
        summary=(
            "An agent paints sklearn's digits with 10 brush strokes (JaxPaint, inside the jitted "
            "step). It is rewarded either by a conditional WGAN critic or by the l2 distance to "
            f"the target; {steps} policy steps each. The thesis's claim (fig. 6.9a): the critic "
            "reward ends at a lower l2 than optimising l2 directly."
        ),
        pictures=[
            (summary["curves"], "held-out l2 over training, critic vs l2 reward (fig. 6.9a)"),
            (
                os.path.join(critic_dir, "samples.png"),
                "critic reward: targets (left) beside the agent's reconstructions",
            ),
            (os.path.join(critic_dir, "episode.gif"), "episodes painted stroke by stroke"),
        ],
        table_header=("reward", "held-out l2, digits (ours)", "thesis"),
        table_rows=[
            ("critic (WGAN-GP)", f"{summary['mean_l2']['critic']:.2f}", "lower (fig. 6.9a)"),
            ("l2", f"{summary['mean_l2']['l2']:.2f}", "higher"),
        ],
        note="Longer runs: python -m experiments.spiral --config=digits (and digits_l2).",
    )


def main(config: ml_collections.ConfigDict, workdir: str) -> None:
    if config.pbt_population:
        run_pbt(config, workdir)
    else:
        train_and_evaluate(config, workdir)


if __name__ == "__main__":
    core.presets.run(main, name="spiral", preset_file=_PRESETS, default_preset="digits")
