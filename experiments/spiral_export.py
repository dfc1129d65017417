"""A SPIRAL run's latest checkpoint as one agent file, with the held-out metrics it reaches.

    python -m experiments.spiral --config=mnist_cond_cpu --workdir=runs/spiral_mnist_cond_cpu
    python -m experiments.spiral_export --workdir=runs/spiral_mnist_cond_cpu --output=agent.npz

Writes `thesis_jax.spiral.export.save_agent`'s file: the policy and the critic in float16, the
run's config and the held-out metrics (l2, readability) of those float16 weights, measured by
the binary's own evaluation. `experiments.spiral --config.agent=agent.npz` and
`experiments.paint --agent=agent.npz` take it. The default `--output` is the shipped MNIST agent
in `thesis_jax/spiral/assets/`.
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from thesis_jax.core.errors import one_line_errors
from thesis_jax.spiral import export

_WORKDIR = flags.DEFINE_string("workdir", None, "A run of experiments.spiral.", required=True)
_OUTPUT = flags.DEFINE_string("output", export.SHIPPED["mnist"], "Where the agent file goes.")


def main(argv: list[str]) -> None:
    del argv
    with one_line_errors():
        metrics = export.export_run(_WORKDIR.value, _OUTPUT.value)
    size = os.path.getsize(_OUTPUT.value) / 1e3
    print(f"{_OUTPUT.value} ({size:.0f} KB): {json.dumps(metrics)}")


if __name__ == "__main__":
    app.run(main)
