"""DeepWarp's network: coarse-to-fine warping with lightness correction (thesis sec. 4.3).

Inputs (sec. 4.3.3) are image-sized maps: the eye crop (3 channels), the redirection angle
embedded by FC(16)-ReLU-FC(16)-ReLU and broadcast to 16 constant maps, and 14 anchor maps
(x - x_i, y - y_i for the 7 landmarks, eq. 4.3.5; divided by the crop width so they lie in about
[-1, 1]). 33 maps for one angle; the angle may be 2-D (vertical, horizontal; sec. 4.4.5).
30 of those maps are affine functions of the pixel's position (a + b x + c y), so the first
convolution of each module takes them as coefficients and convolves them in closed form
(`affine_maps_conv`, `InputConv`): the same numbers as convolving the concatenated maps, with
a tenth (SS) to a fifth (CFW's 1x module) of that layer's work and no gradient through 30
image-sized maps (a training step of CFW+LCM on one core: 238 -> 178 ms).

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
import numpy as np
from flax import linen as nn

from thesis_jax.core import layers
from thesis_jax.deepwarp.warp import bilinear_warp

VARIANTS = ("ss", "ms", "cfw", "cfw_lcm")
NUM_LANDMARKS = 7


def anchor_maps(landmarks: jax.Array, height: int, width: int, scale: float = 1.0) -> jax.Array:
    """The 2N feature-point maps of eq. 4.3.5: (B, H, W, 2N), x - x_i and y - y_i.

    landmarks: (B, N, 2) as (x, y) in pixels of the full-size crop; `scale` maps them to a
    resized grid (0.5 for the half-scale module). Values are divided by the crop width.
    """
    return affine_maps(anchor_coefficients(landmarks, width, scale), height, width)


def anchor_coefficients(landmarks: jax.Array, width: int, scale: float = 1.0) -> jax.Array:
    """`anchor_maps` as affine functions of the pixel: (B, 3, 2N) coefficients (`affine_maps`).

    Pixel column c of the resized grid lies at x = (c + 0.5) / scale - 0.5 of the full-size
    crop, so x - x_i = c / scale + (0.5 / scale - 0.5 - x_i), and the same for rows.
    """
    chex.assert_rank(landmarks, 3)
    batch, points, _ = landmarks.shape
    unit = scale / width  # the maps' scale: crop pixels -> fractions of the crop width
    offsets = (0.5 / scale - 0.5 - landmarks.astype(jnp.float32)) * unit  # (B, N, 2)
    constant = jnp.concatenate([offsets[..., 0], offsets[..., 1]], axis=-1)
    ones, zeros = jnp.full((points,), unit / scale), jnp.zeros((points,))
    slopes = jnp.stack([jnp.concatenate([ones, zeros]), jnp.concatenate([zeros, ones])])
    return jnp.concatenate(
        [constant[:, None], jnp.broadcast_to(slopes, (batch, 2, 2 * points))], axis=1
    )


def input_coefficients(
    embedding: jax.Array, landmarks: jax.Array, width: int, scale: float = 1.0
) -> jax.Array:
    """The angle embedding's constant maps, then the anchor maps, as (B, 3, E + 2N) affine
    coefficients (`affine_maps`) on a grid `width` pixels wide at `scale`."""
    constant = jnp.zeros((embedding.shape[0], 3, embedding.shape[-1]), jnp.float32)
    constant = constant.at[:, 0].set(embedding.astype(jnp.float32))
    return jnp.concatenate([constant, anchor_coefficients(landmarks, width, scale)], axis=-1)


def affine_maps(coefficients: jax.Array, height: int, width: int) -> jax.Array:
    """(B, 3, C) coefficients -> (B, H, W, C) maps a + b x + c y of the pixel's column x and row
    y: the angle embedding's constant maps (b = c = 0) and the anchor maps are of this form."""
    a, b, c = (coefficients[:, i, None, None, :] for i in range(3))
    xs = jnp.arange(width, dtype=jnp.float32)[None, None, :, None]
    ys = jnp.arange(height, dtype=jnp.float32)[None, :, None, None]
    return a + b * xs + c * ys


@functools.lru_cache(maxsize=32)
def _tap_moments(height: int, width: int, kh: int, kw: int) -> np.ndarray:
    """(3, H * W, kh * kw): for each output pixel of a 'SAME' convolution and each kernel tap,
    whether the tap reads inside the image (the zero padding reads 0), times 1, the column and
    the row of the pixel it reads."""
    top, left = layers.same_padding(height, kh, 1)[0], layers.same_padding(width, kw, 1)[0]
    rows = np.arange(height)[:, None] + np.arange(kh)[None, :] - top  # (H, kh)
    cols = np.arange(width)[:, None] + np.arange(kw)[None, :] - left  # (W, kw)
    inside = ((rows >= 0) & (rows < height))[:, None, :, None] & ((cols >= 0) & (cols < width))[
        None, :, None, :
    ]
    moments = np.stack([inside, inside * cols[None, :, None, :], inside * rows[:, None, :, None]])
    return moments.reshape(3, height * width, kh * kw).astype(np.float32)


