"""What a SPIRAL run writes for a person to look at (thesis sec. 6.4, fig. 6.9a).

`save_samples` draws targets beside their reconstructions (or samples, unconditional) as a PNG
and the episodes stroke by stroke as a GIF; `l2_to_targets` is the held-out l2 of eq. (6.3.4)'s
l2 reward; `write_results` records a finished run's held-out metrics; `plot_curves` draws
held-out l2, and readability beside it, over training for several runs (fig. 6.9a: critic reward
against l2 reward), also from the command line:

    python -m thesis_jax.spiral.report --run="critic=runs/a" --run="l2=runs/b" --output=c.png
"""

from __future__ import annotations

import collections
import json
import os

import jax
import numpy as np
from absl import logging as absl_logging

from thesis_jax import core
from thesis_jax.spiral.train import Trajectory


def save_samples(
    trajectory: Trajectory, targets: np.ndarray, conditional: bool, workdir: str, step: int
) -> None:
    """`samples/step_NNNNNN.png` and `samples.png` (target | reconstruction pairs when
    conditional), and `episode.gif`: the first 8 episodes, one frame per step."""
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
    """Mean l2 distance (and mean squared error) of final canvases to their targets."""
    diff = (np.asarray(finals) - np.asarray(targets)).reshape(len(targets), -1)
    return {
        "l2": float(np.mean(np.sqrt(np.sum(diff**2, axis=1)))),
        "mse": float(np.mean(diff**2)),
    }


def write_results(result: core.LoopResult, workdir: str) -> None:
    """`results.json`: the final step and held-out metrics of a run that finished."""
    if jax.process_index() == 0 and not result.interrupted:
        summary = {"step": result.step, **result.eval_metrics}
        core.write_atomic(os.path.join(workdir, "results.json"), json.dumps(summary, indent=2))
        absl_logging.info("held-out %s; pictures in %s", summary, workdir)


CURVES = {
    "l2": "l2 distance to held-out targets",
    "readability": "readability of held-out reconstructions",
}


def plot_curves(runs: dict[str, str], path: str, metrics: tuple[str, ...] = tuple(CURVES)) -> str:
    """One panel per metric (`CURVES`) of held-out evaluations over training, one line per run.

    runs: {label: workdir}; each workdir's `metrics.jsonl` must hold `eval/l2` records; a metric
    no run logged gets no panel. Labels of the form "NAME (anything)" share one colour and one
    legend entry per NAME, so seeds of one reward match. The readability panel marks the
    reader's accuracy on the targets themselves, the ceiling, with a dashed line.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    records = {}
    for label, workdir in runs.items():
        records[label] = [r for r in core.metrics.read_metrics(workdir) if "eval/l2" in r]
        if not records[label]:
            raise ValueError(f"{workdir} has no eval/l2 records yet")
    shown = [m for m in metrics if any(f"eval/{m}" in r for rs in records.values() for r in rs)]
    figure, axes = plt.subplots(1, len(shown), figsize=(6 * len(shown), 4), dpi=120, squeeze=False)
    names = [label.split(" (")[0] for label in records]
    counts = collections.Counter(names)
    colours = {name: f"C{i}" for i, name in enumerate(counts)}
    entries, seen = {}, set()  # one legend entry per name, on its first run's line
    for label, name in zip(records, names, strict=True):
        if name in seen:
            entries[label] = "_nolegend_"
        else:
            entries[label] = f"{name} ({counts[name]} runs)" if counts[name] > 1 else label
        seen.add(name)
    for axis, metric in zip(axes[0], shown, strict=True):
        ceilings = []
        for (label, rows), name in zip(records.items(), names, strict=True):
            rows = [r for r in rows if f"eval/{metric}" in r]
            steps = [r["step"] for r in rows]
            values = [r[f"eval/{metric}"] for r in rows]
            axis.plot(steps, values, color=colours[name], marker=".", label=entries[label])
            ceilings += [r[f"eval/{metric}_targets"] for r in rows if f"eval/{metric}_targets" in r]
        if ceilings:
            axis.axhline(np.mean(ceilings), color="grey", linestyle="--", label="the targets")
        axis.set_xlabel("policy steps")
        axis.set_ylabel(CURVES[metric])
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    return core.save_figure(figure, path)


def main(argv: list[str]) -> None:
    """Draws `plot_curves` of the `--run=LABEL=WORKDIR` runs into `--output`."""
    del argv
    runs = dict(run.split("=", 1) for run in _RUNS.value)
    print(plot_curves(runs, _OUTPUT.value))


if __name__ == "__main__":
    from absl import app, flags

    _RUNS = flags.DEFINE_multi_string("run", [], "LABEL=WORKDIR of a run, once per curve")
    _OUTPUT = flags.DEFINE_string("output", "curves.png", "where the figure goes")
    app.run(main)
