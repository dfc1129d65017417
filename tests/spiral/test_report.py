"""`report.plot_curves`: one panel per held-out metric the runs logged, from their metrics.jsonl."""

import json

import numpy as np
import pytest
from PIL import Image

from thesis_jax.spiral import report


def _run(directory, records):
    directory.mkdir()
    with open(directory / "metrics.jsonl", "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    return str(directory)


def test_curves_get_a_readability_panel_only_where_a_run_measured_it(tmp_path):
    l2_only = _run(tmp_path / "a", [{"step": s, "eval/l2": 9.0 - s / 100} for s in (100, 200)])
    readable = _run(
        tmp_path / "b",
        [
            {
                "step": 100,
                "eval/l2": 8.0,
                "eval/readability": 0.2,
                "eval/readability_targets": 0.99,
            },
            {"step": 200, "train/loss": 1.0},  # training records are skipped
        ],
    )
    one = Image.open(report.plot_curves({"l2": l2_only}, str(tmp_path / "one.png")))
    two = Image.open(report.plot_curves({"l2": l2_only, "r": readable}, str(tmp_path / "two.png")))
    assert two.width == 2 * one.width and two.height == one.height  # 6 inches per panel
    assert np.asarray(two.convert("L")).std() > 10
    with pytest.raises(ValueError, match="no eval/l2 records"):
        report.plot_curves({"empty": _run(tmp_path / "c", [])}, str(tmp_path / "none.png"))
