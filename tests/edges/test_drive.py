"""DRIVE vessel evaluation against hand-computed values, and the reader on the real data."""

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT
from thesis_jax.data import DatasetNotFoundError
from thesis_jax.edges import evaluate_vessels, load_drive, plot_pr_curves

DRIVE = ROOT.parent / "shared" / "data" / "DRIVE"
needs_drive = pytest.mark.skipif(
    not (DRIVE / "training").is_dir(), reason=f"{DRIVE} (DRIVE) is not on this machine"
)


def test_hand_computed_curve():
    """Scores 0.9, 0.8, 0.3, 0.1 with labels 1, 0, 1, 0."""
    scores = np.array([[0.9, 0.8, 0.3, 0.1]])
    labels = np.array([[1, 0, 1, 0]], dtype=bool)
    result = evaluate_vessels([scores], [labels], [np.ones_like(labels)])
    np.testing.assert_allclose(result["thresholds"], [0.1, 0.3, 0.8, 0.9])
    np.testing.assert_allclose(result["recall"], [1, 1, 0.5, 0.5])
    np.testing.assert_allclose(result["precision"], [0.5, 2 / 3, 0.5, 1])
    assert result["best_f1"] == pytest.approx(0.8) and result["best_threshold"] == 0.3
    # ROC: 3 of the 4 (vessel, background) pairs are ordered correctly.
    assert result["roc_auc"] == pytest.approx(0.75)
    # AP = 0.5 * 1 + 0.5 * 2/3; trapezoid from (0, 1): 0.5 + 0.5 * (1/2 + 2/3) / 2 (+ 0 steps).
    assert result["average_precision"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert result["pr_auc"] == pytest.approx(0.5 * 1 + 0.5 * (0.5 + 2 / 3) / 2)
    assert result["positive_rate"] == 0.5 and result["pixels"] == 4


def test_perfect_prediction_scores_one():
    rng = np.random.default_rng(0)
    truths = [rng.random((20, 30)) < 0.15 for _ in range(3)]
    masks = [np.ones((20, 30), dtype=bool)] * 3
    result = evaluate_vessels([t.astype(float) for t in truths], truths, masks)
    assert result["best_f1"] == 1.0 and result["best_threshold"] == 1.0
    assert result["roc_auc"] == 1.0 and result["average_precision"] == 1.0
    assert result["pr_auc"] == 1.0


def test_random_prediction_scores_the_positive_rate():
    rng = np.random.default_rng(1)
    truth = rng.random((300, 300)) < 0.12
    result = evaluate_vessels([rng.random((300, 300))], [truth], [np.ones_like(truth)])
    assert result["average_precision"] == pytest.approx(result["positive_rate"], abs=0.01)
    assert result["pr_auc"] == pytest.approx(result["positive_rate"], abs=0.01)
    assert result["roc_auc"] == pytest.approx(0.5, abs=0.01)
    coarse = evaluate_vessels([rng.random((300, 300))], [truth], [np.ones_like(truth)], 11)
    assert coarse["thresholds"].size == 11 and coarse["roc_auc"] == pytest.approx(0.5, abs=0.02)


def test_pixels_outside_the_mask_are_ignored():
    rng = np.random.default_rng(2)
    truth = rng.random((40, 40)) < 0.2
    mask = np.zeros_like(truth)
    mask[5:35, 5:35] = True
    prediction = np.where(truth, 0.8, 0.2)
    inside = evaluate_vessels([prediction], [truth], [mask])
    # Garbage outside the field of view changes nothing.
    spoiled = prediction.copy()
    spoiled[~mask] = 1 - truth[~mask]
    outside = evaluate_vessels([spoiled], [truth], [mask])
    assert inside["best_f1"] == outside["best_f1"] == 1.0
    assert inside["pixels"] == outside["pixels"] == 900
    assert evaluate_vessels([spoiled], [truth], [np.ones_like(mask)])["best_f1"] < 1.0


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError):
        evaluate_vessels([np.zeros((4, 4))], [np.zeros((4, 4))], [np.ones((4, 4))])
    with pytest.raises(ValueError):
        evaluate_vessels([np.zeros((4, 4))], [np.zeros((4, 5))], [np.ones((4, 4))])


@needs_drive
def test_load_drive_reads_the_training_split():
    images, vessels, masks, names = load_drive(DRIVE, "training")
    assert images.shape == (20, 584, 565, 3) and images.dtype == np.uint8
    assert vessels.shape == masks.shape == (20, 584, 565)
    assert vessels.dtype == masks.dtype == bool
    assert names[0] == "21" and names[-1] == "40"
    assert 0.6 < masks.mean() < 0.8  # the round field of view
    assert 0.08 < vessels[masks].mean() < 0.16  # about 12% of FOV pixels are vessels
    assert not vessels[~masks].any() or vessels[~masks].mean() < 0.001


@needs_drive
def test_second_observer_on_test_agrees_partly_with_the_first():
    _, first, masks, _ = load_drive(DRIVE, "test")
    _, second, _, _ = load_drive(DRIVE, "test", annotator=2)
    result = evaluate_vessels(list(second.astype(float)), list(first), list(masks))
    assert 0.7 < result["best_f1"] < 0.85  # human agreement on DRIVE is ~0.79 F1


def test_missing_drive_explains_how_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="1st_manual"):
        load_drive(tmp_path, "training")
    with pytest.raises(ValueError):
        load_drive(tmp_path, "training", annotator=2)


def test_pr_curve_plot_is_a_png(tmp_path):
    rng = np.random.default_rng(3)
    truth = rng.random((50, 50)) < 0.2
    good = evaluate_vessels([truth + rng.normal(0, 0.5, truth.shape)], [truth], [truth | ~truth])
    poor = evaluate_vessels([rng.random(truth.shape)], [truth], [truth | ~truth])
    path = plot_pr_curves({"good": good, "poor": poor}, tmp_path / "pr.png", title="DRIVE")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 300
