r"""Blocked Metropolis-Hastings on held-out MuJoCo scenes: the MCMC half of thesis fig. 6.10.

    python -m experiments.spiral_mcmc                              # 16 images x 2000 evaluations
    python -m experiments.spiral_mcmc --config=thesis              # 100 images x 10,000
    python -m experiments.spiral_mcmc --config.batch_size=4 --config.num_steps=500 --workdir=DIR

Sec. 6.4.6 shows how hard the MuJoCo Scenes search space is by running general-purpose blocked
Metropolis-Hastings (`thesis_jax.spiral.mcmc.blocked_mh`) on held-out images: the latent is a
trace of up to 20 objects, each step redraws one object's block uniformly, and the rendered
proposal is accepted under a Gaussian likelihood (variance 0.25) around the target. Here
`num_steps` is the number of evaluations (renders) per image and `batch_size` the number of
held-out images (scenes 0..batch_size-1 of `holdout_seed`); chain i uses
`default_rng([seed, i])`.

Writes into the workdir:

    curves.png           l2 to the target vs. evaluations (log x): mean best-so-far l2 with a
                         min-max band across images, and each chain's current l2 faintly
    results.json         per image: best / final l2, acceptance rate, object counts; the mean
                         (std, min, max) curves at the evaluation counts of `report_at`
    reconstructions.png  rows of targets above the best MH reconstruction of each
    curves.npz           every chain's l2 after each evaluation, [images, evaluations]
    chains/NNNN.npz      one finished chain each, written as it finishes

Finished chains are kept: an interrupted run loses at most the chain in progress, and the same
command resumes with the next image (the workdir's config.json must match).
"""

from __future__ import annotations

import io
import json
import os
import sys
from typing import Any

import ml_collections
import numpy as np
from absl import logging as absl_logging

from thesis_jax import core
from thesis_jax.spiral import mcmc_experiment

_PRESETS = os.path.join(os.path.dirname(__file__), "configs", "spiral_mcmc.py")

# Fields that only change the report, not the chains: a finished run may be re-reported with
# other values.
_REPORT_FIELDS = ("report_at", "num_reconstructions")


def run_experiment(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Runs (or resumes) every chain and writes the report; returns results.json's contents."""
    mcmc_experiment.check_config(config)
    core.presets.claim_workdir(config, workdir, may_differ=_REPORT_FIELDS)
    targets, scenes = mcmc_experiment.load_targets(config)
    absl_logging.info(
        "blocked MH on %d held-out MuJoCo scenes (seed %d), %d evaluations each",
        len(targets),
        config.holdout_seed,
        config.num_steps,
    )
    chains = mcmc_experiment.run_chains(config, workdir, targets, scenes)
    results = mcmc_experiment.summarize(config, chains, scenes)
    current = np.stack([chain["l2_history"] for chain in chains])
    buffer = io.BytesIO()
    np.savez_compressed(buffer, l2_history=current)
    core.write_atomic(os.path.join(workdir, "curves.npz"), buffer.getvalue())
    core.write_atomic(os.path.join(workdir, "results.json"), json.dumps(results, indent=2))
    mcmc_experiment.plot_curves(
        current,
        os.path.join(workdir, "curves.png"),
        f"Blocked Metropolis-Hastings on {len(chains)} held-out MuJoCo scenes",
    )
    shown = min(len(chains), config.num_reconstructions)
    if shown > 0:
        outputs = mcmc_experiment.best_renders(config, chains[:shown], scenes)
        grid = mcmc_experiment.reconstructions_grid(targets[:shown], outputs)
        core.save_png(os.path.join(workdir, "reconstructions.png"), grid, scale=2)
    return results


def summary_text(results: dict[str, Any]) -> str:
    lines = [
        f"Blocked MH on {results['num_images']} held-out MuJoCo scenes, "
        f"{results['num_evaluations']} evaluations each "
        f"(acceptance rate {results['mean_acceptance_rate']:.3f}; proposals accepted that "
        f"changed the image {results['mean_change_rate']:.3f})",
        f"{'evaluations':>12} {'best l2 mean':>13} {'std':>8} {'min':>8} {'max':>8} "
        f"{'current l2':>11}",
    ]
    for n in results["mean_best_l2_at"]:
        lines.append(
            f"{n:>12} {results['mean_best_l2_at'][n]:>13.5f} {results['std_best_l2_at'][n]:>8.5f} "
            f"{results['min_best_l2_at'][n]:>8.5f} {results['max_best_l2_at'][n]:>8.5f} "
            f"{results['mean_current_l2_at'][n]:>11.5f}"
        )
    return "\n".join(lines)


def main(config: ml_collections.ConfigDict, workdir: str) -> None:
    try:
        results = run_experiment(config, workdir)
    except KeyboardInterrupt:
        sys.exit(130)  # finished chains are on disk; run_chains logged how to go on
    if core.metrics.is_main_process():
        print(summary_text(results))
    absl_logging.info("report: %s", os.path.join(workdir, "results.json"))


if __name__ == "__main__":
    core.presets.run(
        main,
        name="spiral_mcmc",
        preset_file=_PRESETS,
        default_preset="default",
        check=mcmc_experiment.check_config,
    )
