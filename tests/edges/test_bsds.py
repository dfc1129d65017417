"""The BSDS500 boundary benchmark against the BSR reference output and hand-made known answers."""

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from skimage.morphology import thin

from tests.conftest import ROOT
from thesis_jax.data import DatasetNotFoundError
from thesis_jax.edges import (
    average_precision,
    benchmark_thresholds,
    best_f_interpolated,
    correspond_pixels,
    evaluate_boundary_image,
    evaluate_bsds,
    load_boundary_png,
    load_bsds500,
    load_bsds_ground_truth,
    load_bsds_segmentations,
    save_bsds_results,
    thin_boundaries,
)

BSDS = ROOT.parent / "shared" / "data" / "BSDS500"
SELFTEST = BSDS / "bench_selftest"
needs_selftest = pytest.mark.skipif(
    not SELFTEST.is_dir(), reason=f"{SELFTEST} (the BSR benchmark self-test) is not on this machine"
)
needs_bsds = pytest.mark.skipif(
    not (BSDS / "groundTruth").is_dir(), reason=f"{BSDS} (BSDS500) is not on this machine"
)


def _selftest_inputs():
    names = sorted(p.stem for p in (SELFTEST / "png").glob("*.png"))
    predictions = [load_boundary_png(SELFTEST / "png" / f"{n}.png") for n in names]
    ground_truths = [load_bsds_ground_truth(SELFTEST / "groundTruth" / f"{n}.mat") for n in names]
    return predictions, ground_truths


def _assert_matches_reference(scores, test_dir: Path, image_tolerance: float) -> None:
    """eval_bdry.txt, eval_bdry_thr.txt and eval_bdry_img.txt of the BSR benchmark."""
    summary = np.loadtxt(test_dir / "eval_bdry.txt")
    ours = [
        scores["ods_threshold"],
        scores["ods_recall"],
        scores["ods_precision"],
        scores["ods"],
        scores["ois_recall"],
        scores["ois_precision"],
        scores["ois"],
        scores["ap"],
    ]
    np.testing.assert_allclose(ours, summary, rtol=0, atol=1e-3)
    curve = scores["curve"]
    per_threshold = np.stack(
        [curve["thresholds"], curve["recall"], curve["precision"], curve["f"]], axis=1
    )
    np.testing.assert_allclose(
        per_threshold, np.loadtxt(test_dir / "eval_bdry_thr.txt"), rtol=0, atol=1e-3
    )
    per_image = np.loadtxt(test_dir / "eval_bdry_img.txt")[:, 1:]
    np.testing.assert_allclose(scores["per_image"][:, [0, 3]], per_image[:, [0, 3]], atol=1e-3)
    np.testing.assert_allclose(
        scores["per_image"][:, 1:3], per_image[:, 1:3], rtol=0, atol=image_tolerance
    )


@needs_selftest
def test_self_test_reproduces_the_reference_scores(tmp_path):
    """BSR `test_benchs.m`, part 2: the png/ maps at nthresh = 5 (eval_bdry*.txt in test_2/).

    ODS, OIS, AP and every per-threshold R, P, F agree to 1e-3. Per image, the reference's
    random sparse outlier graph moves single pixels: image 1's best-threshold precision rests on
    ~940 pixels, so one pixel is 1.07e-3 there; R and P per image are held to 1.5e-3.
    """
    predictions, ground_truths = _selftest_inputs()
    scores = evaluate_bsds(predictions, ground_truths, thresholds=5, workers=1, progress=False)
    _assert_matches_reference(scores, SELFTEST / "test_2", image_tolerance=1.5e-3)
    assert scores["counts"].shape == (5, 5, 4)
    written = save_bsds_results(scores, tmp_path, names=[f"{i}" for i in range(5)])
    assert len(written) == 8
    for name in ("eval_bdry.txt", "eval_bdry_thr.txt", "eval_bdry_img.txt"):
        ours, reference = np.loadtxt(tmp_path / name), np.loadtxt(SELFTEST / "test_2" / name)
        assert ours.shape == reference.shape
        np.testing.assert_allclose(ours, reference, atol=1.5e-3)
    np.testing.assert_allclose(np.loadtxt(tmp_path / "0_ev1.txt")[:, 1:], scores["counts"][0])
    assert (scores["counts"][:, :, 1] == scores["counts"][:, :1, 1]).all()


