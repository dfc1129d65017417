"""The DANN report: Table 5.I over seeds against hand-computed numbers, curves, stability."""

import re

import numpy as np
import pytest
from PIL import Image

from thesis_jax import dann

TITLES = {m: spec.title for m, spec in dann.METHODS.items()}
THESIS = {"source_only": 0.5225, "sa": 0.5690, "dann": 0.7666, "train_on_target": 0.9596}


def _row(line_start, table):
    return next(line for line in table.splitlines() if line.startswith(line_start))


def test_one_seed_table_has_the_gap_and_the_thesis_column():
    results = [
        {
            "source_only": {"target_accuracy": 0.5, "target_accuracy_svm": 0.4},
            "sa": {"target_accuracy_svm": 0.46, "num_components": 12},
            "dann": {"target_accuracy": 0.7, "target_accuracy_svm": 0.65},
            "train_on_target": {"target_accuracy": 0.9, "target_accuracy_svm": 0.8},
        }
    ]
    table = dann.results_table(results, title="t", method_titles=TITLES, thesis=THESIS)
    # DANN covers (0.7 - 0.5) / (0.9 - 0.5) = 50% of the network gap; SA (0.46 - 0.4) /
    # (0.8 - 0.4) = 15% of the SVM gap.
    assert _row("| DANN |", table) == "| DANN | 0.7000 | 0.6500 | 50.0% | 0.7666 |"
    assert _row("| SA", table) == "| SA (Fernando et al., 2013) |  | 0.4600 | 15.0% | 0.5690 |"
    assert _row("| Source only |", table).endswith("|  | 0.5225 |")
    assert "Per seed" not in table


def test_several_seeds_give_mean_and_std_and_a_per_seed_table():
    results = [
        {"source_only": {"target_accuracy": a}, "dann": {"target_accuracy": b}}
        for a, b in ((0.4, 0.6), (0.5, 0.8))
    ]
    curves = [
        {"source_only": ([1, 2], [0.3, 0.4]), "dann": ([1, 2], [0.7, 0.6])},
        {"source_only": ([1, 2], [0.5, 0.5]), "dann": ([1, 2], [0.8, 0.8])},
    ]
    table = dann.results_table(
        results, title="t", method_titles=TITLES, seeds=[3, 4], curves=curves, notes=["Data: x"]
    )
    # mean 0.7, population std 0.1; final/best is the worst seed's: 0.6 / 0.7.
    assert _row("| DANN |", table) == "| DANN | 0.7000 ± 0.1000 |  |  | 0.857 |  |"
    assert "| method | seed 3 | seed 4 |" in table
    assert _row("| Source only | 0.4000 |", table) == "| Source only | 0.4000 | 0.5000 |"
    assert table.rstrip().endswith("Data: x")
    with pytest.raises(ValueError, match="no seed"):
        dann.results_table([], title="t", method_titles=TITLES)


def test_stability_is_final_over_best():
    assert dann.stability(([0, 1, 2], [0.2, 0.8, 0.4])) == pytest.approx(0.5)
    assert dann.stability(([0, 1], [0.5, 0.6])) == 1.0
    with pytest.raises(ValueError):
        dann.stability(([], []))


def test_learning_curves_png(tmp_path):
    curves = [
        {
            "source_only": ([100, 200, 300], [0.4, 0.45, 0.5]),
            "dann": ([100, 200, 300], [0.5, 0.6, 0.7]),
        },
        {"source_only": ([100, 200, 300], [0.42, 0.44, 0.48])},
    ]
    path = dann.plot_learning_curves(
        curves, str(tmp_path / "curves.png"), method_titles=TITLES, thesis=THESIS
    )
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[1] > image.shape[0] > 200 and image.std() > 10
    with pytest.raises(ValueError, match="no learning curve"):
        dann.plot_learning_curves([{}], str(tmp_path / "x.png"), method_titles=TITLES)
    assert re.search(r"curves\.png$", path)
