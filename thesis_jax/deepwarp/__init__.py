"""DeepWarp: gaze redirection by learned coarse-to-fine warping (thesis ch. 4).

Pure functions over pytrees:

    state = deepwarp.init(rng, config)                        # TrainState (Adam, BatchNorm stats)
    value, (metrics, model_state) = deepwarp.loss(params, batch, rng, apply_fn=...,
                                                  hparams=..., model_state=...)
    state, metrics = deepwarp.update(state, batch)             # jit / shard it as you like
    out = deepwarp.predict(params, batch, apply_fn=..., model_state=...)  # out["output"], ["flow"]
    warped = deepwarp.bilinear_warp(image, flow)               # the sampler, with its own VJP
    params, model_state, arch = deepwarp.load_export(path)     # a trained model, for inference

A batch holds `image` (B, H, W, 3) eye crops in [0, 1], their 7 `landmarks` (B, 7, 2) and the
redirection `angle` (B, A) in degrees; `loss` and `update` also take the ground truth `target`
(B, H + 2k, W + 2k, 3), enlarged by the registration margin k (`thesis_jax.deepwarp.train`).

Experiments (`experiments.deepwarp`): `load_pairs` and `make_batch_fn` (data), `Experiment`,
`train_variant`, `export_variant` and `write_report`. Real photos and video (face landmarks,
eye crops, paste-back): `thesis_jax.deepwarp.gaze`.
"""

from thesis_jax.deepwarp.evaluation import (
    error_by_angle,
    plot_error_by_angle,
    plot_sorted_errors,
    redirection_errors,
    save_sweep,
    save_triplets,
    sorted_normalized_errors,
)
from thesis_jax.deepwarp.experiment import (
    Experiment,
    check_config,
    export_variant,
    train_variant,
    variant_config,
)
from thesis_jax.deepwarp.export import Architecture, load_export, save_export
from thesis_jax.deepwarp.losses import center_crop, l2_loss, registration_loss
from thesis_jax.deepwarp.model import VARIANTS, DeepWarp, anchor_maps, make_network
from thesis_jax.deepwarp.pairs import batch_of, load_pairs, make_batch_fn, make_sampler
from thesis_jax.deepwarp.report import VARIANT_NAMES, results_table, write_report
from thesis_jax.deepwarp.sampling import BinnedSampler
from thesis_jax.deepwarp.train import LOSSES, Hparams, init, loss, make_model, predict, update
from thesis_jax.deepwarp.warp import bilinear_warp, bilinear_warp_reference

__all__ = [
    "LOSSES",
    "VARIANTS",
    "VARIANT_NAMES",
    "Architecture",
    "BinnedSampler",
    "DeepWarp",
    "Experiment",
    "Hparams",
    "anchor_maps",
    "batch_of",
    "bilinear_warp",
    "bilinear_warp_reference",
    "center_crop",
    "check_config",
    "error_by_angle",
    "export_variant",
    "init",
    "l2_loss",
    "load_export",
    "load_pairs",
    "loss",
    "make_batch_fn",
    "make_model",
    "make_network",
    "make_sampler",
    "plot_error_by_angle",
    "plot_sorted_errors",
    "predict",
    "redirection_errors",
    "registration_loss",
    "results_table",
    "save_export",
    "save_sweep",
    "save_triplets",
    "sorted_normalized_errors",
    "train_variant",
    "update",
    "variant_config",
    "write_report",
]
