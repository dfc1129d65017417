"""benchmarks/summary.py runs the benchmarks it is asked for and puts them in one table + JSON.

Speed is never asserted (it lives in `make bench`): the test checks the rows and their ratios
against the reports they come from, and that a benchmark not run says so.
"""

import json
import subprocess
import sys

import pytest

from tests.benchmarks.runner import ROOT, benchmark_module


@pytest.mark.e2e
def test_summary_tabulates_the_reports_it_ran_and_names_the_rest(tmp_path):
    reports, out = tmp_path / "reports", tmp_path / "summary.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "summary.py"),
            "--quick",
            "--only=paint,n4fields",
            f"--reports={reports}",
            f"--json-out={out}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "| what | ours | theirs | ratio |" in result.stdout
    summary = json.loads(out.read_text())
    assert summary["machine"]["cpus"] >= 1 and "load_1min_after" in summary["machine"]
    assert f"malloc: {summary['machine']['malloc']}" in result.stdout
    rows = {row["what"]: row for row in summary["rows"]}
    paint = json.loads((reports / "paint.json").read_text())
    libmypaint = next(r for r in paint["rows"] if r["name"].startswith("LibMyPaint"))
    jax_paint = next(r for r in paint["rows"] if r["name"].startswith("JaxPaint"))
    row = rows[f"SPIRAL renderer, 64x64, {jax_paint['name']} (cpu)"]
    per_core = jax_paint["per_second"] / summary["machine"]["cpus"]
    assert row["ratio"] == pytest.approx(per_core / libmypaint["per_second"])
    committee = [r for r in summary["rows"] if " nets, " in r["what"]]
    assert len(committee) == 1 and committee[0]["ratio"] > 0
    for arch in ("mnist", "svhn", "gtsrb"):
        assert rows[f"DANN step, {arch} architecture (batch 128)"]["note"] == "not run"
    again = subprocess.run(  # the saved reports tabulate again without running anything
        [sys.executable, str(ROOT / "benchmarks" / "summary.py"), f"--from={reports}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0 and row["ours"] in again.stdout


def _reports(folder, platform):
    """Reports as the benchmarks write them, PyTorch measured on the CPU and on CUDA."""
    folder.mkdir()
    dann = {
        "check": {"ok": True},
        "results": [
            {"side": "jax", "devices": 1, "device": platform, "steps_per_s": 40.0},
            {"side": "pytorch", "devices": 1, "device": "cpu", "steps_per_s": 20.0},
            {"side": "pytorch", "devices": 1, "device": "cuda", "steps_per_s": 80.0},
        ],
    }
    for arch in ("mnist", "svhn", "gtsrb"):
        (folder / f"dann_{arch}.json").write_text(json.dumps(dann))
    size = "128x41x51x3"
    warp = {
        "sizes": [size],
        "results": [
            {"side": "jax", "implementation": "custom_vjp", "device": platform, "size": size,
             "mode": "image+flow", "ms_per_call": 2.0},
            {"side": "pytorch", "device": "cpu", "size": size, "mode": "image+flow",
             "ms_per_call": 4.0},
            {"side": "pytorch", "device": "cuda", "size": size, "mode": "image+flow",
             "ms_per_call": 1.0},
        ],
    }  # fmt: skip
    (folder / "warp.json").write_text(json.dumps(warp))
    for name, seconds in (("n4fields", 0.5), ("n4fields_stride8", 0.25)):
        n4 = {"results": [{"what": "committee of 3 nets, 3 scales", "device": platform,
                           "seconds_per_image": seconds}]}  # fmt: skip
        (folder / f"{name}.json").write_text(json.dumps(n4))


@pytest.mark.parametrize(
    "platform, peer, dann_ratio, warp_ratio, goal",
    [("cpu", "cpu", 2.0, 2.0, 5.0), ("gpu", "cuda", 0.5, 0.5, 0.1)],
)
def test_jax_on_a_gpu_is_compared_with_pytorch_on_cuda(
    tmp_path, monkeypatch, platform, peer, dann_ratio, warp_ratio, goal
):
    summary = benchmark_module("summary", monkeypatch)
    _reports(tmp_path / "reports", platform)
    rows = summary.tabulate(tmp_path / "reports", threads=16)
    on = "" if platform == "cpu" else ", gpu"
    by_what = {row["what"]: row for row in rows}
    dann = by_what[f"DANN step, gtsrb architecture (batch 128){on}"]
    assert dann["ratio"] == pytest.approx(dann_ratio)
    assert ("cuda" in dann["theirs"]) == (peer == "cuda")
    warp = by_what[f"warp fwd+bwd (image+flow), 128x41x51x3{on}"]
    assert warp["ratio"] == pytest.approx(warp_ratio)
    for stride, seconds in ((1, 0.5), (8, 0.25)):
        n4 = by_what[f"inference: committee of 3 nets, 3 scales, stride {stride} ({platform})"]
        assert n4["ratio"] == pytest.approx(goal / seconds)
    info = {"cpu": "X", "cpus": 16, "python": "3.12", "load_1min_before": 0.5,
            "load_1min_after": 20.0, "jax_platform": platform}  # fmt: skip
    header = summary.format_table(rows, info).splitlines()[0]
    assert ("JAX on gpu" in header) == (platform == "gpu")
    assert "other processes competed" in header
    info["load_1min_after"] = 1.0  # under the CPU count: no warning
    assert "competed" not in summary.format_table(rows, info)
