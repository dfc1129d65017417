"""benchmarks/dann_step.py: the JAX side runs end to end; the PyTorch peer mirrors fig. 5.3.

The timing itself is never asserted (speed lives in `make bench`); these tests check that the
benchmark reports a figure a person can read, says plainly when PyTorch is missing, and that
the PyTorch model has exactly the Flax model's parameters.
"""

import json
import re
import subprocess

import jax
import jax.numpy as jnp
import pytest

from tests.benchmarks.runner import ROOT, TORCH_PYTHON, run_benchmark
from thesis_jax import dann
from thesis_jax.dann.networks import INPUT_SHAPES

TORCH_BENCHMARK = ROOT / "benchmarks" / "dann_step_torch.py"


@pytest.mark.slow  # a run of the benchmark script (make bench runs it for real)
def test_jax_only_run_reports_steps_per_second_and_the_skipped_comparison(tmp_path):
    result, json_out = run_benchmark(
        "dann_step.py",
        "--steps=2",
        "--repeats=1",
        "--warmup=0",
        "--torch-python=/nonexistent",
        tmp_path=tmp_path,
        devices=2,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "steps/s" in result.stdout
    one_device = re.search(r"^jax\s+cpu x1 \(1 device\)\s+(\d+\.\d+)", result.stdout, re.M)
    assert one_device and float(one_device.group(1)) > 0, result.stdout
    assert re.search(r"^jax\s+cpu x2 \(sharded\)\s+\d+\.\d+", result.stdout, re.M), result.stdout
    assert re.search(
        r"PyTorch comparison skipped: no PyTorch interpreter at /nonexistent; "
        r"get it with `make \.venv-torch/bin/python`",
        result.stdout,
    ), result.stdout
    report = json.loads(json_out.read_text())
    assert [r["devices"] for r in report["results"]] == [1, 2]
    assert report["param_count_jax"] == 205_992
    assert report["ratios"] == [] and "skipped" in report["torch"]


@pytest.mark.parametrize("architecture, num_classes", [("mnist", 10), ("svhn", 10), ("gtsrb", 43)])
def test_torch_model_has_the_flax_parameter_count(architecture, num_classes):
    if not TORCH_PYTHON.exists():
        pytest.skip(f"{TORCH_PYTHON} is missing; `make .venv-torch/bin/python` builds it")
    result = subprocess.run(
        [str(TORCH_PYTHON), str(TORCH_BENCHMARK), f"--arch={architecture}", "--count-params"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode == 3:
        pytest.skip(json.loads(result.stdout.splitlines()[-1])["skipped"])
    assert result.returncode == 0, result.stderr[-3000:]
    torch_count = json.loads(result.stdout.splitlines()[-1])["param_count"]
    model = dann.DANN(architecture=architecture, num_classes=num_classes)
    shapes = jax.eval_shape(
        model.init, jax.random.PRNGKey(0), jnp.zeros((1, *INPUT_SHAPES[architecture])), 0.0
    )
    assert torch_count == sum(leaf.size for leaf in jax.tree.leaves(shapes))
