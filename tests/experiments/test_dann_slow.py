"""DANN's results on real data and its stability over long runs (slow: `make test-slow`).

- `digits`: DANN beats source-only on the target over 3 seeds.
- `mnist5k_mnistm` (real MNIST -> MNIST-M, offline): Table 5.I's first column over 3 seeds.
- Both presets trained 3x longer than the preset keep their target accuracy (final >= 0.95 x
  best on the learning curve, every seed): the test that catches the late collapse of G_f.

Every test prints a JSON summary (run with `-s` to see it).
"""

import json

import numpy as np
import pytest

from experiments import dann as dann_binary
from tests.conftest import ROOT
from thesis_jax import core, dann

PRESETS = str(ROOT / "experiments" / "configs" / "dann.py")
THESIS = {"source_only": 0.5225, "dann": 0.7666, "train_on_target": 0.9596}


def _config(preset, tmp_path, shared_data, **overrides):
    if preset.startswith("mnist5k"):
        overrides.setdefault("bsds_dir", str(shared_data / "BSDS500"))
        overrides.setdefault("data_dir", str(tmp_path / "data"))
    return core.get_config(preset, PRESETS, overrides)


@pytest.mark.slow
def test_dann_beats_source_only_on_digits_over_three_seeds(tmp_path, shared_data):
    config = _config("digits", tmp_path, shared_data, num_seeds=3, methods=("source_only", "dann"))
    summary = dann_binary.train_and_evaluate(config, str(tmp_path / "digits"))
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
    config = _config("mnist5k_mnistm", tmp_path, shared_data, num_seeds=3)
    summary = dann_binary.train_and_evaluate(config, str(workdir))
    runs = list(summary["seeds"].values())
    mean = {
        method: float(np.mean([run[method]["target_accuracy"] for run in runs]))
        for method in THESIS
    }
    pad = {
        method: float(np.mean([run[method]["proxy_a_distance"] for run in runs]))
        for method in ("source_only", "dann")
    }
    print(json.dumps({"mean": mean, "proxy_a_distance": pad, "runs": runs}, indent=2))
    print((workdir / "results.md").read_text())
    assert abs(mean["source_only"] - THESIS["source_only"]) <= 0.06, mean
    # The documented finding: with 4,000 source digits DANN covers about a third of the
    # source-only -> train-on-target gap (the thesis: 53% with 60,000).
    assert mean["dann"] >= 0.62, mean
    gap = (mean["dann"] - mean["source_only"]) / (mean["train_on_target"] - mean["source_only"])
    assert gap >= 0.28, (gap, mean)
    assert mean["train_on_target"] >= 0.9, mean
    # Fig. 5.4: adaptation brings the domains together (the proxy A-distance of eq. 5.2.2).
    assert pad["dann"] < pad["source_only"] - 0.2, pad
    for name in ("results.md", "tsne.png", "examples.png", "curves.png"):
        assert (workdir / name).stat().st_size > 1000


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["digits", "mnist5k_mnistm"])
def test_dann_trained_three_times_longer_keeps_its_target_accuracy(preset, tmp_path, shared_data):
    base = _config(preset, tmp_path, shared_data)
    steps = 3 * base.num_steps
    ratios, finals = [], []
    for seed in (0, 1, 2):
        config = _config(
            preset,
            tmp_path,
            shared_data,
            seed=seed,
            num_steps=steps,
            eval_every=steps // 24,
            checkpoint_every=steps,
            methods=("dann",),
        )
        exp = dann.Experiment.create(config, dann.load_domain_pair(config))
        run = dann.train_model(exp, "dann", str(tmp_path / f"seed{seed}"))
        curve = dann.learning_curve(str(tmp_path / f"seed{seed}" / "dann"))
        ratios.append(dann.stability(curve))
        finals.append(curve[1][-1])
        assert int(run.state.step) == steps
    print(json.dumps({"preset": preset, "steps": steps, "final/best": ratios, "final": finals}))
    assert min(ratios) >= 0.95, (ratios, finals)
