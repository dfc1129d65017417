"""benchmarks/spiral_train.py runs end to end on a tiny setting (slow: it compiles two learners)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_benchmark_compares_jax_paint_and_libmypaint_actors(tmp_path):
    json_out = tmp_path / "spiral_train.json"
    tiny = ["canvas_size=16", "grid_size=8", "episode_length=3", "batch_size=8"]
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "spiral_train.py"),
            "--steps=1",
            "--repeats=1",
            f"--json-out={json_out}",
            "--profile",
            "--trace",
            "--batch-sizes=4,16",
            *(f"--override={o}" for o in tiny),
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, JAX_PLATFORMS="cpu", JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0"),
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    payload = json.loads(json_out.read_text())
    names = [row["name"] for row in payload["rows"]]
    assert names == ["JaxPaint (in the step)", "LibMyPaint (in process)"]
    rates = [row["agent_steps_per_second"] for row in payload["rows"]]
    assert all(rate > 0 for rate in rates)
    assert abs(payload["ratio"] - rates[0] / rates[1]) < 1e-9
    assert "JaxPaint / LibMyPaint" in result.stdout
    assert [row["batch_size"] for row in payload["batch_sizes"]] == [4, 16]
    for row in payload["batch_sizes"]:
        assert row["episodes_per_second"] == row["agent_steps_per_second"] * row["batch_size"]
    parts = [part["name"] for part in payload["profile"]]
    assert parts == ["rollout (policy + JaxPaint)", "policy step (A2C)", "critic step (WGAN-GP)"]
    assert all(part["seconds"] > 0 for part in payload["profile"])
    assert "where a JaxPaint step's time goes" in result.stdout
    ops = payload["ops"]
    assert ops and all(op["ms_per_step"] > 0 and 0 < op["share"] <= 1 for op in ops)
    assert sum(op["share"] for op in ops) <= 1 + 1e-9
    assert any(op["layer"].startswith(("PolicyNet", "Critic")) for op in ops), ops
    assert "the costliest XLA ops" in result.stdout
