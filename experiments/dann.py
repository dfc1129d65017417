r"""DANN experiments (thesis ch. 5): train the rows of Table 5.I and write the report.

    python -m experiments.dann                              # offline `digits` preset
    python -m experiments.dann --config=mnist_mnistm --config.data_dir=DIR --config.bsds_dir=DIR
    python -m experiments.dann --config.num_steps=200 --workdir=/tmp/dann

Writes into the workdir: one subfolder per trained model (checkpoints, metrics.jsonl), a
`results.md` table shaped like Table 5.I, `results.json`, `tsne.png` (fig. 5.4: features of
source vs target without and with adaptation) and `examples.png` (fig. 5.2: the two domains).
Interrupted runs (Ctrl-C, SIGTERM) keep their checkpoints; the same command resumes them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging as absl_logging

from thesis_jax import core, dann
from thesis_jax.core import parallel

_PRESETS = os.path.join(os.path.dirname(__file__), "configs", "dann.py")

METHOD_NAMES = {
    "source_only": "Source only",
    "sa": "SA (Fernando et al., 2013)",
    "dann": "DANN",
    "train_on_target": "Train on target",
}


@dataclasses.dataclass(frozen=True)
class Experiment:
    """What every model of one run shares: config, data, mesh, and one jitted `predict`."""

    config: ml_collections.ConfigDict
    pair: dann.DomainPair
    mesh: jax.sharding.Mesh
    predict: Any

    @classmethod
    def create(cls, config: ml_collections.ConfigDict, pair: dann.DomainPair) -> Experiment:
        mesh = parallel.data_mesh()
        apply_fn = dann.make_model(config).apply
        predict = parallel.jit_apply(
            lambda params, batch: dann.predict(params, batch, apply_fn=apply_fn), mesh
        )
        return cls(config=config, pair=pair, mesh=mesh, predict=predict)

    def features(self, params: Any, images: np.ndarray) -> dict[str, np.ndarray]:
        """Logits, G_f features and G_y hidden activations of uint8 `images`, in batches."""
        return parallel.map_batched(
            self.predict,
            params,
            {"image": self.pair.normalize(images)},
            batch_size=self.config.eval_batch_size,
            mesh=self.mesh,
        )


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, -1) == labels))


def _subsample(n: int, k: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).permutation(n)[: min(n, k)])


def train_model(exp: Experiment, mode: str, workdir: str) -> core.LoopResult:
    """Trains one network (DANN or a baseline) with the core loop."""
    config, pair = exp.config, exp.pair
    state = dann.init(jax.random.PRNGKey(config.seed), config, mode)
    batch_fn = dann.make_batch_fn(
        pair,
        batch_size=config.batch_size,
        seed=config.seed,
        labelled_per_class=config.labelled_per_class if mode != "train_on_target" else 0,
        max_shift=config.max_shift,
    )
    test_x, test_y = pair.target_test
    eval_subset = _subsample(len(test_x), 2000, config.seed)

    def eval_fn(state: core.TrainState) -> dict[str, float]:
        out = exp.features(state.params, test_x[eval_subset])
        return {"target_accuracy": _accuracy(out["logits"], test_y[eval_subset])}

    return core.train(
        state,
        dann.update,
        batch_fn,
        num_steps=config.num_steps,
        workdir=os.path.join(workdir, mode),
        mesh=exp.mesh,
        log_every=config.log_every,
        eval_every=config.eval_every,
        eval_fn=eval_fn,
        checkpoint_every=config.checkpoint_every,
        keep_checkpoints=config.keep_checkpoints,
        desc=f"{pair.name}/{mode}",
    )


def evaluate_model(exp: Experiment, params: Any) -> dict[str, Any]:
    """Network and linear-SVM target accuracies, plus the features the report needs."""
    config, pair = exp.config, exp.pair
    src_idx = _subsample(len(pair.source_train[0]), config.svm_max_examples, config.seed)
    source_train = exp.features(params, pair.source_train[0][src_idx])
    source_test = exp.features(params, pair.source_test[0])
    target_test = exp.features(params, pair.target_test[0])
    result = {
        "target_accuracy": _accuracy(target_test["logits"], pair.target_test[1]),
        "source_accuracy": _accuracy(source_test["logits"], pair.source_test[1]),
        "features": {
            "source_train_hidden": source_train["hidden"],
            "source_train_labels": pair.source_train[1][src_idx],
            "source_test": source_test["features"],
            "target_test": target_test["features"],
            "target_test_hidden": target_test["hidden"],
        },
    }
    if config.svm_retrain:
        result["target_accuracy_svm"] = dann.linear_svm_accuracy(
            source_train["hidden"],
            pair.source_train[1][src_idx],
            target_test["hidden"],
            pair.target_test[1],
            seed=config.seed,
        )
    return result


def _gap(accuracy: float | None, low: float | None, high: float | None) -> str:
    """Share of the source-only -> train-on-target gap a method covers (Table 5.I brackets)."""
    if accuracy is None or low is None or high is None or high <= low:
        return ""
    return f"{100 * (accuracy - low) / (high - low):.1f}%"


def results_table(
    results: Mapping[str, Mapping[str, float]], preset: str, thesis: Mapping[str, float] | None
) -> str:
    """Markdown shaped like Table 5.I: accuracy on the target test set and share of the gap."""
    columns = ("target_accuracy", "target_accuracy_svm")
    bounds = {
        key: (results.get("source_only", {}).get(key), results.get("train_on_target", {}).get(key))
        for key in columns
    }
    lines = [
        f"# DANN on `{preset}`: accuracy on the target test set",
        "",
        "| method | network | linear SVM | gap covered | thesis |",
        "|---|---|---|---|---|",
    ]
    for method, row in results.items():
        cells = [f"{row[k]:.4f}" if k in row else "" for k in columns]
        key = next(k for k in columns if k in row)  # the network's, else the SVM's (SA)
        gap = _gap(row[key], *bounds[key]) if method in ("sa", "dann") else ""
        reference = f"{thesis[method]:.4f}" if thesis and method in thesis else ""
        lines.append(f"| {METHOD_NAMES[method]} | {' | '.join(cells)} | {gap} | {reference} |")
    lines += [
        "",
        "'network': the trained network's own predictions. 'linear SVM': its last hidden layer "
        "with the last layer retrained as a linear SVM on source features (how the thesis "
        "compares with SA in Table 5.I). 'gap covered': (method - source only) / (train on "
        "target - source only), on the network column, for SA on the SVM column.",
    ]
    if thesis:
        lines.append("'thesis': Table 5.I of the thesis for the same source/target pair.")
    return "\n".join(lines) + "\n"


def _examples_png(pair: dann.DomainPair, path: str) -> None:
    n = 8
    source = pair.source_test[0][:n]
    target = pair.target_test[0][:n]
    core.save_png(path, core.image_grid(np.concatenate([source, target]), ncols=n), scale=3)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any] | None:
    """Trains every model `config.methods` needs and writes the report; None if interrupted."""
    from experiments.configs.dann import THESIS_TABLE

    unknown = set(config.methods) - set(METHOD_NAMES)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {list(METHOD_NAMES)}")
    core.config.claim_workdir(config, workdir)
    pair = dann.load_domain_pair(config)
    exp = Experiment.create(config, pair)
    absl_logging.info(
        "%s: %d source / %d target training images, %d target test images, %d devices",
        pair.name,
        len(pair.source_train[0]),
        len(pair.target_train[0]),
        len(pair.target_test[0]),
        exp.mesh.devices.size,
    )
    _examples_png(pair, os.path.join(workdir, "examples.png"))

    modes = [m for m in ("source_only", "dann", "train_on_target") if m in config.methods]
    if "sa" in config.methods and "source_only" not in modes:
        modes.insert(0, "source_only")
    evaluations = {}
    for mode in modes:
        run = train_model(exp, mode, workdir)
        if run.interrupted:
            return None
        evaluations[mode] = evaluate_model(exp, run.state.params)

    results: dict[str, dict[str, float]] = {}
    for method in config.methods:
        if method == "sa":
            feats = evaluations["source_only"]["features"]
            low, high = config.sa_components
            sa = dann.subspace_alignment_accuracy(
                feats["source_train_hidden"],
                feats["source_train_labels"],
                feats["target_test_hidden"],
                pair.target_test[1],
                components=range(low, high + 1),
                seed=config.seed,
            )
            results["sa"] = {
                "target_accuracy_svm": sa.best_accuracy,
                "num_components": sa.best_num_components,
            }
        else:
            ev = evaluations[method]
            results[method] = {k: v for k, v in ev.items() if k != "features"}

    panels = []
    for mode, title in (("source_only", "no adaptation"), ("dann", "DANN")):
        if mode in evaluations:
            feats = evaluations[mode]["features"]
            panels.append((title, feats["source_test"], feats["target_test"]))
            results[mode]["proxy_a_distance"] = dann.proxy_a_distance(
                feats["source_test"], feats["target_test"], seed=config.seed
            )
    if panels:
        dann.plot_tsne(
            panels,
            os.path.join(workdir, "tsne.png"),
            seed=config.seed,
            max_points_per_domain=config.tsne_points,
        )
    table = results_table(results, config.preset, THESIS_TABLE.get(config.dataset))
    core.write_atomic(os.path.join(workdir, "results.md"), table)
    core.write_atomic(os.path.join(workdir, "results.json"), json.dumps(results, indent=2))
    if jax.process_index() == 0:
        print(table)
    return results


def tour(workdir: str, budget: float = 1.0) -> Any:
    """The DANN section of `experiments.tour`: `digits` with a small budget."""
    from experiments.configs.dann import THESIS_TABLE
    from experiments.tour_section import TourSection

    steps = max(20, int(600 * budget))
    config = core.get_config(
        "digits",
        _PRESETS,
        {
            "num_steps": steps,
            "eval_every": 0,
            "log_every": max(1, steps // 10),
            "checkpoint_every": steps,
            "tsne_points": 300,
        },
    )
    results = train_and_evaluate(config, workdir)
    if results is None:
        return None
    thesis = THESIS_TABLE["mnist_mnistm"]
    rows = [
        (
            METHOD_NAMES[m],
            f"{r.get('target_accuracy', r['target_accuracy_svm']):.3f}",
            f"{thesis[m]:.3f}",
        )
        for m, r in results.items()
    ]
    return TourSection(
        title="DANN: domain-adversarial training (thesis ch. 5)",
        summary=(
            "sklearn's handwritten digits (source, labelled) -> the same kind of digits blended "
            "over photo patches with the MNIST-M recipe (target, unlabelled). A gradient "
            f"reversal layer makes the features domain-invariant. {steps} steps per model."
        ),
        pictures=[
            (os.path.join(workdir, "examples.png"), "source (top) and target (bottom) digits"),
            (
                os.path.join(workdir, "tsne.png"),
                "t-SNE of the features, source blue, target red (fig. 5.4)",
            ),
        ],
        table_header=("method", "target accuracy, digits (ours)", "thesis, MNIST -> MNIST-M"),
        table_rows=rows,
        note="Full report: " + os.path.join(workdir, "results.md"),
    )


def main(config: ml_collections.ConfigDict, workdir: str) -> None:
    results = train_and_evaluate(config, workdir)
    if results is not None:
        absl_logging.info("report: %s", os.path.join(workdir, "results.md"))


if __name__ == "__main__":
    core.config.run(main, name="dann", preset_file=_PRESETS, default_preset="digits")
