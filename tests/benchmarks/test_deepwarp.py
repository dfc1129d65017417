"""benchmarks/deepwarp.py: the sampler benchmark runs end to end on a tiny size and reports a
table a person can read, says plainly when PyTorch is missing, and checks grid_sample against
bilinear_warp when it is there. The timings themselves are never asserted."""

import json
import re

import pytest

from tests.benchmarks.runner import TORCH_PYTHON, run_benchmark

TINY = [
    "--sizes=3x6x7x3,2x5x4x1",
    "--calls=2",
    "--repeats=1",
    "--warmup=0",
    "--model-batches=2",
]
ROW = r"^{size}\s+{mode}\s+{implementation}.*?\s(\d+\.\d+)\s+(\d+\.\d+)\s"


def run_deepwarp(*flags, tmp_path):
    return run_benchmark("deepwarp.py", *TINY, *flags, tmp_path=tmp_path)


def assert_row(stdout, size, mode, implementation):
    pattern = ROW.format(size=size, mode=re.escape(mode), implementation=re.escape(implementation))
    row = re.search(pattern, stdout, re.M)
    assert row, f"no row for {size} {mode} {implementation}:\n{stdout}"
    ms_per_call, calls_per_s = map(float, row.groups())
    assert ms_per_call > 0 and calls_per_s > 0
    assert 1e3 / calls_per_s == pytest.approx(ms_per_call, abs=0.006)  # ms printed to 0.01


@pytest.mark.slow  # the script's rows; its warp is checked against grid_sample below
def test_jax_only_run_reports_both_implementations_and_the_skipped_comparison(tmp_path):
    result, json_out = run_deepwarp("--torch-python=/nonexistent", tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for size in ("3x6x7x3", "2x5x4x1"):
        for mode in ("image+flow", "flow"):
            assert_row(result.stdout, size, mode, "jax custom_vjp (cpu)")
            assert_row(result.stdout, size, mode, "jax autodiff (cpu)")
            assert re.search(
                rf"^speed-up {size} {re.escape(mode)}: custom_vjp is \d+\.\d+x as fast as "
                r"jax autodiff \(cpu\)$",
                result.stdout,
                re.M,
            ), result.stdout
    assert re.search(
        r"PyTorch comparison skipped: no PyTorch interpreter at /nonexistent; "
        r"get it with `make \.venv-torch/bin/python`",
        result.stdout,
    ), result.stdout
    report = json.loads(json_out.read_text())
    assert report["sizes"] == ["3x6x7x3", "2x5x4x1"]
    assert [(r["size"], r["mode"], r["implementation"]) for r in report["results"]] == [
        (size, mode, implementation)
        for size in ("3x6x7x3", "2x5x4x1")
        for mode in ("image+flow", "flow")
        for implementation in ("custom_vjp", "autodiff")
    ]
    assert len(report["ratios"]) == 4 and "skipped" in report["torch"]
    assert not report["compared"]
    # The inference row: ms per batch of 2 crops and crops/s of the CFW+LCM network.
    model = re.search(r"^cfw_lcm\s+2\s+cpu\s+(\d+\.\d+)\s+(\d+\.\d+)", result.stdout, re.M)
    assert model, result.stdout
    assert [(r["variant"], r["batch"]) for r in report["model"]] == [("cfw_lcm", 2)]
    assert report["model"][0]["crops_per_s"] == pytest.approx(
        2e3 / report["model"][0]["ms_per_batch"]
    )


def test_torch_grid_sample_matches_bilinear_warp_and_is_timed(tmp_path):
    if not TORCH_PYTHON.exists():
        pytest.skip(f"{TORCH_PYTHON} is missing; `make .venv-torch/bin/python` builds it")
    result, json_out = run_deepwarp(f"--torch-python={TORCH_PYTHON}", tmp_path=tmp_path)
    report = json.loads(json_out.read_text()) if json_out.exists() else {}
    if "skipped" in report.get("torch", {}):
        pytest.skip(report["torch"]["skipped"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    check = re.search(
        r"^equivalence on 3x6x7x3, same input \(torch grid_sample vs bilinear_warp\): max \|diff\| "
        r"out (\S+) \(of max \S+\), image_grad (\S+) \(of max \S+\), flow_grad (\S+) "
        r"\(of max \S+\): OK$",
        result.stdout,
        re.M,
    )
    assert check, result.stdout
    assert all(float(diff) < 1e-4 for diff in check.groups())
    for mode in ("image+flow", "flow"):
        assert_row(result.stdout, "3x6x7x3", mode, "torch grid_sample (cpu")
        assert re.search(
            rf"^speed-up 3x6x7x3 {re.escape(mode)}: custom_vjp is \d+\.\d+x as fast as "
            r"torch grid_sample \(cpu, \d+ threads\)$",
            result.stdout,
            re.M,
        ), result.stdout
    assert report["compared"] and report["check"]["ok"]
    sides = {(r["size"], r["mode"], r["side"]) for r in report["results"]}
    assert ("2x5x4x1", "flow", "pytorch") in sides
