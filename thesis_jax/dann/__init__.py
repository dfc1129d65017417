"""DANN: domain-adversarial training of neural networks (thesis ch. 5).

Pure functions over pytrees:

    state = dann.init(rng, config, mode="dann")        # TrainState
    state, metrics = dann.update(state, batch)          # jit / shard it as you like
    value, metrics = dann.loss(params, batch, rng, lam, apply_fn=..., mode="dann")
    features = dann.gradient_reversal(features, lam)    # use the GRL in your own model
"""

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
)
from thesis_jax.dann.grl import gradient_reversal
from thesis_jax.dann.networks import ARCHITECTURES, DANN, max_norm_projection
from thesis_jax.dann.schedules import lambda_schedule, learning_rate_schedule, progress
from thesis_jax.dann.train import MODES, Hparams, init, loss, make_model, predict, update

__all__ = [
    "ARCHITECTURES",
    "DANN",
    "MODES",
    "PAIRS",
    "DomainPair",
    "Hparams",
    "SAResult",
    "fit_linear_svm",
    "gradient_reversal",
    "init",
    "labelled_target_indices",
    "lambda_schedule",
    "learning_rate_schedule",
    "linear_svm_accuracy",
    "load_domain_pair",
    "loss",
    "make_batch_fn",
    "make_model",
    "max_norm_projection",
    "plot_tsne",
    "predict",
    "progress",
    "proxy_a_distance",
    "subspace_alignment",
    "subspace_alignment_accuracy",
    "tsne_embedding",
    "update",
]
