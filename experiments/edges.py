r"""Edge maps of your own photos with a trained N4-Fields committee (thesis ch. 3).

    python -m experiments.edges --input=photo.jpg --output=edges.png
    python -m experiments.edges --input=photos/ --output=edges/ --thin
    python -m experiments.edges --input='shots/*.jpg' --output=edges/ --scales=0.5,1,2
    python -m experiments.edges --input=photo.jpg --checkpoint=runs/n4fields/bsds/n4

`--input` is a picture, a folder of pictures or a glob; one input writes `--output` (default
`<stem>_edges.png` beside it), several write `<stem>_edges.png` into the `--output` folder. The
map is the committee's edge probability, white on black (`--invert`: dark edges on white;
`--stretch`: its strongest edges white, since the committee's probabilities peak near 0.35), at
the input's size; `--thin` writes the benchmark's thin edges instead (non-maximum suppression, the
NMS of sec. 3.4, then `--threshold`). A photo whose longer side exceeds `--max_side` is shrunk
for the network and its map enlarged back: the committee was trained on BSDS500's 481 x 321
photos, and its cost grows with the pixels.

The default model is the committee shipped in `thesis_jax/n4fields/assets/` (trained on the
BSDS500 training images; README "Edges of your own photos" has the commands that made it and what
it scores). `--checkpoint` takes another packaged model (`python -m experiments.edges_package`),
or a run's model folder / `export.msgpack` of `experiments.n4fields` (its dictionaries are rebuilt
from the run's training images first). Inputs are never replaced, outputs only with `--overwrite`.
"""

from __future__ import annotations

import time

from absl import app, flags
from absl import logging as absl_logging

from thesis_jax.core import files
from thesis_jax.core.errors import UserError, one_line_errors

_INPUT = flags.DEFINE_string("input", None, "A picture, a folder of pictures, or a glob.")
_OUTPUT = flags.DEFINE_string(
    "output", None, "The output file (one input) or folder (several); default beside the input."
)
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint",
    "bsds",
    "A packaged edge model (.npz), a run's model folder or export.msgpack, or a shipped name.",
)
_SCALES = flags.DEFINE_list("scales", None, "Scales averaged (sec. 3.3.3); default: the model's.")
_STRIDE = flags.DEFINE_integer(
    "stride", None, "Codes every `stride` pixels (1-8; 1 is the thesis's); default: the model's."
)
_MAX_SIDE = flags.DEFINE_integer(
    "max_side", 640, "Larger photos are shrunk to this longer side for the network; 0: never."
)
_THIN = flags.DEFINE_bool("thin", False, "Write thin edges (NMS, then --threshold), not a map.")
_THRESHOLD = flags.DEFINE_float(
    "threshold", 0.0, "With --thin: edges below this probability are dropped; 0: the model's ODS."
)
_INVERT = flags.DEFINE_bool("invert", False, "Dark edges on white instead of white on black.")
_STRETCH = flags.DEFINE_bool(
    "stretch", False, "Scale each map so that its strongest edges (99.9th percentile) are white."
)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace existing outputs (never the inputs).")

OUTPUT_SUFFIXES = tuple(s for s in files.IMAGE_SUFFIXES if s != ".gif")  # greys, not a palette


def _scales(model) -> tuple[float, ...]:
    values = _SCALES.value or model.meta.get("scales") or [1.0]
    try:
        scales = tuple(float(v) for v in values)
    except ValueError:
        raise UserError(f"--scales {','.join(values)}: give numbers such as 0.5,1,2") from None
    if not scales or min(scales) <= 0 or max(scales) > 4:
        raise UserError(f"--scales {','.join(map(str, values))}: each must be in (0, 4]")
    return scales


def _threshold(model) -> float:
    if _THRESHOLD.value:
        return _THRESHOLD.value
    return float(model.meta.get("scores", {}).get("packaged", {}).get("ods_threshold", 0.3))


def run(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a flag")
    if _STRIDE.value is not None and not 1 <= _STRIDE.value <= 8:
        raise UserError(f"--stride {_STRIDE.value}: must be 1 to 8 (the patch is 16 pixels)")
    if _MAX_SIDE.value < 0 or 0 < _MAX_SIDE.value < 32:
        raise UserError(f"--max_side {_MAX_SIDE.value}: 0 (never shrink) or at least 32")
    inputs = files.expand_inputs(_INPUT.value)
    outputs = files.plan_outputs(
        inputs, _OUTPUT.value, suffix="_edges.png", allowed=OUTPUT_SUFFIXES,
        overwrite=_OVERWRITE.value,
    )  # fmt: skip

    from thesis_jax.core.metrics import progress_bar
    from thesis_jax.n4fields.export import load_any_edge_model, output_picture

    try:
        model = load_any_edge_model(_CHECKPOINT.value)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"--checkpoint: {e}") from None
    if model.arch.in_channels != 3:
        raise UserError(
            f"--checkpoint: this model reads {model.arch.in_channels}-channel images (RGBD, "
            "NYUD); photos have 3: use an RGB model (the shipped one, or a bsds run)"
        )
    scales, threshold = _scales(model), _threshold(model)
    stride = _STRIDE.value or int(model.meta.get("stride", 1))
    skips = files.Skips(len(inputs), "inputs could not be read")
    bar = progress_bar(len(inputs), desc="edges", unit="image")
    start = time.perf_counter()
    for source, target in zip(inputs, outputs, strict=True):
        try:
            image = files.read_image(source)
        except files.InputError as e:
            skips.skip(str(e))
            bar.update(1)
            continue
        edges = model.photo_edges(image, scales=scales, stride=stride, max_side=_MAX_SIDE.value)
        pixels = output_picture(
            edges, thin=_THIN.value, threshold=threshold, invert=_INVERT.value,
            stretch=_STRETCH.value,
        )  # fmt: skip
        files.write_image(target, pixels)
        bar.update(1)
    bar.close()
    written = len(inputs) - len(skips.messages)
    where = outputs[0] if len(outputs) == 1 else outputs[0].parent
    each = (time.perf_counter() - start) / max(written, 1)
    plural = "" if written == 1 else "s"
    absl_logging.info("%d edge map%s in %s (%.1f s each)", written, plural, where, each)
    skips.finish()


def main(argv: list[str]) -> None:
    with one_line_errors():
        run(argv)


if __name__ == "__main__":
    app.run(main)
