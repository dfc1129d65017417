r"""DANN experiments (thesis ch. 5): train the rows of Table 5.I and write the report.

    python -m experiments.dann                              # offline `digits` preset
    python -m experiments.dann --config=mnist5k_mnistm      # real MNIST -> MNIST-M, offline
    python -m experiments.dann --config=mnist5k_mnistm --config.num_seeds=3   # Table 5.I's mean
    python -m experiments.dann --config=mnist5k_mnistm_semi # a few target labels (fig. 5.5)
    python -m experiments.dann --config=mnist_mnistm --config.data_dir=DIR --config.bsds_dir=DIR

Writes into the workdir: one subfolder per trained model (checkpoints, metrics.jsonl; per seed
with `num_seeds > 1`), a `results.md` table shaped like Table 5.I, `results.json`, `curves.png`
(target accuracy over training), `tsne.png` (fig. 5.4: features of source vs target without and
with adaptation) and `examples.png` (fig. 5.2: the two domains). Interrupted runs (Ctrl-C,
SIGTERM) keep their checkpoints; the same command resumes them.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging as absl_logging

from thesis_jax import core, dann, thesis_results
from thesis_jax.dann.experiment import METHODS, Experiment
from thesis_jax.data.locations import beside_repository

_PRESETS = os.path.join(os.path.dirname(__file__), "configs", "dann.py")
TITLES = {method: spec.title for method, spec in METHODS.items()}


def _examples_png(pair: dann.DomainPair, path: str) -> None:
    n = 8
    source = pair.source_test[0][:n]
    target = pair.target_test[0][:n]
    core.save_png(path, core.image_grid(np.concatenate([source, target]), ncols=n), scale=3)


def train_seed(exp: Experiment, workdir: str) -> tuple[dict, dict, dict] | None:
    """Every model of one seed: (results, learning curves, evaluations); None if interrupted."""
    config = exp.config
    evaluations, curves = {}, {}
    for method in dann.models_to_train(config.methods):
        run = dann.train_model(exp, method, workdir)
        if run.interrupted:
            return None
        evaluations[method] = dann.evaluate_model(exp, dann.inference_params(run.state))
        if exp.pair.target_labelled:  # the curves are of target accuracy
            curves[method] = dann.learning_curve(os.path.join(workdir, method))
    results: dict[str, dict[str, Any]] = {}
    for method in config.methods:
        if method == "sa":
            results["sa"] = dann.subspace_alignment_row(exp, evaluations["source_only"])
        else:
            results[method] = {k: v for k, v in evaluations[method].items() if k != "features"}
    for method in ("source_only", "dann"):
        if method in evaluations:
            features = evaluations[method]["features"]
            results[method]["proxy_a_distance"] = dann.proxy_a_distance(
                features["source_test"], features["target_test"], seed=config.seed
            )
    return results, {m: c for m, c in curves.items() if m in config.methods}, evaluations


def _unlabelled_notes(results: dict[str, Any], count: int) -> list[str]:
    """What the report can say when the target has no labels: the source's held-out accuracy
    and how far apart the domains' features are."""
    rows = ["| method | source held-out accuracy | proxy A-distance |", "|---|---|---|"]
    for method, r in results.items():
        distance = f"{r['proxy_a_distance']:.3f}" if "proxy_a_distance" in r else ""
        rows.append(f"| {TITLES[method]} | {r['source_accuracy']:.4f} | {distance} |")
    return [
        *rows,
        "",
        f"The {count} target images have no labels (no --config.target_test_dir): target "
        "accuracy is not measured. Proxy A-distance (sec. 5.4.4): 2 (1 - 2 err) of a linear SVM "
        "telling source features from target ones; lower: the domains are harder to tell apart.",
    ]


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any] | None:
    """Trains every model of every seed and writes the report; None if interrupted.

    Returns the results of the first seed (method -> metrics), with `"seeds"` holding every
    seed's when `num_seeds > 1`.
    """
    dann.check_methods(config)
    if config.num_seeds < 1:
        raise core.ConfigError(f"num_seeds must be at least 1, got {config.num_seeds}")
    pair = dann.load_domain_pair(config)
    if pair.class_names:  # the folder pair: the classes are the source's subfolders
        config.num_classes = len(pair.class_names)
    core.presets.claim_workdir(config, workdir)  # config.json with the folders' class count
    if pair.class_names:
        classes = {"classes": list(pair.class_names), "mean": pair.mean.tolist()}
        core.write_atomic(os.path.join(workdir, "classes.json"), json.dumps(classes, indent=1))
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

    seeds = [config.seed + k for k in range(config.num_seeds)]
    all_results, all_curves = [], []
    for seed in seeds:
        seed_config = config.copy_and_resolve_references()
        seed_config.seed = seed
        seed_dir = workdir if len(seeds) == 1 else os.path.join(workdir, f"seed{seed}")
        outcome = train_seed(Experiment(seed_config, pair, exp.mesh, exp.predict), seed_dir)
        if outcome is None:
            return None
        results, curves, evaluations = outcome
        if seed == seeds[0]:
            panels = [
                (
                    title,
                    evaluations[m]["features"]["source_test"],
                    evaluations[m]["features"]["target_test"],
                )
                for m, title in (("source_only", "no adaptation"), ("dann", "DANN"))
                if m in evaluations
            ]
            if panels:
                dann.plot_tsne(
                    panels,
                    os.path.join(workdir, "tsne.png"),
                    seed=config.seed,
                    max_points_per_domain=config.tsne_points,
                )
        all_results.append(results)
        all_curves.append(curves)

    thesis = thesis_results.DANN.get(config.dataset)
    if all(all_curves):
        dann.plot_learning_curves(
            all_curves, os.path.join(workdir, "curves.png"), method_titles=TITLES, thesis=thesis
        )
    notes = [f"Data: {dann.pair_description(config)}"] if dann.pair_description(config) else []
    if pair.target_labelled:
        table = dann.results_table(
            all_results,
            title=f"DANN on `{config.preset}`: accuracy on the target test set",
            method_titles=TITLES,
            thesis=thesis,
            seeds=seeds,
            curves=[c for c in all_curves if c],
            notes=notes,
        )
    else:
        unlabelled = _unlabelled_notes(all_results[0], len(pair.target_train[0]))
        lines = [f"# DANN on `{config.preset}`", "", *unlabelled, "", *notes]
        table = "\n".join(lines) + "\n"
    core.write_atomic(os.path.join(workdir, "results.md"), table)
    summary = dict(all_results[0])
    if len(seeds) > 1:
        summary["seeds"] = dict(zip((str(s) for s in seeds), all_results, strict=True))
    core.write_atomic(os.path.join(workdir, "results.json"), json.dumps(summary, indent=2))
    if jax.process_index() == 0:
        print(table)
    return summary


