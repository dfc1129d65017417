"""benchmarks/n4fields_stride.py: the shipped committee's speed and BSDS500 scores by stride.

Speed is never asserted (it lives in `make bench`); the test checks that every stride gives a
row of real scores on real BSDS500 photos, in the table and the JSON.
"""

import json

import pytest

from tests.benchmarks.runner import run_benchmark


@pytest.mark.e2e
def test_every_stride_is_timed_and_scored_on_real_photos(tmp_path, shared_data):
    result, json_out = run_benchmark(
        "n4fields_stride.py",
        f"--data={shared_data / 'BSDS500'}",
        "--images=1",
        "--strides=4,8",
        "--scales=0.5",
        "--workers=1",
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(json_out.read_text())
    assert [row["stride"] for row in report["rows"]] == [4, 8]
    assert len(report["images"]) == 1 and report["split"] == "val"
    for row in report["rows"]:
        assert row["seconds_per_image"] > 0
        assert 0.3 < row["ods"] <= 1 and 0 < row["ap"] <= 1, row  # edges found, not noise
        assert f"{row['ods']:.3f}" in result.stdout


def test_bad_arguments_are_refused(tmp_path):
    result, _ = run_benchmark("n4fields_stride.py", "--strides=0", tmp_path=tmp_path)
    assert result.returncode == 2 and "every stride must be >= 1" in result.stderr
