"""DANN's results on real data and its stability over long runs (slow: `make test-slow`).

- `digits`: DANN beats source-only on the target over 3 seeds.
- `mnist5k_mnistm` (real MNIST -> MNIST-M, offline): Table 5.I's first column over 3 seeds.
- Both presets trained 3x longer than the preset keep their target accuracy (final >= 0.95 x
  best on the learning curve, every seed): the test that catches the late collapse of G_f.

Each runs the binary as a user would, on one CPU device (the suite's 8 simulated devices would
only slow a training run down), and prints a JSON summary (`-s` shows it).
"""

import json
import os

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.experiments.binaries import run_module
from thesis_jax import core, dann

PRESETS = str(ROOT / "experiments" / "configs" / "dann.py")
THESIS = {"source_only": 0.5225, "dann": 0.7666, "train_on_target": 0.9596}


def _train(preset, workdir, shared_data, tmp_path, *overrides):
    """`python -m experiments.dann --config=preset ...` on one device; returns results.json."""
    flags = [f"--config={preset}", f"--workdir={workdir}", *overrides]
    if preset.startswith("mnist5k"):
        flags += [f"--config.bsds_dir={shared_data / 'BSDS500'}"]
        flags += [f"--config.data_dir={tmp_path / 'data'}"]
    environment = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    result = run_module("experiments.dann", *flags, timeout=4 * 3600, env=environment)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((workdir / "results.json").read_text())


@pytest.mark.slow
def test_dann_beats_source_only_on_digits_over_three_seeds(tmp_path, shared_data):
    summary = _train(
        "digits",
        tmp_path / "digits",
        shared_data,
        tmp_path,
        "--config.num_seeds=3",
        "--config.methods=('source_only','dann')",
    )
    runs = summary["seeds"].values()
    gains = [run["dann"]["target_accuracy"] - run["source_only"]["target_accuracy"] for run in runs]
    print(json.dumps({"gains": gains}, indent=2))
    assert np.all(np.asarray(gains) > 0.02), gains
    assert np.mean(gains) > 0.05, gains


@pytest.mark.slow
def test_real_mnist_to_mnist_m_over_three_seeds(tmp_path, shared_data):
    """Table 5.I, first column, on the 5,000 offline MNIST digits (README: what 4,000 digits
    reach and why DANN stays below the thesis's .7666)."""
    workdir = tmp_path / "mnist5k"
    summary = _train("mnist5k_mnistm", workdir, shared_data, tmp_path, "--config.num_seeds=3")
    runs = list(summary["seeds"].values())
    mean = {m: float(np.mean([run[m]["target_accuracy"] for run in runs])) for m in THESIS}
    pad = {
        m: float(np.mean([run[m]["proxy_a_distance"] for run in runs]))
        for m in ("source_only", "dann")
    }
    print(json.dumps({"mean": mean, "proxy_a_distance": pad, "runs": runs}, indent=2))
    print((workdir / "results.md").read_text())
    assert abs(mean["source_only"] - THESIS["source_only"]) <= 0.06, mean
    # The documented finding: with 4,000 source digits DANN covers about a third of the
    # source-only -> train-on-target gap (the thesis: 53% with 60,000).
    assert mean["dann"] >= 0.62, mean
    gap = (mean["dann"] - mean["source_only"]) / (mean["train_on_target"] - mean["source_only"])
    assert gap >= 0.28, (gap, mean)
    assert mean["train_on_target"] >= 0.88, mean
    # Fig. 5.4: adaptation brings the domains together (the proxy A-distance of eq. 5.2.2).
    assert pad["dann"] < pad["source_only"] - 0.2, pad
    for name in ("results.md", "tsne.png", "examples.png", "curves.png"):
        assert (workdir / name).stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["digits", "mnist5k_mnistm"])
def test_dann_trained_three_times_longer_keeps_its_target_accuracy(preset, tmp_path, shared_data):
    steps = 3 * core.get_config(preset, PRESETS).num_steps
    workdir = tmp_path / preset
    _train(
        preset,
        workdir,
        shared_data,
        tmp_path,
        f"--config.num_steps={steps}",
        f"--config.eval_every={steps // 24}",
        f"--config.checkpoint_every={steps}",
        "--config.num_seeds=3",
        "--config.methods=('dann',)",
    )
    curves = [dann.learning_curve(str(workdir / f"seed{seed}" / "dann")) for seed in (0, 1, 2)]
    ratios = [dann.stability(curve) for curve in curves]
    finals = [curve[1][-1] for curve in curves]
    print(json.dumps({"preset": preset, "steps": steps, "final/best": ratios, "final": finals}))
    assert all(len(curve[0]) == 24 and curve[0][-1] == steps for curve in curves)
    assert min(ratios) >= 0.95, (ratios, finals)
