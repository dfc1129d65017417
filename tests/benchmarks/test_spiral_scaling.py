"""benchmarks/spiral_scaling.py end to end on a tiny setting (slow: Ray, two runs, compiles)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests.benchmarks.runner import benchmark_module

ROOT = pathlib.Path(__file__).resolve().parents[2]
TINY = [
    "batch_size=8",
    "canvas_size=16",
    "grid_size=8",
    "episode_length=4",
    "policy.channels=8",
    "policy.encoder_blocks=1",
    "policy.embedding_size=32",
    "policy.lstm_size=32",
    "critic_channels=(8, 16)",
]


def _run(tmp_path, *args):
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "spiral_scaling.py"), *args],
        capture_output=True,
        text=True,
        env=dict(
            os.environ,
            JAX_PLATFORMS="cpu",
            RAY_AUTH_MODE="disabled",
            JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",  # small programs cached too
        ),
        cwd=tmp_path,
        timeout=1200,
        check=False,
    )


def test_bad_arguments_are_refused_before_ray_starts(monkeypatch, capsys):
    # in this process (a child would spend seconds importing what the worker has): a flag's
    # error must come from the parser, before any config is loaded or Ray is started
    scaling = benchmark_module("spiral_scaling", monkeypatch)
    monkeypatch.setattr(scaling.distributed, "init_ray", _never_called)
    monkeypatch.setattr(scaling.core, "get_config", _never_called)
    for flags, message in [(["--warmup=5", "--chunk=10"], "multiple of --chunk"),
                           (["--actors=0"], "positive counts")]:  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            scaling.main(flags)
        assert exit_.value.code == 2 and message in capsys.readouterr().err


def _never_called(*args, **kwargs):
    raise AssertionError("a bad flag got past the parser")


@pytest.mark.slow
def test_benchmark_times_ray_actors_against_the_single_host_trainer(tmp_path):
    pytest.importorskip("ray")
    json_out = tmp_path / "scaling.json"
    result = _run(
        tmp_path,
        "--actors=1,2",
        "--warmup=10",
        "--steps=10",
        "--repeats=2",
        "--episodes-per-actor=4",
        f"--json-out={json_out}",
        *(f"--override={o}" for o in TINY),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    payload = json.loads(json_out.read_text())
    rows = payload["rows"]
    assert [row["name"] for row in rows] == [
        "Ray, 1 actor",
        "Ray, 2 actors",
        "single host (JaxPaint in the step)",
    ]
    for row in rows:
        assert len(row["times"]) == 2 and all(t > 0 for t in row["times"])
        assert row["agent_steps_per_second"] > 0
        assert row["episodes_per_second"] == pytest.approx(8 * row["agent_steps_per_second"])
    for row in rows[:2]:
        assert row["actor_episodes_per_second"] > 0 and row["lag_mean"] >= 0
        assert 0 <= row["queue_batches"] <= 4  # the preset's queue_batches
    assert "best Ray" in result.stdout
