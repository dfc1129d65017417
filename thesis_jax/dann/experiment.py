"""The models of one DANN experiment: Table 5.I's rows and the semi-supervised ones of fig. 5.5.

`METHODS` names every model an experiment can train, `train_model` trains one with the core loop
(resumable; its learning curve on the target test set goes to `<workdir>/<method>/metrics.jsonl`)
and `evaluate_model` computes the network's and the retrained linear SVM's target accuracies and
the features the report draws (sec. 5.4.1, 5.4.3).

Methods (sec. 5.4.1, 5.4.4):
  source_only               no domain branch, source labels only (the lower bound)
  sa                        subspace alignment on the source-only network's features (derived)
  dann                      the domain-adversarial network
  train_on_target           trained on the target with all labels revealed (the upper bound)
  target_labels_only        trained on the `labelled_per_class` revealed target labels alone
  source_and_target_labels  source labels plus the revealed target labels, no adaptation
  dann_and_target_labels    DANN with the revealed target labels joining the label loss
The last three are the semi-supervised setting of fig. 5.5 ("Real", "Syn + Real",
"Syn + Real + Adapted").
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from thesis_jax import core
from thesis_jax.core import parallel
from thesis_jax.core.presets import ConfigError
from thesis_jax.dann import baselines, domains, train


@dataclasses.dataclass(frozen=True)
class Method:
    """One row of the report: its title, the `train.update` mode, which target labels it sees."""

    title: str
    mode: str | None  # None: derived from the source-only network (SA)
    target_labels: str = "none"  # "none", "revealed" (join the source), "only" (train on them)


METHODS = {
    "source_only": Method("Source only", "source_only"),
    "sa": Method("SA (Fernando et al., 2013)", None),
    "dann": Method("DANN", "dann"),
    "train_on_target": Method("Train on target", "train_on_target"),
    "target_labels_only": Method("Target labels only", "train_on_target", "only"),
    "source_and_target_labels": Method("Source + target labels", "source_only", "revealed"),
    "dann_and_target_labels": Method("DANN + target labels", "dann", "revealed"),
}


def check_config(config: ml_collections.ConfigDict) -> None:
    """Everything `check_methods` checks, and a batch that halves into source and target
    halves that split over the devices; raises ConfigError."""
    check_methods(config)
    if config.batch_size % 2:
        raise ConfigError(
            f"config.batch_size must be even (half source, half target), got {config.batch_size}"
        )
    parallel.check_batch_split(config.batch_size // 2, "half of config.batch_size")
    if config.labelled_per_class:
        parallel.check_batch_split(
            max(config.batch_size // 8, 1), "the labelled target share (config.batch_size // 8)"
        )


def check_methods(config: ml_collections.ConfigDict) -> None:
    """Unknown methods, or a mismatch between the semi-supervised methods and
    `labelled_per_class`, raise ConfigError (a ValueError the binaries print as one line)."""
    unknown = sorted(set(config.methods) - set(METHODS))
    if unknown:
        raise ConfigError(f"unknown methods {unknown}; choose from {list(METHODS)}")
    semi = [m for m in config.methods if METHODS[m].target_labels != "none"]
    if semi and config.labelled_per_class < 1:
        raise ConfigError(
            f"methods {semi} need revealed target labels: set --config.labelled_per_class "
            "to a positive number (labels per class)"
        )
    if config.get("dataset") == "folder":
        _check_folder(config)
    if config.labelled_per_class and not semi:
        raise ConfigError(
            f"labelled_per_class={config.labelled_per_class} is used only by the "
            "semi-supervised methods; add some of "
            f"{[m for m, v in METHODS.items() if v.target_labels != 'none']} to --config.methods "
            "(or use the *_semi preset)"
        )


def _check_folder(config: ml_collections.ConfigDict) -> None:
    """The `folder` pair: both folders named, and only methods its labels allow."""
    wanted = {
        "source_dir": "one subfolder of labelled images per class",
        "target_dir": "the unlabelled images to adapt to",
    }
    for key, what in wanted.items():
        if not config.get(key):
            raise ConfigError(f"the folder preset needs --config.{key}: {what}")
    labelled = [
        m for m in config.methods if m == "train_on_target" or METHODS[m].target_labels != "none"
    ]
    if labelled:
        raise ConfigError(
            f"methods {labelled} train on target labels, which the folder preset does not have "
            "(its target images are unlabelled); use source_only, sa and dann"
        )
    if "sa" in config.methods and not config.get("target_test_dir"):
        raise ConfigError(
            "sa picks its subspace size on labelled target images: give "
            "--config.target_test_dir (one subfolder per class) or leave sa out of methods"
        )


def models_to_train(methods: tuple[str, ...]) -> list[str]:
    """The networks `methods` need, in report order (SA needs the source-only network)."""
    needed = [m for m in methods if METHODS[m].mode is not None]
    if "sa" in methods and "source_only" not in needed:
        needed.insert(0, "source_only")
    return needed


@dataclasses.dataclass(frozen=True)
class Experiment:
    """What every model of one run shares: config, data, mesh, and one jitted `predict`."""

    config: ml_collections.ConfigDict
    pair: domains.DomainPair
    mesh: jax.sharding.Mesh
    predict: Any

    @classmethod
    def create(cls, config: ml_collections.ConfigDict, pair: domains.DomainPair) -> Experiment:
        mesh = parallel.data_mesh()
        apply_fn = train.make_model(config).apply
        predict = parallel.jit_apply(
            lambda params, batch: train.predict(params, batch, apply_fn=apply_fn), mesh
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


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(logits, -1) == labels))


def _subsample(n: int, k: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).permutation(n)[: min(n, k)])


def train_model(exp: Experiment, method: str, workdir: str) -> core.LoopResult:
    """Trains the network of `method` in `workdir/method` (resuming what is there)."""
    config, pair, spec = exp.config, exp.pair, METHODS[method]
    if spec.mode is None:
        raise ValueError(f"{method!r} is not trained: it is derived from the source-only network")
    if spec.target_labels == "only":
        revealed = domains.labelled_target_indices(
            pair.target_train[1], config.labelled_per_class, config.seed
        )
        x, y = pair.target_train
        pair = dataclasses.replace(pair, target_train=(x[revealed], y[revealed]))
    state = train.init(jax.random.PRNGKey(config.seed), config, spec.mode)
    batch_fn = domains.make_batch_fn(
        pair,
        batch_size=config.batch_size,
        seed=config.seed,
        labelled_per_class=config.labelled_per_class if spec.target_labels == "revealed" else 0,
        max_shift=config.max_shift,
    )
    # Scored on the target test images, or on the source's held-out ones when the target has
    # no labels (the folder pair without a test folder).
    scored = "target" if exp.pair.target_labelled else "source"
    test_x, test_y = exp.pair.target_test if scored == "target" else exp.pair.source_test
    eval_subset = _subsample(len(test_x), 2000, config.seed)

    def eval_fn(state: core.TrainState) -> dict[str, float]:
        out = exp.features(train.inference_params(state), test_x[eval_subset])
        return {f"{scored}_accuracy": accuracy(out["logits"], test_y[eval_subset])}

    return core.train(
        state,
        train.update,
        batch_fn,
        workdir=os.path.join(workdir, method),
        mesh=exp.mesh,
        eval_fn=eval_fn,
        **core.loop_options(config),
        desc=f"{config.preset}/{method}/seed{config.seed}",
    )


def evaluate_model(exp: Experiment, params: Any) -> dict[str, Any]:
    """Network and linear-SVM target accuracies, plus the features the report needs."""
    config, pair = exp.config, exp.pair
    src_idx = _subsample(len(pair.source_train[0]), config.svm_max_examples, config.seed)
    source_train = exp.features(params, pair.source_train[0][src_idx])
    source_test = exp.features(params, pair.source_test[0])
    target_test = exp.features(params, pair.target_test[0])
    result = {
        "source_accuracy": accuracy(source_test["logits"], pair.source_test[1]),
        "features": {
            "source_train_hidden": source_train["hidden"],
            "source_train_labels": pair.source_train[1][src_idx],
            "source_test": source_test["features"],
            "target_test": target_test["features"],
            "target_test_hidden": target_test["hidden"],
        },
    }
    if not pair.target_labelled:  # the folder pair without a test folder: nothing to score
        return result
    result["target_accuracy"] = accuracy(target_test["logits"], pair.target_test[1])
    if config.svm_retrain:
        result["target_accuracy_svm"] = baselines.linear_svm_accuracy(
            source_train["hidden"],
            pair.source_train[1][src_idx],
            target_test["hidden"],
            pair.target_test[1],
            seed=config.seed,
        )
    return result


def subspace_alignment_row(exp: Experiment, source_only: dict[str, Any]) -> dict[str, float | int]:
    """SA (sec. 5.4.1) on the source-only network's last hidden layer, d picked on the target."""
    config, features = exp.config, source_only["features"]
    low, high = config.sa_components
    sa = baselines.subspace_alignment_accuracy(
        features["source_train_hidden"],
        features["source_train_labels"],
        features["target_test_hidden"],
        exp.pair.target_test[1],
        components=range(low, high + 1),
        seed=config.seed,
    )
    return {"target_accuracy_svm": sa.best_accuracy, "num_components": sa.best_num_components}
