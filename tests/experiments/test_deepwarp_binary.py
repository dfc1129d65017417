"""`python -m experiments.deepwarp` end to end on a tiny procedural setting."""

import json

import jax
import numpy as np
import pytest

from tests.experiments.binaries import picture, run_module
from thesis_jax.deepwarp import export, gaze

TINY = [
    "--config.num_steps=3",
    "--config.variants=('ss','cfw_lcm')",
    "--config.train_pairs=64",
    "--config.train_identities=8",
    "--config.test_pairs=16",
    "--config.test_identities=4",
    "--config.batch_size=16",
    "--config.hard_per_bin=1",
    "--config.model.widths=(4,8,4,4)",
    "--config.eval_batch_size=16",
    "--config.log_every=1",
    "--config.eval_every=3",
    "--config.checkpoint_every=3",
    "--config.num_pictures=3",
]


@pytest.mark.e2e
def test_deepwarp_binary_trains_variants_and_writes_the_report(tmp_path):
    workdir = tmp_path / "deepwarp"
    run = run_module("experiments.deepwarp", f"--workdir={workdir}", *TINY, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    for variant in ("ss", "cfw_lcm"):
        assert (workdir / variant / "checkpoints").is_dir()
        records = [json.loads(line) for line in open(workdir / variant / "metrics.jsonl")]
        assert any("train/loss" in r for r in records)
        assert any("eval/normalized" in r for r in records)
    results = json.loads((workdir / "results.json").read_text())
    assert set(results) == {"identity", "ss", "cfw_lcm"}
    assert results["identity"]["mean_normalized"] == 1.0
    assert "CFW + LCM" in (workdir / "results.md").read_text()
    grid = picture(workdir / "examples.png")
    # 3 pairs x (input, SS, CFW+LCM, ground truth), each 41 x 51 scaled by 3.
    assert grid.shape[1] > 4 * 51 * 3 and grid.shape[0] > 3 * 41 * 3
    picture(workdir / "redirect.png")
    picture(workdir / "sorted_errors.png")
    picture(workdir / "error_by_angle.png")
    # Rerunning the finished command resumes from the checkpoints and trains nothing more.
    again = run_module("experiments.deepwarp", f"--workdir={workdir}", *TINY, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((workdir / "results.json").read_text()) == results
    # The float16 model file experiments.gaze loads (how the shipped one was made).
    model = tmp_path / "gaze.msgpack"
    exported = run_module(
        "experiments.deepwarp_export", f"--workdir={workdir}", f"--output={model}", timeout=300
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    params, _, arch = export.load_export(model)
    source, _, _ = export.load_export(workdir / "cfw_lcm" / "export.msgpack")
    assert arch.variant == "cfw_lcm" and arch.widths == (4, 8, 4, 4)
    assert model.stat().st_size < 0.6 * (workdir / "cfw_lcm" / "export.msgpack").stat().st_size
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(source), strict=True):
        np.testing.assert_array_equal(a, b.astype(np.float16).astype(np.float32))
    # --select: of the kept checkpoints, the one whose rendered eyes move most like the
    # renderer's; every one is listed with its worst deviation.
    chosen = tmp_path / "chosen.msgpack"
    selected = run_module(
        "experiments.deepwarp_export", f"--workdir={workdir}", f"--output={chosen}", "--select",
        timeout=300,
    )  # fmt: skip
    assert selected.returncode == 0, selected.stderr[-3000:]
    rows = [line.split() for line in selected.stdout.splitlines() if line[:1].isdigit()]
    worst = {int(row[0]): float(row[-1]) for row in rows}
    assert set(worst) == set(gaze.checkpoint_steps(workdir)) and 3 in worst
    step = int(selected.stdout.split("selected step ")[1].split()[0])
    assert worst[step] == min(worst.values())
    for a, b in zip(jax.tree.leaves(export.load_export(chosen)[0]),
                    jax.tree.leaves(gaze.load_model(workdir, step)[0]), strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b.astype(np.float16).astype(np.float32))
    bad = run_module("experiments.deepwarp_export", f"--workdir={tmp_path}/none", timeout=300)
    assert bad.returncode != 0 and "not a finished run" in bad.stderr.strip().splitlines()[-1]


def test_deepwarp_binary_rejects_unknown_presets_variants_and_missing_folders(tmp_path):
    bad = run_module("experiments.deepwarp", "--config=eyes_3d", timeout=300)
    assert bad.returncode != 0 and "valid presets" in bad.stderr
    bad = run_module(
        "experiments.deepwarp", f"--workdir={tmp_path}/a", "--config.variants=('huge',)",
        timeout=300,
    )  # fmt: skip
    assert bad.returncode != 0 and "config.variants" in bad.stderr
    missing = tmp_path / "no_such_folder"
    bad = run_module(
        "experiments.deepwarp",
        "--config=folder",
        f"--config.data_dir={missing}",
        f"--workdir={tmp_path}/b",
        timeout=300,
    )
    assert bad.returncode != 0 and str(missing) in bad.stderr