def tour(workdir: str, budget: float = 1.0, seed: int = 0) -> Any:
    """The DANN section of `experiments.tour`: real MNIST -> MNIST-M with a small budget."""
    from experiments.tour_section import TourSection, ordering, report_note, short_run

    config = core.get_config("mnist5k_mnistm", _PRESETS)
    steps = max(20, int(config.tour_steps * budget))
    # SA's subspace size searched on a coarser range than the preset's (2, 60): the search fits
    # one SVM per size, most of the section's time after training.
    overrides = short_run(steps, evaluations=8, seed=seed, tsne_points=300, sa_components=(30, 50))
    # The SVMs that re-score every model fit on fewer source features on a smaller budget.
    overrides["svm_max_examples"] = int(config.svm_max_examples * min(1.0, max(budget, 0.2)))
    photos = "BSDS500 training photos"
    if not os.path.isdir(beside_repository(config.bsds_dir)):
        overrides["bsds_dir"] = ""  # a clone without ../shared/data: the embedded photos
        photos = "the photos embedded in scikit-image (BSDS500 not found)"
    config = core.get_config("mnist5k_mnistm", _PRESETS, overrides)
    results = train_and_evaluate(config, workdir)
    if results is None:
        return None
    thesis = thesis_results.DANN["mnist_mnistm"]
    rows = [
        (
            TITLES[m],
            f"{r.get('target_accuracy', r.get('target_accuracy_svm')):.3f}",
            f"{thesis[m]:.3f}",
        )
        for m, r in results.items()
    ]
    return TourSection(
        title="DANN: domain-adversarial training (thesis ch. 5)",
        summary=(
            "4,000 real MNIST digits (source, labelled) -> the same digits blended over patches "
            f"of {photos}, the MNIST-M recipe of sec. 5.4.4 (target, unlabelled). A gradient "
            f"reversal layer makes the features domain-invariant. {steps} steps per model; the "
            f"full preset ({config.num_steps} steps, `python -m experiments.dann "
            "--config=mnist5k_mnistm --config.num_seeds=3`) is in the README."
        ),
        pictures=[
            (os.path.join(workdir, "examples.png"), "source (top) and target (bottom) digits"),
            (os.path.join(workdir, "curves.png"), "target accuracy during training"),
            (
                os.path.join(workdir, "tsne.png"),
                "t-SNE of the features, source blue, target red (fig. 5.4)",
            ),
        ],
        table_header=("method", "target accuracy (ours)", "thesis, MNIST -> MNIST-M"),
        table_rows=rows,
        note=report_note(workdir),
        ordering=ordering(  # Table 5.1, MNIST -> MNIST-M
            {m: r.get("target_accuracy", r.get("target_accuracy_svm")) for m, r in results.items()},
            ("train_on_target", "dann", "sa", "source_only"),
            TITLES,
        ),
    )


if __name__ == "__main__":
    core.presets.run(
        train_and_evaluate,
        name="dann",
        preset_file=_PRESETS,
        default_preset="digits",
        check=dann.check_config,
    )
