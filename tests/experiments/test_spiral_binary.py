"""`python -m experiments.spiral` end to end on a tiny offline setting, with resume."""

import json
import os

import pytest
from PIL import Image

from tests.experiments.binaries import (
    assert_one_line_error,
    picture,
    run_module,
)
from thesis_jax.spiral import export

TINY = [
    "--config.canvas_size=16",
    "--config.grid_size=8",
    "--config.episode_length=3",
    "--config.batch_size=8",
    "--config.eval_batch_size=8",
    "--config.policy.channels=8",
    "--config.policy.encoder_blocks=1",
    "--config.policy.embedding_size=32",
    "--config.policy.lstm_size=32",
    "--config.policy.decoder_blocks=1",
    "--config.critic_channels=(8,16)",
    "--config.log_every=2",
    "--config.sample_every=2",
    "--config.eval_every=2",
    "--config.checkpoint_every=2",
]


# The binary's hundreds of small programs (eager steps, checkpoint slices) go into the
# persistent compilation cache too: later runs read them instead of compiling them again.
ENV = dict(os.environ, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")


def _run(*args, timeout=900):
    return run_module("experiments.spiral", *args, timeout=timeout, env=ENV)


def _picture(path):
    return picture(path, min_std=5)


def _check_first_run(workdir):
    assert (workdir / "checkpoints").is_dir()
    _picture(workdir / "samples.png")
    _picture(workdir / "samples" / "step_000002.png")
    gif = Image.open(workdir / "episode.gif")
    assert gif.n_frames == 4  # the blank canvas, then one frame per step of the 3-step episode
    records = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    assert any("train/policy/loss" in r for r in records)
    assert any("train/critic/gradient_penalty" in r for r in records)
    assert any("eval/l2" in r for r in records)
    results = json.loads((workdir / "results.json").read_text())
    assert results["step"] == 2 and results["l2"] > 0
    # The digit reader scores the reconstructions: two steps of a tiny agent paint no digit,
    # while the targets themselves read well (the ceiling).
    assert results["readability"] <= 0.3 < 0.6 <= results["readability_targets"]


@pytest.mark.slow
def test_spiral_binary_resumes_and_continues_with_more_steps(tmp_path):
    workdir = tmp_path / "spiral"
    first = _run(f"--workdir={workdir}", "--config.num_steps=2", *TINY)
    assert first.returncode == 0, first.stderr[-3000:]
    _check_first_run(workdir)
    # The same command with more steps continues from step 2, not from scratch.
    second = _run(f"--workdir={workdir}", "--config.num_steps=4", *TINY)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from" in second.stderr
    steps = [json.loads(line)["step"] for line in open(workdir / "metrics.jsonl")]
    assert max(steps) == 4
    assert json.loads((workdir / "results.json").read_text())["step"] == 4
    # The run's checkpoint as a one-file agent, with the held-out metrics of its float16 weights.
    agent_path = str(tmp_path / "agent.npz")
    exported = run_module(
        "experiments.spiral_export", f"--workdir={workdir}", f"--output={agent_path}", timeout=600
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    metrics = json.loads(exported.stdout.strip().splitlines()[-1].split(": ", 1)[1])
    assert metrics["step"] == 4 and 0 <= metrics["readability"] <= 1 and metrics["l2"] > 0
    agent = export.load_agent(agent_path)
    assert agent.metrics == metrics and agent.config.canvas_size == 16


@pytest.mark.e2e
def test_zero_steps_evaluate_the_shipped_agent_as_the_readme_says(tmp_path):
    """README: `--config=mnist_cond_cpu --config.agent=mnist --config.num_steps=0` evaluates
    the shipped agent on held-out digits and paints its samples (no training)."""
    workdir = tmp_path / "mnist_agent"
    result = _run(
        "--config=mnist_cond_cpu",
        "--config.agent=mnist",
        "--config.num_steps=0",
        "--config.eval_batch_size=64",
        f"--workdir={workdir}",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((workdir / "results.json").read_text())
    assert results["step"] == 0
    assert results["readability"] >= 0.6  # a trained agent's digits read (chance: 0.1)
    _picture(workdir / "samples.png")


def test_exporting_a_folder_that_is_no_run_is_one_line(tmp_path):
    result = run_module(
        "experiments.spiral_export",
        f"--workdir={tmp_path}",
        f"--output={tmp_path / 'a.npz'}",
        timeout=300,
    )
    assert_one_line_error(result, f"error: {tmp_path} is not a run of experiments.spiral")
    assert not (tmp_path / "a.npz").exists()


def test_spiral_binary_fails_clearly_on_bad_settings(tmp_path):
    unknown = _run(f"--workdir={tmp_path / 'a'}", "--config=picasso")
    assert unknown.returncode != 0
    assert "digits_l2" in unknown.stderr  # the message lists the valid presets
    unconditional_l2 = _run(
        f"--workdir={tmp_path / 'b'}", "--config=digits_uncond", "--config.reward=l2", *TINY
    )
    assert unconditional_l2.returncode == 2
    assert "l2 reward needs targets" in unconditional_l2.stderr
    renderer = _run(f"--workdir={tmp_path / 'c'}", "--config.renderer=povray", *TINY)
    assert renderer.returncode == 2
    assert "renderer must be one of" in renderer.stderr


def test_celeba_without_the_dataset_fails_fast_with_instructions(tmp_path):
    result = _run(
        f"--workdir={tmp_path / 'celeba'}",
        "--config=celeba",
        f"--config.data_dir={tmp_path / 'no_tfds'}",
        timeout=300,
    )
    assert result.returncode == 1
    assert "celeb_a" in result.stderr
    assert "download_and_prepare" in result.stderr or "prepare" in result.stderr