@needs_selftest
@pytest.mark.slow
def test_reference_outlier_graph_reproduces_the_reference_scores():
    predictions, ground_truths = _selftest_inputs()
    scores = evaluate_bsds(
        predictions,
        ground_truths,
        thresholds=5,
        workers=1,
        outlier_graph="reference",
        seed=0,
        progress=False,
    )
    _assert_matches_reference(scores, SELFTEST / "test_2", image_tolerance=1.5e-3)


@needs_selftest
def test_parallel_workers_give_the_same_counts():
    predictions, ground_truths = _selftest_inputs()
    serial = evaluate_bsds(predictions[:2], ground_truths[:2], thresholds=3, workers=1)
    parallel = evaluate_bsds(predictions[:2], ground_truths[:2], thresholds=3, workers=2)
    np.testing.assert_array_equal(serial["counts"], parallel["counts"])
    assert serial["ods"] == parallel["ods"]


@needs_selftest
def test_scipy_fallback_finds_assignments_of_the_same_cost(monkeypatch):
    """Without numba the same problem goes to scipy's LAPJVsp; optima tie only in which pixels."""
    from thesis_jax.edges import correspondence

    predictions, ground_truths = _selftest_inputs()
    compiled = evaluate_boundary_image(predictions[0], ground_truths[0], [0.2, 0.6])
    tolerance = correspondence.matching_tolerance(predictions[0].shape, 0.0075, 100.0)
    gt = correspondence.GroundTruthIndex(ground_truths[0][0], *tolerance[:3])
    ys, xs = np.nonzero(thin_boundaries(predictions[0] >= 0.2))
    loops = correspondence._pixel_pairs(ys, xs, gt, *tolerance[1:4])
    monkeypatch.setattr(correspondence, "numba", None)
    fallback = evaluate_boundary_image(predictions[0], ground_truths[0], [0.2, 0.6])
    np.testing.assert_array_equal(compiled[:, [0, 1, 3]], fallback[:, [0, 1, 3]])
    np.testing.assert_allclose(compiled[:, 2], fallback[:, 2], atol=3)
    for a, b in zip(loops, correspondence._pixel_pairs(ys, xs, gt, *tolerance[1:4]), strict=True):
        np.testing.assert_array_equal(a, b)


@needs_selftest
def test_thresholds_follow_matlab_linspace():
    reference = np.loadtxt(SELFTEST / "test_2" / "eval_bdry_thr.txt")[:, 0]
    np.testing.assert_allclose(benchmark_thresholds(5), reference, atol=1e-6)
    ninety_nine = benchmark_thresholds(99)
    assert ninety_nine.size == 99 and ninety_nine[0] == 0.01 and ninety_nine[-1] == 0.99
    np.testing.assert_allclose(np.diff(ninety_nine), 0.01, atol=1e-12)
    np.testing.assert_array_equal(benchmark_thresholds([0.3, 0.1]), [0.3, 0.1])
    with pytest.raises(ValueError):
        benchmark_thresholds(0)


