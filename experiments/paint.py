r"""Your drawing parsed into brush strokes by a trained SPIRAL agent (thesis fig. 6.6).

    python -m experiments.paint --input=drawing.png --output=strokes.svg
    python -m experiments.paint --input=drawing.png --output=strokes.gif --size=512
    python -m experiments.paint --input=drawings/ --output=parsed/ --format=json --samples=32

The drawing (dark lines on light paper, any size: a scanned or photographed digit, a character)
is fitted to the agent's canvas as its training digits were framed (the ink's box scaled into the
middle 20/28, centred by mass, thin lines thickened), the agent paints it `--samples` times and
the episode closest to it (l2) is kept. The output's extension picks what is written:

- `.svg`: one quadratic Bezier path per stroke (eq. 6.4.1), with the dry brush's width and opacity;
- `.json`: the strokes (start, control and end points in canvas fractions, radius, pressure,
  colour) and the episode's l2;
- `.png`: the strokes painted at `--size` pixels; `.gif`: the same, one stroke per frame.

Each stroke gets its own colour, as fig. 6.6 shows a parse (`--nocolors`: black ink). The default
agent is the one shipped in `thesis_jax/spiral/assets/` (conditional, MNIST digits on a 32 x 32
canvas, 10 strokes; README "A trained agent"); `--agent=omniglot` the shipped Omniglot agent, for
other characters (each agent's drawings framed as its training data were), and `--agent` any
other file of `python -m experiments.spiral_export`. Photographs are refused: the agents paint line
drawings.
Inputs are never replaced, outputs only with `--overwrite`.
"""

from __future__ import annotations

from pathlib import Path

from absl import app, flags
from absl import logging as absl_logging

from thesis_jax.core import files
from thesis_jax.core.errors import UserError, one_line_errors

FORMATS = (".svg", ".json", ".png", ".gif")

_INPUT = flags.DEFINE_string("input", None, "A drawing, a folder of drawings, or a glob.")
_OUTPUT = flags.DEFINE_string(
    "output", None, "The output file (one input; its extension picks the format) or folder."
)
_FORMAT = flags.DEFINE_enum(
    "format", None, [f[1:] for f in FORMATS], "What to write when --output is a folder or absent."
)
_AGENT = flags.DEFINE_string("agent", "mnist", "A SPIRAL agent file or a shipped agent's name.")
_SAMPLES = flags.DEFINE_integer("samples", 16, "Episodes painted per drawing; the best is kept.")
_SIZE = flags.DEFINE_integer("size", 256, "Side of the SVG, PNG or GIF in pixels.")
_COLORS = flags.DEFINE_bool("colors", True, "Each stroke in its own colour (fig. 6.6).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the agent's sampling.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace existing outputs (never the inputs).")


def _suffix() -> str:
    if _FORMAT.value:
        return "." + _FORMAT.value
    if _OUTPUT.value and Path(_OUTPUT.value).suffix.lower() in FORMATS:
        return Path(_OUTPUT.value).suffix.lower()
    return ".svg"


def run(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; every option is a flag")
    if not 1 <= _SAMPLES.value <= 1024:
        raise UserError(f"--samples {_SAMPLES.value}: must be 1 to 1024")
    if not 16 <= _SIZE.value <= 4096:
        raise UserError(f"--size {_SIZE.value}: must be 16 to 4096 pixels")
    inputs = files.expand_inputs(_INPUT.value)
    suffix = _suffix()
    outputs = files.plan_outputs(
        inputs, _OUTPUT.value, suffix=f"_strokes{suffix}", allowed=FORMATS,
        overwrite=_OVERWRITE.value,
    )  # fmt: skip

    from thesis_jax.core.metrics import progress_bar
    from thesis_jax.spiral import export, renderers
    from thesis_jax.spiral import strokes as parse

    try:
        agent = export.load_agent(_AGENT.value)
    except (FileNotFoundError, ValueError) as e:
        raise UserError(f"--agent: {e}") from None
    painter = parse.Painter(agent)
    config = agent.config
    paint_config = renderers.paint_config(config)
    skips = files.Skips(len(inputs), "drawings were not parsed")
    bar = progress_bar(len(inputs), desc="paint", unit="drawing")
    for source, target_path in zip(inputs, outputs, strict=True):
        try:
            drawing = files.read_image(source, "L")
            target = parse.fit_drawing(
                drawing, painter.canvas_size, box=painter.box, min_line=painter.min_line
            )
        except (files.InputError, parse.DrawingError) as e:
            skips.skip(str(e) if isinstance(e, files.InputError) else f"{source}: {e}")
            bar.update(1)
            continue
        result = painter(target, samples=_SAMPLES.value, seed=_SEED.value)
        strokes = parse.episode_strokes(result["actions"], paint_config, colors=_COLORS.value)
        parse.write(target_path, strokes, _SIZE.value, l2=result["l2"], canvas=config.canvas_size)
        absl_logging.info(
            "%s: %d strokes, l2 %.2f (best of %d) -> %s",
            source, len(strokes), result["l2"], _SAMPLES.value, target_path,
        )  # fmt: skip
        bar.update(1)
    bar.close()
    skips.finish()


def main(argv: list[str]) -> None:
    with one_line_errors():
        run(argv)


if __name__ == "__main__":
    app.run(main)
