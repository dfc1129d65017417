"""Figures of the edge benchmarks: precision/recall curves and scores against the tolerance.

`plot_pr_curves` draws the recall/precision plane with iso-F contours, one curve per method and
its best-F point (the ODS point of the BSDS benchmark), as in the BSDS500 papers and thesis
fig. 3.10 (DRIVE). `plot_tolerance_scores` draws ODS (dashed) and OIS (solid) against the
matching tolerance, as thesis fig. 3.5. Both write a PNG with matplotlib's Agg backend.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PAGE_WIDTH = 880  # pixels: the widest a README or the tour's page shows a figure


def _curve(result: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """(recall, precision, best point) of an `evaluate_bsds` or `evaluate_vessels` result."""
    if "curve" in result:
        curve = result["curve"]
        best = (result["ods_recall"], result["ods_precision"], result["ods"])
        return np.asarray(curve["recall"]), np.asarray(curve["precision"]), best
    recall, precision = np.asarray(result["recall"]), np.asarray(result["precision"])
    best = None
    if "best_f1" in result:
        best = (result["best_recall"], result["best_precision"], result["best_f1"])
    return recall, precision, best


def plot_pr_curves(
    results: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike,
    title: str | None = None,
    iso_f: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
) -> str:
    """Saves the precision/recall curves of several methods with iso-F contours as a PNG.

    Args:
      results: method name -> an `evaluate_bsds` result (its `curve` and ODS point) or an
        `evaluate_vessels` result (`recall`, `precision` and the best-F1 point).
      path: the PNG to write.
      title: optional figure title.
      iso_f: the F values of the contour lines.

    Returns:
      The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5.5, 5.5), dpi=120)
    grid = np.linspace(0.01, 1.0, 200)
    recall_grid, precision_grid = np.meshgrid(grid, grid)
    f_grid = 2 * recall_grid * precision_grid / (recall_grid + precision_grid)
    contours = axes.contour(
        recall_grid, precision_grid, f_grid, levels=list(iso_f), colors="0.8", linewidths=0.8
    )
    axes.clabel(contours, fmt="F=%.1f", fontsize=7)
    for name, result in results.items():
        recall, precision, best = _curve(result)
        keep = (recall > 0) | (precision > 0)
        label = name if best is None else f"[F={best[2]:.3f}] {name}"
        (line,) = axes.plot(recall[keep], precision[keep], linewidth=1.8, label=label)
        if best is not None:
            axes.plot(best[0], best[1], "o", color=line.get_color(), markersize=6)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("Recall")
    axes.set_ylabel("Precision")
    axes.set_aspect("equal")
    axes.grid(True, color="0.92")
    if title:
        axes.set_title(title)
    axes.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    from thesis_jax.core.metrics import save_figure  # imports JAX: only when drawing

    return save_figure(figure, path)


