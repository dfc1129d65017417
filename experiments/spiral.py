r"""SPIRAL experiments (thesis ch. 6): train a painting (or scene-building) agent with a critic.

    python -m experiments.spiral                                # offline `digits` (conditional)
    python -m experiments.spiral --config=digits_l2             # the same with the l2 reward
    python -m experiments.spiral --config=celeba --config.data_dir=~/tensorflow_datasets
    python -m experiments.spiral --config=mnist_cond --config.renderer=libmypaint \
        --config.num_actors=8
    python -m experiments.spiral --config=digits --config.distributed=True --config.num_actors=4
    python -m experiments.spiral --config=digits --config.pbt_population=4 --config.pbt_rounds=5
    python -m experiments.spiral --config=mnist_cond_cpu --compare=critic,l2,blind --seeds=0,1,2

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
from absl import flags
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


VARIANTS = {"critic": "critic reward", "l2": "l2 reward", "blind": "blind agent"}
"""Fig. 6.9a's agents: the critic's reward, the l2 reward (sec. 6.3.3), and the critic's reward
for a policy that never sees its canvas (sec. 6.4.3)."""


def variant_config(config: ml_collections.ConfigDict, variant: str) -> ml_collections.ConfigDict:
    """`config`, a conditional preset with the critic reward, as fig. 6.9a's `variant`: the
    same as its preset's `_l2` or `_blind` sibling (experiments/configs/spiral.py)."""
    if variant not in VARIANTS:
        raise core.ConfigError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
    if not config.conditional or config.reward != "critic" or config.policy.blind:
        raise core.ConfigError(
            f"{config.preset!r} is not a conditional agent with the critic reward; compare "
            "from one (e.g. mnist_cond_cpu, not its _l2 or _blind variants)"
        )
    config = config.copy_and_resolve_references()
    config.reward = "l2" if variant == "l2" else "critic"
    config.policy.blind = variant == "blind"
    if variant != "critic":
        config.preset = f"{config.preset}_{variant}"
    return config


def compare_rewards(
    workdir: str,
    *,
    preset: str | ml_collections.ConfigDict = "digits",
    seeds: tuple[int, ...] = (0,),
    overrides: dict[str, Any] | None = None,
    variants: tuple[str, ...] = ("critic", "l2"),
) -> dict[str, Any]:
    """Fig. 6.9a: train a conditional preset with the critic reward, with the l2 reward and,
    when `variants` names it, blind (`VARIANTS`).

    `preset` is a preset's name (with `overrides`) or its config. Runs every variant for every
    seed (in `workdir/<variant>_seed<N>`, resumable), writes `workdir/l2_curves.png` and
    `workdir/comparison.json`, and returns the final held-out l2 (and readability) of every run
    and their mean per variant.
    """
    if isinstance(preset, str):
        preset = core.get_config(preset, _PRESETS, overrides)
    for variant in variants:  # every name checked before the first run starts
        variant_config(preset, variant)
    runs: dict[str, str] = {}
    final: dict[str, list[float]] = {variant: [] for variant in variants}
    readable: dict[str, list[float]] = {variant: [] for variant in variants}
    ceiling: list[float] = []
    for seed in seeds:
        for variant in variants:
            config = variant_config(preset, variant)
            config.seed = seed
            run_dir = os.path.join(workdir, f"{variant}_seed{seed}")
            result = train_and_evaluate(config, run_dir)
            if result.interrupted:
                raise KeyboardInterrupt(f"{run_dir} was interrupted; rerun to resume")
            runs[f"{VARIANTS[variant]} (seed {seed})"] = run_dir
            final[variant].append(result.eval_metrics["l2"])
            if "readability" in result.eval_metrics:
                readable[variant].append(result.eval_metrics["readability"])
                ceiling.append(result.eval_metrics["readability_targets"])
    summary = {
        "preset": preset.preset,
        "seeds": list(seeds),
        "steps": preset.num_steps,
        "final_l2": final,
        "mean_l2": {variant: float(np.mean(values)) for variant, values in final.items()},
        "final_readability": readable,
        "mean_readability": {
            variant: float(np.mean(values)) for variant, values in readable.items() if values
        },
        "readability_ceiling": float(np.mean(ceiling)) if ceiling else None,
        "curves": report.plot_curves(runs, os.path.join(workdir, "l2_curves.png")),
    }
    if jax.process_index() == 0:
        core.write_atomic(os.path.join(workdir, "comparison.json"), json.dumps(summary, indent=2))
    return summary


def tour(workdir: str, budget: float = 1.0, seed: int = 0) -> Any:
    """The SPIRAL section of `experiments.tour`: critic vs l2 reward on `digits` (fig. 6.9a)."""
    from experiments.tour_section import TourSection, ordering

    steps = max(20, int(400 * budget))
    every = max(10, steps // 8)
    overrides = {
        "num_steps": steps,
        "eval_every": every,
        "log_every": every,
        "sample_every": steps,
        "checkpoint_every": steps,
    }
    summary = compare_rewards(workdir, seeds=(seed,), overrides=overrides)
    critic_dir = os.path.join(workdir, f"critic_seed{seed}")
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
        ordering=ordering(  # fig. 6.9a, on the held-out l2
            {reward: summary["mean_l2"][reward] for reward in ("critic", "l2")},
            ("critic", "l2"),
            {"critic": "critic reward", "l2": "l2 reward"},
            lower_is_better=True,
        ),
    )


def main(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    compare: tuple[str, ...] = (),
    seeds: tuple[int, ...] = (0,),
) -> None:
    """One run of `config`; PBT when it has a population; with `compare` (`VARIANTS`), fig.
    6.9a's runs of those variants for every seed (`compare_rewards`)."""
    if compare:
        summary = compare_rewards(workdir, preset=config, seeds=seeds, variants=tuple(compare))
        absl_logging.info("fig. 6.9a: %s", json.dumps(summary))
    elif config.pbt_population:
        run_pbt(config, workdir)
    else:
        train_and_evaluate(config, workdir)


_COMPARE = flags.DEFINE_list(
    "compare",
    [],
    f"Fig. 6.9a: train the preset as each of these variants ({', '.join(VARIANTS)}) for every "
    "--seeds seed, in workdir/<variant>_seed<N>, and plot them together (l2_curves.png).",
)
_SEEDS = flags.DEFINE_list("seeds", ["0"], "Seeds of --compare's runs.")


def _main_with_flags(config: ml_collections.ConfigDict, workdir: str) -> None:
    try:
        seeds = tuple(int(seed) for seed in _SEEDS.value)
    except ValueError as error:
        raise core.ConfigError(f"--seeds takes integers, got {_SEEDS.value}") from error
    main(config, workdir, compare=tuple(_COMPARE.value), seeds=seeds)


if __name__ == "__main__":
    core.presets.run(
        _main_with_flags,
        name="spiral",
        preset_file=_PRESETS,
        default_preset="digits",
        check=experiment.check_config,
    )
