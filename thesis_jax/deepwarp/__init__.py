"""DeepWarp: gaze redirection by learned coarse-to-fine warping (thesis ch. 4).

Pure functions over pytrees:

    state = deepwarp.init(rng, config)                       # TrainState (Adam, BatchNorm stats)
    state, metrics = deepwarp.update(state, batch)            # jit / shard it as you like
    value, (metrics, model_state) = deepwarp.loss(params, model_state, batch, apply_fn=...,
                                                  hparams=...)
    out = deepwarp.predict(params, model_state, batch, apply_fn=...)   # out["output"], ["flow"]
    warped = deepwarp.bilinear_warp(image, flow)              # the sampler, with its own VJP
    params, model_state, arch = deepwarp.load_export(path)    # a trained model, for inference

Real photos and video (face landmarks, eye crops, paste-back): `thesis_jax.deepwarp.gaze`.
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
from thesis_jax.deepwarp.export import Architecture, load_export, save_export
from thesis_jax.deepwarp.losses import center_crop, l2_loss, registration_loss
from thesis_jax.deepwarp.model import VARIANTS, DeepWarp, anchor_maps
from thesis_jax.deepwarp.sampling import BinnedSampler
from thesis_jax.deepwarp.train import LOSSES, Hparams, init, loss, make_model, predict, update
from thesis_jax.deepwarp.warp import bilinear_warp, bilinear_warp_reference

__all__ = [
    "LOSSES",
    "VARIANTS",
    "Architecture",
    "BinnedSampler",
    "DeepWarp",
    "Hparams",
    "anchor_maps",
    "bilinear_warp",
    "bilinear_warp_reference",
    "center_crop",
    "error_by_angle",
    "init",
    "l2_loss",
    "load_export",
    "loss",
    "make_model",
    "plot_error_by_angle",
    "plot_sorted_errors",
    "predict",
    "redirection_errors",
    "registration_loss",
    "save_export",
    "save_sweep",
    "save_triplets",
    "sorted_normalized_errors",
    "update",
]