def plot_tolerance_scores(
    scores: Mapping[str, Mapping[float, Mapping[str, float]]],
    path: str | os.PathLike,
    title: str | None = None,
) -> str:
    """Saves ODS (dashed) and OIS (solid) against the matching tolerance (fig. 3.5) as a PNG.

    Args:
      scores: method name -> {max_dist: an `evaluate_bsds` result (or any dict with `ods`,
        `ois`)}.
      path: the PNG to write.
      title: optional figure title.

    Returns:
      The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    for name, by_tolerance in scores.items():
        tolerances = sorted(by_tolerance)
        ods = [by_tolerance[t]["ods"] for t in tolerances]
        ois = [by_tolerance[t]["ois"] for t in tolerances]
        (line,) = axes.plot(tolerances, ois, "-o", markersize=3, label=f"{name} (OIS)")
        axes.plot(tolerances, ods, "--o", markersize=3, color=line.get_color(), label="_ods")
    axes.set_xlabel("matching tolerance (fraction of the image diagonal)")
    axes.set_ylabel("F-measure (OIS solid, ODS dashed)")
    axes.grid(True, color="0.92")
    if title:
        axes.set_title(title)
    axes.legend(fontsize=8)
    figure.tight_layout()
    from thesis_jax.core.metrics import save_figure  # imports JAX: only when drawing

    return save_figure(figure, path)


def edge_picture(edge_map: np.ndarray, line_width: int = 1) -> np.ndarray:
    """An edge map in [0, 1] as a picture to look at: dark edges on white, in [0, 1].

    Thinned maps are one-pixel lines whose strengths rarely reach 1: drawn as they are and
    scaled down to a page, they vanish into light grey. So the map is scaled so that its
    strong edges (the 99th percentile of the non-zero values) are black, and lines are widened
    to `line_width` pixels (a grey-level dilation). Weak responses stay light: lifting them
    would wash the background of a flat map grey.
    """
    from scipy import ndimage

    edge_map = np.clip(np.asarray(edge_map, np.float32), 0.0, 1.0)
    positive = edge_map[edge_map > 0]
    if positive.size:
        edge_map = np.clip(edge_map / np.percentile(positive, 99), 0.0, 1.0)
    if line_width > 1:
        edge_map = ndimage.grey_dilation(edge_map, size=(line_width, line_width))
    return 1.0 - edge_map


def plot_edge_panels(
    images: Sequence[np.ndarray],
    columns: Mapping[str, Sequence[np.ndarray]],
    path: str | os.PathLike,
    captions: Mapping[str, Sequence[str]] | None = None,
    panel_width: float = 2.6,
) -> str:
    """Saves one row per image: the input, then one panel per entry of `columns` (fig. 3.7).

    Args:
      images: the (H, W, C) inputs (RGB in [0, 1] or uint8; a 4th channel, depth, is ignored).
      columns: panel title -> one (H, W) map per image in [0, 1] (ground truth, each method's
        edges), drawn dark on white as in the thesis's figures by `edge_picture`, with lines
        widened so that they stay visible on a page.
      path: the PNG to write.
      captions: panel title -> one caption per image under its panel (e.g. "R .71 P .68 F .69",
        the red numbers of fig. 3.7).
      panel_width: inches per panel.

    Returns:
      The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(images)
    if rows == 0:
        raise ValueError("no images to draw")
    for name, maps in columns.items():
        if len(maps) != rows:
            raise ValueError(f"column {name!r} has {len(maps)} maps for {rows} images")
    captions = captions or {}
    aspects = [image.shape[0] / image.shape[1] for image in images]
    # Lines are widened to stay two pixels wide on a panel as a page shows it: the figure at
    # most PAGE_WIDTH pixels wide (a README, the tour's page).
    shown_width = min(panel_width * 100, PAGE_WIDTH / (1 + len(columns)))
    width = panel_width * (1 + len(columns))
    figure, axes = plt.subplots(
        rows,
        1 + len(columns),
        figsize=(width, panel_width * sum(aspects) + 0.45 * rows + 0.2),
        dpi=100,
        squeeze=False,
        gridspec_kw={"height_ratios": aspects},  # each row as tall as its image
    )
    for i, image in enumerate(images):
        rgb = np.asarray(image)[..., :3]
        if rgb.dtype != np.uint8:
            rgb = np.clip(rgb, 0.0, 1.0)
        line_width = max(1, math.ceil(2 * rgb.shape[1] / shown_width))
        panels = [("input", rgb, None)] + [
            (name, edge_picture(maps[i], line_width), name) for name, maps in columns.items()
        ]
        for j, (title, picture, key) in enumerate(panels):
            ax = axes[i, j]
            ax.imshow(picture, cmap=None if j == 0 else "gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=9)
            if key in captions:
                ax.set_xlabel(captions[key][i], color="red", fontsize=8)
    figure.tight_layout()
    from thesis_jax.core.metrics import save_figure  # imports JAX: only when drawing

    return save_figure(figure, path)
