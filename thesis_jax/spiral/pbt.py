"""Population-based training (Jaderberg et al., 2017) as SPIRAL used it (app. A.3).

A population of instances trains in rounds. After each round every member is scored (SPIRAL:
by its discriminator, "we assume that discriminator scores are compatible across different
instances and use them as a measure of fitness", A.3); the worst members copy the checkpoint of
one of the best (exploit) and continue with that member's hyperparameters, each multiplied by a
random perturbation factor (explore). SPIRAL explores the entropy coefficient and the policy
learning rate.

`exploit_and_explore` is the pure decision rule; `run_population` drives rounds with any
`train_member` function and copies checkpoints between members' workdirs. Members of a round
run as Ray tasks in parallel when `parallel=True`, one after another otherwise.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from absl import logging as absl_logging

from thesis_jax.core.metrics import write_atomic

SPIRAL_HYPERPARAMS = ("entropy_cost", "policy_learning_rate")
"""What SPIRAL's PBT explores (app. A.3)."""


@dataclasses.dataclass(frozen=True)
class Decision:
    """Member `member` continues from `source`'s checkpoint with `hyperparams`."""

    member: int
    source: int
    hyperparams: dict[str, float]


def exploit_and_explore(
    fitness: Sequence[float],
    hyperparams: Sequence[Mapping[str, float]],
    rng: np.random.Generator,
    *,
    fraction: float = 0.25,
    perturbations: tuple[float, ...] = (0.8, 1.25),
    bounds: Mapping[str, tuple[float, float]] | None = None,
) -> list[Decision]:
    """Truncation selection: the bottom `fraction` copy a random member of the top `fraction`.

    Each copied hyperparameter is multiplied by a factor drawn from `perturbations` and clipped
    to `bounds`. Non-finite fitness (a diverged member) ranks last. With fewer than 2 members
    there is nothing to do.
    """
    count = len(fitness)
    if count != len(hyperparams):
        raise ValueError(f"{count} fitness values for {len(hyperparams)} members")
    if not 0 < fraction <= 0.5:
        raise ValueError(f"fraction must be in (0, 0.5], got {fraction}")
    if count < 2:
        return []
    scores = np.array([f if math.isfinite(f) else -np.inf for f in fitness], np.float64)
    order = np.argsort(scores, kind="stable")  # worst first
    cut = max(1, round(count * fraction))
    bottom, top = order[:cut], order[-cut:]
    decisions = []
    for member in bottom:
        source = int(rng.choice(top))
        explored = {}
        for name, value in hyperparams[source].items():
            value = float(value) * float(rng.choice(perturbations))
            if bounds and name in bounds:
                low, high = bounds[name]
                value = float(np.clip(value, low, high))
            explored[name] = value
        decisions.append(Decision(int(member), source, explored))
    return decisions


def copy_checkpoints(source_dir: str, member_dir: str, subdirs: Sequence[str]) -> None:
    """Replaces `member_dir/<subdir>` by a copy of `source_dir/<subdir>` (write, then rename)."""
    for subdir in subdirs:
        source = os.path.join(source_dir, subdir)
        if not os.path.isdir(source):
            raise FileNotFoundError(f"{source} does not exist: the member saved no checkpoint")
        destination = os.path.join(member_dir, subdir)
        staging = destination + ".incoming"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        old = destination + ".old"
        shutil.rmtree(old, ignore_errors=True)
        if os.path.exists(destination):
            os.rename(destination, old)
        os.rename(staging, destination)
        shutil.rmtree(old, ignore_errors=True)


TrainMember = Callable[[int, Mapping[str, float], str, int], Mapping[str, float]]
"""(member index, hyperparams, member workdir, train until step) -> evaluation metrics."""


@dataclasses.dataclass
class PopulationResult:
    fitness: list[float]
    hyperparams: list[dict[str, float]]
    history: list[dict[str, Any]]
    best: int


