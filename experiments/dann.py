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


def _features(
    state: core.TrainState,
    images: np.ndarray,
    pair: dann.DomainPair,
    config: ml_collections.ConfigDict,
    mesh: jax.sharding.Mesh,
) -> dict[str, np.ndarray]:
    """Logits, G_f features and G_y hidden activations of `images` (uint8) in batches."""
    predict = parallel.jit_apply(
        lambda params, batch: dann.predict(params, batch, apply_fn=state.apply_fn), mesh
    )
    normalized = {"image": pair.normalize(images)}
    return parallel.map_batched(
        predict, state.params, normalized, batch_size=config.eval_batch_size, mesh=mesh
    )


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, -1) == labels))


def _subsample(n: int, k: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).permutation(n)[: min(n, k)])


def train_model(
    config: ml_collections.ConfigDict,
    pair: dann.DomainPair,
    mode: str,
    workdir: str,
    mesh: jax.sharding.Mesh,
) -> core.LoopResult:
    """Trains one network (DANN or a baseline) with the core loop."""
    state = dann.init(jax.random.PRNGKey(config.seed), config, mode)
    batch_fn = dann.make_batch_fn(
        pair,
        batch_size=config.batch_size,
        seed=config.seed,
        labelled_per_class=config.labelled_per_class if mode != "train_on_target" else 0,
    )
    test_x, test_y = pair.target_test
    eval_subset = _subsample(len(test_x), 2000, config.seed)

    def eval_fn(state: core.TrainState) -> dict[str, float]:
        out = _features(state, test_x[eval_subset], pair, config, mesh)
        return {"target_accuracy": _accuracy(out["logits"], test_y[eval_subset])}

    return core.train(
        state,
        dann.update,
        batch_fn,
        num_steps=config.num_steps,
        workdir=os.path.join(workdir, mode),
        mesh=mesh,
        log_every=config.log_every,
        eval_every=config.eval_every,
        eval_fn=eval_fn,
        checkpoint_every=config.checkpoint_every,
        keep_checkpoints=config.keep_checkpoints,
        desc=f"{pair.name}/{mode}",
    )


def evaluate_model(
    state: core.TrainState,
    pair: dann.DomainPair,
    config: ml_collections.ConfigDict,
    mesh: jax.sharding.Mesh,
) -> dict[str, Any]:
    """Network and linear-SVM target accuracies, plus the features the report needs."""
    seed = config.seed
    src_idx = _subsample(len(pair.source_train[0]), config.svm_max_examples, seed)
    source_train = _features(state, pair.source_train[0][src_idx], pair, config, mesh)
    source_test = _features(state, pair.source_test[0], pair, config, mesh)
    target_test = _features(state, pair.target_test[0], pair, config, mesh)
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
            seed=seed,
        )
    return result


def _gap(accuracy: float, low: float, high: float) -> float | None:
    return (accuracy - low) / (high - low) if high > low else None


def results_table(
    results: Mapping[str, Mapping[str, float]], preset: str, thesis: Mapping[str, float] | None
) -> str:
    """Markdown shaped like Table 5.I: accuracy on the target test set and share of the gap."""
    key = (
        "target_accuracy_svm"
        if all("target_accuracy_svm" in r for r in results.values())
        else "target_accuracy"
    )
    low = results.get("source_only", {}).get(key)
    high = results.get("train_on_target", {}).get(key)
    lines = [
        f"# DANN on `{preset}`: accuracy on the target test set",
        "",
        "| method | target accuracy | gap covered | network accuracy | thesis |",
        "|---|---|---|---|---|",
    ]
    for method, row in results.items():
        accuracy = row[key]
        gap = _gap(accuracy, low, high) if low is not None and high is not None else None
        gap_text = f"{100 * gap:.1f}%" if gap is not None and method in ("sa", "dann") else ""
        network = f"{row['target_accuracy']:.4f}" if "target_accuracy" in row else ""
        reference = f"{thesis[method]:.4f}" if thesis and method in thesis else ""
        lines.append(
            f"| {METHOD_NAMES[method]} | {accuracy:.4f} | {gap_text} | {network} | {reference} |"
        )
    lines += [
        "",
        f"'target accuracy': {
            'the last layer retrained with a linear SVM on source features, as '
            'the thesis does for Table 5.I'
            if key.endswith('svm')
            else 'the network itself'
        }; 'gap covered': (method - source only) / "
        "(train on target - source only).",
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
    os.makedirs(workdir, exist_ok=True)
    core.write_atomic(os.path.join(workdir, "config.json"), config.to_json_best_effort(indent=2))
    mesh = parallel.data_mesh()
    pair = dann.load_domain_pair(config)
    absl_logging.info(
        "%s: %d source / %d target training images, %d target test images, %d devices",
        pair.name,
        len(pair.source_train[0]),
        len(pair.target_train[0]),
        len(pair.target_test[0]),
        mesh.devices.size,
    )
    _examples_png(pair, os.path.join(workdir, "examples.png"))

    modes = [m for m in ("source_only", "dann", "train_on_target") if m in config.methods]
    if "sa" in config.methods and "source_only" not in modes:
        modes.insert(0, "source_only")
    evaluations = {}
    for mode in modes:
        run = train_model(config, pair, mode, workdir, mesh)
        if run.interrupted:
            return None
        evaluations[mode] = evaluate_model(run.state, pair, config, mesh)

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
            if not config.svm_retrain:
                results["sa"]["target_accuracy"] = sa.best_accuracy
        else:
            ev = evaluations[method]
            results[method] = {k: v for k, v in ev.items() if k != "features"}
    if "sa" in results and "target_accuracy" not in results["sa"] and not config.svm_retrain:
        results["sa"]["target_accuracy"] = results["sa"]["target_accuracy_svm"]

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
    key = "target_accuracy_svm" if config.svm_retrain else "target_accuracy"
    rows = [(METHOD_NAMES[m], f"{results[m][key]:.3f}", f"{thesis[m]:.3f}") for m in results]
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
