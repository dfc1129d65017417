"""DeepWarp training as pure functions: `init`, `loss`, `update`, `predict` (thesis sec. 4.4.2).

End-to-end training of the whole network with Adam on the l2 distance between the synthesized
and the ground-truth eye (sec. 4.4.2), or on the registration loss of eq. 4.4.1 (sec. 4.4.6).

Batch layout: `image` (B, H, W, 3) float in [0, 1], `landmarks` (B, 7, 2) float as (x, y)
pixels of the crop, `angle` (B, A) float redirection in degrees (A = 1 vertical, 2 vertical +
horizontal) and, for `loss` and `update`, `target` (B, H + 2k, W + 2k, 3), the ground truth
enlarged by k = `Hparams.margin` pixels on every side (k = 0 for plain l2 against an aligned
target). The model state holds BatchNorm's running statistics (`{"batch_stats": ...}`).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import chex
import jax
import jax.numpy as jnp
import ml_collections
import optax

from thesis_jax.core import TrainState
from thesis_jax.deepwarp import losses
from thesis_jax.deepwarp.model import NUM_LANDMARKS, DeepWarp, make_network

LOSSES = ("l2", "registration_l2", "registration_l1")


@dataclasses.dataclass(frozen=True)
class Hparams:
    """The static hyperparameters `update` needs besides the state (hashable)."""

    loss: str = "l2"
    margin: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown DeepWarp loss {self.loss!r}; choose one of {LOSSES}")
        if self.margin < 0:
            raise ValueError(f"margin must be >= 0, got {self.margin}")


def make_model(config: ml_collections.ConfigDict) -> DeepWarp:
    """The network of `config.model` (variant, widths, kernels, lcm_widths)."""
    return make_network(config.model)


@functools.lru_cache(maxsize=16)
def _adam(learning_rate: float) -> optax.GradientTransformation:
    """One transformation per learning rate: states of equal configs share a compiled update."""
    return optax.adam(learning_rate)


def init(rng: jax.Array, config: ml_collections.ConfigDict) -> TrainState:
    """A fresh TrainState: parameters, BatchNorm statistics, Adam (sec. 4.4.2)."""
    model = make_model(config)
    width, height = config.crop_size
    params_rng, state_rng = jax.random.split(rng)
    image = jnp.zeros((1, height, width, 3), jnp.float32)
    landmarks = jnp.zeros((1, NUM_LANDMARKS, 2), jnp.float32)
    angles = jnp.zeros((1, config.angle_dims), jnp.float32)
    variables = jax.jit(lambda r: model.init(r, image, landmarks, angles, train=False))(params_rng)
    return TrainState.create(
        params=variables["params"],
        model_state={"batch_stats": variables["batch_stats"]},
        tx=_adam(float(config.learning_rate)),
        apply_fn=model.apply,
        rng=state_rng,
        hparams=Hparams(loss=config.loss, margin=config.margin),
    )


def _check_inputs(batch: Mapping[str, jax.Array]) -> None:
    image, landmarks, angle = batch["image"], batch["landmarks"], batch["angle"]
    chex.assert_rank([image, landmarks, angle], [4, 3, 2])
    chex.assert_shape(landmarks, (image.shape[0], NUM_LANDMARKS, 2))
    chex.assert_shape(angle, (image.shape[0], None))
    chex.assert_type([image, landmarks, angle], float)


def _variables(params: Any, model_state: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"params": params, **(model_state or {})}


def loss(
    params: Any,
    batch: Mapping[str, jax.Array],
    rng: jax.Array,
    *,
    apply_fn: Callable[..., Any],
    hparams: Hparams,
    model_state: Mapping[str, Any] | None = None,
) -> tuple[jax.Array, tuple[dict[str, jax.Array], dict[str, Any]]]:
    """The batch mean of the chosen objective and (metrics, the new model state).

    Args:
      params: the network's parameters.
      batch: see the module docstring; `target` is enlarged by `hparams.margin`.
      rng: unused (the network is deterministic); here for the common signature.
      apply_fn: the DeepWarp module's `apply`.
      hparams: the objective (l2 or registration) and the margin k.
      model_state: BatchNorm's running statistics; None starts them afresh.
    """
    del rng
    _check_inputs(batch)
    image, target = batch["image"], batch["target"]
    b, h, w, c = image.shape
    chex.assert_shape(target, (b, h + 2 * hparams.margin, w + 2 * hparams.margin, c))
    out, updates = apply_fn(
        _variables(params, model_state),
        image,
        batch["landmarks"],
        batch["angle"],
        train=True,
        mutable=["batch_stats"],
    )
    aligned = losses.center_crop(target, hparams.margin)
    mse = losses.l2_loss(out["output"], aligned)
    metrics = {"mse": jnp.mean(mse)}
    if hparams.loss == "l2":
        per_example = mse
    else:
        per_example, shift = losses.registration_loss(
            out["output"], target, hparams.margin, hparams.loss.split("_")[1]
        )
        metrics["aligned_fraction"] = jnp.mean(jnp.all(shift == 0, axis=-1))
    value = jnp.mean(per_example)
    metrics["loss"] = value
    if "mask" in out:
        metrics["mask_mean"] = jnp.mean(out["mask"])
    metrics["flow_magnitude"] = jnp.mean(jnp.linalg.norm(out["flow"], axis=-1))
    return value, (metrics, {"batch_stats": updates["batch_stats"]})


def update(state: TrainState, batch: Mapping[str, jax.Array]) -> tuple[TrainState, dict]:
    """One Adam step on the whole network, end to end."""
    rng, step_rng = jax.random.split(state.rng)
    grad_fn = jax.grad(loss, has_aux=True)
    grads, (metrics, model_state) = grad_fn(
        state.params,
        batch,
        step_rng,
        apply_fn=state.apply_fn,
        hparams=state.hparams,
        model_state=state.model_state,
    )
    return state.apply_gradients(grads, model_state=model_state, rng=rng), metrics


def predict(
    params: Any,
    batch: Mapping[str, jax.Array],
    *,
    apply_fn: Callable[..., Any],
    model_state: Mapping[str, Any] | None = None,
) -> dict[str, jax.Array]:
    """Inference with BatchNorm's running statistics (`model_state`, required): a dict with
    `output` (B, H, W, 3) and `flow` (B, H, W, 2), plus `coarse_flow`, `coarse_output` (cfw
    variants) and `mask` (B, H, W, 1) (cfw_lcm)."""
    _check_inputs(batch)
    if not model_state or "batch_stats" not in model_state:
        raise ValueError(
            "DeepWarp's predict needs model_state={'batch_stats': ...} (a TrainState's "
            "model_state, or load_export's)"
        )
    return apply_fn(
        _variables(params, model_state),
        batch["image"],
        batch["landmarks"],
        batch["angle"],
        train=False,
    )
