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

import dataclasses
import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging as absl_logging

from thesis_jax import core, deepwarp
from thesis_jax.core import parallel
from thesis_jax.data import eyes

_PRESETS = os.path.join(os.path.dirname(__file__), "configs", "deepwarp.py")

VARIANT_NAMES = {
    "identity": "Identity (input unchanged)",
    "ss": "SS (single scale)",
    "ms": "MS (two scales, no coarse warp)",
    "cfw": "CFW (coarse-to-fine warping)",
    "cfw_lcm": "CFW + LCM",
}


def load_pairs(config: ml_collections.ConfigDict) -> tuple[eyes.EyePairs, eyes.EyePairs]:
    """(train, test) pairs; test pairs come from identities that training never sees."""
    size = tuple(config.crop_size)
    if config.dataset == "procedural":
        common = dict(
            max_angle=config.max_angle,
            two_d=config.two_d,
            fixed_angle=config.fixed_angle or None,
            margin=config.margin,
            size=size,
            appearance=config.get("appearance", "default"),
        )
        train = eyes.generate_eye_pairs(
            config.train_pairs,
            identities=range(config.train_identities),
            seed=config.seed,
            **common,
        )
        first_test = 1_000_000  # far from any training identity
        test = eyes.generate_eye_pairs(
            config.test_pairs,
            identities=range(first_test, first_test + config.test_identities),
            seed=config.seed + 1,
            **common,
        )
        return train, test
    if config.dataset == "folder":
        pairs = eyes.load_eye_folder(
            os.path.expanduser(config.data_dir),
            max_angle=config.max_angle,
            margin=config.margin,
            size=size,
        )
        people = np.unique(pairs.identity)
        if len(people) < 2:
            raise ValueError(
                f"{config.data_dir} holds {len(people)} person; at least 2 are needed to hold "
                "one out for testing"
            )
        held_out = people[-max(1, len(people) // 5) :]
        is_test = np.isin(pairs.identity, held_out)
        return pairs.subset(np.flatnonzero(~is_test)), pairs.subset(np.flatnonzero(is_test))
    raise ValueError(f"unknown dataset {config.dataset!r}; choose procedural or folder")


def _angles(pairs: eyes.EyePairs, dims: int) -> np.ndarray:
    return np.asarray(pairs.angles[:, :dims], np.float32)


def batch_of(pairs: eyes.EyePairs, index: np.ndarray, dims: int) -> dict[str, np.ndarray]:
    return {
        "image": pairs.inputs[index],
        "landmarks": pairs.landmarks[index],
        "angle": _angles(pairs, dims)[index],
        "target": pairs.targets[index],
    }


@dataclasses.dataclass(frozen=True)
class Experiment:
    config: ml_collections.ConfigDict
    train: eyes.EyePairs
    test: eyes.EyePairs
    mesh: jax.sharding.Mesh

    def variant_config(self, variant: str) -> ml_collections.ConfigDict:
        config = ml_collections.ConfigDict(self.config.to_dict())
        config.model.variant = variant
        return config

    def predict(self, state: core.TrainState, pairs: eyes.EyePairs, **angle) -> dict:
        """Outputs of `state`'s model on `pairs` (optionally at `angles=` instead of theirs)."""
        apply_fn = state.apply_fn

        def run(variables, batch):
            return deepwarp.predict(variables[0], variables[1], batch, apply_fn=apply_fn)

        batch = {
            "image": pairs.inputs,
            "landmarks": pairs.landmarks,
            "angle": angle.get("angles", _angles(pairs, self.config.angle_dims)),
        }
        return parallel.map_batched(
            run,
            (state.params, state.model_state),
            batch,
            batch_size=self.config.eval_batch_size,
            mesh=self.mesh,
        )


def train_variant(exp: Experiment, variant: str, workdir: str) -> core.LoopResult:
    config = exp.variant_config(variant)
    state = deepwarp.init(jax.random.PRNGKey(config.seed), config)
    per_bin, remainder = divmod(config.batch_size, config.bins_per_batch)
    if remainder or not 0 <= config.hard_per_bin <= per_bin:
        raise ValueError(
            f"batch_size {config.batch_size} must split into {config.bins_per_batch} bins of "
            f"at least hard_per_bin={config.hard_per_bin} pairs"
        )
    sampler = deepwarp.BinnedSampler.create(
        exp.train.angles[:, 0],
        exp.train.tilt,
        max_angle=config.max_angle,
        num_bins=config.num_bins,
        hard_tilt=config.hard_tilt,
        bins_per_batch=config.bins_per_batch,
        easy_per_bin=per_bin - config.hard_per_bin,
        hard_per_bin=config.hard_per_bin,
    )
    parallel.local_batch_size(sampler.batch_size, exp.mesh)  # fails early on an uneven split
    eval_pairs = exp.test.subset(np.arange(min(len(exp.test), 512)))

    def batch_fn(step: int) -> dict[str, np.ndarray]:
        index = sampler.indices(step, config.seed)
        return parallel.process_slice(batch_of(exp.train, index, config.angle_dims))

    def eval_fn(state: core.TrainState) -> dict[str, float]:
        out = exp.predict(state, eval_pairs)
        errors = deepwarp.redirection_errors(
            out["output"], eval_pairs.aligned_targets(), eval_pairs.inputs
        )
        return {
            "mse": float(errors["mse"].mean()),
            "normalized": float(errors["normalized"].mean()),
        }

    return core.train(
        state,
        deepwarp.update,
        batch_fn,
        num_steps=config.num_steps,
        workdir=os.path.join(workdir, variant),
        mesh=exp.mesh,
        log_every=config.log_every,
        eval_every=config.eval_every,
        eval_fn=eval_fn,
        checkpoint_every=config.checkpoint_every,
        keep_checkpoints=config.keep_checkpoints,
        desc=f"deepwarp/{variant}",
    )


def results_table(results: dict[str, dict[str, float]], preset: str) -> str:
    lines = [
        f"# DeepWarp on `{preset}`: held-out identities",
        "",
        "| model | MSE | MSE / identity MSE | median normalized error |",
        "|---|---|---|---|",
    ]
    base = results["identity"]["mse"]
    for name, row in results.items():
        lines.append(
            f"| {VARIANT_NAMES[name]} | {row['mse']:.5f} | {row['mse'] / base:.3f} | "
            f"{row['median_normalized']:.3f} |"
        )
    lines += [
        "",
        "MSE between the synthesized and the ground-truth crops (pixel values in [0, 1]), "
        "averaged over held-out pairs (sec. 4.4.3). Normalized error: a pair's MSE divided by "
        "the MSE of the unchanged input (fig. 4.6).",
    ]
    return "\n".join(lines) + "\n"


def write_report(exp: Experiment, states: dict[str, core.TrainState], workdir: str) -> dict:
    config, test = exp.config, exp.test
    targets = test.aligned_targets()
    outputs = {v: exp.predict(s, test)["output"] for v, s in states.items()}
    identity = deepwarp.redirection_errors(test.inputs, targets, test.inputs)
    errors = {"identity": identity} | {
        v: deepwarp.redirection_errors(o, targets, test.inputs) for v, o in outputs.items()
    }
    results = {
        name: {
            "mse": float(e["mse"].mean()),
            "mean_normalized": float(e["normalized"].mean()),
            "median_normalized": float(np.median(e["normalized"])),
        }
        for name, e in errors.items()
    }
    table = results_table(results, config.preset)
    if jax.process_index() != 0:
        return results
    core.write_atomic(os.path.join(workdir, "results.md"), table)
    core.write_atomic(os.path.join(workdir, "results.json"), json.dumps(results, indent=2))
    labels = {v: VARIANT_NAMES[v] for v in outputs}
    deepwarp.plot_sorted_errors(
        {labels[v]: deepwarp.sorted_normalized_errors(errors[v]) for v in outputs},
        os.path.join(workdir, "sorted_errors.png"),
    )
    vertical = test.angles[:, 0]
    if np.ptp(vertical) > 0:
        edges = np.linspace(-config.max_angle, config.max_angle, config.num_bins + 1)
        by_angle = {  # the identity last, so each variant keeps its colour of fig. 4.6
            VARIANT_NAMES[name]: deepwarp.error_by_angle(errors[name]["mse"], vertical, edges)[:2]
            for name in (*outputs, "identity")
        }
        deepwarp.plot_error_by_angle(
            by_angle,
            os.path.join(workdir, "error_by_angle.png"),
            xlabel="vertical redirection (degrees)",
        )
    shown = np.arange(min(config.num_pictures, len(test)))
    deepwarp.save_triplets(
        os.path.join(workdir, "examples.png"),
        test.inputs[shown],
        {v: o[shown] for v, o in outputs.items()},
        targets[shown],
    )
    last = list(states)[-1]
    sweep = np.linspace(-config.max_angle / 2, config.max_angle / 2, 7)
    rows = []
    for i in shown[:4]:
        one = test.subset(np.full(len(sweep), i))
        angles = np.zeros((len(sweep), config.angle_dims), np.float32)
        angles[:, 0] = sweep
        rows.append(exp.predict(states[last], one, angles=angles)["output"])
    deepwarp.save_sweep(os.path.join(workdir, "redirect.png"), rows)
    print(table)
    return results


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any] | None:
    """Trains every variant in `config.variants`, then writes the report; None if interrupted."""
    unknown = set(config.variants) - set(deepwarp.VARIANTS)
    if unknown or not config.variants:
        raise ValueError(
            f"config.variants must name some of {deepwarp.VARIANTS}, got {tuple(config.variants)}"
        )
    if config.angle_dims != (2 if config.two_d else 1):
        raise ValueError("config.angle_dims must be 2 when config.two_d is set, else 1")
    core.presets.claim_workdir(config, workdir, may_differ=("log_every", "eval_every"))
    train, test = load_pairs(config)
    exp = Experiment(config=config, train=train, test=test, mesh=parallel.data_mesh())
    absl_logging.info(
        "%d training pairs, %d held-out pairs, %d devices",
        len(train),
        len(test),
        exp.mesh.devices.size,
    )
    states = {}
    for variant in config.variants:
        run = train_variant(exp, variant, workdir)
        if run.interrupted:
            return None
        states[variant] = run.state
        if jax.process_index() == 0:
            deepwarp.save_export(
                os.path.join(workdir, variant, "export.msgpack"),
                run.state.params,
                run.state.model_state,
                deepwarp.Architecture.from_config(exp.variant_config(variant)),
            )
    return write_report(exp, states, workdir)


def tour(workdir: str, budget: float = 1.0) -> Any:
    """The DeepWarp section of `experiments.tour`: `eyes` with a small budget."""
    from experiments.tour_section import TourSection

    steps = max(20, int(500 * budget))
    config = core.get_config(
        "eyes",
        _PRESETS,
        {
            "num_steps": steps,
            "variants": ("ss", "cfw", "cfw_lcm"),
            "train_pairs": 4000,
            "test_pairs": 500,
            "eval_every": 0,
            "log_every": max(1, steps // 10),
            "checkpoint_every": steps,
        },
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
        note="Full report: " + os.path.join(workdir, "results.md"),
    )


def main(config: ml_collections.ConfigDict, workdir: str) -> None:
    results = train_and_evaluate(config, workdir)
    if results is not None:
        absl_logging.info("report: %s", os.path.join(workdir, "results.md"))


if __name__ == "__main__":
    core.presets.run(main, name="deepwarp", preset_file=_PRESETS, default_preset="eyes")
