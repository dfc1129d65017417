"""Blocked Metropolis-Hastings on held-out MuJoCo scenes, as an experiment (thesis sec. 6.4.6).

`run_chains` runs one `mcmc.blocked_mh` chain per held-out target (scenes 0..batch_size-1 of
`holdout_seed`), keeping each finished chain in `chains/NNNN.npz` so an interrupted run resumes
with the next image; `summarize` gives the numbers of results.json (best-so-far and current l2
at the evaluation counts of `report_at`, acceptance rates, object counts), `plot_curves` the l2
curves of fig. 6.10 and `reconstructions_grid` targets above their best reconstructions.
`experiments/spiral_mcmc.py` is the command line.
"""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import Sequence
from typing import Any

import ml_collections
import numpy as np
from absl import logging as absl_logging

from thesis_jax import core
from thesis_jax.core.presets import ConfigError
from thesis_jax.spiral import mcmc
from thesis_jax.spiral.envs.mujoco_scenes import SceneRenderer, ScenesConfig, num_objects
from thesis_jax.spiral.scenes_dataset import load_mujoco_scenes


def check_config(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError for values the experiment cannot run with."""
    problems = []
    if config.num_steps < 1:
        problems.append(f"num_steps (evaluations per image) must be >= 1, got {config.num_steps}")
    if config.batch_size < 1:
        problems.append(f"batch_size (held-out images) must be >= 1, got {config.batch_size}")
    if not 1 <= config.max_objects <= mcmc.MAX_TRACE_OBJECTS:
        problems.append(
            f"max_objects must be in [1, {mcmc.MAX_TRACE_OBJECTS}], got {config.max_objects}"
        )
    if config.likelihood_variance <= 0:
        problems.append(f"likelihood_variance must be > 0, got {config.likelihood_variance}")
    if config.image_size < 1 or config.seed < 0 or config.holdout_seed < 0:
        problems.append("image_size must be >= 1, seed and holdout_seed >= 0")
    if problems:
        raise ConfigError("; ".join(problems))


def load_targets(config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
    """Held-out images (uint8 [N, H, W, 3]) and their scenes, padded to [N, max_objects, 7]."""
    images, scenes = load_mujoco_scenes(
        count=config.batch_size,
        seed=config.holdout_seed,
        data_dir=config.data_dir or None,
        image_size=config.image_size,
    )
    rows = max(config.max_objects, scenes.shape[1])
    padded = np.zeros((len(scenes), rows, scenes.shape[2]), np.int32)
    padded[:, : scenes.shape[1]] = scenes
    return images, padded


def chain_path(workdir: str, index: int) -> str:
    return os.path.join(workdir, "chains", f"{index:04d}.npz")


def save_chain(path: str, chain: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in chain.items()})
    core.write_atomic(path, buffer.getvalue())


def load_chain(path: str, num_steps: int) -> dict[str, Any] | None:
    """A finished chain from `path`, or None when it is missing, damaged or of another length."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            chain = {key: stored[key] for key in stored.files}
        if chain["l2_history"].shape != (num_steps,):
            raise ValueError(f"{chain['l2_history'].shape[0]} evaluations, expected {num_steps}")
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        absl_logging.warning("re-running the chain of %s: %s", path, err)
        return None
    for key in ("best_l2", "acceptance_rate", "true_scene_l2", "seconds"):
        chain[key] = float(chain[key])
    return chain


def run_chains(
    config: ml_collections.ConfigDict, workdir: str, targets: np.ndarray, scenes: np.ndarray
) -> list[dict[str, Any]]:
    """One blocked-MH chain per target; finished chains are loaded instead of re-run."""
    chains: list[dict[str, Any] | None] = [
        load_chain(chain_path(workdir, i), config.num_steps) for i in range(len(targets))
    ]
    done = sum(chain is not None for chain in chains)
    if done:
        absl_logging.info("resumed: %d of %d chains already finished", done, len(chains))
    if done == len(chains):
        return chains  # type: ignore[return-value]

    scenes_config = ScenesConfig(image_size=config.image_size)
    bar = core.metrics.progress_bar(len(targets), initial=done, desc="blocked MH (images)")
    try:
        with SceneRenderer(scenes_config, max_objects=scenes.shape[1]) as renderer:
            for i, target in enumerate(targets):
                if chains[i] is not None:
                    continue
                start = time.perf_counter()
                result = mcmc.blocked_mh(
                    target,
                    config.num_steps,
                    np.random.default_rng([config.seed, i]),
                    renderer,
                    max_objects=config.max_objects,
                    variance=config.likelihood_variance,
                )
                chain = {
                    "l2_history": result.l2_history,
                    "best_scene": result.best_scene,
                    "final_scene": result.final_scene,
                    "best_l2": result.best_l2,
                    "acceptance_rate": result.acceptance_rate,
                    # The target's own scene re-rendered here: ~0 unless rendering differs.
                    "true_scene_l2": mcmc.l2_distance(renderer.render(scenes[i]), target),
                    "seconds": time.perf_counter() - start,
                }
                save_chain(chain_path(workdir, i), chain)
                chains[i] = chain
                bar.set_postfix(best_l2=f"{result.best_l2:.4f}", refresh=False)
                bar.update(1)
    except KeyboardInterrupt:
        finished = sum(chain is not None for chain in chains)
        absl_logging.warning(
            "interrupted with %d of %d chains finished (kept in %s); run the same command "
            "again to go on",
            finished,
            len(chains),
            os.path.join(workdir, "chains"),
        )
        raise
    finally:
        bar.close()
    return chains  # type: ignore[return-value]


def report_points(report_at: Sequence[int], num_steps: int) -> list[int]:
    """The evaluation counts results.json reports: those of `report_at` <= num_steps, and it."""
    return sorted({int(n) for n in report_at if 1 <= int(n) <= num_steps} | {num_steps})


def change_rate(l2_history: np.ndarray) -> float:
    """Share of proposals that were accepted and changed the image.

    The acceptance rate also counts no-op moves (an absent block redrawn absent renders the same
    image, so MH accepts it); this counts only the moves that changed the chain's l2.
    """
    steps = len(l2_history) - 1
    return float(np.count_nonzero(np.diff(l2_history))) / steps if steps else 0.0


def summarize(
    config: ml_collections.ConfigDict, chains: Sequence[dict[str, Any]], scenes: np.ndarray
) -> dict[str, Any]:
    """results.json: per-image numbers and the mean curves at a few evaluation counts."""
    current = np.stack([chain["l2_history"] for chain in chains]).astype(np.float64)
    best = np.minimum.accumulate(current, axis=1)
    points = report_points(config.report_at, config.num_steps)

    def at(curves: np.ndarray, reduce: Any) -> dict[str, float]:
        return {str(n): float(reduce(curves[:, n - 1])) for n in points}

    seconds = sum(chain["seconds"] for chain in chains)
    return {
        "preset": config.preset,
        "num_images": len(chains),
        "num_evaluations": config.num_steps,
        "likelihood_variance": config.likelihood_variance,
        "l2": "mean squared pixel difference, pixel values in [0, 1]",
        "mean_best_l2_at": at(best, np.mean),
        "std_best_l2_at": at(best, np.std),
        "min_best_l2_at": at(best, np.min),
        "max_best_l2_at": at(best, np.max),
        "mean_current_l2_at": at(current, np.mean),
        "mean_final_best_l2": float(best[:, -1].mean()),
        "mean_acceptance_rate": float(np.mean([chain["acceptance_rate"] for chain in chains])),
        "mean_change_rate": float(np.mean([change_rate(c["l2_history"]) for c in chains])),
        "max_true_scene_l2": float(max(chain["true_scene_l2"] for chain in chains)),
        "renders_per_second": float(current.size / seconds) if seconds > 0 else None,
        "images": [
            {
                "index": i,
                "best_l2": chain["best_l2"],
                "final_l2": float(chain["l2_history"][-1]),
                "initial_l2": float(chain["l2_history"][0]),
                "acceptance_rate": chain["acceptance_rate"],
                "change_rate": change_rate(chain["l2_history"]),
                "target_objects": num_objects(scenes[i]),
                "best_objects": num_objects(chain["best_scene"]),
                "true_scene_l2": chain["true_scene_l2"],
            }
            for i, chain in enumerate(chains)
        ],
    }


def plot_curves(current: np.ndarray, path: str, title: str) -> None:
    """curves.png: mean best-so-far l2 with a min-max band, each chain's current l2 faintly."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = np.minimum.accumulate(current, axis=1)
    evaluations = np.arange(1, current.shape[1] + 1)
    figure, axes = plt.subplots(figsize=(7, 4.5), dpi=120)
    for i, curve in enumerate(current):
        axes.plot(
            evaluations,
            curve,
            color="tab:grey",
            alpha=max(0.1, min(0.5, 6.0 / len(current))),
            linewidth=0.7,
            label="current state of each chain" if i == 0 else None,
        )
    axes.fill_between(
        evaluations,
        best.min(0),
        best.max(0),
        color="tab:red",
        alpha=0.12,
        linewidth=0,
        label="best so far, min-max over images",
    )
    axes.plot(
        evaluations,
        best.mean(0),
        color="tab:red",
        linewidth=2.0,
        label="best so far, mean over images",
    )
    axes.plot(
        evaluations,
        current.mean(0),
        color="black",
        linestyle=":",
        linewidth=1.2,
        label="current, mean over images",
    )
    axes.set_xscale("log")
    axes.set_xlim(1, max(2, current.shape[1]))
    axes.set_ylim(bottom=0)
    axes.set_xlabel("evaluations (renders)")
    axes.set_ylabel(r"$\ell^2$ to the target (mean squared pixel error)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.25)
    axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    core.save_figure(figure, path)


def reconstructions_grid(targets: np.ndarray, outputs: np.ndarray, per_row: int = 8) -> np.ndarray:
    """Rows of up to `per_row` targets, each above a row of the matching best reconstructions.

    A strip on the left labels the rows "target" and "MH".
    """
    from PIL import Image, ImageDraw

    per_row = min(per_row, len(targets))
    blank = np.full_like(targets[0], 255)
    tiles, labels = [], []
    for start in range(0, len(targets), per_row):
        for images, label in ((targets, "target"), (outputs, "MH")):
            row = list(images[start : start + per_row])
            tiles += row + [blank] * (per_row - len(row))
            labels.append(label)
    pad = 2
    grid = core.image_grid(np.stack(tiles), ncols=per_row, pad=pad)
    height = targets.shape[1] + pad
    strip = np.full((grid.shape[0], 12, 3), 255, np.uint8)
    for r, label in enumerate(labels):
        text = Image.new("RGB", (height, 12), "white")
        ImageDraw.Draw(text).text((2, 0), label, fill="black")
        strip[pad + r * height : pad + (r + 1) * height] = np.asarray(text.rotate(90, expand=True))
    return np.concatenate([strip, grid], axis=1)


def best_renders(
    config: ml_collections.ConfigDict, chains: Sequence[dict[str, Any]], scenes: np.ndarray
) -> np.ndarray:
    """uint8 [N, H, W, 3]: each chain's best scene rendered."""
    scenes_config = ScenesConfig(image_size=config.image_size)
    with SceneRenderer(scenes_config, max_objects=scenes.shape[1]) as renderer:
        return np.stack([renderer.render_pixels(chain["best_scene"]) for chain in chains])
