"""DANN training as pure functions: `init`, `loss`, `update` (thesis sec. 5.3.2, 5.4.2).

The objective is eq. (5.3.7) with the gradient reversal layer of eq. (5.3.11): the label loss on
the labelled source half of the batch plus the domain loss, the mean over source examples (domain
0) plus the mean over target examples (domain 1). The reversal layer scales the domain gradient
reaching G_f by -lambda_p (lambda_p = 2/(1+exp(-gamma p)) - 1), while G_d itself learns at
lambda = 1 (footnote 6). SGD with momentum 0.9 and mu_p = mu0/(1+alpha p)^beta.

The same functions train the baselines of sec. 5.4.1: `mode="source_only"` (no domain branch)
and `mode="train_on_target"` (the target labels revealed). A batch may carry a few labelled
target examples (`labelled_image`, `labelled_label`) for the semi-supervised setting (fig. 5.5);
they join the source examples in the label loss.

Batch layout: `source_image` (n, H, W, C), `source_label` (n,), `target_image` (n', H, W, C),
and `target_label` (n',) which only `train_on_target` reads.

Beyond the thesis, for stability on small datasets (README, "DANN on real MNIST"): with
`Hparams.ema_decay > 0` the state keeps an exponential average of the parameters
(`model_state["ema_params"]`) and `inference_params(state)` returns it; `update` reports
`feature_norm` (the mean norm of G_f's output, which falls to 0 when G_f collapses) and
`grad_norm`.
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

from thesis_jax.core import TrainState, exponential_moving_average, max_norm_projection
from thesis_jax.dann import schedules
from thesis_jax.dann.networks import DANN, INPUT_SHAPES

MODES = ("dann", "source_only", "train_on_target")


@dataclasses.dataclass(frozen=True)
class Hparams:
    """The static hyperparameters `update` needs besides the state (hashable)."""

    mode: str = "dann"
    schedule_steps: int = 10_000  # p = step / schedule_steps, clipped to 1
    gamma: float = 10.0
    max_norm: float = 0.0
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown DANN mode {self.mode!r}; choose one of {MODES}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


def make_model(config: ml_collections.ConfigDict) -> DANN:
    return DANN(
        architecture=config.architecture,
        num_classes=config.num_classes,
        shallow_hidden=config.get("shallow_hidden", 100),
        domain_hidden=tuple(config.get("domain_hidden", None) or ()),
        domain_dropout=None if config.get("domain_dropout", -1.0) < 0 else config.domain_dropout,
    )


def input_shape(config: ml_collections.ConfigDict) -> tuple[int, int, int]:
    shape = config.get("input_shape", None)
    return tuple(shape) if shape else INPUT_SHAPES[config.architecture]


def schedule_steps(config: ml_collections.ConfigDict) -> int:
    """The steps over which p runs from 0 to 1: `config.schedule_steps`, or `num_steps` if 0."""
    return config.get("schedule_steps", 0) or config.num_steps


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """SGD, momentum 0.9, mu_p = mu0 / (1 + alpha p)^beta (sec. 5.4.2)."""
    lr = config.learning_rate
    schedule = schedules.learning_rate_schedule(schedule_steps(config), lr.mu0, lr.alpha, lr.beta)
    return optax.sgd(schedule, momentum=config.momentum)


def init(rng: jax.Array, config: ml_collections.ConfigDict, mode: str | None = None) -> TrainState:
    """A fresh TrainState for `mode` (default `config.mode`)."""
    model = make_model(config)
    params_rng, state_rng = jax.random.split(rng)
    dummy = jnp.zeros((1, *input_shape(config)), jnp.float32)
    params = jax.jit(lambda r: model.init(r, dummy, 0.0)["params"])(params_rng)
    hparams = Hparams(
        mode=mode or config.get("mode", "dann"),
        schedule_steps=schedule_steps(config),
        gamma=config.gamma,
        max_norm=config.get("max_norm", 0.0),
        ema_decay=config.get("ema_decay", 0.0),
    )
    return TrainState.create(
        params=params,
        tx=make_optimizer(config),
        apply_fn=model.apply,
        rng=state_rng,
        # A copy: params and their average are separate (donated) buffers.
        model_state={"ema_params": jax.tree.map(jnp.copy, params)} if hparams.ema_decay else None,
        hparams=hparams,
    )


def inference_params(state: TrainState) -> Any:
    """The parameters to evaluate and export: the averaged ones when `ema_decay > 0`."""
    return state.model_state.get("ema_params", state.params)


def _cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def _accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(logits, -1) == labels)


def loss(
    params: Any,
    batch: Mapping[str, jax.Array],
    rng: jax.Array,
    *,
    apply_fn: Callable[..., Any],
    hparams: Hparams,
    model_state: Any = None,
    lam: jax.Array | float = 1.0,
) -> tuple[jax.Array, tuple[dict[str, jax.Array], Any]]:
    """The DANN objective (eq. 5.3.7 with R of eq. 5.3.11) or a baseline's, and metrics.

    Args:
      params: the network parameters.
      batch: see the module docstring.
      rng: dropout randomness.
      apply_fn: the DANN module's `apply`.
      hparams: `hparams.mode` is "dann", "source_only" or "train_on_target".
      model_state: passed through unchanged (the network has no batch statistics).
      lam: the gradient reversal coefficient for the feature extractor (lambda_p); `update`
        takes it from the schedule of sec. 5.4.2.

    Returns:
      (value, (metrics, model_state)).
    """
    mode = hparams.mode
    chex.assert_rank(batch["source_image"], 4)
    chex.assert_rank(batch["target_image"], 4)
    chex.assert_equal_shape_suffix([batch["source_image"], batch["target_image"]], 3)
    rngs = jax.random.split(rng, 3)

    def run(images: jax.Array, key: jax.Array, with_domain: bool) -> dict[str, jax.Array]:
        return apply_fn(
            {"params": params},
            images,
            lam,
            train=True,
            with_domain=with_domain,
            rngs={"dropout": key},
        )

    metrics: dict[str, jax.Array] = {}
    if mode == "train_on_target":
        out = run(batch["target_image"], rngs[0], False)
        label_loss = jnp.mean(_cross_entropy(out["logits"], batch["target_label"]))
        metrics["target_accuracy"] = _accuracy(out["logits"], batch["target_label"])
        return label_loss, ({"loss": label_loss, "label_loss": label_loss, **metrics}, model_state)

    source = run(batch["source_image"], rngs[0], mode == "dann")
    per_example = _cross_entropy(source["logits"], batch["source_label"])
    metrics["source_accuracy"] = _accuracy(source["logits"], batch["source_label"])
    if "labelled_image" in batch:  # semi-supervised: a few target labels join the label loss
        labelled = run(batch["labelled_image"], rngs[2], False)
        per_example = jnp.concatenate(
            [per_example, _cross_entropy(labelled["logits"], batch["labelled_label"])]
        )
    label_loss = jnp.mean(per_example)  # (1/n) sum_i L_y^i
    total = label_loss
    if mode == "dann":
        target = run(batch["target_image"], rngs[1], True)
        source_domain = _cross_entropy(
            source["domain_logits"], jnp.zeros(source["domain_logits"].shape[0], jnp.int32)
        )
        target_domain = _cross_entropy(
            target["domain_logits"], jnp.ones(target["domain_logits"].shape[0], jnp.int32)
        )
        # Public DANN ports average over the whole batch (half of this); on `digits` the
        # thesis's sum adapts better.
        domain_loss = jnp.mean(source_domain) + jnp.mean(target_domain)  # eq. (5.3.7)
        total = label_loss + domain_loss
        domain_correct = jnp.concatenate(
            [
                jnp.argmax(source["domain_logits"], -1) == 0,
                jnp.argmax(target["domain_logits"], -1) == 1,
            ]
        )
        metrics.update(
            domain_loss=domain_loss,
            domain_accuracy=jnp.mean(domain_correct),
            feature_norm=jnp.mean(jnp.linalg.norm(source["features"], axis=-1)),
        )
    return total, ({"loss": total, "label_loss": label_loss, **metrics}, model_state)


def update(state: TrainState, batch: Mapping[str, jax.Array]) -> tuple[TrainState, dict]:
    """One SGD step of eq. (5.3.9)-(5.3.10) through the gradient reversal layer."""
    hp: Hparams = state.hparams
    rng, step_rng = jax.random.split(state.rng)
    lam = schedules.lambda_schedule(schedules.progress(state.step, hp.schedule_steps), hp.gamma)
    grad_fn = jax.grad(loss, has_aux=True)
    grads, (metrics, _) = grad_fn(
        state.params, batch, step_rng, apply_fn=state.apply_fn, hparams=hp, lam=lam
    )
    metrics["grad_norm"] = optax.tree.norm(grads)
    new_state = state.apply_gradients(grads, rng=rng)
    if hp.max_norm:
        new_state = new_state.replace(params=max_norm_projection(new_state.params, hp.max_norm))
    if hp.ema_decay:
        average = exponential_moving_average(
            state.model_state["ema_params"], new_state.params, decay=hp.ema_decay, step=state.step
        )
        new_state = new_state.replace(model_state={"ema_params": average})
    return new_state, {**metrics, "lambda": lam}


def predict(
    params: Any, batch: Mapping[str, jax.Array], *, apply_fn: Callable, model_state: Any = None
) -> dict:
    """Inference outputs for `batch["image"]`: logits, features (G_f) and hidden (G_y).

    Pass `inference_params(state)` as `params` to use the parameter average; `model_state` is
    accepted for the common signature and unused (no batch statistics).
    """
    chex.assert_rank(batch["image"], 4)
    out = apply_fn({"params": params}, batch["image"], 0.0, train=False, with_domain=False)
    return {"logits": out["logits"], "features": out["features"], "hidden": out["hidden"]}
