"""benchmarks/spiral_envs.py runs end to end and reports every renderer against LibMyPaint.

Speed itself is never asserted here (it lives in `make bench`); the test checks that every row
is measured, the ratios are consistent with the rates, and the JSON holds what the table shows.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np

from tests.benchmarks.runner import benchmark_module
from thesis_jax.core import native

ROOT = pathlib.Path(__file__).resolve().parents[2]
BENCHMARK = ROOT / "benchmarks" / "spiral_envs.py"


def test_benchmark_reports_every_renderer_as_a_ratio_to_libmypaint(tmp_path):
    json_out = tmp_path / "spiral_envs.json"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARK),
            "--strokes=20",
            "--renders=20",
            "--batch-sizes=1,4",
            "--repeats=1",
            f"--json-out={json_out}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not measured" not in result.stdout, result.stdout
    payload = json.loads(json_out.read_text())
    names = [row["name"] for row in payload["rows"]]
    assert names[0] == "LibMyPaint (1 core)"
    assert any(name.startswith("MujocoScenes") for name in names)
    assert {"JaxPaint batch 1", "JaxPaint batch 4"} <= set(names)
    assert {"JaxPaint XLA batch 1", "JaxPaint XLA batch 4"} <= set(names)  # before the kernel
    kernel = {
        row["name"]: row["stroke_kernel"] for row in payload["rows"] if "JaxPaint" in row["name"]
    }
    compiler = native.compiler() is not None
    assert kernel == {name: compiler and "XLA" not in name for name in kernel}
    reference = payload["rows"][0]["per_second"]
    for row in payload["rows"]:
        assert row["per_second"] > 0
        assert abs(row["ratio_to_libmypaint"] - row["per_second"] / reference) < 1e-9
        assert row["name"] in result.stdout
    assert payload["rows"][0]["ratio_to_libmypaint"] == 1.0


def test_random_actions_are_valid_and_pin_fixed_components(monkeypatch):
    spiral_envs = benchmark_module("spiral_envs", monkeypatch)
    from thesis_jax.spiral.envs import spec

    action_spec = spec.paint_action_spec(spec.PaintConfig())
    actions = spiral_envs.random_actions(action_spec, 500, seed=3, fixed={"flag": 1})
    assert actions.shape == (500, len(action_spec))
    for row in actions[:50]:
        spec.validate_action(spec.action_from_array(row, action_spec), action_spec)
    assert (actions[:, list(action_spec).index("flag")] == 1).all()
    assert len(np.unique(actions[:, 0])) > 100  # control points spread over the grid
