"""N4-Fields CNN training as pure functions: `init`, `loss`, `update`, `predict` (sec. 3.3.2-3.3.3).

The CNN regresses the 16-d PCA code of each patch's annotation (sec. 3.3.2, step 2) with the
squared l2 distance ||CNN(P; Theta) - PCA(A(P))||^2 averaged over the batch; with the alternative
encoding the target is B(P) of eq. 3.4.1 instead. The baselines of sec. 3.4 share the trunk and
replace the last layer: CNN-central predicts the probability that the centre pixel is a
boundary, CNN-patch the 256 pixels of the 16 x 16 annotation patch; both with sigmoid
cross-entropy against the (annotator-averaged) annotation, summed over the outputs (every loss
is a sum over output dimensions and a mean over the batch, as cuda-convnet's costs). Which of
the three a state trains is its static `Hparams.head`.

Optimisation (sec. 3.3.3): mini-batches of 128 patches of 34 x 34, SGD with momentum 0.9, the
learning rate starting at 0.1 (1e-3 for the alternative encoding) and annealed "when the
validation error reaches its plateau": the rate is an injected hyperparameter of the optimiser
state, so a training loop divides it with `anneal_learning_rate` when it sees a plateau. Dropout
on the first two FC layers and the max-norm projection of the first-layer filters after every
step regularise the network.

Mean subtraction: the per-channel mean of the training images (`sampler.channel_mean`, "across
all images", sec. 3.3.3) is a constant of the network (`Architecture.channel_mean`, set by `init`
from `config.channel_mean`): the model subtracts it from its input, so patches, images and
batches everywhere hold raw pixel values and inference needs nothing more than the parameters
and the architecture.

Batch layout: `image` (B, 34, 34, C) float raw pixels, `target` (B, D) float with D = 16
(code), 1 (central) or 256 (patch); `sampler.make_batch` builds it from sampled patches.
`predict` reads `image` only.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
import ml_collections
import optax

from thesis_jax.core import TrainState, max_norm_projection
from thesis_jax.n4fields.model import Architecture, N4Net, network

FIRST_LAYER = ("conv1",)  # the layer whose filters the max-norm projection caps (sec. 3.3.3)


@dataclasses.dataclass(frozen=True)
class Hparams:
    """The static hyperparameters `update` needs besides the state (hashable)."""

    arch: Architecture = dataclasses.field(default_factory=Architecture)
    max_norm: float = 1.0

    @property
    def head(self) -> str:
        return self.arch.head


def make_architecture(
    config: ml_collections.ConfigDict,
    *,
    head: str | None = None,
    channel_mean: Sequence[float] | None = None,
) -> Architecture:
    """The `Architecture` of `config.model` (missing fields keep the defaults of fig. 3.3)."""
    model = dict(config.get("model", {}) or {})
    for key in ("conv_features", "conv_kernels", "conv_pools", "fc_features"):
        if key in model:
            model[key] = tuple(int(v) for v in model[key])
    mean = channel_mean if channel_mean is not None else config.get("channel_mean", None)
    return Architecture(
        **model,
        head=head or config.get("head", "code"),
        channel_mean=None if mean is None else tuple(float(v) for v in mean),
    )


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """SGD with momentum 0.9, the learning rate an injected hyperparameter (sec. 3.3.3).

    Without `config.anneal_at` the rate stays constant until `anneal_learning_rate` divides it
    (a loop that watches the validation plateau); with `anneal_at` (fractions of
    `config.num_steps`) it is multiplied by `anneal_factor` (0.1) at those steps, a schedule
    that a resumed run follows exactly. The same settings give the same transformation, so the
    states of a committee share one compiled `update`.
    """
    rate = float(config.get("learning_rate", 0.1))
    anneal_at = tuple(config.get("anneal_at", ()) or ())
    boundaries = ()
    if anneal_at:
        if not all(0 < f < 1 for f in anneal_at):
            raise ValueError(f"anneal_at holds fractions of the run in (0, 1), got {anneal_at}")
        steps = int(config.num_steps)
        factor = float(config.get("anneal_factor", 0.1))
        boundaries = tuple((max(1, round(f * steps)), factor) for f in sorted(anneal_at))
    return _sgd(rate, boundaries, float(config.get("momentum", 0.9)))


@functools.lru_cache(maxsize=64)
def _sgd(
    rate: float, boundaries: tuple[tuple[int, float], ...], momentum: float
) -> optax.GradientTransformation:
    schedule = optax.piecewise_constant_schedule(rate, dict(boundaries)) if boundaries else rate
    return optax.inject_hyperparams(optax.sgd)(learning_rate=schedule, momentum=momentum)


def init(
    rng: jax.Array,
    config: ml_collections.ConfigDict,
    *,
    head: str | None = None,
    channel_mean: Sequence[float] | None = None,
    output_bias: float | None = None,
) -> TrainState:
    """A fresh TrainState; `head` and `channel_mean` override `config.head` / `.channel_mean`.

    `output_bias` starts every output's bias there instead of at 0: for the CNN baselines the
    log-odds of the boundary rate, so that the sigmoid starts at the prior instead of 0.5 and
    the first steps do not spend themselves (and the ReLUs) pushing 256 logits down.
    """
    arch = make_architecture(config, head=head, channel_mean=channel_mean)
    model = network(arch)
    params_rng, state_rng = jax.random.split(rng)
    params = init_params(params_rng, arch)
    if output_bias is not None:
        output = dict(params["output"])
        output["bias"] = jnp.full_like(output["bias"], output_bias)
        params = {**params, "output": output}
    hparams = Hparams(arch=arch, max_norm=float(config.get("max_norm", 1.0)))
    if hparams.max_norm:
        params = max_norm_projection(params, hparams.max_norm, layers=FIRST_LAYER)
    return TrainState.create(
        params=params,
        tx=make_optimizer(config),
        apply_fn=model.apply,
        rng=state_rng,
        hparams=hparams,
    )


@functools.partial(jax.jit, static_argnames="arch")
def init_params(rng: jax.Array, arch: Architecture) -> Any:
    """Fresh parameters of `N4Net(arch)`: weights N(0, init_std^2), zero biases (sec. 3.3.3).

    The weights of all layers are consecutive pieces of one normal draw (the tree comes from
    `jax.eval_shape` of the module's init): one random-number op to compile instead of one per
    layer, seconds less on CPU. Compiled once per architecture, so a committee shares it.
    """
    dummy = jax.ShapeDtypeStruct(
        (1, arch.patch_size, arch.patch_size, arch.in_channels), jnp.float32
    )
    shapes = jax.eval_shape(N4Net(arch).init, rng, dummy)["params"]
    leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    is_kernel = [path[-1].key == "kernel" for path, _ in leaves]
    sizes = [math.prod(leaf.shape) for _, leaf in leaves]
    total = sum(size for size, kernel in zip(sizes, is_kernel, strict=True) if kernel)
    noise = arch.init_std * jax.random.normal(rng, (total,))
    values, offset = [], 0
    for (_, leaf), size, kernel in zip(leaves, sizes, is_kernel, strict=True):
        if kernel:
            values.append(noise[offset : offset + size].reshape(leaf.shape))
            offset += size
        else:
            values.append(jnp.zeros(leaf.shape, leaf.dtype))
    return jax.tree_util.tree_unflatten(treedef, values)


def anneal_learning_rate(state: TrainState, factor: float = 0.1) -> TrainState:
    """Multiplies the learning rate by `factor` (the plateau annealing of sec. 3.3.3)."""
    hyper = dict(state.opt_state.hyperparams)
    hyper["learning_rate"] = hyper["learning_rate"] * factor
    return state.replace(opt_state=state.opt_state._replace(hyperparams=hyper))


def loss(
    params: Any,
    batch: Mapping[str, jax.Array],
    rng: jax.Array,
    *,
    apply_fn: Callable[..., Any],
    hparams: Hparams,
    model_state: Any = None,
    train: bool = True,
) -> tuple[jax.Array, tuple[dict[str, jax.Array], Any]]:
    """The batch mean of the training objective of `hparams.head`: (value, (metrics, model_state)).

    "code": ||CNN(P) - target||^2 (l2 regression to PCA(A(P)), sec. 3.3.2, or to B(P), eq.
    3.4.1); "central" / "patch": sigmoid cross-entropy of the 1 / 256 logits against the
    annotation values in [0, 1] (the CNN baselines of sec. 3.4), summed over the outputs. Like
    cuda-convnet's costs, each is a sum over output dimensions and a mean over the batch.

    Args:
      params: the network parameters.
      batch: `image` (B, M, M, C) and `target` (B, D), see the module docstring.
      rng: the dropout key.
      apply_fn: `N4Net(arch).apply`.
      hparams: the state's `Hparams` (the head).
      model_state: returned unchanged (the network has no mutable state).
      train: False evaluates without dropout (the validation error of fig. 3.6).
    """
    arch = hparams.arch
    chex.assert_rank([batch["image"], batch["target"]], [4, 2])
    chex.assert_type([batch["image"], batch["target"]], float)
    chex.assert_axis_dimension(batch["image"], 3, arch.in_channels)
    chex.assert_equal_shape_prefix([batch["image"], batch["target"]], 1)
    chex.assert_axis_dimension(batch["target"], 1, arch.outputs)
    rngs = {"dropout": rng} if train else None
    outputs = apply_fn({"params": params}, batch["image"], train=train, rngs=rngs)
    target = batch["target"].astype(jnp.float32)
    if hparams.head == "code":
        squared = jnp.sum((outputs - target) ** 2, axis=-1)
        value = jnp.mean(squared)
        rms = jnp.sqrt(jnp.mean(squared) / target.shape[-1])
        return value, ({"loss": value, "rms_error": rms}, model_state)
    value = jnp.mean(jnp.sum(optax.sigmoid_binary_cross_entropy(outputs, target), axis=-1))
    hits = (outputs > 0) == (target > 0.5)
    return value, ({"loss": value, "pixel_accuracy": jnp.mean(hits)}, model_state)


def update(state: TrainState, batch: Mapping[str, jax.Array]) -> tuple[TrainState, dict]:
    """One SGD-with-momentum step, then the first-layer max-norm projection (sec. 3.3.3)."""
    hp: Hparams = state.hparams
    rng, step_rng = jax.random.split(state.rng)
    grads, (metrics, model_state) = jax.grad(loss, has_aux=True)(
        state.params,
        batch,
        step_rng,
        apply_fn=state.apply_fn,
        hparams=hp,
        model_state=state.model_state,
    )
    new_state = state.apply_gradients(grads, rng=rng, model_state=model_state)
    if hp.max_norm:
        params = max_norm_projection(new_state.params, hp.max_norm, layers=FIRST_LAYER)
        new_state = new_state.replace(params=params)
    learning_rate = state.opt_state.hyperparams["learning_rate"]
    return new_state, {**metrics, "learning_rate": learning_rate}


def predict(
    params: Any,
    batch: Mapping[str, jax.Array],
    *,
    apply_fn: Callable[..., Any],
    model_state: Any = None,
) -> dict[str, jax.Array]:
    """The network at test time (no dropout) on `batch["image"]`, (B, M, M, C) patches:
    {"output": (B, D)}, the neural codes CNN(P; Theta) for the "code" head, logits for the
    baselines."""
    chex.assert_rank(batch["image"], 4)
    chex.assert_type(batch["image"], float)
    return {"output": apply_fn({"params": params}, batch["image"], train=False)}
