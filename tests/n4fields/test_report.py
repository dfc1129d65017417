"""The report of an experiment (sec. 3.4): every model scored in one benchmark call, Table 3.I."""

import ml_collections
import numpy as np

from thesis_jax import edges
from thesis_jax.n4fields import EdgeData, report


def _config(**extra) -> ml_collections.ConfigDict:
    fields = {"dataset": "shapes", "preset": "shapes", "eval_split": "test", "max_dist": 0.0075}
    return ml_collections.ConfigDict({**fields, "thresholds": 9, "eval_workers": 1, **extra})


def test_models_scored_together_score_as_alone():
    truth = np.zeros((30, 40), bool)
    truth[10, 5:35] = True
    truth[5:25, 30] = True
    data = EdgeData(images=[np.zeros((30, 40, 3))] * 2, annotations=[truth[None]] * 2, names=[])
    noisy = np.clip(truth + 0.3 * np.random.default_rng(0).random(truth.shape), 0, 1)
    maps = {
        "n4": [truth.astype(float), noisy],
        "patch": [np.roll(truth, 1, axis=1).astype(float), 0.5 * noisy],
    }
    config = _config()
    for tolerance in (None, 0.02):
        together = report.score(config, maps, data, tolerance)
        for model, model_maps in maps.items():
            alone = edges.evaluate_bsds(
                model_maps, [[truth], [truth]], tolerance or 0.0075, 9, workers=1
            )
            np.testing.assert_array_equal(together[model]["counts"], alone["counts"])
            assert together[model]["ods"] == alone["ods"] and together[model]["ap"] == alone["ap"]
            assert together[model]["max_dist"] == (tolerance or 0.0075)
    assert together["n4"]["per_image"][0][3] == 1.0  # the truth itself
    rows = {m: report.summary(config, r) for m, r in together.items()}
    table = report.results_table(config, rows, "Budget: none.", {"n4": (0.75, 0.76, 0.77)})
    lines = table.splitlines()
    assert lines[2] == "| model | ODS | OIS | AP | thesis ODS / OIS / AP |"
    assert lines[4].startswith("| N4-fields | ") and lines[4].endswith(" | 0.75 / 0.76 / 0.77 |")
    assert lines[5].startswith("| CNN-patch | ") and lines[5].endswith(" | |")  # no thesis row
    assert lines[-1] == "Budget: none."
