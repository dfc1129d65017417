r"""Classify a folder of images with a network trained by `experiments.dann --config=folder`.

    python -m experiments.dann --config=folder --workdir=runs/my_domains \
        --config.source_dir=labelled/ --config.target_dir=unlabelled/
    python -m experiments.dann_predict --workdir=runs/my_domains --input=unlabelled/ \
        --output=predictions.csv

`--input` is an image, a folder (subfolders included) or a glob. Each image is prepared as the
training images were (centre square, resized to the architecture's input, the training mean
subtracted) and classified by the run's `--method` network (`dann` by default; `source_only` for
comparison) with its averaged parameters. The CSV has one row per image: its path, the predicted
class (the source's subfolder names), that class's probability, and every class's probability.
The output is never an input, and replaces a file only with `--overwrite`.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
from absl import app, flags
from absl import logging as absl_logging

from thesis_jax.core import files
from thesis_jax.core.errors import UserError, one_line_errors

_WORKDIR = flags.DEFINE_string("workdir", None, "The run of `experiments.dann --config=folder`.")
_INPUT = flags.DEFINE_string("input", None, "An image, a folder of images, or a glob.")
_OUTPUT = flags.DEFINE_string("output", None, "The CSV (default: <workdir>/predictions.csv).")
_METHOD = flags.DEFINE_string("method", "dann", "Which of the run's networks classifies.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace --output if it exists.")


def load_classifier(workdir: str, method: str):
    """(config, class names, mean, inference parameters) of a folder run's `method` network."""
    import jax
    import ml_collections

    from thesis_jax import core, dann

    paths = {name: os.path.join(workdir, name) for name in ("config.json", "classes.json")}
    if not os.path.isfile(paths["config.json"]):
        raise UserError(f"--workdir {workdir}: no config.json; is it a run of experiments.dann?")
    with open(paths["config.json"]) as f:
        config = ml_collections.ConfigDict(json.load(f))
    if not os.path.isfile(paths["classes.json"]):
        raise UserError(
            f"--workdir {workdir}: a run of --config={config.get('preset', '?')}, not of "
            "--config=folder (its classes.json names the classes)"
        )
    with open(paths["classes.json"]) as f:
        classes = json.load(f)
    config.num_classes = len(classes["classes"])
    checkpoints = os.path.join(workdir, method, "checkpoints")
    if method not in dann.METHODS or not os.path.isdir(checkpoints):
        trained = sorted(
            m for m in dann.METHODS if os.path.isdir(os.path.join(workdir, m, "checkpoints"))
        )
        raise UserError(
            f"--method {method}: no trained network in {workdir} (trained: {', '.join(trained)})"
        )
    template = dann.train.init(jax.random.PRNGKey(config.seed), config, dann.METHODS[method].mode)
    state = core.Checkpointer(checkpoints, save_every=1).restore(template)
    if state is None:
        raise UserError(f"--method {method}: {checkpoints} holds no checkpoint")
    params = dann.inference_params(state)
    return config, classes["classes"], np.asarray(classes["mean"], np.float32), params


def run(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a flag")
    if not _WORKDIR.value:
        raise UserError("--workdir is required: the run of experiments.dann --config=folder")
    inputs = files.expand_inputs(_INPUT.value, recursive=True)
    output = Path(_OUTPUT.value or os.path.join(_WORKDIR.value, "predictions.csv")).expanduser()
    # one CSV for every input: planned as one input's output (suffix, an existing file, its
    # folder made), then kept off all the inputs
    files.plan_outputs(
        inputs[:1], str(output), suffix=".csv", allowed=(".csv",), overwrite=_OVERWRITE.value
    )
    if output.resolve() in {p.resolve() for p in inputs}:
        raise UserError(f"--output {output} is one of the inputs, which are never replaced")

    import jax

    from thesis_jax import dann
    from thesis_jax.core.metrics import progress_bar, write_atomic
    from thesis_jax.dann.networks import INPUT_SHAPES
    from thesis_jax.data import folders

    config, names, mean, params = load_classifier(_WORKDIR.value, _METHOD.value)
    size = INPUT_SHAPES[config.architecture][0]
    apply_fn = dann.train.make_model(config).apply

    def probabilities(p, images):
        return jax.nn.softmax(dann.train.predict(p, {"image": images}, apply_fn=apply_fn)["logits"])

    predict = jax.jit(probabilities)
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["path", "class", "probability", *(f"p_{name}" for name in names)])
    skips, counts = files.Skips(len(inputs), "inputs could not be read"), dict.fromkeys(names, 0)
    bar = progress_bar(len(inputs), desc="classify", unit="image")
    for start in range(0, len(inputs), 256):
        chunk, images = [], []
        for path in inputs[start : start + 256]:
            try:
                images.append(folders.load_image(path, size))
                chunk.append(path)
            except folders.FolderError as e:
                skips.skip(str(e))
        if images:
            batch = np.stack(images).astype(np.float32) / 255.0 - mean
            for path, p in zip(chunk, np.asarray(predict(params, batch)), strict=True):
                best = int(np.argmax(p))
                counts[names[best]] += 1
                writer.writerow([str(path), names[best], f"{p[best]:.4f}",
                                 *(f"{v:.4f}" for v in p)])  # fmt: skip
        bar.update(len(inputs[start : start + 256]))
    bar.close()
    write_atomic(output, table.getvalue())
    summary = ", ".join(f"{name} {count}" for name, count in counts.items())
    absl_logging.info("%d images classified -> %s (%s)", sum(counts.values()), output, summary)
    skips.finish()


def main(argv: list[str]) -> None:
    with one_line_errors():
        run(argv)


if __name__ == "__main__":
    app.run(main)
