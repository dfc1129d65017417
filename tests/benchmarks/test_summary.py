"""benchmarks/summary.py runs the benchmarks it is asked for and puts them in one table + JSON.

Speed is never asserted (it lives in `make bench`): the test checks the rows and their ratios
against the reports they come from, and that a benchmark not run says so.
"""

import json
import subprocess
import sys

import pytest

from tests.benchmarks.runner import ROOT


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
