"""The report of a DeepWarp experiment: held-out errors of every variant (thesis sec. 4.4.3).

`write_report` evaluates the trained variants on the held-out pairs beside the identity
baseline and writes, into the workdir: `results.md` (`results_table`), `results.json`,
`sorted_errors.png` (fig. 4.6), `error_by_angle.png` (fig. 4.7), `examples.png` (input, each
variant's output, ground truth; fig. 4.8) and `redirect.png` (held-out eyes redirected over a
range of angles by the last variant; fig. 4.1).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import jax
import numpy as np

from thesis_jax import core
from thesis_jax.deepwarp import evaluation
from thesis_jax.deepwarp.experiment import Experiment

VARIANT_NAMES = {
    "identity": "Identity (input unchanged)",
    "ss": "SS (single scale)",
    "ms": "MS (two scales, no coarse warp)",
    "cfw": "CFW (coarse-to-fine warping)",
    "cfw_lcm": "CFW + LCM",
}


def results_table(results: Mapping[str, Mapping[str, float]], preset: str) -> str:
    """Markdown: each model's held-out MSE, beside the identity's, and its median normalized
    error."""
    lines = [
        f"# DeepWarp on `{preset}`: held-out identities",
        "",
        "| model | MSE | MSE / identity MSE | median normalized error |",
        "|---|---|---|---|",
    ]
    base = results["identity"]["mse"]
    for name, row in results.items():
        lines.append(
            f"| {VARIANT_NAMES[name]} | {row['mse']:.5f} | {row['mse'] / base:.3f} | "
            f"{row['median_normalized']:.3f} |"
        )
    lines += [
        "",
        "MSE between the synthesized and the ground-truth crops (pixel values in [0, 1]), "
        "averaged over held-out pairs (sec. 4.4.3). Normalized error: a pair's MSE divided by "
        "the MSE of the unchanged input (fig. 4.6).",
    ]
    return "\n".join(lines) + "\n"


def _figures(
    exp: Experiment,
    outputs: Mapping[str, np.ndarray],
    errors: Mapping[str, Mapping[str, np.ndarray]],
    sweep: list[np.ndarray],
    workdir: str,
) -> None:
    config, test = exp.config, exp.test
    labels = {v: VARIANT_NAMES[v] for v in outputs}
    evaluation.plot_sorted_errors(
        {labels[v]: evaluation.sorted_normalized_errors(errors[v]) for v in outputs},
        os.path.join(workdir, "sorted_errors.png"),
    )
    vertical = test.angles[:, 0]
    if np.ptp(vertical) > 0:
        edges = np.linspace(-config.max_angle, config.max_angle, config.num_bins + 1)
        by_angle = {}
        for name in (*outputs, "identity"):  # the identity last: variants keep fig. 4.6's colours
            centres, means, _ = evaluation.error_by_angle(errors[name]["mse"], vertical, edges)
            by_angle[VARIANT_NAMES[name]] = (centres, means)
        evaluation.plot_error_by_angle(
            by_angle,
            os.path.join(workdir, "error_by_angle.png"),
            xlabel="vertical redirection (degrees)",
        )
    shown = np.arange(min(config.num_pictures, len(test)))
    evaluation.save_triplets(
        os.path.join(workdir, "examples.png"),
        test.inputs[shown],
        {v: o[shown] for v, o in outputs.items()},
        test.aligned_targets()[shown],
    )
    evaluation.save_sweep(os.path.join(workdir, "redirect.png"), sweep)


def _sweep(exp: Experiment, states: Mapping[str, core.TrainState]) -> list[np.ndarray]:
    """Fig. 4.1: the first held-out eyes redirected from -max_angle/2 to max_angle/2 by the
    last variant, one row (7, H, W, 3) per eye (every process takes part in the predictions)."""
    config, test = exp.config, exp.test
    last = list(states)[-1]
    eyes_shown, steps = min(config.num_pictures, len(test), 4), 7
    angles = np.zeros((eyes_shown * steps, config.angle_dims), np.float32)
    sweep = np.linspace(-config.max_angle / 2, config.max_angle / 2, steps)
    angles[:, 0] = np.tile(sweep, eyes_shown)
    each = test.subset(np.repeat(np.arange(eyes_shown), steps))
    outputs = exp.predict(last, states[last], each, angles)["output"]
    return list(outputs.reshape(eyes_shown, steps, *outputs.shape[1:]))


def write_report(
    exp: Experiment, states: Mapping[str, core.TrainState], workdir: str
) -> dict[str, dict[str, float]]:
    """Evaluates every variant's `states[variant]` on the held-out pairs, writes the report
    (on process 0) and returns {model: {mse, mean_normalized, median_normalized}}."""
    test = exp.test
    targets = test.aligned_targets()
    outputs = {v: exp.predict(v, s, test)["output"] for v, s in states.items()}
    identity = evaluation.redirection_errors(test.inputs, targets, test.inputs)
    errors = {"identity": identity} | {
        v: evaluation.redirection_errors(o, targets, test.inputs) for v, o in outputs.items()
    }
    results = {
        name: {
            "mse": float(e["mse"].mean()),
            "mean_normalized": float(e["normalized"].mean()),
            "median_normalized": float(np.median(e["normalized"])),
        }
        for name, e in errors.items()
    }
    sweep = _sweep(exp, states)
    table = results_table(results, exp.config.preset)
    if jax.process_index() != 0:
        return results
    core.write_atomic(os.path.join(workdir, "results.md"), table)
    core.write_atomic(os.path.join(workdir, "results.json"), json.dumps(results, indent=2))
    _figures(exp, outputs, errors, sweep, workdir)
    print(table)
    return results
