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
targets and, for digits, readability: see `thesis_jax.spiral.readability`), `results.json` (the
final held-out metrics), `samples/step_NNNNNN.png` (targets beside reconstructions for
conditional presets, samples otherwise; the newest also as `samples.png`) and `episode.gif`
(episodes painted stroke by stroke). Ctrl-C or SIGTERM saves a checkpoint; the same command resumes.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging as absl_logging

from thesis_jax import core
from thesis_jax.spiral import distributed, experiment, pbt, report

_PRESETS = os.path.join(os.path.dirname(__file__), "configs", "spiral.py")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> core.LoopResult:
    """Trains the agent of `config` in `workdir` and writes `results.json` (held-out metrics)."""
    result = experiment.train_agent(config, workdir)
    report.write_results(result, workdir)
    return result


def run_pbt(config: ml_collections.ConfigDict, workdir: str) -> pbt.PopulationResult:
    """Population-based training of `config.pbt_population` members (app. A.3).

    Members start from log-uniform draws around the preset's entropy cost and policy learning
    rate (x10^[-0.5, 0.5]); every `num_steps / pbt_rounds` steps the bottom `pbt_fraction`
    copy the checkpoint of a top member and perturb its hyperparameters by 0.8 or 1.25.
    Writes `workdir/pbt.jsonl`, `pbt.png` and `pbt.json` (the best member and its metrics).
    """
    experiment.check_config(config)
    if config.num_steps % config.pbt_rounds:
        raise core.ConfigError(
            f"num_steps ({config.num_steps}) must be a multiple of pbt_rounds ({config.pbt_rounds})"
        )
    core.presets.claim_workdir(config, workdir, may_differ=experiment.MAY_DIFFER)
    if config.pbt_parallel:
        distributed.init_ray(config.ray_address or None)
    result = pbt.run_population(
        functools.partial(experiment.train_member, config),
        experiment.initial_hyperparams(config),
        workdir,
        rounds=config.pbt_rounds,
        round_steps=config.num_steps // config.pbt_rounds,
        fitness=experiment.pbt_fitness(config),
        seed=config.seed,
        fraction=config.pbt_fraction,
        bounds=experiment.PBT_BOUNDS,
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
    readable: dict[str, list[float]] = {"critic": [], "l2": []}
    ceiling: list[float] = []
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
            if "readability" in result.eval_metrics:
                readable[reward].append(result.eval_metrics["readability"])
                ceiling.append(result.eval_metrics["readability_targets"])
    summary = {
        "preset": preset,
        "seeds": list(seeds),
        "final_l2": final,
        "mean_l2": {reward: float(np.mean(values)) for reward, values in final.items()},
        "final_readability": readable,
        "mean_readability": {
            reward: float(np.mean(values)) for reward, values in readable.items() if values
        },
        "readability_ceiling": float(np.mean(ceiling)) if ceiling else None,
        "curves": report.plot_curves(runs, os.path.join(workdir, "l2_curves.png")),
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
        table_header=(
            "reward",
            "held-out l2, digits (ours)",
            f"readability (ours; the targets: {summary['readability_ceiling']:.2f})",
            "thesis",
        ),
        table_rows=[
            (
                title,
                f"{summary['mean_l2'][reward]:.2f}",
                f"{summary['mean_readability'][reward]:.2f}",
                thesis,
            )
            for reward, title, thesis in (
                ("critic", "critic (WGAN-GP)", "lower l2 (fig. 6.9a)"),
                ("l2", "l2", "higher l2"),
            )
        ],
        note=(
            "Readability: the share of held-out reconstructions that a digit classifier trained "
            "on real MNIST reads as the target's digit (`thesis_jax.spiral.readability`). "
            "Longer runs: python -m experiments.spiral --config=digits (and digits_l2)."
        ),
    )


def main(config: ml_collections.ConfigDict, workdir: str) -> None:
    if config.pbt_population:
        run_pbt(config, workdir)
    else:
        train_and_evaluate(config, workdir)


if __name__ == "__main__":
    core.presets.run(main, name="spiral", preset_file=_PRESETS, default_preset="digits")
