"""The BSDS500 boundary benchmark (ODS / OIS / AP), re-derived from the reference protocol.

Thesis ch. 3, sec. 3.4 scores edge maps with the benchmark of Arbeláez et al. (2011) (built on
Martin, Fowlkes & Malik, 2004): fixed contour threshold (ODS), per-image best threshold (OIS)
and average precision (AP), with the matching tolerance of fig. 3.5. This module reproduces the
BSR `bench/` code:

- `evaluation_bdry_image.m`: for every threshold the edge map is binarised (`pb >= t`), thinned
  (`bwmorph(.., 'thin', inf)`, `thin_boundaries`) and matched to each human annotation in turn
  (`correspondence.correspond_pixels`, the minimum-cost assignment of `match.cc`). Recall counts
  matched ground-truth pixels summed over annotators; precision counts predicted pixels matched
  to any annotator.
- `collect_eval_bdry.m`: dataset totals per threshold, ODS and the per-image scores by linear
  interpolation between thresholds (`maxF`), OIS from the counts at each image's best threshold,
  AP from `interp1` of precision over the unique recalls on a 0.01 recall grid.

`evaluate_bsds` spreads the images over spawned worker processes. A spawned worker imports the
caller's main script again, so a script that calls it outside `if __name__ == "__main__":` (or
one read from stdin) cannot use them; the benchmark notices and runs in the calling process
with a warning.
"""

from __future__ import annotations

import ast
import os
import sys
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np

from thesis_jax.edges.correspondence import (
    DEFAULT_MAX_DIST,
    DEFAULT_OUTLIER_COST,
    GroundTruthIndex,
    OutlierGraph,
    match_pixels,
    matching_tolerance,
)

# ---------------------------------------------------------------------------------------------
# Thresholds and thinning
# ---------------------------------------------------------------------------------------------


def benchmark_thresholds(thresholds: int | Sequence[float]) -> np.ndarray:
    """The thresholds of `evaluation_bdry_image.m`.

    An integer n gives MATLAB's `linspace(1/(n+1), 1-1/(n+1), n)`, evaluated in the same order
    of floating-point operations, since edge maps read from 8-bit PNGs (k/255) can sit exactly
    on a threshold (e.g. 51/255 = 0.2). A sequence is used as given.
    """
    if isinstance(thresholds, (int, np.integer)):
        count = int(thresholds)
        if count < 1:
            raise ValueError(f"thresholds must be a positive count, got {count}")
        low, high = 1.0 / (count + 1), 1.0 - 1.0 / (count + 1)
        if count == 1:
            return np.array([high])
        values = low + (np.arange(count, dtype=np.float64) * (high - low)) / (count - 1)
        values[0], values[-1] = low, high
        return values
    values = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("thresholds must not be empty")
    return values


# Neighbour bits of the 3x3 neighbourhood, x1 (east) ... x8 (south-east) counter-clockwise as in
# Lam, Lee & Suen (1992), p. 879: the (dy, dx) offset of neighbour k is _NEIGHBOURS[k - 1].
_NEIGHBOURS = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))


def _thinning_luts() -> tuple[np.ndarray, np.ndarray]:
    """Deletion tables of the two sub-iterations of Guo & Hall's algorithm A1 (MATLAB's 'thin')."""
    codes = np.arange(256)
    x = [None] + [((codes >> bit) & 1) == 1 for bit in range(8)] + [(codes & 1) == 1]
    crossings = sum((~x[2 * i - 1]) & (x[2 * i] | x[2 * i + 1]) for i in range(1, 5))
    n1 = sum(x[2 * k - 1] | x[2 * k] for k in range(1, 5))
    n2 = sum(x[2 * k] | x[2 * k + 1] for k in range(1, 5))
    g12 = (crossings == 1) & (np.minimum(n1, n2) >= 2) & (np.minimum(n1, n2) <= 3)
    g3 = ~((x[2] | x[3] | ~x[8]) & x[1])
    g3_prime = ~((x[6] | x[7] | ~x[4]) & x[5])
    return g12 & g3, g12 & g3_prime


