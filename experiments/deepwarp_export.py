"""A DeepWarp run's trained model as one float16 file, the kind `experiments.gaze` loads.

    python -m experiments.deepwarp --config=eyes_varied --workdir=runs/gaze_varied
    python -m experiments.deepwarp_export --workdir=runs/gaze_varied --output=gaze.msgpack
    python -m experiments.deepwarp_export --workdir=runs/gaze_varied --select   # the shipped one

Reads the run's export (`<workdir>/<variant>/export.msgpack`, written when a variant finishes
training; `--variant`, default cfw_lcm) and writes it with every weight in float16 (half the
size; the shipped model's held-out MSE is the same in float16 and float32). The default
`--output` is the shipped gaze model in `thesis_jax/deepwarp/assets/`.

With `--select`, every checkpoint the run keeps is redirected on rendered eyes that nothing
else uses (`gain.renderer_agreement`: 40 identities, +-10, 15 and 20 degrees) and the one whose
iris shifts stray least from the renderer's (the largest |model / renderer - 1| over the
angles) is written instead of the last: at a constant learning rate a late checkpoint may move
the eyes a little up at every angle (a shift at 0 degrees), which hurts the smallest
redirections most.
"""

from __future__ import annotations

import os

import numpy as np
from absl import app, flags

from thesis_jax.core.errors import one_line_errors
from thesis_jax.deepwarp import export, gaze

_WORKDIR = flags.DEFINE_string("workdir", None, "A run of experiments.deepwarp.", required=True)
_VARIANT = flags.DEFINE_string("variant", "cfw_lcm", "Which of the run's variants.")
_OUTPUT = flags.DEFINE_string("output", str(gaze.DEFAULT_MODEL), "Where the model file goes.")
_SELECT = flags.DEFINE_bool(
    "select", False, "Write the kept checkpoint that moves rendered eyes most like the renderer."
)


def select_checkpoint(folder: str) -> tuple:
    """(params, model_state, arch) of the kept checkpoint of `folder` whose
    `gain.renderer_agreement` strays least from 1; prints every checkpoint's row."""
    from thesis_jax.deepwarp import gain

    steps = gaze.checkpoint_steps(folder)
    if not steps:
        raise FileNotFoundError(f"{folder} keeps no checkpoints to select from")
    models = (gaze.GazeRedirector.load(folder, step) for step in steps)
    agreement = gain.renderer_agreement(models)
    deviation = np.abs(agreement - 1)
    deviation[np.isnan(deviation)] = np.inf  # an angle with no reliable match: not chosen
    worst = deviation.max(axis=1)
    print("step   " + "  ".join(f"{a:>+5g}" for a in gain.SELECTION_ANGLES) + "   worst")
    for step, row, error in zip(steps, agreement, worst, strict=True):
        print(f"{step:<6} " + "  ".join(f"{r:5.2f}" for r in row) + f"   {error:.3f}")
    best = int(np.argmin(worst))
    print(f"selected step {steps[best]} (model / renderer within {worst[best]:.3f} of 1)")
    return gaze.load_model(folder, steps[best])


def main(argv: list[str]) -> None:
    del argv
    folder = os.path.join(_WORKDIR.value, _VARIANT.value)
    source = os.path.join(folder, "export.msgpack")
    with one_line_errors():
        if not os.path.isfile(source):
            raise FileNotFoundError(
                f"{source} does not exist: {_WORKDIR.value} is not a finished run of "
                f"experiments.deepwarp with the variant {_VARIANT.value!r}"
            )
        if _SELECT.value:
            params, model_state, arch = select_checkpoint(folder)
        else:
            params, model_state, arch = export.load_export(source)
        export.save_export(_OUTPUT.value, params, model_state, arch, dtype=np.float16)
    size = os.path.getsize(_OUTPUT.value) / 1e3
    print(f"wrote {_OUTPUT.value} ({size:.0f} KB, float16): {arch}")


if __name__ == "__main__":
    app.run(main)
