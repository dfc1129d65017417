"""`python -m experiments.n4fields` end to end: the offline `shapes` preset on a tiny setting, the
real BSDS500 preset on two images, and the errors a user meets first."""

import json
import re

import numpy as np
import pytest

from tests.conftest import ROOT
from tests.experiments.binaries import picture, run_module, stand_in_training

NARROW = [
    "--config.model.conv_features=(8,16,16)",
    "--config.model.fc_features=(64,64)",
    "--config.pca_samples=2000",
    "--config.val_patches=256",
    "--config.log_every=5",
    "--config.eval_every=10",
    "--config.checkpoint_every=10",
    "--config.eval_workers=1",
]
TINY = [
    *NARROW,
    "--config.num_steps=10",
    "--config.train_images=6",
    "--config.eval_images=2",
    "--config.qualitative_images=1",
    "--config.dictionary_size=3000",
    "--config.num_pictures=2",
    "--config.tolerances=(0.005,0.0075)",
]
BSDS = ROOT.parent / "shared" / "data" / "BSDS500"
PRESETS = str(ROOT / "experiments" / "configs" / "n4fields.py")


@pytest.mark.e2e
def test_shapes_preset_trains_every_model_and_writes_the_table_3i_report(tmp_path):
    workdir = tmp_path / "shapes"
    run = run_module("experiments.n4fields", f"--workdir={workdir}", *TINY, timeout=1500)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((workdir / "results.json").read_text())
    assert set(results) == {"n4", "central", "patch", "sift"}
    for row in results.values():
        assert 0 <= row["ods"] <= 1 and 0 <= row["ois"] <= 1 and 0 <= row["ap"] <= 1
        # per-image thresholds rarely do worse (ODS alone interpolates between thresholds)
        assert row["ois"] >= row["ods"] - 0.02
    table = (workdir / "results.md").read_text()
    for name in ("N4-fields", "CNN-central", "CNN-patch", "SIFT + NNB", "Budget: 6 training"):
        assert name in table
    for model in ("n4", "central", "patch"):
        records = [json.loads(line) for line in open(workdir / model / "net0" / "metrics.jsonl")]
        assert any("eval/validation_error" in r for r in records)
        assert (workdir / model / "export.msgpack").is_file()
    panels = picture(workdir / "panels.png")
    assert panels.shape[1] > panels.shape[0]  # 2 rows x (input, truth, 4 models)
    picture(workdir / "pr_curves.png")
    picture(workdir / "tolerance.png")
    picture(workdir / "qualitative.png")  # the embedded photos, no ground truth
    tolerance = json.loads((workdir / "tolerance.json").read_text())
    assert set(tolerance["N4-fields"]) == {"0.005", "0.0075"}

    # The exported committee reloads (as `experiments.edges --checkpoint=<workdir>/n4` loads
    # it: its dictionary rebuilt from the run's training images) and reproduces the saved maps.
    import ml_collections

    from thesis_jax import n4fields
    from thesis_jax.n4fields.export import load_any_edge_model

    config = ml_collections.ConfigDict(json.loads((workdir / "config.json").read_text()))
    params, arch, pca = n4fields.load_export(str(workdir / "n4" / "export.msgpack"))
    assert arch.head == "code" and pca.dim == 16 and len(params) == 1
    model = load_any_edge_model(str(workdir / "n4"))
    assert model.meta["preset"] == "shapes" and len(model.dictionaries[0]) == 3000
    evaluated = n4fields.load_split(config, "test", config.eval_images, False)
    edges = model.predict(evaluated.images[0], scales=tuple(config.scales), stride=config.stride)
    with np.load(workdir / "n4" / "predictions.npz") as saved:
        np.testing.assert_allclose(edges, saved["map00000"].astype(np.float32), atol=2e-3)

    # The run packaged for `experiments.edges` (never over the shipped file: --output), scored
    # beside the full model on one image.
    packaged_path = tmp_path / "edges.npz"
    packaged = run_module(
        "experiments.edges_package",
        f"--run={workdir / 'n4'}",
        f"--output={packaged_path}",
        "--size=500",
        "--eval_images=1",
        "--scales=1.0",
        timeout=600,
    )
    assert packaged.returncode == 0, packaged.stderr[-3000:]
    package = load_any_edge_model(str(packaged_path))
    assert len(package.dictionaries[0]) == 500
    for name in ("packaged", "full"):
        assert 0 <= package.meta["scores"][name]["ods"] <= 1
    missing = run_module(
        "experiments.edges_package",
        f"--run={tmp_path / 'nothing'}",
        f"--output={tmp_path / 'nothing.npz'}",
        timeout=300,
    )
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1].startswith("error:")
    assert not (tmp_path / "nothing.npz").exists()

    # The same command again: every model is finished, so nothing trains and the table holds.
    again = run_module("experiments.n4fields", f"--workdir={workdir}", *TINY, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((workdir / "results.json").read_text()) == results
    assert "reusing" in again.stderr


@pytest.mark.skipif(not BSDS.is_dir(), reason="needs ../shared/data/BSDS500")
@pytest.mark.slow  # 21 s of the fast suite's 5 minutes
def test_bsds_preset_runs_on_real_images(tmp_path):
    workdir = tmp_path / "bsds"
    run = run_module(
        "experiments.n4fields",
        "--config=bsds",
        f"--workdir={workdir}",
        *NARROW,
        "--config.models=('n4',)",
        "--config.committee=2",
        "--config.scales=(0.5,1.0)",
        "--config.stride=4",
        "--config.num_steps=4",
        "--config.train_images=3",
        "--config.eval_images=2",
        "--config.dictionary_size=2000",
        "--config.num_pictures=2",
        "--config.tolerances=()",
        timeout=1500,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    table = (workdir / "results.md").read_text()
    assert "thesis ODS / OIS / AP" in table and "0.75 / 0.76 / 0.77" in table
    assert "committee of 2" in table
    assert (workdir / "n4" / "net1" / "checkpoints").is_dir()
    panels = picture(workdir / "panels.png")
    assert panels.shape[0] > 200  # two real 321 x 481 photographs


def test_n4fields_binary_rejects_bad_presets_models_and_folders(tmp_path):
    bad = run_module("experiments.n4fields", "--config=bsds600", timeout=300)
    assert bad.returncode != 0 and "valid presets" in bad.stderr
    bad = run_module(
        "experiments.n4fields", f"--workdir={tmp_path}/a", "--config.models=('hed',)", timeout=300
    )
    assert bad.returncode != 0 and "config.models" in bad.stderr
    missing = tmp_path / "no_bsds"
    bad = run_module(
        "experiments.n4fields",
        "--config=bsds",
        f"--workdir={tmp_path}/b",
        f"--config.data_dir={missing}",
        timeout=300,
    )
    assert bad.returncode != 0
    assert "BSDS500" in bad.stderr and "wget" in bad.stderr  # how to get it
    # DRIVE's reader fails the same way (the binary prints a FileNotFoundError as BSDS500's)
    from thesis_jax import core, n4fields

    config = core.get_config("drive", PRESETS, {"data_dir": str(missing)})
    with pytest.raises(FileNotFoundError, match="DRIVE"):
        n4fields.load_split(config, config.train_split, 0, False)


def _assert_tour_page(root):
    page = (root / "index.html").read_text()
    assert "<h2>N4-Fields" in page
    for name, thesis in (
        ("N4-fields", "0.75 / 0.76 / 0.77"),
        ("CNN-central", "0.72 / 0.74 / 0.75"),
    ):
        assert re.search(
            rf"<td>{name}</td><td>0\.\d{{3}} / 0\.\d{{3}} / 0\.\d{{3}}</td>"
            rf"<td>{thesis}</td>",
            page,
        ), name
    images = re.findall(r"<img src='([^']+)'", page)
    assert len(images) == 3
    for rel in images:
        picture(root / rel)


def test_tour_section_shows_pictures_and_the_thesis_bsds_numbers(tmp_path, monkeypatch):
    """The tour's N4-Fields section around a stand-in for the run (the run itself: the slow
    twin below, and `test_shapes_preset_trains_every_model_and_writes_the_table_3i_report`)."""
    from experiments import n4fields as binary
    from experiments.tour import run_tour

    runs = stand_in_training(
        monkeypatch,
        binary,
        ("panels", "pr_curves", "qualitative"),
        lambda config: {
            m: {"ods": 0.5, "ois": 0.55, "ap": 0.4, "ods_threshold": 0.3} for m in config.models
        },
    )
    run_tour(str(tmp_path), ["n4fields"], budget=0.01)
    _assert_tour_page(tmp_path)
    (config,) = runs
    assert config.preset == "shapes" and tuple(config.models) == ("n4", "central", "patch")
    assert config.num_steps == 15 and config.train_images == 4 and config.eval_images == 2
    assert config.seed == 0 and config.learning_rate == 0.02  # N4-fields' rate on `shapes`
    assert config.committee == 1
    page = (tmp_path / "index.html").read_text()
    assert "one network; the thesis averages a committee of three" in page
    run_tour(str(tmp_path / "again"), ["n4fields"], budget=0.01, seed=2)  # --seed=2
    assert runs[1].seed == 2
    # a larger budget buys the thesis's committee of three first, then longer runs
    for budget, committee, steps in ((2, 2, 1500), (3, 3, 1500), (6, 3, 3000)):
        run_tour(str(tmp_path / f"budget{budget}"), ["n4fields"], budget=budget)
        assert (runs[-1].committee, runs[-1].num_steps) == (committee, steps)
    assert "one network" not in (tmp_path / "budget3" / "index.html").read_text()


@pytest.mark.slow  # trains three models; the section's code runs in the fast test above
def test_tour_runs_the_n4fields_section(tmp_path):
    run = run_module(
        "experiments.tour",
        f"--workdir={tmp_path}",
        "--budget=0.01",
        "--methods=n4fields",
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    _assert_tour_page(tmp_path)
