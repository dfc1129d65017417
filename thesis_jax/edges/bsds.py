"""The BSDS500 boundary benchmark (ODS / OIS / AP), re-derived from the reference protocol.

Thesis ch. 3, sec. 3.4 scores edge maps with the benchmark of Arbeláez et al. (2011) (built on
Martin, Fowlkes & Malik, 2004): fixed contour threshold (ODS), per-image best threshold (OIS)
and average precision (AP), with the matching tolerance of fig. 3.5. This module reproduces the
BSR `bench/` code:

- `evaluation_bdry_image.m`: for every threshold the edge map is binarised (`pb >= t`), thinned
  (`bwmorph(.., 'thin', inf)`, `thin_boundaries`) and matched to each human annotation in turn
  (`correspond_pixels`). Recall counts matched ground-truth pixels summed over annotators;
  precision counts predicted pixels matched to any annotator.
- `correspondPixels` / `match.cc`: a minimum-cost bipartite assignment between predicted and
  ground-truth boundary pixels no farther apart than `max_dist` times the image diagonal. Edge
  costs are distances times 100 rounded to integers; every pixel may stay unmatched at the
  outlier cost `ceil(100 * outlier_cost * max_dist * diagonal)`, so a matched pair saves
  `outlier - cost` (`match.cc` pairs the leftover outlier nodes at the same cost).
- `collect_eval_bdry.m`: dataset totals per threshold, ODS and the per-image scores by linear
  interpolation between thresholds (`maxF`), OIS from the counts at each image's best threshold,
  AP from `interp1` of precision over the unique recalls on a 0.01 recall grid.

The assignment is solved exactly, faster than the reference: every predicted pixel takes a
cheapest free ground-truth pixel, and the others are added one at a time along shortest
augmenting paths (Dijkstra with a heap on the sparse pair graph, compiled with numba; without
numba, scipy's `min_weight_full_bipartite_matching` solves the same problem more slowly). The
BSR self-test (`bench/data`, `test_2/`) is the check.

The reference's CSA solver does not give every pixel a free outlier edge: `match.cc` links each
node to 6 random outlier nodes (`kOfN`) plus a 100-times dearer "overlay" edge, and that sparse
graph often forces a different, slightly worse assignment. On the self-test the reference's
recall is about 3e-4 lower than the exact assignment's (about 20 of 42,000 matched pixels),
and the random graph moves per-image scores by about one pixel between seeds.
`outlier_graph="reference"` rebuilds that random graph (seeded) and solves it whole, which
reproduces the reference in distribution but is several times slower; the default `"exact"`
gives every pixel its outlier edge, the assignment the reference approximates.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.io
import scipy.sparse
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from thesis_jax.data.errors import DatasetNotFoundError

try:
    import numba
except ImportError:  # the exact assignment falls back to scipy's sparse solver, more slowly
    numba = None

DEFAULT_MAX_DIST = 0.0075
DEFAULT_OUTLIER_COST = 100.0
COST_MULTIPLIER = 100
OUTLIER_DEGREE = 6
BSR_URL = "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"

OutlierGraph = Literal["exact", "reference"]

_BSDS_HOW_TO = f"""\
On a connected machine:
  wget {BSR_URL}
  tar xzf BSR_bsds500.tgz          # -> BSR/BSDS500/data/{{images,groundTruth}}/{{train,val,test}}