_THIN_LUTS = _thinning_luts()


def thin_boundaries(bmap: np.ndarray) -> np.ndarray:
    """`bwmorph(bmap, 'thin', inf)`: parallel thinning to one-pixel-wide, 8-connected curves.

    The two-sub-iteration algorithm of Guo & Hall (1989) as given by Lam, Lee & Suen (1992)
    (MATLAB's 'thin' and `skimage.morphology.thin`), run to convergence with the image padded by
    background. Only foreground pixels are visited, which makes it fast on sparse edge maps.
    """
    bmap = np.asarray(bmap)
    if bmap.ndim != 2:
        raise ValueError(f"bmap must be 2-D, got shape {bmap.shape}")
    image = np.pad(bmap.astype(bool), 1)
    ys, xs = np.nonzero(image)
    while True:
        deleted_any = False
        for lut in _THIN_LUTS:
            if ys.size == 0:
                break
            code = np.zeros(ys.size, dtype=np.uint8)
            for bit, (dy, dx) in enumerate(_NEIGHBOURS):
                code |= image[ys + dy, xs + dx].astype(np.uint8) << bit
            delete = lut[code]
            if delete.any():
                deleted_any = True
                image[ys[delete], xs[delete]] = False
                keep = ~delete
                ys, xs = ys[keep], xs[keep]
        if not deleted_any:
            return image[1:-1, 1:-1]


# ---------------------------------------------------------------------------------------------
# Per-image counts (evaluation_bdry_image.m)
# ---------------------------------------------------------------------------------------------


def evaluate_boundary_image(
    pb: np.ndarray,
    ground_truth: Sequence[np.ndarray],
    thresholds: int | Sequence[float] = 99,
    max_dist: float = DEFAULT_MAX_DIST,
    thin: bool = True,
    *,
    outlier_cost: float = DEFAULT_OUTLIER_COST,
    outlier_graph: OutlierGraph = "exact",
    seed: int | Sequence[int] = 0,
) -> np.ndarray:
    """Counts `[cntR, sumR, cntP, sumP]` at each threshold for one image.

    Args:
      pb: (H, W) edge strength in [0, 1].
      ground_truth: the annotators' (H, W) binary boundary maps.
      thresholds: a count (see `benchmark_thresholds`) or the thresholds themselves.
      max_dist: matching tolerance as a fraction of the image diagonal.
      thin: thin each binarised map first (`bwmorph(.., 'thin', inf)`); False when `pb` is
        already thin.
      outlier_cost, outlier_graph, seed: see `correspond_pixels`.

    Returns:
      (T, 4) float64 counts: matched GT pixels and all GT pixels (summed over annotators),
      predicted pixels matched to any annotator and all predicted pixels.
    """
    pb = np.asarray(pb, dtype=np.float64)
    if pb.ndim != 2:
        raise ValueError(f"pb must be a 2-D edge map, got shape {pb.shape}")
    annotations = [np.asarray(boundaries).astype(bool) for boundaries in ground_truth]
    if not annotations:
        raise ValueError("ground_truth must hold at least one annotation")
    for boundaries in annotations:
        if boundaries.shape != pb.shape:
            raise ValueError(
                f"ground truth of shape {boundaries.shape} does not match pb of shape {pb.shape}"
            )
    values = benchmark_thresholds(thresholds)
    tolerance = matching_tolerance(pb.shape, max_dist, outlier_cost)
    indexes = [GroundTruthIndex(boundaries, *tolerance[:3]) for boundaries in annotations]
    seed_words = [seed] if isinstance(seed, (int, np.integer)) else list(seed)
    counts = np.zeros((values.size, 4))
    previous = None
    for t, threshold in enumerate(values):
        bmap = pb >= threshold
        if thin:
            bmap = thin_boundaries(bmap)
        ys, xs = np.nonzero(bmap)
        if previous is not None and previous[0].size == ys.size:
            if np.array_equal(previous[0], ys) and np.array_equal(previous[1], xs):
                counts[t] = counts[t - 1]
                continue
        previous = (ys, xs)
        matched_pred = np.zeros(ys.size, dtype=bool)
        for k, gt in enumerate(indexes):
            rng = np.random.default_rng([*seed_words, t, k])
            match_pred, match_gt = match_pixels(ys, xs, gt, tolerance, outlier_graph, rng)
            matched_pred |= match_pred
            counts[t, 0] += match_gt.sum()
            counts[t, 1] += gt.count
        counts[t, 2] = matched_pred.sum()
        counts[t, 3] = ys.size
    return counts