def affine_maps_conv(coefficients: jax.Array, kernel: jax.Array, height: int, width: int):
    """`conv(affine_maps(coefficients, height, width), kernel, "SAME")` without the maps.

    Each output pixel is a sum over the taps that read inside the image of kernel[tap] applied
    to a + b x + c y at the pixel read: per example, the three coefficient vectors through each
    tap's kernel (B x 3 x taps x F numbers), then one matrix product with the taps' moments
    (`_tap_moments`): B x 3 x taps x F multiply-adds per pixel instead of B x C x taps x F,
    and no gradient with respect to image-sized maps.
    """
    kh, kw, channels, features = kernel.shape
    chex.assert_shape(coefficients, (None, 3, channels))
    per_tap = jnp.einsum("bjc,tcf->bjtf", coefficients, kernel.reshape(kh * kw, channels, features))
    moments = jnp.asarray(_tap_moments(height, width, kh, kw))
    out = jnp.einsum("jpt,bjtf->bpf", moments, per_tap)
    return out.reshape(coefficients.shape[0], height, width, features)


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


class InputConv(nn.Module):
    """A module's first convolution ('SAME', stride 1, no bias) of its input maps: the image's,
    the affine maps of `affine_coefficients` (angle embedding, anchors), then `extra` maps, in
    that order along the kernel's input channels. The affine maps' part runs as
    `affine_maps_conv`; the same numbers as one convolution of the concatenated maps."""

    features: int
    kernel_size: int

    @nn.compact
    def __call__(
        self, image: jax.Array, affine_coefficients: jax.Array, extra: jax.Array | None
    ) -> jax.Array:
        dense = image if extra is None else jnp.concatenate([image, extra], axis=-1)
        split = (image.shape[-1], image.shape[-1] + affine_coefficients.shape[-1])
        channels = split[1] + dense.shape[-1] - split[0]
        k = self.kernel_size
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (k, k, channels, self.features)
        )
        dense_kernel = jnp.concatenate([kernel[:, :, : split[0]], kernel[:, :, split[1] :]], axis=2)
        height, width = image.shape[1:3]
        out = layers.conv(dense, dense_kernel, "SAME")
        affine_kernel = kernel[:, :, split[0] : split[1]]
        return out + affine_maps_conv(affine_coefficients, affine_kernel, height, width)


class WarpingModule(nn.Module):
    """Conv + BatchNorm + ReLU ('SAME', stride 1), then a 1x1 conv to `out_channels`.

    Its input maps are the image, the affine maps of `affine_coefficients` and `extra` maps
    (`InputConv`). Returns (output, third-layer features, last hidden features).
    """

    widths: Sequence[int] = (32, 64, 32, 32)
    kernels: Sequence[int] = (5, 3, 3, 1)
    out_channels: int = 2

    @nn.compact
    def __call__(
        self,
        image: jax.Array,
        affine_coefficients: jax.Array,
        extra: jax.Array | None,
        train: bool,
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        x = third = image
        for i, (width, kernel) in enumerate(zip(self.widths, self.kernels, strict=True)):
            if i == 0:
                x = InputConv(width, kernel, name="Conv_0")(image, affine_coefficients, extra)
            else:
                conv = nn.Conv(
                    width, (kernel, kernel), padding="SAME", use_bias=False, name=f"Conv_{i}"
                )
                x = conv(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
            x = nn.relu(x)
            if i == min(2, len(self.widths) - 1):
                third = x
        out = nn.Conv(
            self.out_channels,
            (1, 1),
            kernel_init=nn.initializers.zeros,
            name=f"Conv_{len(self.widths)}",
        )(x)
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
        _, h, w, _ = image.shape
        image = image.astype(jnp.float32)
        embedding = AngleEmbedding(self.angle_features)(angles.astype(jnp.float32))
        # The angle's constant maps and the anchor maps as affine coefficients (`InputConv`).
        full = input_coefficients(embedding, landmarks, w)
        module = dict(widths=self.widths, kernels=self.kernels)
        out: dict[str, jax.Array] = {}
        if self.variant == "ss":
            flow, _, _ = WarpingModule(**module, name="fine")(image, full, None, train)
        else:
            small = downsample(image)
            half = input_coefficients(embedding, landmarks, small.shape[2], 0.5)
            coarse, coarse_third, coarse_hidden = WarpingModule(**module, name="coarse")(
                small, half, None, train
            )
        if self.variant == "ms":
            extra = upsample(coarse_hidden, h, w)
            flow, _, _ = WarpingModule(**module, name="fine")(image, full, extra, train)
        elif self.variant in ("cfw", "cfw_lcm"):
            coarse_flow = upsample_flow(coarse, h, w)
            coarse_output = bilinear_warp(image, coarse_flow)  # eq. 4.3.1
            extra = jnp.concatenate([coarse_output, coarse_flow], axis=-1)
            residual, fine_third, _ = WarpingModule(**module, name="fine")(
                image, full, extra, train
            )
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
