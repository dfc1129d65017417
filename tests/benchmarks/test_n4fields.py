"""benchmarks/n4fields.py: the N4-Fields inference and BSDS benchmark timings run end to end on
tiny sizes and give a table a person can read and a JSON report. Timings are never asserted."""

import json
import re

import pytest

from tests.benchmarks.runner import run_benchmark

TINY = [
    "--image-size=40x48",
    "--dictionary-size=500",
    "--committee=2",
    "--train-images=2",
    "--bench-images=2",
    "--bench-size=40x48",
    "--workers=1",
    "--repeats=1",
    "--narrow",
]
# what, device, s/image, images/s, min-max, repeats
ROW = r"^{what}\s+cpu\s+(\S+)\s+(\S+)\s+\S+-\S+\s+(\d+)\s"


def test_tiny_run_reports_inference_and_benchmark_rows(tmp_path):
    result, json_out = run_benchmark("n4fields.py", *TINY, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^JAX device: 1 x cpu \(.+\)$", result.stdout, re.M), result.stdout
    assert "dictionary T = 500, narrow Architecture" in result.stdout
    whats = [
        "N4-Fields 40x48, 1 net, scale 1",
        "N4-Fields 40x48, 2 nets, scales 0.5,1,2",
        "BSDS benchmark 40x48, 99 thr, thin, 5 annot., 1 proc.",
    ]
    for what in whats:
        row = re.search(ROW.format(what=re.escape(what)), result.stdout, re.M)
        assert row, f"no row for {what}:\n{result.stdout}"
        seconds, per_second, repeats = float(row[1]), float(row[2]), int(row[3])
        assert seconds > 0 and per_second > 0 and repeats == 1
        assert seconds * per_second == pytest.approx(1.0, rel=2e-3)  # 4 significant digits

    report = json.loads(json_out.read_text())
    assert [row["what"] for row in report["results"]] == whats
    assert report["image_size"] == [40, 48] and report["dictionary_size"] == 500
    assert report["committee"] == 2 and report["scales"] == [0.5, 1.0, 2.0]
    assert report["device_kind"] and report["method"] == "exact"
    for row in report["results"]:
        assert row["device"] == "cpu" and row["repeats"] == 1 and len(row["times_s"]) == 1
        assert row["seconds_per_image"] > 0 and row["first_call_s"] > 0
        assert row["images_per_second"] == pytest.approx(1.0 / row["seconds_per_image"])
    assert report["results"][-1]["images_per_call"] == 2


def test_bad_flags_are_rejected_before_any_work(tmp_path):
    for flag in ("--image-size=10x10", "--scales=1,-2", "--committee=0"):
        result, json_out = run_benchmark("n4fields.py", flag, tmp_path=tmp_path)
        assert result.returncode == 2, result.stdout + result.stderr
        assert flag.split("=")[0] in result.stderr
        assert not json_out.exists()
