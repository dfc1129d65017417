"""The report of an N4-Fields experiment: Table 3.I as markdown, PR curves, panels (sec. 3.4).

Edge maps are thinned by NMS and scored with the BSDS benchmark (ODS, OIS, AP; fig. 3.5 against
the matching tolerance); DRIVE's vessel maps are scored whole, pixel by pixel inside the field
of view (fig. 3.10). `write_report` writes `results.md` / `results.json` (the thesis's figures
beside ours when given), `pr_curves.png`, `panels.png` (input, ground truth and every model with
the per-image R/P/F, fig. 3.7) and `tolerance.png` / `tolerance.json`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from thesis_jax import edges
from thesis_jax.core.metrics import is_main_process, write_atomic
from thesis_jax.n4fields.committee import MODELS
from thesis_jax.n4fields.datasets import EdgeData

Thesis = Mapping[str, Sequence[float]]  # model -> (ODS, OIS, AP)


def thin(config: ml_collections.ConfigDict, maps: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Edge maps thinned by NMS for the BSDS benchmark (sec. 3.4); DRIVE maps stay whole."""
    if config.dataset == "drive":
        return list(maps)
    return [np.clip(edges.edge_nms(m), 0.0, 1.0) for m in maps]


def score(
    config: ml_collections.ConfigDict,
    maps: Mapping[str, Sequence[np.ndarray]],
    data: EdgeData,
    max_dist: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Every model's score (model -> result) by the dataset's benchmark: BSDS (ODS/OIS/AP;
    all models' maps share one pool of worker processes) or DRIVE (F1, AUC in the FOV)."""
    if config.dataset == "drive":
        vessels = [a[0] for a in data.annotations]
        return {
            m: edges.evaluate_vessels(m_maps, vessels, data.masks) for m, m_maps in maps.items()
        }
    max_dist = config.max_dist if max_dist is None else max_dist
    truths = [list(a) for a in data.annotations]
    counts = edges.boundary_counts(
        [image_map for m_maps in maps.values() for image_map in m_maps],
        truths * len(maps),
        max_dist=max_dist,
        thresholds=config.thresholds,
        workers=config.eval_workers or None,
    )
    thresholds = edges.benchmark_thresholds(config.thresholds)
    results = {}
    for k, model in enumerate(maps):
        rows = counts[k * len(truths) : (k + 1) * len(truths)]
        results[model] = {**edges.collect_boundary_scores(thresholds, rows), "max_dist": max_dist}
    return results


def summary(config: ml_collections.ConfigDict, result: dict[str, Any]) -> dict[str, float]:
    """The numbers of one table row."""
    if config.dataset == "drive":
        keys = ("best_f1", "average_precision", "pr_auc", "roc_auc")
    else:
        keys = ("ods", "ois", "ap", "ods_threshold")
    return {k: float(result[k]) for k in keys}


def scores_cell(row: Mapping[str, float]) -> str:
    """ODS / OIS / AP of one row, as the tour and the table show them."""
    return " / ".join(f"{row[k]:.3f}" for k in ("ods", "ois", "ap"))


def thesis_cell(scores: Sequence[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in scores)


def results_table(
    config: ml_collections.ConfigDict,
    rows: Mapping[str, Mapping[str, float]],
    budget: str,
    thesis: Thesis | None = None,
) -> str:
    """Table 3.I (or fig. 3.10's numbers for DRIVE) as markdown, `thesis`'s figures beside."""
    lines = [f"# N4-Fields on `{config.preset}`: held-out {config.eval_split} images", ""]
    if config.dataset == "drive":
        lines += ["| model | best F1 | AP | PR AUC | ROC AUC |", "|---|---|---|---|---|"]
        for name, row in rows.items():
            lines.append(
                f"| {MODELS[name].title} | {row['best_f1']:.3f} | {row['average_precision']:.3f} "
                f"| {row['pr_auc']:.3f} | {row['roc_auc']:.3f} |"
            )
    else:
        head = "| model | ODS | OIS | AP |"
        if thesis:
            head += " thesis ODS / OIS / AP |"
        lines += [head, "|---|---|---|---|" + ("---|" if thesis else "")]
        for name, row in rows.items():
            scores = " | ".join(f"{row[k]:.3f}" for k in ("ods", "ois", "ap"))
            line = f"| {MODELS[name].title} | {scores} |"
            if thesis:
                ref = thesis.get(name)
                line += f" {thesis_cell(ref)} |" if ref else " |"
            lines.append(line)
    lines += ["", budget]
    return "\n".join(lines) + "\n"


def budget(config: ml_collections.ConfigDict, train: EdgeData, evaluated: EdgeData) -> str:
    """The line under the table: what produced it."""
    return (
        f"Budget: {len(train)} training images ({config.train_split}), {config.num_steps} SGD "
        f"steps of {config.batch_size} patches per network, committee of {config.committee}, "
        f"scales {tuple(config.scales)}, dictionary of {config.dictionary_size} patches "
        f"({config.search} search), stride {config.stride}; {len(evaluated)} evaluated images; "
        f"BSDS tolerance {config.max_dist}, {config.thresholds} thresholds, maps thinned by NMS. "
        f"{jax.device_count()} x {jax.devices()[0].device_kind}."
    )


def _per_image_caption(config, result: dict[str, Any], count: int) -> list[str]:
    if config.dataset == "drive":
        return [""] * count
    return [f"R {r:.2f} P {p:.2f} F {f:.2f}" for _, r, p, f in result["per_image"][:count]]


def _tolerance_figure(
    config: ml_collections.ConfigDict,
    thinned: Mapping[str, list[np.ndarray]],
    results: Mapping[str, dict[str, Any]],
    data: EdgeData,
    workdir: str,
) -> None:
    """Fig. 3.5: ODS and OIS of every model against the matching tolerance."""
    by_tolerance: dict[str, dict[float, dict[str, Any]]] = {MODELS[m].title: {} for m in thinned}
    for t in config.tolerances:
        scores = results if t == config.max_dist else score(config, thinned, data, t)
        for m, result in scores.items():
            by_tolerance[MODELS[m].title][t] = result
    edges.plot_tolerance_scores(
        by_tolerance,
        os.path.join(workdir, "tolerance.png"),
        title=f"Scores against the matching tolerance ({config.preset})",
    )
    rows = {
        name: {str(t): {"ods": r["ods"], "ois": r["ois"]} for t, r in by_t.items()}
        for name, by_t in by_tolerance.items()
    }
    write_atomic(os.path.join(workdir, "tolerance.json"), json.dumps(rows, indent=2))


def write_report(
    config: ml_collections.ConfigDict,
    data: EdgeData,
    predictions: Mapping[str, list[np.ndarray]],
    workdir: str,
    budget_line: str,
    thesis: Thesis | None = None,
) -> dict[str, dict[str, float]]:
    """Scores every model's maps of the evaluated images and writes the report's files; returns
    the table's rows (model -> scores). Only the main process writes."""
    thinned = {m: thin(config, maps) for m, maps in predictions.items()}
    results = score(config, thinned, data)
    rows = {m: summary(config, r) for m, r in results.items()}
    if not is_main_process():
        return rows
    table = results_table(config, rows, budget_line, thesis)
    write_atomic(os.path.join(workdir, "results.md"), table)
    write_atomic(os.path.join(workdir, "results.json"), json.dumps(rows, indent=2))
    titles = {m: MODELS[m].title for m in results}
    edges.plot_pr_curves(
        {titles[m]: r for m, r in results.items()},
        os.path.join(workdir, "pr_curves.png"),
        title=f"N4-Fields, {config.preset} ({config.eval_split})",
    )
    shown = min(config.num_pictures, len(data))
    if shown:
        truth_title = "vessels (manual)" if config.dataset == "drive" else "ground truth"
        columns = {truth_title: [a.mean(0) for a in data.annotations[:shown]]}
        columns |= {titles[m]: maps[:shown] for m, maps in thinned.items()}
        edges.plot_edge_panels(
            data.images[:shown],
            columns,
            os.path.join(workdir, "panels.png"),
            captions={titles[m]: _per_image_caption(config, r, shown) for m, r in results.items()},
        )
    if config.tolerances and config.dataset != "drive":
        _tolerance_figure(config, thinned, results, data, workdir)
    print(table)
    return rows


def write_qualitative(
    config: ml_collections.ConfigDict,
    images: Sequence[np.ndarray],
    maps: Mapping[str, list[np.ndarray]],
    workdir: str,
) -> None:
    """`qualitative.png`: pictures without annotations and every model's thinned maps."""
    if images and is_main_process():
        edges.plot_edge_panels(
            list(images),
            {MODELS[m].title: thin(config, m_maps) for m, m_maps in maps.items()},
            os.path.join(workdir, "qualitative.png"),
        )
