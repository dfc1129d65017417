"""On the procedural `eyes` preset the full model beats the identity baseline and SS, and CFW+LCM
is at least as good as CFW (thesis sec. 4.4.3; slow: three training runs)."""

import json

import pytest

from experiments import deepwarp as deepwarp_binary
from tests.conftest import ROOT
from thesis_jax import core

PRESETS = str(ROOT / "experiments" / "configs" / "deepwarp.py")


@pytest.mark.slow
def test_coarse_to_fine_warping_with_lcm_beats_identity_and_single_scale(tmp_path):
    config = core.get_config(
        "eyes",
        PRESETS,
        {"num_steps": 1500, "variants": ("ss", "cfw", "cfw_lcm"), "eval_every": 0},
    )
    results = deepwarp_binary.train_and_evaluate(config, str(tmp_path))
    print(json.dumps(results, indent=2))
    mse = {name: row["mse"] for name, row in results.items()}
    assert mse["cfw_lcm"] < 0.5 * mse["identity"], results
    assert mse["cfw_lcm"] < 0.9 * mse["ss"], results
    assert mse["cfw_lcm"] <= 1.02 * mse["cfw"], results
