"""`experiments.dann --config=folder` on folders a user would have, then `experiments.dann_predict`
on a folder: real MNIST digits (labelled, by class) -> the same digits over photos (unlabelled)."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from tests.experiments.binaries import assert_one_line_error, run_module
from thesis_jax.data import embedded_photos
from thesis_jax.data.mnist5k import read_mnist_5k
from thesis_jax.data.mnistm import blend_mnistm

SHORT = [
    "--config.num_steps=40",
    "--config.eval_every=20",
    "--config.log_every=20",
    "--config.checkpoint_every=20",
    "--config.batch_size=32",
    "--config.eval_batch_size=64",
    "--config.tsne_points=40",
]


def _folders(root, per_class=16):
    images, labels = read_mnist_5k()
    rng = np.random.default_rng(0)
    photos = embedded_photos()
    for c, name in enumerate(("zero", "one", "two")):
        picks = np.nonzero(labels == c)[0]
        digits = images[picks[: 3 * per_class]].reshape(-1, 28, 28).astype(np.float32) / 255
        parts = {
            f"source/{name}": np.repeat(digits[:per_class, ..., None], 3, -1),
            "target/batch1": blend_mnistm(digits[per_class : 2 * per_class], photos, rng),
            f"test/{name}": blend_mnistm(digits[2 * per_class :], photos, rng),
        }
        for folder, pictures in parts.items():
            (root / folder).mkdir(parents=True, exist_ok=True)
            for k, picture in enumerate(pictures):
                pixels = (np.clip(picture, 0, 1) * 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / folder / f"{name}_{k}.png")
    return root


@pytest.mark.e2e
def test_folders_train_and_a_folder_is_classified_as_the_report_scored_it(tmp_path):
    data = _folders(tmp_path / "data")
    workdir = tmp_path / "run"
    run = run_module(
        "experiments.dann", "--config=folder", f"--workdir={workdir}",
        f"--config.source_dir={data / 'source'}", f"--config.target_dir={data / 'target'}",
        f"--config.target_test_dir={data / 'test'}", *SHORT, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((workdir / "results.json").read_text())
    assert set(results) == {"source_only", "dann"}
    assert 0 <= results["dann"]["target_accuracy"] <= 1
    assert json.loads((workdir / "classes.json").read_text())["classes"] == ["one", "two", "zero"]
    assert json.loads((workdir / "config.json").read_text())["num_classes"] == 3
    assert "| DANN | 0." in (workdir / "results.md").read_text()

    predictions = tmp_path / "predictions.csv"
    run = run_module(
        "experiments.dann_predict", f"--workdir={workdir}", f"--input={data / 'test'}",
        f"--output={predictions}", timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    rows = list(csv.DictReader(predictions.open()))
    assert len(rows) == 48 and set(rows[0]) == {"path", "class", "probability", "p_one",
                                                 "p_two", "p_zero"}  # fmt: skip
    correct = np.mean([row["class"] in row["path"].split("/")[-2] for row in rows])
    # the same network, the same preparation: the report's accuracy, image for image
    assert abs(correct - results["dann"]["target_accuracy"]) < 1e-6
    again = run_module(
        "experiments.dann_predict", f"--workdir={workdir}", f"--input={data / 'test'}",
        f"--output={predictions}", "--method=sa", timeout=300,
    )  # fmt: skip
    assert_one_line_error(
        again, f"error: --output {predictions} exists; pass --overwrite to replace it"
    )


@pytest.mark.slow  # 7 s of the fast suite's 5 minutes
def test_without_target_labels_the_report_says_what_it_measured(tmp_path):
    data = _folders(tmp_path / "data", per_class=8)
    workdir = tmp_path / "run"
    run = run_module(
        "experiments.dann", "--config=folder", f"--workdir={workdir}",
        f"--config.source_dir={data / 'source'}", f"--config.target_dir={data / 'target'}",
        "--config.methods=('dann',)", *SHORT, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    report = (workdir / "results.md").read_text()
    assert "| DANN | 0." in report and "target accuracy is not measured" in report
    assert "target_accuracy" not in json.loads((workdir / "results.json").read_text())["dann"]
    refused = run_module(
        "experiments.dann", "--config=folder", f"--workdir={tmp_path / 'sa'}",
        f"--config.source_dir={data / 'source'}", f"--config.target_dir={data / 'target'}",
        "--config.methods=('source_only','sa','dann')", timeout=300,
    )  # fmt: skip
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "sa picks its subspace size on labelled target images" in refused.stderr
