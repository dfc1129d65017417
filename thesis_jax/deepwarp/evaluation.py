"""DeepWarp evaluation (thesis sec. 4.4.3): MSE on held-out identities and its curves.

- `redirection_errors`: per-pair MSE of the model against the ground truth, the MSE of the
  unchanged input against the ground truth (the identity baseline), and their ratio.
- `sorted_normalized_errors`: fig. 4.6, errors divided by the input's MSE, sorted increasingly.
- `error_by_angle`: fig. 4.7, mean MSE per bin of redirection angle.
- Plots of both, and picture grids: input / output / ground truth, and one input redirected over a
  range of angles (fig. 4.1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from thesis_jax.core import metrics as core_metrics


def redirection_errors(
    outputs: np.ndarray, targets: np.ndarray, inputs: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-pair `mse` (output vs target), `input_mse` (input vs target) and `normalized`."""
    outputs, targets, inputs = (np.asarray(a, np.float64) for a in (outputs, targets, inputs))
    if not outputs.shape == targets.shape == inputs.shape:
        raise ValueError(
            f"outputs {outputs.shape}, targets {targets.shape} and inputs {inputs.shape} differ"
        )
    axes = tuple(range(1, outputs.ndim))
    mse = np.mean((outputs - targets) ** 2, axis=axes)
    input_mse = np.mean((inputs - targets) ** 2, axis=axes)
    return {"mse": mse, "input_mse": input_mse, "normalized": mse / np.maximum(input_mse, 1e-12)}


def sorted_normalized_errors(errors: Mapping[str, np.ndarray]) -> np.ndarray:
    """Fig. 4.6's curve: the normalized errors in increasing order."""
    return np.sort(np.asarray(errors["normalized"]))


def error_by_angle(
    mse: np.ndarray, angles: np.ndarray, edges: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fig. 4.7: (bin centres, mean MSE per bin (NaN when empty), pairs per bin)."""
    mse, angles, edges = np.asarray(mse), np.asarray(angles), np.asarray(edges, np.float64)
    which = np.digitize(angles, edges) - 1
    centres = (edges[:-1] + edges[1:]) / 2
    means = np.full(len(centres), np.nan)
    for b in range(len(centres)):
        inside = which == b
        if inside.any():
            means[b] = mse[inside].mean()
    counts = np.array([(which == b).sum() for b in range(len(centres))])
    return centres, means, counts


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def plot_sorted_errors(curves: Mapping[str, np.ndarray], path: str) -> str:
    """Fig. 4.6: one sorted normalized error curve per model."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4), dpi=120)
    for label, curve in curves.items():
        axis.plot(np.arange(1, len(curve) + 1), curve, label=label)
    axis.axhline(1.0, color="gray", linestyle="--", linewidth=0.8)
    axis.set_xlabel("pairs, sorted by error")
    axis.set_ylabel("MSE / MSE(input, target)")
    axis.set_ylim(0, max(1.6, 1.05 * max(float(np.median(c)) for c in curves.values())))
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    return core_metrics.save_figure(figure, path)


def plot_error_by_angle(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str, xlabel: str
) -> str:
    """Fig. 4.7: mean MSE by redirection angle, one line per model: {label: (centres, means)}."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 4), dpi=120)
    for label, (centres, means) in curves.items():
        axis.plot(centres, means, marker="o", markersize=3, label=label)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("MSE")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    return core_metrics.save_figure(figure, path)


def save_triplets(
    path: str,
    inputs: np.ndarray,
    outputs: Mapping[str, np.ndarray],
    targets: np.ndarray,
    scale: int = 3,
) -> str:
    """One row per pair: input, each model's output, ground truth (fig. 4.8)."""
    rows = []
    for i in range(len(inputs)):
        rows.extend([inputs[i], *(o[i] for o in outputs.values()), targets[i]])
    grid = core_metrics.image_grid(rows, ncols=len(outputs) + 2)
    return core_metrics.save_png(path, grid, scale=scale)


def save_sweep(path: str, rows: Sequence[np.ndarray], scale: int = 3) -> str:
    """Fig. 4.1: each row one input redirected over a range of angles, (K, H, W, 3) per row."""
    images = [image for row in rows for image in row]
    grid = core_metrics.image_grid(images, ncols=len(rows[0]))
    return core_metrics.save_png(path, grid, scale=scale)
