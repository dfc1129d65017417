"""A user's first command on each binary, scaled down: the default preset with
`--config.num_steps=5` and nothing else, evaluation and report included (issue 18's target:
under two minutes each on 2 cores).

These are the `smoke` tests: `make test` runs them after the fast suite (they train little but
evaluate at the presets' full sizes, so together they would take the fast suite past its five
minutes), on one device and with XLA's full optimisation, as a user runs the binaries, beside
the `e2e` tests; `make test-smoke` runs both. Each binary's paths are also tested on tiny
settings (test_<binary>_binary.py: its error paths in the fast suite, its whole runs as `e2e`).
"""

import json

import pytest
from PIL import Image

from tests.experiments.binaries import one_device_env, picture, run_module

pytestmark = pytest.mark.smoke

# What each default preset's report holds: the rows of the thesis's table or figure.
RESULTS = {
    "n4fields": {"n4", "central", "patch", "sift"},  # Table 3.I
    "deepwarp": {"identity", "ss", "ms", "cfw", "cfw_lcm"},  # fig. 4.7
    "dann": {"source_only", "sa", "dann", "train_on_target"},  # Table 5.1
}


def _five_steps(binary: str, workdir) -> dict:
    run = run_module(
        f"experiments.{binary}",
        f"--workdir={workdir}",
        "--config.num_steps=5",
        timeout=1200,
        env=one_device_env(),  # as a user runs it
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    pictures = sorted(workdir.rglob("*.png"))
    assert pictures, "no pictures written"
    for path in pictures[:3]:
        picture(path, min_std=1.0)
    config = json.loads(next(workdir.rglob("config.json")).read_text())
    assert config["num_steps"] == 5
    return json.loads((workdir / "results.json").read_text())


@pytest.mark.parametrize("binary", sorted(RESULTS))
def test_a_five_step_run_of_the_default_preset_writes_its_report(binary, tmp_path):
    results = _five_steps(binary, tmp_path)
    assert set(results) == RESULTS[binary]
    assert (tmp_path / "results.md").is_file()


def test_a_five_step_run_of_spirals_mcmc_baseline(tmp_path):
    results = _five_steps("spiral_mcmc", tmp_path)
    assert results["num_evaluations"] == 5
    best = results["mean_best_l2_at"]
    assert set(best) == {"1", "5"} and 0 < best["5"] <= best["1"]  # best-so-far never rises
    picture(tmp_path / "reconstructions.png")


def test_a_five_step_run_of_spirals_default_preset_writes_checkpoints_grids_and_gif(tmp_path):
    """The default `digits` preset's network, renderer and evaluation."""
    workdir = tmp_path / "spiral"
    results = _five_steps("spiral", workdir)
    assert (workdir / "checkpoints" / "5").is_dir()
    picture(workdir / "samples.png")
    picture(workdir / "samples" / "step_000005.png")
    assert Image.open(workdir / "episode.gif").n_frames == 11  # blank canvas + 10 strokes
    records = [json.loads(line) for line in open(workdir / "metrics.jsonl")]
    assert any("train/policy/loss" in r for r in records)
    assert any("train/critic/gradient_penalty" in r for r in records)
    assert results["step"] == 5 and results["l2"] > 0
    # five steps paint no digit, while the targets themselves read well (the ceiling)
    assert results["readability"] <= 0.3 < 0.6 <= results["readability_targets"]