Then pass root=<...>/BSR (or BSR/BSDS500/data, or any folder holding images/ and groundTruth/).
"""

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
# Pixel correspondence (correspondPixels / match.cc)
# ---------------------------------------------------------------------------------------------


def _tolerance(shape: tuple[int, int], max_dist: float, outlier_cost: float):
    """Search radius in pixels, offsets within it with their integer costs, and the outlier cost."""
    if not max_dist > 0 or not outlier_cost > 1:
        raise ValueError(
            f"need max_dist > 0 and outlier_cost > 1 (match.cc: outlierCost > maxDist), "
            f"got {max_dist} and {outlier_cost}"
        )
    diagonal = math.sqrt(shape[0] ** 2 + shape[1] ** 2)
    radius = max_dist * diagonal
    outlier = outlier_cost * max_dist * diagonal
    reach = math.ceil(radius)
    dy, dx = np.mgrid[-reach : reach + 1, -reach : reach + 1]
    squared = (dy * dy + dx * dx).ravel().astype(np.float64)
    inside = squared <= radius * radius
    costs = np.rint(np.sqrt(squared[inside]) * COST_MULTIPLIER).astype(np.int64)
    outlier_weight = math.ceil(outlier * COST_MULTIPLIER)
    return reach, dy.ravel()[inside], dx.ravel()[inside], costs, outlier_weight


class _GroundTruthIndex:
    """One annotator's boundary pixels, laid out for fast neighbour look-ups."""

    def __init__(self, boundaries: np.ndarray, reach: int, dy, dx) -> None:
        ys, xs = np.nonzero(boundaries)
        self.count = ys.size
        self.reach = reach
        self.labels = np.full(
            (boundaries.shape[0] + 2 * reach, boundaries.shape[1] + 2 * reach), -1, np.int64
        )
        self.labels[ys + reach, xs + reach] = np.arange(ys.size)
        near = np.zeros(self.labels.shape, dtype=bool)
        for oy, ox in zip(dy, dx, strict=True):
            near[ys + reach + oy, xs + reach + ox] = True
        self.near = near[reach:-reach, reach:-reach] if reach else near


def _pixel_pairs_numpy(pred_ys, pred_xs, near, labels, reach, dy, dx, costs):
    rows = np.nonzero(near[pred_ys, pred_xs])[0]
    found = labels[pred_ys[rows, None] + reach + dy[None], pred_xs[rows, None] + reach + dx]
    row_of_pair, offset = np.nonzero(found >= 0)
    indptr = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(np.bincount(row_of_pair, minlength=rows.size), out=indptr[1:])
    return rows, indptr, found[row_of_pair, offset], costs[offset]


def _pixel_pairs_loops(pred_ys, pred_xs, near, labels, reach, dy, dx, costs):
    n_rows = 0
    for p in range(pred_ys.size):
        n_rows += near[pred_ys[p], pred_xs[p]]
    rows = np.empty(n_rows, dtype=np.int64)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    gt_index = np.empty(n_rows * dy.size, dtype=np.int64)
    cost = np.empty(n_rows * dy.size, dtype=costs.dtype)
    row, count = 0, 0
    for p in range(pred_ys.size):
        y, x = pred_ys[p] + reach, pred_xs[p] + reach
        if not near[pred_ys[p], pred_xs[p]]:
            continue
        for k in range(dy.size):
            label = labels[y + dy[k], x + dx[k]]
            if label >= 0:
                gt_index[count], cost[count] = label, costs[k]
                count += 1
        rows[row] = p
        row += 1
        indptr[row] = count
    return rows, indptr, gt_index[:count], cost[:count]


def _pixel_pairs(pred_ys, pred_xs, gt: _GroundTruthIndex, dy, dx, costs):
    """Pairs within the radius, grouped by predicted pixel.

    Returns (rows, indptr, gt_index, cost): the predicted pixels with at least one pair, the CSR
    row pointer of their pairs, and each pair's ground-truth pixel and integer cost.
    """
    pairs = _pixel_pairs_loops if numba is not None else _pixel_pairs_numpy
    return pairs(pred_ys, pred_xs, gt.near, gt.labels, gt.reach, dy, dx, costs)


def _heap_push(keys, values, size, key, value):
    position = size
    keys[position], values[position] = key, value
    while position > 0:
        parent = (position - 1) >> 1
        if keys[parent] <= keys[position]:
            break
        keys[parent], keys[position] = keys[position], keys[parent]
        values[parent], values[position] = values[position], values[parent]
        position = parent
    return size + 1


def _heap_pop(keys, values, size):
    key, value = keys[0], values[0]
    size -= 1
    keys[0], values[0] = keys[size], values[size]
    position = 0
    while True:
        child = 2 * position + 1
        if child >= size:
            break
        if child + 1 < size and keys[child + 1] < keys[child]:
            child += 1
        if keys[position] <= keys[child]:
            break
        keys[child], keys[position] = keys[position], keys[child]
        values[child], values[position] = values[position], values[child]
        position = child
    return key, value, size


