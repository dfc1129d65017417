"""benchmarks/gaze_gain.py on a tiny set: three rendered eyes, the astronaut, two angles."""

import json

import pytest

from tests.benchmarks.runner import run_benchmark

pytest.importorskip("mediapipe")


def test_gain_report_covers_rendered_and_real_eyes(tmp_path):
    result, json_out = run_benchmark(
        "gaze_gain.py", "--rendered=3", "--photos=0", "--angles=-10,15", f"--out={tmp_path}",
        tmp_path=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(json_out.read_text())
    assert report["angles"] == [-10.0, 15.0]
    assert report["geometry"]["rotation_radius_mm"] == 10.5
    assert set(report["real"]) == {"astronaut"}  # skimage's; --photos=0: no BSDS500 photo
    for photo in report["real"].values():
        assert len(photo["gains"]) == 2 and min(photo["eye_widths"]) >= 36
    assert len(report["rendered"]["gains"][0]) == 3
    rows = {row["angle"]: row for row in report["summary"]}
    # The renderer's eyes move as their geometry says: about as far as a real eye, both ways.
    truth = rows[15.0]["renderer's eyes (truth)"]["median"]
    assert 0.9 < truth < 1.1
    assert rows[-10.0]["renderer's eyes (truth)"]["median"] == pytest.approx(truth, abs=0.05)
    assert rows[15.0]["real, every match"]["median"] > 0.1  # up when asked up
    assert rows[-10.0]["real, every match"]["median"] > 0.1  # and down when asked down
    # On real eyes, an iris moved by a known amount is found where it went: also by the small
    # shifts of a 5 and a 10 degree turn, where the smallest redirections' gains are read, and
    # when the iris alone moves under lids that stay.
    for key in (
        "template",
        "template 0.03",
        "template 0.06",
        "lids still -0.06",
        "lids still 0.06",
    ):
        assert report["known_shift_recovered"][key]["median"] == pytest.approx(1.0, abs=0.05)
    # Where the iris sits in the opening, the renderer's beside the photo's.
    placement = report["renderer_geometry"][0]
    assert placement["what"].startswith("iris centre above the corner line")
    assert "MediaPipe" in placement["real"]
    assert "iris travel" in result.stdout and "model, real photos" in result.stdout
    assert (tmp_path / "gain.png").stat().st_size > 10_000
    assert (tmp_path / "gain_faces.png").stat().st_size > 10_000
