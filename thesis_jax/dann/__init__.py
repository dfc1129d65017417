"""DANN: domain-adversarial training of neural networks (thesis ch. 5).

Pure functions over pytrees:

    state = dann.init(rng, config, mode="dann")        # TrainState (hparams: mode, schedules)
    state, metrics = dann.update(state, batch)          # jit / shard it as you like
    value, (metrics, model_state) = dann.loss(
        params, batch, rng, apply_fn=state.apply_fn, hparams=state.hparams, lam=0.5)
    outputs = dann.predict(params, {"image": images}, apply_fn=state.apply_fn)  # a dict
    features = dann.gradient_reversal(features, lam)    # use the GRL in your own model
"""

from thesis_jax.dann import report
from thesis_jax.dann.analysis import plot_tsne, proxy_a_distance, tsne_embedding
from thesis_jax.dann.baselines import (
    SAResult,
    fit_linear_svm,
    linear_svm_accuracy,
    subspace_alignment,
    subspace_alignment_accuracy,
)
from thesis_jax.dann.domains import (
    PAIRS,
    DomainPair,
    labelled_target_indices,
    load_domain_pair,
    make_batch_fn,
    pair_description,
)
from thesis_jax.dann.experiment import (
    METHODS,
    Experiment,
    Method,
    check_config,
    check_methods,
    evaluate_model,
    models_to_train,
    subspace_alignment_row,
    train_model,
)
from thesis_jax.dann.grl import gradient_reversal
from thesis_jax.dann.networks import ARCHITECTURES, DANN
from thesis_jax.dann.report import learning_curve, plot_learning_curves, results_table, stability
from thesis_jax.dann.schedules import lambda_schedule, learning_rate_schedule, progress
from thesis_jax.dann.train import (
    MODES,
    Hparams,
    inference_params,
    init,
    loss,
    make_model,
    predict,
    update,
)

__all__ = [
    "ARCHITECTURES",
    "DANN",
    "METHODS",
    "MODES",
    "PAIRS",
    "DomainPair",
    "Experiment",
    "Hparams",
    "Method",
    "SAResult",
    "check_config",
    "check_methods",
    "evaluate_model",
    "fit_linear_svm",
    "gradient_reversal",
    "inference_params",
    "init",
    "labelled_target_indices",
    "lambda_schedule",
    "learning_curve",
    "learning_rate_schedule",
    "linear_svm_accuracy",
    "load_domain_pair",
    "loss",
    "make_batch_fn",
    "make_model",
    "models_to_train",
    "pair_description",
    "plot_learning_curves",
    "plot_tsne",
    "predict",
    "progress",
    "proxy_a_distance",
    "report",
    "results_table",
    "stability",
    "subspace_alignment",
    "subspace_alignment_accuracy",
    "subspace_alignment_row",
    "train_model",
    "tsne_embedding",
    "update",
]
