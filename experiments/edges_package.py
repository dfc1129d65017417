r"""Packages a trained N4-Fields committee for `experiments.edges`, and measures what it costs.

    python -m experiments.n4fields --config=bsds --workdir=runs/edges_bsds \
        --config.models="('n4',)" --config.num_steps=8000 --config.dictionary_size=100000
    python -m experiments.edges_package --run=runs/edges_bsds/n4 --size=20000

Writes one `.npz` (`thesis_jax.n4fields.export.save_edge_model`: the committee's fully connected
kernels in int8 with a scale per unit, its other weights and the dictionary codes in float16,
the annotations in uint8, the first `--size` dictionary entries) and scores it beside the run's
full model (float32 weights, the run's whole dictionary) on the first `--eval_images` images the
run evaluates, at `--scales` and `--stride` (which become the edge command's defaults). The
scores go into the file's metadata and the log. The default `--output` is the model shipped in
`thesis_jax/n4fields/assets/`.
"""

from __future__ import annotations

import json
import os

import ml_collections
from absl import app, flags
from absl import logging as absl_logging

from thesis_jax.core.errors import UserError, one_line_errors

_RUN = flags.DEFINE_string(
    "run", None, "A model folder of experiments.n4fields (holds export.msgpack)."
)
_SIZE = flags.DEFINE_integer("size", 20_000, "Dictionary entries kept (T).")
_OUTPUT = flags.DEFINE_string("output", None, "Where the file goes; default: the shipped model.")
_SCALES = flags.DEFINE_list("scales", ["0.5", "1.0"], "Scales scored; the command's default.")
_STRIDE = flags.DEFINE_integer("stride", 2, "Codes every `stride` pixels; the command's default.")
_EVAL_IMAGES = flags.DEFINE_integer("eval_images", 10, "Images of the run's evaluation scored.")


def run(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a flag")
    if not _RUN.value:
        raise UserError("--run is required: a model folder of experiments.n4fields")
    from thesis_jax.core.metrics import progress_bar
    from thesis_jax.n4fields import report
    from thesis_jax.n4fields.datasets import load_split
    from thesis_jax.n4fields.export import (
        SHIPPED,
        edge_model_from_run,
        load_edge_model,
        save_edge_model,
    )

    full = edge_model_from_run(_RUN.value)
    scales = tuple(float(v) for v in _SCALES.value)
    meta = {**full.meta, "scales": list(scales), "stride": _STRIDE.value}
    path = save_edge_model(
        _OUTPUT.value or SHIPPED["bsds"],
        full.params,
        full.arch,
        full.dictionaries,
        size=_SIZE.value,
        meta=meta,
    )
    packaged = load_edge_model(path)
    workdir = os.path.dirname(os.path.abspath(_RUN.value))
    with open(os.path.join(workdir, "config.json")) as f:
        config = ml_collections.ConfigDict(json.load(f))
    evaluated = load_split(config, config.eval_split, _EVAL_IMAGES.value, False)
    scores = {}
    for name, model in (("packaged", packaged), ("full", full)):
        maps, bar = [], progress_bar(len(evaluated), desc=f"score the {name} model", unit="image")
        for image in evaluated.images:
            maps.append(model.predict(image, scales=scales, stride=_STRIDE.value))
            bar.update(1)
        bar.close()
        scored = report.score(config, {name: report.thin(config, maps)}, evaluated)[name]
        scores[name] = report.summary(config, scored)
    scores.update(
        full_dictionary_size=len(full.dictionaries[0]),
        eval_split=config.eval_split,
        eval_images=len(evaluated),
        megabytes=round(os.path.getsize(path) / 1e6, 2),
    )
    meta = {**packaged.meta, "scores": scores}
    save_edge_model(path, packaged.params, packaged.arch, packaged.dictionaries, meta=meta)
    absl_logging.info("%s: %s", path, json.dumps(scores))


def main(argv: list[str]) -> None:
    with one_line_errors():
        run(argv)


if __name__ == "__main__":
    app.run(main)
