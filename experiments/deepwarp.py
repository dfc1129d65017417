r"""DeepWarp experiments (thesis ch. 4): train the variants of sec. 4.4.3 and compare them.

    python -m experiments.deepwarp                               # offline `eyes` preset
    python -m experiments.deepwarp --config=eyes_15 --config.variants="('ss','cfw_lcm')"
    python -m experiments.deepwarp --config=folder --config.data_dir=DIR

Writes into the workdir: one subfolder per variant (checkpoints, metrics.jsonl, export.msgpack:
the trained model for inference, e.g. `experiments.gaze --checkpoint`), `results.md`
(held-out MSE of every variant beside the identity baseline), `results.json`,
`sorted_errors.png` (fig. 4.6), `error_by_angle.png` (fig. 4.7), `examples.png` (input, each
variant's output, ground truth; fig. 4.8) and `redirect.png` (held-out eyes redirected over a
range of angles by the last variant; fig. 4.1). Ctrl-C or SIGTERM keeps the checkpoints; the
same command resumes.
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections
from absl import logging as absl_logging

from thesis_jax import core, deepwarp
from thesis_jax.deepwarp import VARIANT_NAMES

_PRESETS = os.path.join(os.path.dirname(__file__), "configs", "deepwarp.py")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any] | None:
    """Trains every variant in `config.variants`, then writes the report; None if interrupted."""
    deepwarp.check_config(config)
    core.presets.claim_workdir(
        config, workdir, may_differ=("log_every", "eval_every"), may_grow=("num_steps",)
    )
    exp = deepwarp.Experiment.create(config)
    absl_logging.info(
        "%d training pairs, %d held-out pairs, %d devices",
        len(exp.train),
        len(exp.test),
        exp.mesh.devices.size,
    )
    states = {}
    for variant in config.variants:
        run = deepwarp.train_variant(exp, variant, workdir)
        if run.interrupted:
            return None
        states[variant] = run.state
        deepwarp.export_variant(exp, variant, run.state, workdir)
    return deepwarp.write_report(exp, states, workdir)


def tour(workdir: str, budget: float = 1.0, seed: int = 0) -> Any:
    """The DeepWarp section of `experiments.tour`: `eyes` with a small budget."""
    from experiments.tour_section import TourSection, ordering, report_note, short_run

    # 1000 steps: at 500 the lightness correction's lead over CFW was within seed noise.
    steps = max(20, int(1000 * budget))
    config = core.get_config(
        "eyes",
        _PRESETS,
        short_run(
            steps,
            seed=seed,
            variants=("ss", "cfw", "cfw_lcm"),
            train_pairs=4000,
            test_pairs=500,
        ),
    )
    results = train_and_evaluate(config, workdir)
    if results is None:
        return None
    base = results["identity"]["mse"]
    return TourSection(
        title="DeepWarp: gaze redirection by learned warping (thesis ch. 4)",
        summary=(
            "Procedural eyes (identity, pose, lighting and gaze known exactly) redirected "
            "vertically by up to 30 degrees. The network predicts a flow coarse-to-fine and "
            "warps the input with a bilinear sampler; the lightness correction module whitens "
            f"what warping cannot create. {steps} steps per model, held-out identities."
        ),
        pictures=[
            (os.path.join(workdir, "examples.png"), "input, SS, CFW, CFW+LCM, ground truth"),
            (os.path.join(workdir, "redirect.png"), "held-out eyes redirected from -15 to +15"),
            (os.path.join(workdir, "sorted_errors.png"), "sorted normalized errors (fig. 4.6)"),
        ],
        table_header=("model", "held-out MSE (ours)", "relative to the input"),
        table_rows=[
            (VARIANT_NAMES[name], f"{row['mse']:.5f}", f"{row['mse'] / base:.2f}")
            for name, row in results.items()
        ],
        note=report_note(workdir),
        ordering=ordering(  # fig. 4.7, on the held-out error
            {name: row["mse"] for name, row in results.items()},
            ("cfw_lcm", "cfw", "ss", "identity"),
            VARIANT_NAMES,
            lower_is_better=True,
        )
        + ("" if results["cfw_lcm"]["mse"] < results["cfw"]["mse"] else LCM_NOTE),
    )


# Measured on 2 cores (the same on one XLA thread as on two), held-out MSE of CFW+LCM against CFW:
# at 1000 steps seed 0 0.00344 / 0.00372, seed 1 0.00364 / 0.00380, seed 2 0.00332 / 0.00384; at
# 500 steps seed 0 0.00419 / 0.00420. (With the mask starting at 0.02 instead of 0.002, CFW+LCM
# trailed by 4-5% at 500 steps.) The note is for a shorter budget or a seed where it trails.
LCM_NOTE = (
    " Why: the lightness correction starts as a slight uniform brightening (a mask of 0.002) "
    "and needs steps to learn where to whiten: at the default budget (1000 steps) it leads CFW "
    "by 4-14% on seeds 0, 1 and 2, at 500 steps by less than seed noise; on procedural eyes its "
    "gain stays modest in longer runs too (see the README's `eyes` run)."
)


if __name__ == "__main__":
    core.presets.run(
        train_and_evaluate,
        name="deepwarp",
        preset_file=_PRESETS,
        default_preset="eyes",
        check=deepwarp.check_config,
    )