def run_population(
    train_member: TrainMember,
    initial_hyperparams: Sequence[Mapping[str, float]],
    workdir: str,
    *,
    rounds: int,
    round_steps: int,
    fitness: Callable[[Mapping[str, float]], float],
    checkpoint_subdirs: Sequence[str] = ("checkpoints",),
    seed: int = 0,
    fraction: float = 0.25,
    perturbations: tuple[float, ...] = (0.8, 1.25),
    bounds: Mapping[str, tuple[float, float]] | None = None,
    parallel: bool = False,
    member_resources: Mapping[str, float] | None = None,
) -> PopulationResult:
    """Trains `len(initial_hyperparams)` members for `rounds` rounds of `round_steps` steps.

    Member i lives in `workdir/member_<i>`. After every round but the last, members are scored
    with `fitness(eval_metrics)` and `exploit_and_explore` decides; copied members get the
    source's `checkpoint_subdirs`. Every round is appended to `workdir/pbt.jsonl`, and the state
    of the population is kept in `workdir/pbt_state.json`, so an interrupted population resumes
    at the round it was in (members resume from their own checkpoints).
    """
    os.makedirs(workdir, exist_ok=True)
    state_path = os.path.join(workdir, "pbt_state.json")
    log_path = os.path.join(workdir, "pbt.jsonl")
    hyperparams = [dict(h) for h in initial_hyperparams]
    first_round, history = 0, []
    if os.path.exists(state_path):
        saved = json.loads(open(state_path).read())
        if len(saved["hyperparams"]) != len(hyperparams):
            raise ValueError(
                f"{workdir} holds a population of {len(saved['hyperparams'])}, not "
                f"{len(hyperparams)}: use the same size or a new workdir"
            )
        hyperparams, first_round, history = saved["hyperparams"], saved["round"], saved["history"]
        absl_logging.info("PBT resumes at round %d", first_round)
    rng = np.random.default_rng([seed, first_round])
    member_dirs = [os.path.join(workdir, f"member_{i}") for i in range(len(hyperparams))]
    scores: list[float] = []
    for round_index in range(first_round, rounds):
        until = (round_index + 1) * round_steps
        metrics = _train_round(
            train_member, hyperparams, member_dirs, until, parallel, member_resources
        )
        scores = [float(fitness(m)) for m in metrics]
        decisions = (
            exploit_and_explore(
                scores,
                hyperparams,
                rng,
                fraction=fraction,
                perturbations=perturbations,
                bounds=bounds,
            )
            if round_index < rounds - 1
            else []
        )
        record = {
            "round": round_index,
            "step": until,
            "fitness": scores,
            "hyperparams": [dict(h) for h in hyperparams],
            "decisions": [dataclasses.asdict(d) for d in decisions],
        }
        for decision in decisions:
            copy_checkpoints(
                member_dirs[decision.source], member_dirs[decision.member], checkpoint_subdirs
            )
            hyperparams[decision.member] = decision.hyperparams
            absl_logging.info(
                "PBT round %d: member %d (fitness %.4g) <- member %d (%.4g), now %s",
                round_index,
                decision.member,
                scores[decision.member],
                decision.source,
                scores[decision.source],
                decision.hyperparams,
            )
        history.append(record)
        with open(log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        write_atomic(
            state_path,
            json.dumps({"round": round_index + 1, "hyperparams": hyperparams, "history": history}),
        )
    if not scores and history:
        scores = history[-1]["fitness"]
    best = int(np.nanargmax(np.where(np.isfinite(scores), scores, np.nan))) if scores else 0
    return PopulationResult(scores, hyperparams, history, best)


def _train_round(
    train_member: TrainMember,
    hyperparams: Sequence[Mapping[str, float]],
    member_dirs: Sequence[str],
    until: int,
    parallel: bool,
    resources: Mapping[str, float] | None,
) -> list[Mapping[str, float]]:
    if not parallel:
        return [
            train_member(i, h, d, until)
            for i, (h, d) in enumerate(zip(hyperparams, member_dirs, strict=True))
        ]
    import ray

    remote = ray.remote(**{"num_cpus": 1, **(resources or {})})(train_member)
    refs = [
        remote.remote(i, dict(h), d, until)
        for i, (h, d) in enumerate(zip(hyperparams, member_dirs, strict=True))
    ]
    return ray.get(refs)


def plot_population(history: Sequence[Mapping[str, Any]], path: str) -> str:
    """Fitness and hyperparameters of every member over rounds (what PBT did), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from thesis_jax.core.metrics import save_figure

    names = list(history[0]["hyperparams"][0]) if history else []
    figure, axes = plt.subplots(1, 1 + len(names), figsize=(4 * (1 + len(names)), 3.2), dpi=110)
    axes = np.atleast_1d(axes)
    members = len(history[0]["fitness"]) if history else 0
    steps = [r["step"] for r in history]
    for m in range(members):
        axes[0].plot(steps, [r["fitness"][m] for r in history], marker="o", label=f"member {m}")
        for axis, name in zip(axes[1:], names, strict=True):
            axis.plot(steps, [r["hyperparams"][m][name] for r in history], marker="o")
    axes[0].set_title("fitness")
    for axis, name in zip(axes[1:], names, strict=True):
        axis.set_title(name)
        axis.set_yscale("log")
    for axis in axes:
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    if members:
        axes[0].legend(fontsize=7)
    figure.tight_layout()
    return save_figure(figure, path)
