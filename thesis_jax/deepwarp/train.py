"""DeepWarp training as pure functions: `init`, `loss`, `update`, `predict` (thesis sec. 4.4.2).

End-to-end training of the whole network with Adam on the l2 distance between the synthesized
and the ground-truth eye (sec. 4.4.2), or on the registration loss of eq. 4.4.1 (sec. 4.4.6).

Batch layout: `image` (B, H, W, 3) in [0, 1], `landmarks` (B, 7, 2) as (x, y) pixels of the
crop, `angle` (B, A) redirection in degrees (A = 1 vertical, 2 vertical + horizontal), `target`
(B, H + 2k, W + 2k, 3), the ground truth enlarged by k = `margin` pixels on every side (k = 0
for plain l2 against an aligned target).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import chex
import jax
import jax.numpy as jnp
import ml_collections
import optax

from thesis_jax.core import TrainState
from thesis_jax.deepwarp import losses
from thesis_jax.deepwarp.model import DeepWarp

LOSSES = ("l2", "registration_l2", "registration_l1")


@dataclasses.dataclass(frozen=True)
class Hparams:
    """The static hyperparameters `update` needs besides the state (hashable)."""

    loss: str = "l2"
    margin: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"unknown DeepWarp loss {self.loss!r}; choose one of {LOSSES}")


def make_model(config: ml_collections.ConfigDict) -> DeepWarp:
    model = config.model
    return DeepWarp(
        variant=model.variant,
        widths=tuple(model.widths),
        kernels=tuple(model.kernels),
        lcm_widths=tuple(model.lcm_widths),
    )


def init(rng: jax.Array, config: ml_collections.ConfigDict) -> TrainState:
    """A fresh TrainState: parameters, BatchNorm statistics, Adam (sec. 4.4.2)."""
    model = make_model(config)
    width, height = config.crop_size
    params_rng, state_rng = jax.random.split(rng)
    image = jnp.zeros((1, height, width, 3), jnp.float32)
    landmarks = jnp.zeros((1, 7, 2), jnp.float32)
    angles = jnp.zeros((1, config.angle_dims), jnp.float32)
    variables = jax.jit(lambda r: model.init(r, image, landmarks, angles, train=False))(params_rng)
    return TrainState.create(
        params=variables["params"],
        model_state={"batch_stats": variables["batch_stats"]},
        tx=optax.adam(config.learning_rate),
        apply_fn=model.apply,
        rng=state_rng,
        hparams=Hparams(loss=config.loss, margin=config.margin),
    )


def loss(
    params: Any,
    model_state: Mapping[str, Any],
    batch: Mapping[str, jax.Array],
    *,
    apply_fn: Callable[..., Any],
    hparams: Hparams,
) -> tuple[jax.Array, tuple[dict[str, jax.Array], dict[str, Any]]]:
    """The batch mean of the chosen objective; returns (value, (metrics, new model_state))."""
    chex.assert_rank([batch["image"], batch["target"]], 4)
    out, updates = apply_fn(
        {"params": params, **model_state},
        batch["image"],
        batch["landmarks"],
        batch["angle"],
        train=True,
        mutable=["batch_stats"],
    )
    aligned = losses.center_crop(batch["target"], hparams.margin)
    mse = losses.l2_loss(out["output"], aligned)
    metrics = {"mse": jnp.mean(mse)}
    if hparams.loss == "l2":
        per_example = mse
    else:
        per_example, shift = losses.registration_loss(
            out["output"], batch["target"], hparams.margin, hparams.loss.split("_")[1]
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
    grad_fn = jax.grad(loss, has_aux=True)
    grads, (metrics, model_state) = grad_fn(
        state.params,
        state.model_state,
        batch,
        apply_fn=state.apply_fn,
        hparams=state.hparams,
    )
    return state.apply_gradients(grads, model_state=model_state), metrics


def predict(
    params: Any,
    model_state: Mapping[str, Any],
    batch: Mapping[str, jax.Array],
    *,
    apply_fn: Callable[..., Any],
) -> dict[str, jax.Array]:
    """Inference (BatchNorm running statistics): `output`, `flow` and, by variant, `mask`..."""
    return apply_fn(
        {"params": params, **model_state},
        batch["image"],
        batch["landmarks"],
        batch["angle"],
        train=False,
    )
