"""DeepWarp's network: coarse-to-fine warping with lightness correction (thesis sec. 4.3).

Inputs (sec. 4.3.3) are image-sized maps: the eye crop (3 channels), the redirection angle
embedded by FC(16)-ReLU-FC(16)-ReLU and broadcast to 16 constant maps, and 14 anchor maps
(x - x_i, y - y_i for the 7 landmarks, eq. 4.3.5; divided by the crop width so they lie in about
[-1, 1]). 33 maps for one angle; the angle may be 2-D (vertical, horizontal; sec. 4.4.5).

Warping modules (sec. 4.3.2) are stacks of 'SAME' convolutions + BatchNorm + ReLU, stride 1, no
pooling, ending in a 1x1 convolution to a two-channel flow (initialised at zero, so training
starts from the identity warp). The variants of sec. 4.4.3:

- `ss`: one 1x-scale module predicts the flow; O = S(I, D).
- `ms`: a 0.5x-scale module processes the half-size inputs; its last features, upsampled, join the
  1x module's inputs, which predicts the flow (two scales, no coarse warp).
- `cfw`: the 0.5x module predicts a coarse flow, upsampled to D_coarse, O_coarse = S(I, D_coarse)
  (eq. 4.3.1); the 1x module also sees O_coarse and D_coarse and predicts a residual,
  D = D_coarse + D_res (eq. 4.3.3), O = S(I, D) (eq. 4.3.4).
- `cfw_lcm`: `cfw` plus the lightness correction module (sec. 4.3.4): from the third-layer
  features of both modules and O, a mask M in [0, 1]; O_final = O (1 - M) + M (eq. 4.3.6).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import chex
import jax
import jax.numpy as jnp
from flax import linen as nn

from thesis_jax.deepwarp.warp import bilinear_warp

VARIANTS = ("ss", "ms", "cfw", "cfw_lcm")
NUM_LANDMARKS = 7


def anchor_maps(landmarks: jax.Array, height: int, width: int, scale: float = 1.0) -> jax.Array:
    """The 2N feature-point maps of eq. 4.3.5: (B, H, W, 2N), x - x_i and y - y_i.

    landmarks: (B, N, 2) as (x, y) in pixels of the full-size crop; `scale` maps them to a
    resized grid (0.5 for the half-scale module). Values are divided by the crop width.
    """
    chex.assert_rank(landmarks, 3)
    ys = (jnp.arange(height, dtype=jnp.float32) + 0.5) / scale - 0.5
    xs = (jnp.arange(width, dtype=jnp.float32) + 0.5) / scale - 0.5
    dx = xs[None, None, :, None] - landmarks[:, None, None, :, 0]  # (B, 1, W, N)
    dy = ys[None, :, None, None] - landmarks[:, None, None, :, 1]  # (B, H, 1, N)
    shape = (landmarks.shape[0], height, width, landmarks.shape[1])
    maps = jnp.concatenate([jnp.broadcast_to(dx, shape), jnp.broadcast_to(dy, shape)], axis=-1)
    return maps * (scale / width)


def downsample(images: jax.Array) -> jax.Array:
    """2x average pooling with 'SAME' padding (the 0.5x-scale inputs)."""
    return nn.avg_pool(images, (2, 2), strides=(2, 2), padding="SAME", count_include_pad=False)


def upsample_flow(flow: jax.Array, height: int, width: int) -> jax.Array:
    """Bilinear resize of a flow field to (height, width), rescaling its pixel units."""
    b, h, w, _ = flow.shape
    resized = jax.image.resize(flow, (b, height, width, 2), "bilinear")
    return resized * jnp.array([width / w, height / h], flow.dtype)


def upsample(features: jax.Array, height: int, width: int) -> jax.Array:
    b, _, _, c = features.shape
    return jax.image.resize(features, (b, height, width, c), "bilinear")


class AngleEmbedding(nn.Module):
    """F_angle: FC(16) -> ReLU -> FC(16) -> ReLU (sec. 4.3.3); angles in degrees."""

    features: int = 16
    angle_scale: float = 1.0 / 30.0

    @nn.compact
    def __call__(self, angles: jax.Array) -> jax.Array:
        x = angles * self.angle_scale
        x = nn.relu(nn.Dense(self.features)(x))
        return nn.relu(nn.Dense(self.features)(x))


class WarpingModule(nn.Module):
    """Conv + BatchNorm + ReLU ('SAME', stride 1), then a 1x1 conv to `out_channels`.

    Returns (output, third-layer features, last hidden features).
    """

    widths: Sequence[int] = (32, 64, 32, 32)
    kernels: Sequence[int] = (5, 3, 3, 1)
    out_channels: int = 2

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array, jax.Array]:
        third = x
        for i, (width, kernel) in enumerate(zip(self.widths, self.kernels, strict=True)):
            x = nn.Conv(width, (kernel, kernel), padding="SAME", use_bias=False)(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
            x = nn.relu(x)
            if i == min(2, len(self.widths) - 1):
                third = x
        out = nn.Conv(self.out_channels, (1, 1), kernel_init=nn.initializers.zeros)(x)
        return out, third, x


class LightnessCorrection(nn.Module):
    """The lightness correction module (sec. 4.3.4): features -> mask M in [0, 1]."""

    widths: Sequence[int] = (8, 8)
    # The sigmoid's starting value. It brightens every pixel by mask x (1 - pixel) at first, so
    # it is kept small: at 0.02 that uniform brightening cost more MSE in the tour's 500 steps
    # than the correction gained (CFW+LCM behind CFW on seeds 0 and 1); at 0.002 CFW+LCM leads
    # on seeds 0, 1 and 2 (Adam's steps do not shrink with the sigmoid's slope).
    initial_mask: float = 0.002

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        for width in self.widths:
            x = nn.Conv(width, (3, 3), padding="SAME", use_bias=False)(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
            x = nn.relu(x)
        bias = math.log(self.initial_mask / (1.0 - self.initial_mask))
        logits = nn.Conv(
            1,
            (1, 1),
            kernel_init=nn.initializers.zeros,
            bias_init=nn.initializers.constant(bias),
        )(x)
        return nn.sigmoid(logits)


class DeepWarp(nn.Module):
    """The gaze redirection network of fig. 4.3 / 4.10 in one of the variants of sec. 4.4.3.

    __call__(image (B, H, W, 3) in [0, 1], landmarks (B, 7, 2), angles (B, A) in degrees)
    returns a dict: `output` (B, H, W, 3) and `flow` (B, H, W, 2), plus `coarse_flow` and
    `coarse_output` (cfw variants) and `mask` (cfw_lcm).
    """

    variant: str = "cfw_lcm"
    widths: Sequence[int] = (32, 64, 32, 32)
    kernels: Sequence[int] = (5, 3, 3, 1)
    lcm_widths: Sequence[int] = (8, 8)
    angle_features: int = 16

    @nn.compact
    def __call__(
        self, image: jax.Array, landmarks: jax.Array, angles: jax.Array, train: bool = False
    ) -> dict[str, jax.Array]:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown DeepWarp variant {self.variant!r}; choose from {VARIANTS}")
        chex.assert_rank([image, landmarks, angles], [4, 3, 2])
        chex.assert_shape(landmarks, (image.shape[0], NUM_LANDMARKS, 2))
        b, h, w, _ = image.shape
        image = image.astype(jnp.float32)
        embedding = AngleEmbedding(self.angle_features)(angles.astype(jnp.float32))

        def inputs(img: jax.Array, scale: float) -> jax.Array:
            hh, ww = img.shape[1:3]
            angle_maps = jnp.broadcast_to(
                embedding[:, None, None, :], (b, hh, ww, embedding.shape[-1])
            )
            anchors = anchor_maps(landmarks, hh, ww, scale)
            return jnp.concatenate([img, angle_maps, anchors], axis=-1)

        module = dict(widths=self.widths, kernels=self.kernels)
        full = inputs(image, 1.0)
        out: dict[str, jax.Array] = {}
        if self.variant == "ss":
            flow, _, _ = WarpingModule(**module, name="fine")(full, train)
        elif self.variant == "ms":
            _, _, coarse_hidden = WarpingModule(**module, name="coarse")(
                inputs(downsample(image), 0.5), train
            )
            stacked = jnp.concatenate([full, upsample(coarse_hidden, h, w)], axis=-1)
            flow, _, _ = WarpingModule(**module, name="fine")(stacked, train)
        else:
            coarse, coarse_third, _ = WarpingModule(**module, name="coarse")(
                inputs(downsample(image), 0.5), train
            )
            coarse_flow = upsample_flow(coarse, h, w)
            coarse_output = bilinear_warp(image, coarse_flow)  # eq. 4.3.1
            stacked = jnp.concatenate([full, coarse_output, coarse_flow], axis=-1)
            residual, fine_third, _ = WarpingModule(**module, name="fine")(stacked, train)
            flow = coarse_flow + residual  # eq. 4.3.3
            out.update(coarse_flow=coarse_flow, coarse_output=coarse_output)
        output = bilinear_warp(image, flow)  # eq. 4.3.4
        if self.variant == "cfw_lcm":
            features = jnp.concatenate([upsample(coarse_third, h, w), fine_third, output], axis=-1)
            mask = LightnessCorrection(self.lcm_widths, name="lcm")(features, train)
            output = output * (1.0 - mask) + mask  # eq. 4.3.6
            out["mask"] = mask
        out.update(output=output, flow=flow)
        return out


def make_network(spec: Any) -> DeepWarp:
    """The network that `spec` describes: anything with `variant`, `widths`, `kernels` and
    `lcm_widths` (a config's `model` block, an `export.Architecture`).

    Equal specs give the same module instance, so the `apply` of states (and the jitted
    functions) built from equal configs are equal static arguments and share compiled code.
    """
    return _network(spec.variant, tuple(spec.widths), tuple(spec.kernels), tuple(spec.lcm_widths))


@functools.lru_cache(maxsize=64)
def _network(
    variant: str, widths: tuple[int, ...], kernels: tuple[int, ...], lcm_widths: tuple[int, ...]
) -> DeepWarp:
    return DeepWarp(variant=variant, widths=widths, kernels=kernels, lcm_widths=lcm_widths)