def test_thinning_is_matlab_thin_as_in_skimage():
    """`bwmorph(.., 'thin', inf)` == skimage's thin (Guo-Hall A1, as in Lam et al. 1992)."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        blobs = rng.random((60, 70)) < rng.uniform(0.2, 0.7)
        np.testing.assert_array_equal(thin_boundaries(blobs), thin(blobs))
    thick = np.zeros((30, 30), dtype=bool)
    thick[10:14, 3:27] = True
    thinned = thin_boundaries(thick)
    assert thinned.sum(axis=0)[5:25].tolist() == [1] * 20
    if SELFTEST.is_dir():
        edges = load_boundary_png(SELFTEST / "png" / "2018.png")
        for threshold in (0.1, 0.3, 0.7):
            np.testing.assert_array_equal(
                thin_boundaries(edges >= threshold), thin(edges >= threshold)
            )
    # A one-pixel outline loses its corner pixels, as in MATLAB.
    assert thin_boundaries(_square()).sum() == _square().sum() - 4


def _square(size: int = 200, offset: int = 0, side: int = 100) -> np.ndarray:
    bmap = np.zeros((size, size), dtype=bool)
    lo, hi = 50 + offset, 50 + offset + side
    bmap[lo, lo:hi] = bmap[hi - 1, lo:hi] = True
    bmap[lo:hi, lo] = bmap[lo:hi, hi - 1] = True
    return bmap


def _vertical_lines(size: int = 200) -> np.ndarray:
    bmap = np.zeros((size, size), dtype=bool)
    bmap[20:180, 60] = bmap[20:180, 140] = True
    return bmap


def _single(prediction, ground_truth, **kwargs):
    """One already-thin binary prediction (thinning would drop the square's corner pixels)."""
    return evaluate_bsds(
        [prediction.astype(float)],
        [ground_truth],
        thresholds=[0.5],
        workers=1,
        thin=False,
        **kwargs,
    )


def test_prediction_equal_to_ground_truth_scores_one():
    truth = _square()
    scores = _single(truth, [truth])
    assert scores["ods"] == scores["ois"] == 1.0
    assert scores["ods_recall"] == scores["ods_precision"] == 1.0
    np.testing.assert_array_equal(scores["counts"][0, 0], [truth.sum()] * 4)


def test_tolerance_is_a_fraction_of_the_diagonal():
    """200x200: the radius is 0.0075 * 282.8 = 2.12 px; shifts of 1 and 2 px match, 3 do not."""
    truth = _vertical_lines()
    for shift, expected in [(1, 1.0), (2, 1.0), (3, 0.0)]:
        shifted = np.roll(truth, shift, axis=1)
        scores = _single(shifted, [truth])
        assert scores["ods_recall"] == expected
        assert scores["ods_precision"] == expected


def test_tighter_tolerance_lowers_the_score():
    """Fig. 3.5: one line 1 px off and one 2 px off; radii 2.12, 1.70 and 0.85 px."""
    truth = _vertical_lines()
    prediction = np.zeros_like(truth)
    prediction[20:180, 61] = prediction[20:180, 142] = True
    scores = [
        _single(prediction, [truth], max_dist=max_dist)["ods"]
        for max_dist in (0.0075, 0.006, 0.003)
    ]
    assert scores == [1.0, 0.5, 0.0]


def test_empty_prediction_has_zero_recall():
    scores = _single(np.zeros((200, 200)), [_square()])
    assert scores["ods_recall"] == 0.0 and scores["ods"] == 0.0
    np.testing.assert_array_equal(scores["counts"][0, 0], [0, _square().sum(), 0, 0])


def test_two_annotators_accumulate_recall_and_share_precision():
    """Recall sums over annotators; a predicted pixel is correct if any annotator matches it."""
    first = np.zeros((200, 200), dtype=bool)
    first[60, 20:180] = True
    second = np.zeros((200, 200), dtype=bool)
    second[140, 20:180] = True
    prediction = first | second
    counts = evaluate_boundary_image(prediction.astype(float), [first, second], [0.5])
    # Each annotator matches its own line: recall 320 / 320, every predicted pixel matched.
    np.testing.assert_array_equal(counts[0], [320, 320, 320, 320])
    counts = evaluate_boundary_image(first.astype(float), [first, second], [0.5])
    np.testing.assert_array_equal(counts[0], [160, 320, 160, 160])


def test_matching_is_one_to_one():
    """Two predicted pixels next to one ground-truth pixel: only one of them is matched."""
    truth = np.zeros((200, 200), dtype=bool)
    truth[100, 100] = True
    prediction = np.zeros_like(truth)
    prediction[100, 99] = prediction[100, 101] = True
    match1, match2 = correspond_pixels(prediction, truth)
    assert match1.sum() == 1 and match2.sum() == 1 and match2[100, 100]
    counts = evaluate_boundary_image(prediction.astype(float), [truth], [0.5], thin=False)
    np.testing.assert_array_equal(counts[0], [1, 1, 1, 2])


def test_matching_prefers_the_nearest_pixels():
    truth = np.zeros((200, 200), dtype=bool)
    truth[100, 80:120] = True
    prediction = np.zeros_like(truth)
    prediction[100, 80:120] = True
    prediction[101, 80:120] = True
    match1, _ = correspond_pixels(prediction, truth)
    assert match1[100, 80:120].all() and not match1[101].any()


def test_assignment_is_optimal_on_random_maps():
    """The compiled shortest-augmenting-path solver reaches the dense assignment's optimum."""
    from scipy.optimize import linear_sum_assignment

    from thesis_jax.edges import correspondence

    rng = np.random.default_rng(0)
    for trial in range(30):
        shape = (40, 50)
        prediction = rng.random(shape) < rng.uniform(0.02, 0.3)
        truth = rng.random(shape) < rng.uniform(0.02, 0.3)
        tolerance = correspondence.matching_tolerance(shape, 0.03, 100.0)
        gt = correspondence.GroundTruthIndex(truth, *tolerance[:3])
        ys, xs = np.nonzero(prediction)
        rows, indptr, gt_index, cost = correspondence._pixel_pairs(ys, xs, gt, *tolerance[1:4])
        outlier = tolerance[4]
        col4row = correspondence._exact_assignment(indptr, gt_index, cost, gt.count, outlier)
        real = col4row < gt.count
        assert np.unique(col4row[real]).size == real.sum()
        pair_cost = {}
        for row in range(rows.size):
            for k in range(indptr[row], indptr[row + 1]):
                pair_cost[row, gt_index[k]] = cost[k]
        ours = sum(outlier - pair_cost[row, col4row[row]] for row in np.nonzero(real)[0])
        dense = np.zeros((rows.size, gt.count))
        for (row, col), c in pair_cost.items():
            dense[row, col] = c - outlier
        chosen = linear_sum_assignment(dense)
        assert ours == -dense[chosen].sum(), trial


def test_interpolated_best_f_and_average_precision_by_hand():
    thresholds = np.array([0.25, 0.75])
    # F on the segment from (R, P) = (1, 0) to (0, 1) peaks at its middle, F = 0.5.
    t, r, p, f = best_f_interpolated(thresholds, np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    assert f == pytest.approx(0.5, abs=1e-4) and t == pytest.approx(0.5, abs=0.01)
    assert r == pytest.approx(0.5, abs=0.01) and p == pytest.approx(0.5, abs=0.01)
    # A constant precision 0.8 for recall in [0.2, 0.6]: 41 grid points of 0.01.
    assert average_precision([0.6, 0.4, 0.2], [0.8, 0.8, 0.8]) == pytest.approx(0.8 * 41 * 0.01)
    # One distinct recall: the reference returns 0.
    assert average_precision([0.5, 0.5], [0.9, 1.0]) == 0.0


@needs_bsds
def test_load_bsds500_reads_the_val_split():
    images, ground_truths, names = load_bsds500(BSDS, "val")
    assert len(images) == len(ground_truths) == len(names) == 100
    for image, truth in zip(images[:10], ground_truths[:10], strict=True):
        assert image.dtype == np.uint8 and image.shape[2] == 3
        assert sorted(image.shape[:2]) == [321, 481]
        assert len(truth) >= 4
        assert all(t.dtype == bool and t.shape == image.shape[:2] for t in truth)
    segmentations = load_bsds_segmentations(BSDS / "groundTruth" / "val" / f"{names[0]}.mat")
    assert len(segmentations) == len(ground_truths[0])
    assert segmentations[0].min() >= 1


@needs_bsds
def test_load_bsds500_accepts_the_bsr_layout(tmp_path):
    data = tmp_path / "BSR" / "BSDS500" / "data"
    data.mkdir(parents=True)
    for folder in ("images", "groundTruth"):
        (data / folder).mkdir()
        (data / folder / "val").symlink_to(BSDS / folder / "val")
    _, ground_truths, names = load_bsds500(tmp_path / "BSR", "val")
    assert len(names) == 100 and len(ground_truths) == 100


def test_missing_bsds_explains_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"BSR_bsds500\.tgz"):
        load_bsds500(tmp_path, "val")
    with pytest.raises(DatasetNotFoundError):
        load_bsds_ground_truth(tmp_path / "missing.mat")


def test_corrupt_ground_truth_names_the_file(tmp_path):
    broken = tmp_path / "12345.mat"
    broken.write_bytes(b"not a mat file")
    with pytest.raises(ValueError, match=r"12345\.mat"):
        load_bsds_ground_truth(broken)
    wrong = tmp_path / "67890.mat"
    scipy.io.savemat(wrong, {"something": np.zeros(3)})
    with pytest.raises(ValueError, match=r"67890\.mat"):
        load_bsds_ground_truth(wrong)


def test_bad_inputs_are_rejected():
    truth = _square()
    with pytest.raises(ValueError, match="lie in"):
        evaluate_bsds([truth * 2.0], [[truth]])
    with pytest.raises(ValueError, match="does not match"):
        evaluate_bsds([np.zeros((10, 10))], [[truth]])
    with pytest.raises(ValueError, match="predictions"):
        evaluate_bsds([truth], [])
    with pytest.raises(ValueError, match="max_dist"):
        evaluate_bsds([truth.astype(float)], [[truth]], max_dist=0.0, workers=1)


@needs_bsds
@pytest.mark.slow
def test_full_val_benchmark_of_a_gradient_detector():
    """A Sobel gradient magnitude thinned by NMS on BSDS500 val at 99 thresholds."""
    from skimage.color import rgb2gray
    from skimage.filters import gaussian, sobel

    from thesis_jax.edges import edge_nms

    images, ground_truths, _ = load_bsds500(BSDS, "val")
    predictions = []
    for image in images:
        magnitude = sobel(gaussian(rgb2gray(image), 2.0))
        predictions.append(np.clip(edge_nms(magnitude / magnitude.max()), 0, 1))
    scores = evaluate_bsds(predictions, ground_truths)
    assert 0.45 < scores["ods"] < 0.7
    assert scores["ois"] >= scores["ods"] and scores["ap"] > 0.3


def test_pr_and_tolerance_figures_are_pngs(tmp_path):
    from PIL import Image

    from thesis_jax.edges import plot_pr_curves, plot_tolerance_scores

    truth = _vertical_lines()
    prediction = np.zeros_like(truth, dtype=float)
    prediction[20:180, 61] = 0.9
    prediction[20:180, 142] = 0.4
    by_tolerance = {
        max_dist: evaluate_bsds([prediction], [[truth]], max_dist, thresholds=9, workers=1)
        for max_dist in (0.003, 0.006, 0.0075)
    }
    assert [by_tolerance[t]["ods"] for t in (0.003, 0.006, 0.0075)] == pytest.approx(
        [0.0, 2 / 3, 1.0], abs=1e-3
    )
    pr = plot_pr_curves({"two lines": by_tolerance[0.0075]}, tmp_path / "pr.png")
    tolerance = plot_tolerance_scores({"two lines": by_tolerance}, tmp_path / "tolerance.png")
    for path in (pr, tolerance):
        with Image.open(path) as image:
            assert image.format == "PNG" and min(image.size) > 300