# ---------------------------------------------------------------------------------------------
# Dataset scores (collect_eval_bdry.m)
# ---------------------------------------------------------------------------------------------


def f_measure(recall: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """`fmeasure`: 2PR / (P + R), 0 where P + R = 0."""
    recall, precision = np.asarray(recall), np.asarray(precision)
    total = precision + recall
    return 2 * precision * recall / (total + (total == 0))


def _ratio(count: np.ndarray, total: np.ndarray) -> np.ndarray:
    return count / (total + (total == 0))


def best_f_interpolated(
    thresholds: np.ndarray, recall: np.ndarray, precision: np.ndarray
) -> tuple[float, float, float, float]:
    """`maxF`: the best F over 100 linear steps between consecutive thresholds.

    Returns (threshold, recall, precision, F); the first maximum wins, as in the MATLAB loop.
    """
    best = (thresholds[0], recall[0], precision[0], float(f_measure(recall[0], precision[0])))
    if len(thresholds) < 2:
        return tuple(float(v) for v in best)
    d = np.arange(100) / 99.0
    t = thresholds[1:, None] * d + thresholds[:-1, None] * (1 - d)
    r = recall[1:, None] * d + recall[:-1, None] * (1 - d)
    p = precision[1:, None] * d + precision[:-1, None] * (1 - d)
    f = f_measure(r, p)
    k = int(np.argmax(f))
    if f.flat[k] > best[3]:
        best = (t.flat[k], r.flat[k], p.flat[k], f.flat[k])
    return tuple(float(v) for v in best)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """AP of `collect_eval_bdry.m`: `interp1(unique(R), P, 0:0.01:1)`, NaN -> 0, sum * 0.01.

    `[Ru, indR] = unique(R)` keeps the last of equal recalls (MATLAB's behaviour when the BSR
    code was written; equal recalls come with equal precisions in practice).
    """
    recall, precision = np.asarray(recall, np.float64), np.asarray(precision, np.float64)
    reversed_unique, first_of_reversed = np.unique(recall[::-1], return_index=True)
    last = recall.size - 1 - first_of_reversed
    unique_recall, unique_precision = reversed_unique, precision[last]
    if unique_recall.size < 2:
        return 0.0
    k = np.arange(101)
    grid = np.where(k <= 50, k * 0.01, 1.0 - (100 - k) * 0.01)  # MATLAB's colon 0:0.01:1
    interpolated = np.interp(grid, unique_recall, unique_precision)
    inside = (grid >= unique_recall[0]) & (grid <= unique_recall[-1])
    return float(np.sum(np.where(inside, interpolated, 0.0)) * 0.01)


def collect_boundary_scores(thresholds: np.ndarray, counts: np.ndarray) -> dict[str, Any]:
    """ODS, OIS, AP and the per-image and per-threshold tables from per-image counts.

    Args:
      thresholds: (T,) thresholds.
      counts: (N, T, 4) per-image `[cntR, sumR, cntP, sumP]`.

    Returns:
      A dict with `ods`, `ods_threshold`, `ods_recall`, `ods_precision`, `ois`, `ois_recall`,
      `ois_precision`, `ap`, `curve` (thresholds, recall, precision, f: eval_bdry_thr.txt),
      `per_image` ((N, 4) best threshold, R, P, F: eval_bdry_img.txt) and `counts`.
    """
    thresholds = np.asarray(thresholds, np.float64)
    counts = np.asarray(counts, np.float64)
    if counts.ndim != 3 or counts.shape[1:] != (thresholds.size, 4):
        raise ValueError(f"counts must be (N, {thresholds.size}, 4), got {counts.shape}")
    per_image = np.zeros((counts.shape[0], 4))
    best_counts = np.zeros(4)
    for i, image_counts in enumerate(counts):
        cnt_r, sum_r, cnt_p, sum_p = image_counts.T
        recall, precision = _ratio(cnt_r, sum_r), _ratio(cnt_p, sum_p)
        per_image[i] = best_f_interpolated(thresholds, recall, precision)
        f = f_measure(recall, precision)
        best_counts += image_counts[int(np.argmax(f == f.max()))]
    cnt_r, sum_r, cnt_p, sum_p = counts.sum(axis=0).T
    recall, precision = _ratio(cnt_r, sum_r), _ratio(cnt_p, sum_p)
    ods_threshold, ods_recall, ods_precision, ods = best_f_interpolated(
        thresholds, recall, precision
    )
    ois_recall = float(_ratio(best_counts[0], best_counts[1]))
    ois_precision = float(_ratio(best_counts[2], best_counts[3]))
    return {
        "ods": ods,
        "ods_threshold": ods_threshold,
        "ods_recall": ods_recall,
        "ods_precision": ods_precision,
        "ois": float(f_measure(ois_recall, ois_precision)),
        "ois_recall": ois_recall,
        "ois_precision": ois_precision,
        "ap": average_precision(recall, precision),
        "curve": {
            "thresholds": thresholds,
            "recall": recall,
            "precision": precision,
            "f": f_measure(recall, precision),
        },
        "per_image": per_image,
        "counts": counts,
    }


def _is_main_guard(test: ast.expr) -> bool:
    """`__name__ == "__main__"`, either way round."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1):
        return False
    if not isinstance(test.ops[0], ast.Eq):
        return False
    sides = [test.left, *test.comparators]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    constants = [s.value for s in sides if isinstance(s, ast.Constant)]
    return names == ["__name__"] and constants == ["__main__"]


def _guarded_lines(path: str) -> list[tuple[int, int]] | None:
    """The line ranges of the bodies of `if __name__ == "__main__":` blocks in a script."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return None
    return [
        (node.body[0].lineno, node.body[-1].end_lineno or node.body[-1].lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_main_guard(node.test)
    ]


def spawn_obstacle() -> str | None:
    """Why spawned worker processes cannot start from this call, or None when they can.

    A spawned worker runs the main module again before it takes work (as `__mp_main__`: the
    script's file for `python script.py`, the module for `python -m`). That fails when the
    main script has no file (read from stdin) and starts the benchmark again, recursively, when
    this call comes from the main script's top-level code outside `if __name__ == "__main__":`.
    """
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        return "it is called while a worker process imports the main script"
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None:  # interactive or `python -c`: a worker runs nothing
        return None
    if not os.path.isfile(path):
        return f"the main script {path} is not a file a worker process could run"
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals is vars(main):
            break
        frame = frame.f_back
    if frame is None:
        return None
    guarded = _guarded_lines(path)
    if guarded is None or any(first <= frame.f_lineno <= last for first, last in guarded):
        return None
    return (
        f"it is called from the top level of {path} (line {frame.f_lineno}), outside "
        '`if __name__ == "__main__":`'
    )


def _workers_that_can_spawn(workers: int) -> int:
    """`workers`, or 1 with a warning when spawned workers would re-run the main script."""
    import multiprocessing

    obstacle = spawn_obstacle()
    if obstacle is None:
        return workers
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(f"evaluate_bsds cannot start worker processes: {obstacle}")
    warnings.warn(
        f"evaluate_bsds runs in this process instead of {workers} worker processes: {obstacle}. "
        "Its workers are spawned and import the main script again; put the call under "
        '`if __name__ == "__main__":` in a script file to use them, or pass workers=1.',
        RuntimeWarning,
        skip_file_prefixes=(os.path.dirname(__file__),),  # points at the caller's line
    )
    return 1


def _evaluate_one(job) -> tuple[int, np.ndarray]:
    index, pb, ground_truth, thresholds, seed, kwargs = job
    return index, evaluate_boundary_image(
        pb, ground_truth, thresholds, seed=[seed, index], **kwargs
    )


def boundary_counts(
    predictions: Sequence[np.ndarray],
    ground_truths: Sequence[Sequence[np.ndarray]],
    max_dist: float = DEFAULT_MAX_DIST,
    thresholds: int | Sequence[float] = 99,
    thin: bool = True,
    workers: int | None = None,
    *,
    outlier_cost: float = DEFAULT_OUTLIER_COST,
    outlier_graph: OutlierGraph = "exact",
    seed: int = 0,
    progress: bool | None = None,
) -> np.ndarray:
    """The per-image counts of the BSDS500 benchmark: `evaluate_boundary_image` of every map.

    `evaluate_bsds` turns them into the scores; several sets of maps (models) scored in one
    call share the worker processes and give their scores with `collect_boundary_scores` on
    their rows.

    Args:
      predictions: N float (H, W) edge maps in [0, 1] (a PNG benchmark input is `uint8 / 255`).
      ground_truths: N lists of the annotators' binary (H, W) boundary maps.
      max_dist: matching tolerance as a fraction of the image diagonal (0.0075 by default).
      thresholds: a count n (`linspace(1/(n+1), 1-1/(n+1), n)`) or the thresholds themselves.
      thin: thin each binarised map (`bwmorph 'thin'`); False when the maps are already thin.
      workers: processes; None uses min(CPU count, N), 1 runs in this process. Workers are
        spawned (safe beside JAX) and import the main script again, so a calling script needs
        `if __name__ == "__main__":`; without one (or from stdin) the benchmark warns and runs
        in this process.
      outlier_cost, outlier_graph, seed: see `correspond_pixels`.
      progress: show a progress bar; None shows it for more than a few images.

    Returns:
      (N, T, 4) float64 `[cntR, sumR, cntP, sumP]` at each of the T thresholds.
    """
    if len(predictions) != len(ground_truths):
        raise ValueError(
            f"{len(predictions)} predictions but {len(ground_truths)} ground-truth entries"
        )
    if not predictions:
        raise ValueError("predictions must not be empty")
    if outlier_graph not in ("exact", "reference"):
        raise ValueError(f"outlier_graph must be 'exact' or 'reference', got {outlier_graph!r}")
    values = benchmark_thresholds(thresholds)
    for i, pb in enumerate(predictions):
        pb = np.asarray(pb)
        if pb.ndim != 2:
            raise ValueError(f"prediction {i} must be a 2-D edge map, got shape {pb.shape}")
        if pb.size and (np.nanmin(pb) < 0 or np.nanmax(pb) > 1):
            raise ValueError(f"prediction {i} must lie in [0, 1] (got {pb.min()}..{pb.max()})")
    count = len(predictions)
    workers = min(os.cpu_count() or 1, count) if workers is None else max(1, int(workers))
    if workers > 1:
        workers = _workers_that_can_spawn(workers)
    kwargs = dict(
        max_dist=max_dist,
        thin=thin,
        outlier_cost=outlier_cost,
        outlier_graph=outlier_graph,
    )
    jobs = (
        (i, np.asarray(pb, np.float64), list(gt), values, seed, kwargs)
        for i, (pb, gt) in enumerate(zip(predictions, ground_truths, strict=True))
    )
    show = count > 4 if progress is None else progress
    bar = None
    if show:
        from thesis_jax.core.metrics import progress_bar

        bar = progress_bar(count, desc="BSDS benchmark")
    counts = np.zeros((count, values.size, 4))
    try:
        if workers == 1:
            for job in jobs:
                index, image_counts = _evaluate_one(job)
                counts[index] = image_counts
                if bar is not None:
                    bar.update(1)
        else:
            import multiprocessing

            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                futures = [pool.submit(_evaluate_one, job) for job in jobs]
                for future in as_completed(futures):
                    index, image_counts = future.result()
                    counts[index] = image_counts
                    if bar is not None:
                        bar.update(1)
    except BrokenProcessPool as error:
        raise RuntimeError(
            f"a worker process of the BSDS benchmark died ({error}). Workers import the main "
            "script again, so code at its top level that calls evaluate_bsds, trains or exits "
            'belongs under `if __name__ == "__main__":`; a worker may also have run out of '
            "memory. workers=1 scores in this process."
        ) from error
    finally:
        if bar is not None:
            bar.close()
    return counts


def evaluate_bsds(
    predictions: Sequence[np.ndarray],
    ground_truths: Sequence[Sequence[np.ndarray]],
    max_dist: float = DEFAULT_MAX_DIST,
    thresholds: int | Sequence[float] = 99,
    **options: Any,
) -> dict[str, Any]:
    """The BSDS500 boundary benchmark of a set of edge maps (thesis sec. 3.4, table 3.I, fig. 3.5).

    Args:
      predictions: N float (H, W) edge maps in [0, 1] (a PNG benchmark input is `uint8 / 255`).
      ground_truths: N lists of the annotators' binary (H, W) boundary maps.
      max_dist: matching tolerance as a fraction of the image diagonal (0.0075 by default).
      thresholds: a count n (`linspace(1/(n+1), 1-1/(n+1), n)`) or the thresholds themselves.
      **options: `thin`, `workers`, `outlier_cost`, `outlier_graph`, `seed`, `progress`; see
        `boundary_counts` (by default the maps are thinned and spread over one spawned worker
        process per CPU).

    Returns:
      The dict of `collect_boundary_scores` plus `max_dist`.
    """
    counts = boundary_counts(predictions, ground_truths, max_dist, thresholds, **options)
    scores = collect_boundary_scores(benchmark_thresholds(thresholds), counts)
    scores["max_dist"] = max_dist
    return scores


def save_bsds_results(
    scores: dict[str, Any], directory: str | os.PathLike, names: Sequence[str] | None = None
) -> list[Path]:
    """Writes the benchmark's text files in the BSR format (`%10g` columns).

    `eval_bdry.txt` (ODS threshold, R, P, F, OIS R, P, F, AP), `eval_bdry_thr.txt` (threshold,
    R, P, F), `eval_bdry_img.txt` (image number, best threshold, R, P, F) and, when `names` are
    given, the per-image counts `<name>_ev1.txt` (threshold, cntR, sumR, cntP, sumP).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    curve = scores["curve"]
    summary = [scores[key] for key in ("ods_threshold", "ods_recall", "ods_precision", "ods")]
    summary += [scores[key] for key in ("ois_recall", "ois_precision", "ois", "ap")]
    tables = {
        "eval_bdry.txt": ("%10g " * 8, [summary]),
        "eval_bdry_thr.txt": (
            "%10g " * 4,
            np.stack([curve["thresholds"], curve["recall"], curve["precision"], curve["f"]], 1),
        ),
        "eval_bdry_img.txt": (
            "%10d" + " %10g" * 4,
            [(i + 1, *row) for i, row in enumerate(scores["per_image"])],
        ),
    }
    if names is not None:
        if len(names) != len(scores["counts"]):
            raise ValueError(f"{len(names)} names for {len(scores['counts'])} images")
        for name, counts in zip(names, scores["counts"], strict=True):
            rows = np.concatenate([curve["thresholds"][:, None], counts], axis=1)
            tables[f"{name}_ev1.txt"] = ("%10g " * 5, rows)
    written = []
    for filename, (row_format, rows) in tables.items():
        lines = [(row_format.strip() % tuple(row)) for row in rows]
        path = directory / filename
        path.write_text("\n".join(lines) + "\n")
        written.append(path)
    return written
