"""A DeepWarp run's trained model as one float16 file, the kind `experiments.gaze` loads.

    python -m experiments.deepwarp --config=eyes_varied --workdir=runs/gaze_varied
    python -m experiments.deepwarp_export --workdir=runs/gaze_varied --output=gaze.msgpack

Reads the run's export (`<workdir>/<variant>/export.msgpack`, written when a variant finishes
training; `--variant`, default cfw_lcm) and writes it with every weight in float16 (half the
size; the shipped model's held-out MSE is the same in float16 and float32). The default
`--output` is the shipped gaze model in `thesis_jax/deepwarp/assets/`.
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


def main(argv: list[str]) -> None:
    del argv
    source = os.path.join(_WORKDIR.value, _VARIANT.value, "export.msgpack")
    with one_line_errors():
        if not os.path.isfile(source):
            raise FileNotFoundError(
                f"{source} does not exist: {_WORKDIR.value} is not a finished run of "
                f"experiments.deepwarp with the variant {_VARIANT.value!r}"
            )
        params, model_state, arch = export.load_export(source)
        export.save_export(_OUTPUT.value, params, model_state, arch, dtype=np.float16)
    size = os.path.getsize(_OUTPUT.value) / 1e3
    print(f"wrote {_OUTPUT.value} ({size:.0f} KB, float16): {arch}")


if __name__ == "__main__":
    app.run(main)
