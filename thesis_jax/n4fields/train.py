"""N4-Fields CNN training as pure functions: `init`, `loss`, `update`, `predict` (sec. 3.3.2-3.3.3).

The CNN regresses the 16-d PCA code of each patch's annotation (sec. 3.3.2, step 2) with the
squared l2 distance ||CNN(P; Theta) - PCA(A(P))||^2 averaged over the batch; with the alternative
encoding the target is B(P) of eq. 3.4.1 instead. The baselines of sec. 3.4 share the trunk and
replace the last layer: CNN-central predicts the probability that the centre pixel is a
boundary, CNN-patch the 256 pixels of the 16 x 16 annotation patch; both with sigmoid
cross-entropy against the (annotator-averaged) annotation, summed over the outputs (every loss
is a sum over output dimensions and a mean over the batch, as cuda-convnet's costs).

Optimisation (sec. 3.3.3): mini-batches of 128 patches of 34 x 34, SGD with momentum 0.9, the
learning rate starting at 0.1 (1e-3 for the alternative encoding) and annealed "when the
validation error reaches its plateau": the rate is an injected hyperparameter of the optimiser
state, so a training loop divides it with `anneal_learning_rate` when it sees a plateau. Dropout
on the first two FC layers and the max-norm projection of the first-layer filters after every
step regularise the network.

Mean subtraction: the per-channel mean of the training images (`channel_mean`, "across all
images", sec. 3.3.3) is a constant of the network (`Architecture.channel_mean`, set by `init`
from `config.channel_mean`): the model subtracts it from its input, so patches, images and
batches everywhere hold raw pixel values and inference needs nothing more than the parameters
and the architecture.

Augmentation (sec. 3.3.3): `sample_patches` draws patch centres uniformly over the training
pixels and turns each patch by a random angle (any angle by default, or multiples of 90 degrees)
and mirrors half of them left-right, the annotation patch turning with it; numpy, deterministic
for a seed.

Batch layout: `image` (B, 34, 34, C) raw pixels, `target` (B, D) with D = 16 (code), 1 (central)
or 256 (patch); `make_batch` builds it from `sample_patches` output.
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
import numpy as np
import optax

from thesis_jax.core import TrainState
from thesis_jax.n4fields import patches as geometry
from thesis_jax.n4fields import targets
from thesis_jax.n4fields.model import HEADS, Architecture, N4Net, max_norm_projection

ROTATIONS = ("any", "right_angles", "none")
ANNOTATORS = ("mean", "random")
ENCODINGS = ("annotation", "pairwise")


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
    that a resumed run follows exactly.
    """
    rate = float(config.get("learning_rate", 0.1))
    anneal_at = tuple(config.get("anneal_at", ()) or ())
    if anneal_at:
        if not all(0 < f < 1 for f in anneal_at):
            raise ValueError(f"anneal_at holds fractions of the run in (0, 1), got {anneal_at}")
        steps = int(config.num_steps)
        factor = float(config.get("anneal_factor", 0.1))
        rate = optax.piecewise_constant_schedule(
            rate, {max(1, round(f * steps)): factor for f in sorted(anneal_at)}
        )
    return optax.inject_hyperparams(optax.sgd)(
        learning_rate=rate, momentum=config.get("momentum", 0.9)
    )


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
    model = N4Net(arch)
    params_rng, state_rng = jax.random.split(rng)
    params = init_params(params_rng, arch)
    if output_bias is not None:
        output = dict(params["output"])
        output["bias"] = jnp.full_like(output["bias"], output_bias)
        params = {**params, "output": output}
    hparams = Hparams(arch=arch, max_norm=float(config.get("max_norm", 1.0)))
    if hparams.max_norm:
        params = max_norm_projection(params, hparams.max_norm)
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
    head: str = "code",
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The batch mean of the training objective of `head`, and metrics.

    "code": ||CNN(P) - target||^2 (l2 regression to PCA(A(P)), sec. 3.3.2, or to B(P), eq.
    3.4.1); "central" / "patch": sigmoid cross-entropy of the 1 / 256 logits against the
    annotation values in [0, 1] (the CNN baselines of sec. 3.4), summed over the outputs. Like
    cuda-convnet's costs, each is a sum over output dimensions and a mean over the batch.
    """
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose one of {HEADS}")
    chex.assert_rank([batch["image"], batch["target"]], [4, 2])
    chex.assert_equal_shape_prefix([batch["image"], batch["target"]], 1)
    outputs = apply_fn({"params": params}, batch["image"], train=True, rngs={"dropout": rng})
    chex.assert_equal_shape([outputs, batch["target"]])
    target = batch["target"].astype(jnp.float32)
    if head == "code":
        squared = jnp.sum((outputs - target) ** 2, axis=-1)
        value = jnp.mean(squared)
        return value, {"loss": value, "rms_error": jnp.sqrt(jnp.mean(squared) / target.shape[-1])}
    value = jnp.mean(jnp.sum(optax.sigmoid_binary_cross_entropy(outputs, target), axis=-1))
    hits = (outputs > 0) == (target > 0.5)
    return value, {"loss": value, "pixel_accuracy": jnp.mean(hits)}


def update(state: TrainState, batch: Mapping[str, jax.Array]) -> tuple[TrainState, dict]:
    """One SGD-with-momentum step, then the first-layer max-norm projection (sec. 3.3.3)."""
    hp: Hparams = state.hparams
    rng, step_rng = jax.random.split(state.rng)
    grads, metrics = jax.grad(loss, has_aux=True)(
        state.params, batch, step_rng, apply_fn=state.apply_fn, head=hp.head
    )
    new_state = state.apply_gradients(grads, rng=rng)
    if hp.max_norm:
        new_state = new_state.replace(params=max_norm_projection(new_state.params, hp.max_norm))
    learning_rate = state.opt_state.hyperparams["learning_rate"]
    return new_state, {**metrics, "learning_rate": learning_rate}


def predict(params: Any, patches: jax.Array, *, apply_fn: Callable[..., Any]) -> jax.Array:
    """The network's outputs for (B, M, M, C) patches at test time (no dropout): the neural
    codes CNN(P; Theta) for the "code" head, logits for the baselines."""
    return apply_fn({"params": params}, patches, train=False)


# ---------------------------------------------------------------------------------------------
# Data: per-channel mean, patch sampling with augmentation, targets.


def channel_mean(images: np.ndarray | Sequence[np.ndarray]) -> tuple[float, ...]:
    """The per-channel mean over all pixels of all images (sec. 3.3.3)."""
    images = list(images) if not isinstance(images, np.ndarray) else images
    total = sum(np.asarray(im, np.float64).reshape(-1, im.shape[-1]).sum(0) for im in images)
    count = sum(int(np.prod(im.shape[:-1])) for im in images)
    return tuple(float(v) for v in total / count)


def _as_generator(rng: int | np.random.Generator) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def draw_patch_transforms(
    rng: int | np.random.Generator,
    sizes: np.ndarray,
    num: int,
    *,
    rotation: str = "any",
    flip: bool = True,
) -> tuple[np.ndarray, ...]:
    """The random draws of `sample_patches`: (image index, row, col, angle or None, flip or
    None, annotator draw in [0, 1)), each (num,); images are drawn in proportion to their area,
    so every training pixel is equally likely to be a centre. `PatchSampler` makes the same
    draws, so both give the same patches for a seed."""
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
    gen = _as_generator(rng)
    sizes = np.asarray(sizes, np.int64)
    areas = sizes.prod(axis=1).astype(np.float64)
    image_index = gen.choice(len(sizes), size=num, p=areas / areas.sum())
    rows = np.floor(gen.random(num) * sizes[image_index, 0]).astype(np.int64)
    cols = np.floor(gen.random(num) * sizes[image_index, 1]).astype(np.int64)
    if rotation == "any":
        angles = gen.uniform(0.0, 2 * np.pi, num)
    elif rotation == "right_angles":
        angles = gen.integers(0, 4, num) * (np.pi / 2)
    else:
        angles = None
    flips = gen.random(num) < 0.5 if flip else None
    annotator_draw = gen.random(num)
    return image_index, rows, cols, angles, flips, annotator_draw


def sample_patches(
    images: np.ndarray | Sequence[np.ndarray],
    annotations: Sequence[Any],
    rng: int | np.random.Generator,
    num: int,
    patch: int = 34,
    target: int = targets.ANNOTATION_SIZE,
    *,
    segmentations: Sequence[np.ndarray] | None = None,
    rotation: str = "any",
    flip: bool = True,
    annotator: str = "mean",
) -> dict[str, np.ndarray]:
    """Random training patches with their annotation patches (sec. 3.3.3 augmentation).

    Args:
      images: (N, H, W, C) or a list of (H, W, C) images (sizes may differ).
      annotations: per image, a (H, W) boundary map, an (A, H, W) stack or a list of A maps.
      rng: a seed or a numpy Generator; the same seed gives the same patches.
      num: how many patches.
      patch: M, the input patch side.
      target: N, the annotation patch side.
      segmentations: per image, a (H, W) or (A, H, W) segmentation (one per annotator, in the
        order of `annotations`), for the alternative encoding.
      rotation: "any" (uniform angle), "right_angles" (multiples of 90 degrees) or "none".
      flip: mirror half of the patches left-right.
      annotator: "mean" (average the annotators' maps) or "random" (one annotator per patch).

    Returns:
      dict with `image` (num, M, M, C) float32, `annotation` (num, N, N) float32 in [0, 1],
      `center` (num, 3) int64 (image, row, col), and, with `segmentations`, `segmentation`
      (num, N, N) int32: one annotator's (the drawn one; a random one for "mean").
    """
    if rotation not in ROTATIONS:
        raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
    if annotator not in ANNOTATORS:
        raise ValueError(f"annotator must be one of {ANNOTATORS}, got {annotator!r}")
    images = list(images)
    if len(annotations) != len(images):
        raise ValueError(f"{len(images)} images but {len(annotations)} annotation entries")
    if segmentations is not None and len(segmentations) != len(images):
        raise ValueError(f"{len(images)} images but {len(segmentations)} segmentations")
    sizes = np.array([im.shape[:2] for im in images], np.int64)
    image_index, rows, cols, angles, flips, annotator_draw = draw_patch_transforms(
        rng, sizes, num, rotation=rotation, flip=flip
    )

    channels = images[0].shape[-1]
    out = {
        "image": np.zeros((num, patch, patch, channels), np.float32),
        "annotation": np.zeros((num, target, target), np.float32),
        "center": np.stack([image_index, rows, cols], axis=1),
    }
    if segmentations is not None:
        out["segmentation"] = np.zeros((num, target, target), np.int32)
    margin = geometry.rotation_margin(max(patch, target))
    for index in np.unique(image_index):
        chosen = np.flatnonzero(image_index == index)
        centers = np.stack([rows[chosen], cols[chosen]], axis=1)
        angle = None if angles is None else angles[chosen]
        mirror = None if flips is None else flips[chosen]
        grids = [
            geometry.sampling_grid(centers, size, angle, mirror, pivot_size=patch)
            for size in (patch, target)
        ]
        (image_rows, image_cols), (ann_rows, ann_cols) = (
            (r + margin, c + margin) for r, c in grids
        )
        padded = geometry.reflect_pad(np.asarray(images[index], np.float32), margin)
        gather = geometry.gather_bilinear if rotation == "any" else geometry.gather_nearest
        out["image"][chosen] = gather(padded, image_rows, image_cols)

        stack = geometry.as_annotator_stack(annotations[index]).astype(np.float32)
        picked = np.floor(annotator_draw[chosen] * stack.shape[0]).astype(np.int64)
        maps = geometry.gather_nearest(
            geometry.reflect_pad(stack.transpose(1, 2, 0), margin), ann_rows, ann_cols
        )  # (k, N, N, A)
        if annotator == "mean":
            out["annotation"][chosen] = maps.mean(-1)
        else:
            out["annotation"][chosen] = np.take_along_axis(
                maps, picked[:, None, None, None], axis=-1
            )[..., 0]
        if segmentations is not None:
            seg = geometry.as_annotator_stack(np.asarray(segmentations[index]))
            if seg.shape[0] not in (1, stack.shape[0]):
                raise ValueError(
                    f"image {index}: {seg.shape[0]} segmentations for {stack.shape[0]} annotators"
                )
            labels = geometry.gather_nearest(
                geometry.reflect_pad(seg.transpose(1, 2, 0), margin), ann_rows, ann_cols
            )
            which = np.minimum(picked, seg.shape[0] - 1)
            out["segmentation"][chosen] = np.take_along_axis(
                labels, which[:, None, None, None], axis=-1
            )[..., 0]
    return out


def make_batch(
    samples: Mapping[str, np.ndarray],
    *,
    head: str = "code",
    pca: targets.PCA | None = None,
    encoding: str = "annotation",
    pairs: int | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """{image, target} for `loss` from `sample_patches` output.

    Args:
      samples: `image`, `annotation` and, for the pairwise encoding, `segmentation`.
      head: "code" (target = PCA code), "central" (the centre pixel of the annotation, the
        pixel the input patch is centred on) or "patch" (the 256 annotation pixels).
      pca: the fitted PCA (head "code"): on annotation patches, or on `pairwise_codes`.
      encoding: "annotation" (PCA(A(P)), sec. 3.3.2) or "pairwise" (B(P), eq. 3.4.1).
      pairs: the pixel pairs of the pairwise encoding, as given to `pairwise_codes`.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    on_device = isinstance(samples["annotation"], jax.Array)  # from PatchSampler: keep there
    xp = jnp if on_device else np
    annotation = xp.asarray(samples["annotation"], np.float32)
    count, size = annotation.shape[:2]
    if head == "code":
        if pca is None:
            raise ValueError("head 'code' needs the fitted PCA (fit_pca)")
        if encoding == "pairwise":
            bits = targets.pairwise_codes(samples["segmentation"], pairs=pairs)
            target = pca.encode(bits.astype(np.float32))
        else:
            target = pca.encode(annotation)
    elif head == "central":
        target = annotation[:, size // 2, size // 2, None]
    elif head == "patch":
        target = annotation.reshape(count, -1)
    else:
        raise ValueError(f"unknown head {head!r}; choose one of {HEADS}")
    return {"image": xp.asarray(samples["image"], np.float32), "target": target.astype(np.float32)}
