"""On the offline `digits` preset DANN beats source-only on the target, over 3 seeds (slow)."""

import json

import numpy as np
import pytest

from experiments import dann as dann_binary
from tests.conftest import ROOT
from thesis_jax import core, dann

PRESETS = str(ROOT / "experiments" / "configs" / "dann.py")


@pytest.mark.slow
def test_dann_beats_source_only_on_digits_over_three_seeds(tmp_path):
    accuracies = {"source_only": [], "dann": []}
    for seed in (0, 1, 2):
        config = core.get_config("digits", PRESETS, {"seed": seed, "eval_every": 0})
        exp = dann_binary.Experiment.create(config, dann.load_domain_pair(config))
        for mode in accuracies:
            run = dann_binary.train_model(exp, mode, str(tmp_path / f"seed{seed}"))
            accuracies[mode].append(
                dann_binary.evaluate_model(exp, run.state.params)["target_accuracy"]
            )
    summary = {
        m: {"mean": float(np.mean(a)), "std": float(np.std(a)), "runs": a}
        for m, a in accuracies.items()
    }
    print(json.dumps(summary, indent=2))
    (tmp_path / "summary.json").write_text(json.dumps(summary, indent=2))
    gains = np.subtract(accuracies["dann"], accuracies["source_only"])
    assert np.all(gains > 0.02), summary
    assert gains.mean() > 0.05, summary