def _shortest_augmenting_paths(n_gt, indptr, gt_index, cost, outlier):
    """Min-cost assignment of every row to a ground-truth column or to its own outlier column.

    Row i may take column `n_gt + i` at cost `outlier`; the minimum of `sum(cost) + unmatched *
    outlier` is `match.cc`'s assignment. Rows first take a cheapest free column (duals: u = row
    minimum, v = 0); the rest are added one at a time along a shortest augmenting path (Dijkstra
    on reduced costs with a binary heap), with the dual update of Crouse (2016) as in scipy's
    `linear_sum_assignment`. Returns the column of each row.
    """
    n_rows = indptr.size - 1
    n_cols = n_gt + n_rows
    u = np.zeros(n_rows)
    v = np.zeros(n_cols)
    col4row = np.full(n_rows, -1, dtype=np.int64)
    row4col = np.full(n_cols, -1, dtype=np.int64)
    free_rows = np.empty(n_rows, dtype=np.int64)
    n_free = 0
    for i in range(n_rows):
        best = outlier
        for k in range(indptr[i], indptr[i + 1]):
            best = min(best, cost[k])
        chosen = n_gt + i
        for k in range(indptr[i], indptr[i + 1]):
            if cost[k] == best and row4col[gt_index[k]] < 0:
                chosen = gt_index[k]
                break
        if row4col[chosen] < 0 and (chosen < n_gt or best == outlier):
            col4row[i], row4col[chosen], u[i] = chosen, i, best
        else:
            free_rows[n_free] = i
            n_free += 1

    distance = np.zeros(n_cols)
    parent = np.full(n_cols, -1, dtype=np.int64)
    reached = np.zeros(n_cols, dtype=np.int64)
    settled = np.zeros(n_cols, dtype=np.int64)
    scanned = np.empty(n_cols, dtype=np.int64)
    heap_keys = np.empty(gt_index.size + n_rows + 1)
    heap_values = np.empty(gt_index.size + n_rows + 1, dtype=np.int64)
    for search in range(n_free):
        start = free_rows[search]
        stamp = search + 1
        size, n_scanned, row, path_length, sink = 0, 0, start, 0.0, -1
        while sink < 0:
            for k in range(indptr[row], indptr[row + 1] + 1):
                if k < indptr[row + 1]:
                    col, edge_cost = gt_index[k], cost[k]
                else:
                    col, edge_cost = n_gt + row, outlier
                if settled[col] == stamp:
                    continue
                d = path_length + edge_cost - u[row] - v[col]
                if reached[col] != stamp or d < distance[col]:
                    reached[col], distance[col], parent[col] = stamp, d, row
                    size = _heap_push(heap_keys, heap_values, size, d, col)
            while True:
                d, col, size = _heap_pop(heap_keys, heap_values, size)
                if settled[col] != stamp and d == distance[col]:
                    break
            settled[col] = stamp
            scanned[n_scanned] = col
            n_scanned += 1
            path_length = d
            if row4col[col] < 0:
                sink = col
            else:
                row = row4col[col]
        u[start] += path_length
        for t in range(n_scanned):
            col = scanned[t]
            if col != sink:
                u[row4col[col]] += path_length - distance[col]
            v[col] -= path_length - distance[col]
        col = sink
        while True:
            row = parent[col]
            row4col[col] = row
            col, col4row[row] = col4row[row], col
            if row == start:
                break
    return col4row


if numba is not None:
    _pixel_pairs_loops = numba.njit(cache=True, nogil=True)(_pixel_pairs_loops)
    _heap_push = numba.njit(cache=True, nogil=True)(_heap_push)
    _heap_pop = numba.njit(cache=True, nogil=True)(_heap_pop)
    _shortest_augmenting_paths = numba.njit(cache=True, nogil=True)(_shortest_augmenting_paths)


def _exact_assignment(indptr, gt_index, cost, n_gt: int, outlier_weight: int) -> np.ndarray:
    """The column of each row (a ground-truth pixel, or >= n_gt: unmatched)."""
    if numba is not None:
        return _shortest_augmenting_paths(
            n_gt, indptr, gt_index, cost.astype(np.float64), float(outlier_weight)
        )
    # Without numba: the same rectangular problem, explicit outlier columns, scipy's LAPJVsp.
    n_rows = indptr.size - 1
    rows = np.repeat(np.arange(n_rows), np.diff(indptr))
    graph = scipy.sparse.csr_matrix(
        (
            np.concatenate([cost, np.full(n_rows, outlier_weight)]) + 1.0,
            (
                np.concatenate([rows, np.arange(n_rows)]),
                np.concatenate([gt_index, n_gt + np.arange(n_rows)]),
            ),
        ),
        shape=(n_rows, n_gt + n_rows),
    )
    row_index, col_index = min_weight_full_bipartite_matching(graph)
    col4row = np.empty(n_rows, dtype=np.int64)
    col4row[row_index] = col_index
    return col4row


