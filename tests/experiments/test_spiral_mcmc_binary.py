"""`python -m experiments.spiral_mcmc` (blocked MH on MuJoCo scenes, fig. 6.10) end to end."""

import itertools
import json

import numpy as np
import pytest

from experiments import spiral_mcmc
from tests.experiments.binaries import picture, run_module
from thesis_jax import core
from thesis_jax.spiral import mcmc_experiment

TINY = ["--config.batch_size=2", "--config.num_steps=30"]


def _run(*args, timeout=300):
    return run_module("experiments.spiral_mcmc", *args, timeout=timeout)


def _picture(path):
    image = picture(path)
    assert image.shape[0] > 100 and image.shape[1] > 100, image.shape
    return image


def test_presets_map_the_generic_fields():
    for preset in ("default", "thesis"):
        config = core.get_config(preset, spiral_mcmc._PRESETS)
        mcmc_experiment.check_config(config)
        assert config.holdout_seed == 1  # scenes_dataset.HOLDOUT_SEED
    thesis = core.get_config("thesis", spiral_mcmc._PRESETS)
    assert (thesis.batch_size, thesis.num_steps) == (100, 10_000)  # sec. 6.4.6, fig. 6.10
    assert mcmc_experiment.report_points((1, 10, 100, 1000), 30) == [1, 10, 30]


def test_binary_writes_curves_results_and_reconstructions_and_resumes(tmp_path):
    workdir, data_dir = tmp_path / "run", tmp_path / "data"
    args = [f"--workdir={workdir}", f"--config.data_dir={data_dir}", *TINY]
    first = _run(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Blocked MH on 2 held-out MuJoCo scenes, 30 evaluations each" in first.stdout
    assert list((data_dir / "mujoco_scenes").glob("scenes-n2-seed1-64px-*.npz"))

    curves = _picture(workdir / "curves.png")
    assert curves.shape[1] > curves.shape[0]
    recon = _picture(workdir / "reconstructions.png")
    assert recon.shape[0] > 2 * 64  # a row of targets above a row of reconstructions

    results = json.loads((workdir / "results.json").read_text())
    assert results["num_images"] == 2 and results["num_evaluations"] == 30
    assert list(results["mean_best_l2_at"]) == ["1", "10", "30"]
    mean_best = list(results["mean_best_l2_at"].values())
    assert all(later <= earlier for earlier, later in itertools.pairwise(mean_best))
    for n, value in results["mean_best_l2_at"].items():
        assert results["min_best_l2_at"][n] <= value <= results["max_best_l2_at"][n]
        assert value <= results["mean_current_l2_at"][n] + 1e-9
    history = np.load(workdir / "curves.npz")["l2_history"]
    assert history.shape == (2, 30) and np.all(history >= 0)
    for row, image in zip(history, results["images"], strict=True):
        assert 0 <= image["best_l2"] <= image["initial_l2"] + 1e-7
        assert image["best_l2"] == pytest.approx(row.min(), rel=1e-5, abs=1e-9)
        assert image["final_l2"] == pytest.approx(row[-1])
        assert 0 <= image["change_rate"] <= image["acceptance_rate"] <= 1
        assert 1 <= image["target_objects"] <= 5
        assert image["true_scene_l2"] < 1e-4  # the held-out scene re-renders to its target
    best_curve = np.minimum.accumulate(history, axis=1).mean(0)
    assert results["mean_best_l2_at"]["30"] == pytest.approx(best_curve[-1], rel=1e-5)

    # Lose one finished chain: the same command re-runs only that one, with the same numbers.
    (workdir / "chains" / "0001.npz").unlink()
    second = _run(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "1 of 2 chains already finished" in second.stderr
    again = json.loads((workdir / "results.json").read_text())
    assert again["images"] == results["images"]

    # Another chain length in the same workdir is refused rather than mixed in.
    config = core.get_config(
        "default",
        spiral_mcmc._PRESETS,
        {"batch_size": 2, "num_steps": 31, "data_dir": str(data_dir)},
    )
    with pytest.raises(core.ConfigError, match=r"different config.*num_steps: 30 -> 31"):
        spiral_mcmc.run_experiment(config, str(workdir))


def test_invalid_values_are_refused():
    for field, value, message in (
        ("num_steps", 0, r"num_steps \(evaluations per image\) must be >= 1"),
        ("batch_size", 0, r"batch_size \(held-out images\) must be >= 1"),
        ("max_objects", 21, r"max_objects must be in \[1, 20\]"),
    ):
        config = core.get_config("default", spiral_mcmc._PRESETS, {field: value})
        with pytest.raises(core.ConfigError, match=message):
            mcmc_experiment.check_config(config)


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--config=nope", "unknown preset 'nope'"),
        ("--config.num_steps=abc", "does not parse as int"),
        ("--config.num_evaluations=5", "unknown config field 'num_evaluations'"),
    ],
)
def test_bad_flags_fail_with_a_clear_message(tmp_path, flag, message):
    result = _run(f"--workdir={tmp_path / 'run'}", f"--config.data_dir={tmp_path}", flag)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "run" / "results.json").exists()