def _k_of_n(rng: np.random.Generator, rows: int, k: int, n: int) -> np.ndarray:
    """`kOfN`: k distinct integers in [0, n) for each of `rows` rows."""
    if k == 0 or rows == 0:
        return np.zeros((rows, k), dtype=np.int64)
    draws = rng.integers(0, n, size=(rows, k))
    while True:
        ordered = np.sort(draws, axis=1)
        repeated = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if not repeated.any():
            return draws
        draws[repeated] = rng.integers(0, n, size=(int(repeated.sum()), k))


def _reference_assignment(indptr, gt_index, cost, n_gt: int, outlier_weight: int, rng):
    """The minimum-cost perfect matching on `match.cc`'s graph with random outlier edges.

    Nodes: left = n1 predicted + n2 outlier nodes, right = n2 ground-truth + n1 outlier nodes.
    Every real node links to `OUTLIER_DEGREE` random outlier nodes of the other side (not its
    own), outlier nodes link to `OUTLIER_DEGREE` random outlier nodes, all at the outlier weight,
    and each real node links to its own outlier node at 100 times that weight (`kOfN` draws).
    Only pixels with a pair are nodes. Returns the column of each row, as `_exact_assignment`.
    """
    n1 = indptr.size - 1
    left = np.repeat(np.arange(n1), np.diff(indptr))
    gt_nodes, right = np.unique(gt_index, return_inverse=True)
    n2 = gt_nodes.size
    n = n1 + n2
    d1 = max(0, min(OUTLIER_DEGREE, n1 - 1))
    d2 = max(0, min(OUTLIER_DEGREE, n2 - 1))
    d3 = min(OUTLIER_DEGREE, n1, n2)
    outliers1 = _k_of_n(rng, n1, d1, n1 - 1)
    outliers1 += outliers1 >= np.arange(n1)[:, None]
    outliers2 = _k_of_n(rng, n2, d2, n2 - 1)
    outliers2 += outliers2 >= np.arange(n2)[:, None]
    picks = _k_of_n(rng, max(n1, n2), d3, min(n1, n2)).ravel()
    repeats = np.repeat(np.arange(max(n1, n2)), d3)
    pair_left, pair_right = (repeats, picks) if n1 < n2 else (picks, repeats)
    ow = float(outlier_weight)
    rows = [left, np.repeat(np.arange(n1), d1), n1 + outliers2.ravel(), n1 + pair_left]
    cols = [right, n2 + outliers1.ravel(), np.repeat(np.arange(n2), d2), n2 + pair_right]
    weights = [cost, np.full(n1 * d1, ow), np.full(n2 * d2, ow), np.full(pair_left.size, ow)]
    rows += [np.arange(n1), n1 + np.arange(n2)]
    cols += [n2 + np.arange(n1), np.arange(n2)]
    weights += [np.full(n1, ow * COST_MULTIPLIER), np.full(n2, ow * COST_MULTIPLIER)]
    # Weights are shifted by one: the solver reads a stored zero as a missing edge.
    graph = scipy.sparse.csr_matrix(
        (np.concatenate(weights) + 1.0, (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, n),
    )
    row_index, col_index = min_weight_full_bipartite_matching(graph)
    partner = np.empty(n, dtype=np.int64)
    partner[row_index] = col_index
    partner = partner[:n1]
    return np.where(partner < n2, gt_nodes[np.minimum(partner, n2 - 1)], n_gt)


def _match_pixels(
    pred_ys, pred_xs, gt, tolerance, outlier_graph: OutlierGraph, rng: np.random.Generator | None
):
    """Matched flags of the predicted and the ground-truth pixels (`match1 > 0`, `match2 > 0`)."""
    _, dy, dx, costs, outlier_weight = tolerance
    matched_pred = np.zeros(pred_ys.size, dtype=bool)
    matched_gt = np.zeros(gt.count, dtype=bool)
    rows, indptr, gt_index, cost = _pixel_pairs(pred_ys, pred_xs, gt, dy, dx, costs)
    if cost.size == 0:
        return matched_pred, matched_gt
    solve = _reference_assignment if outlier_graph == "reference" else _exact_assignment
    args = (indptr, gt_index, cost, gt.count, outlier_weight)
    col4row = solve(*args, rng) if outlier_graph == "reference" else solve(*args)
    real = col4row < gt.count
    matched_pred[rows[real]] = True
    matched_gt[col4row[real]] = True
    return matched_pred, matched_gt


def correspond_pixels(
    bmap1: np.ndarray,
    bmap2: np.ndarray,
    max_dist: float = DEFAULT_MAX_DIST,
    outlier_cost: float = DEFAULT_OUTLIER_COST,
    *,
    outlier_graph: OutlierGraph = "exact",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """`[match1, match2] = correspondPixels(bmap1, bmap2, maxDist, outlierCost)` as boolean maps.

    Args:
      bmap1: (H, W) binary map, the machine boundaries.
      bmap2: (H, W) binary map, one human annotation.
      max_dist: the matching tolerance as a fraction of the image diagonal.
      outlier_cost: the cost of an unmatched pixel, in units of `max_dist * diagonal`.
      outlier_graph: "exact" (every pixel may stay unmatched) or "reference" (`match.cc`'s
        random sparse outlier graph; see the module docstring).
      seed: seeds the random outlier graph of "reference".

    Returns:
      (match1, match2): boolean (H, W) maps of the pixels of `bmap1` / `bmap2` that were matched.
    """
    bmap1, bmap2 = np.asarray(bmap1).astype(bool), np.asarray(bmap2).astype(bool)
    if bmap1.ndim != 2 or bmap1.shape != bmap2.shape:
        raise ValueError(f"maps must be 2-D of one shape, got {bmap1.shape} and {bmap2.shape}")
    tolerance = _tolerance(bmap1.shape, max_dist, outlier_cost)
    gt = _GroundTruthIndex(bmap2, *tolerance[:3])
    ys, xs = np.nonzero(bmap1)
    rng = np.random.default_rng(seed)
    matched_pred, matched_gt = _match_pixels(ys, xs, gt, tolerance, outlier_graph, rng)
    match1 = np.zeros(bmap1.shape, dtype=bool)
    match1[ys[matched_pred], xs[matched_pred]] = True
    match2 = np.zeros(bmap2.shape, dtype=bool)
    gy, gx = np.nonzero(bmap2)
    match2[gy[matched_gt], gx[matched_gt]] = True
    return match1, match2


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
    tolerance = _tolerance(pb.shape, max_dist, outlier_cost)
    indexes = [_GroundTruthIndex(boundaries, *tolerance[:3]) for boundaries in annotations]
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
            match_pred, match_gt = _match_pixels(ys, xs, gt, tolerance, outlier_graph, rng)
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


def _evaluate_one(job) -> tuple[int, np.ndarray]:
    index, pb, ground_truth, thresholds, seed, kwargs = job
    return index, evaluate_boundary_image(
        pb, ground_truth, thresholds, seed=[seed, index], **kwargs
    )


def evaluate_bsds(
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
) -> dict[str, Any]:
    """The BSDS500 boundary benchmark of a set of edge maps (thesis sec. 3.4, table 3.I, fig. 3.5).

    Args:
      predictions: N float (H, W) edge maps in [0, 1] (a PNG benchmark input is `uint8 / 255`).
      ground_truths: N lists of the annotators' binary (H, W) boundary maps.
      max_dist: matching tolerance as a fraction of the image diagonal (0.0075 by default).
      thresholds: a count n (`linspace(1/(n+1), 1-1/(n+1), n)`) or the thresholds themselves.
      thin: thin each binarised map (`bwmorph 'thin'`); False when the maps are already thin.
      workers: processes; None uses min(CPU count, N), 1 runs in this process. Workers are
        spawned (safe beside JAX), so a calling script needs `if __name__ == "__main__":`.
      outlier_cost, outlier_graph, seed: see `correspond_pixels`.
      progress: show a progress bar; None shows it for more than a few images.

    Returns:
      The dict of `collect_boundary_scores` plus `max_dist`.
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
    finally:
        if bar is not None:
            bar.close()
    scores = collect_boundary_scores(values, counts)
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


# ---------------------------------------------------------------------------------------------
# Data (BSR layout)
# ---------------------------------------------------------------------------------------------


def _load_mat_field(mat_path: str | os.PathLike, field: str) -> list[np.ndarray]:
    path = Path(mat_path)
    if not path.is_file():
        raise DatasetNotFoundError(f"BSDS500 ground truth {path.name}", [path], _BSDS_HOW_TO)
    try:
        cells = scipy.io.loadmat(str(path))["groundTruth"]
        maps = [np.asarray(cells.flat[k][field][0, 0]) for k in range(cells.size)]
    except Exception as error:
        raise ValueError(f"{path}: not a BSDS500 groundTruth .mat file ({error})") from error
    if not maps or any(m.ndim != 2 for m in maps):
        raise ValueError(f"{path}: groundTruth{{k}}.{field} must be non-empty 2-D arrays")
    return maps


def load_bsds_ground_truth(mat_path: str | os.PathLike) -> list[np.ndarray]:
    """The annotators' boundary maps (`groundTruth{k}.Boundaries`) of one image, as bool."""
    return [m.astype(bool) for m in _load_mat_field(mat_path, "Boundaries")]


def load_bsds_segmentations(mat_path: str | os.PathLike) -> list[np.ndarray]:
    """The annotators' label maps (`groundTruth{k}.Segmentation`, 1-based) of one image."""
    return [m.astype(np.int32) for m in _load_mat_field(mat_path, "Segmentation")]


def load_boundary_png(path: str | os.PathLike) -> np.ndarray:
    """An edge map stored as an 8-bit PNG, as the benchmark reads it: `double(imread) / 255`."""
    from PIL import Image

    with Image.open(path) as image:
        values = np.asarray(image)
    if values.ndim != 2:
        raise ValueError(f"{path}: a boundary PNG must be grayscale, got shape {values.shape}")
    return values.astype(np.float64) / (65535.0 if values.dtype == np.uint16 else 255.0)


def bsds_data_dir(root: str | os.PathLike) -> Path:
    """The folder holding images/ and groundTruth/ under `root` (BSR/, BSR/BSDS500/data or it)."""
    root = Path(root).expanduser()
    candidates = [root, root / "data", root / "BSDS500" / "data", root / "BSR" / "BSDS500" / "data"]
    for candidate in candidates:
        if (candidate / "images").is_dir() and (candidate / "groundTruth").is_dir():
            return candidate
    raise DatasetNotFoundError(
        "BSDS500 (images/ and groundTruth/)", [c / "groundTruth" for c in candidates], _BSDS_HOW_TO
    )


def load_bsds500(
    root: str | os.PathLike, split: str
) -> tuple[list[np.ndarray], list[list[np.ndarray]], list[str]]:
    """Images, boundary annotations and ids of a BSDS500 split.

    Args:
      root: `BSR/`, `BSR/BSDS500/data`, or a folder with images/ and groundTruth/.
      split: "train", "val" or "test".

    Returns:
      (images, ground_truths, names): uint8 (H, W, 3) images (481x321 or 321x481), per image
      the list of boolean boundary maps (one per annotator), and the image ids, sorted.
    """
    from PIL import Image

    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    data = bsds_data_dir(root)
    image_dir, gt_dir = data / "images" / split, data / "groundTruth" / split
    names = sorted(p.stem for p in image_dir.glob("*.jpg")) if image_dir.is_dir() else []
    if not names:
        raise DatasetNotFoundError(
            f"BSDS500 images, split {split!r}", [image_dir / "*.jpg"], _BSDS_HOW_TO
        )
    images, ground_truths = [], []
    for name in names:
        with Image.open(image_dir / f"{name}.jpg") as image:
            images.append(np.asarray(image.convert("RGB")))
        ground_truth = load_bsds_ground_truth(gt_dir / f"{name}.mat")
        if any(g.shape != images[-1].shape[:2] for g in ground_truth):
            raise ValueError(f"{gt_dir / name}.mat: boundary maps do not match the image size")
        ground_truths.append(ground_truth)
    return images, ground_truths, names
