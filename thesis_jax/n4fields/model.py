"""The N4-Fields patch CNN (thesis fig. 3.3, sec. 3.3.3) and its baseline heads (sec. 3.4).

A 34 x 34 patch (M = 34, sec. 3.3.1) with 3 (RGB) or 4 (RGBD, NYU) channels, minus the
per-channel mean of the training images (sec. 3.3.3), goes through valid convolutions with ReLU
and non-overlapping max-pooling, then fully connected layers with ReLU, dropout of half the
activations in the first two of them, and a linear output layer (sec. 3.3.3): the 16-d neural
code CNN(P; Theta) for N4-Fields (head "code"), one logit for CNN-central ("central") or 256
logits, one per pixel of the 16 x 16 central patch, for CNN-patch ("patch") (sec. 3.4: "the
same architecture ... except that the size of the last layer is no longer 16 but equals the
number of pixels we wish to produce predictions for"). Weights start from N(0, 0.01^2), biases
at zero (sec. 3.3.3); the first layer's filters are kept within an l2 ball by
`core.max_norm_projection(params, max_norm, layers=("conv1",))`, applied after each update
(sec. 3.3.3, Hinton et al. 2012b).

The layer sizes. Fig. 3.3 is a picture that thesis.md does not carry; its text says only that
the design is "loosely inspired by (Krizhevsky et al., 2012)" and that "a dozen of other CNN
designs (deeper ones and wider ones)" performed "roughly the same". The default here is such a
design sized so that the stack tiles the 34 x 34 patch exactly (receptive field 34):

    34x34xC -conv 5x5, 32-> 30x30 -max 2/2-> 15x15 -conv 4x4, 64-> 12x12 -max 2/2-> 6x6
    -conv 3x3, 128-> 4x4 -max 2/2-> 2x2x128 -fc 1024-> (dropout) -fc 1024-> (dropout) -fc 16

Every width, kernel, pool and FC size is a field of `Architecture`. The convolutions are
unpadded and pooling windows do not overlap, so the network is the same function of the patch
wherever the patch sits in an image: `dense_outputs` in `inference` evaluates it at every pixel
in one pass.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from thesis_jax.n4fields.targets import HEADS


@dataclasses.dataclass(frozen=True)
class Architecture:
    """The static description of the patch CNN (hashable: a jit static argument).

    Attributes:
      in_channels: 3 (RGB) or 4 (RGBD).
      conv_features, conv_kernels, conv_pools: per convolutional layer, its number of filters,
        its (square) kernel size and the side of the max-pooling window after it (window =
        stride; 1 = no pooling).
      fc_features: the hidden fully connected layers; dropout follows the first two.
      head: "code" (N4-Fields), "central" (CNN-central) or "patch" (CNN-patch).
      code_dim: the size of the neural code (16).
      annotation_size: N, the annotation patch side (16); CNN-patch has N^2 outputs.
      patch_size: M, the input patch side (34).
      channel_mean: the per-channel mean subtracted from the input (sec. 3.3.3), or None.
      dropout_rate: the fraction of the first two FC layers' activations dropped (0.5).
      init_std: the standard deviation of the initial weights (0.01).
    """

    in_channels: int = 3
    conv_features: tuple[int, ...] = (32, 64, 128)
    conv_kernels: tuple[int, ...] = (5, 4, 3)
    conv_pools: tuple[int, ...] = (2, 2, 2)
    fc_features: tuple[int, ...] = (1024, 1024)
    head: str = "code"
    code_dim: int = 16
    annotation_size: int = 16
    patch_size: int = 34
    channel_mean: tuple[float, ...] | None = None
    dropout_rate: float = 0.5
    init_std: float = 0.01

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"unknown head {self.head!r}; choose one of {HEADS}")
        layers = (self.conv_features, self.conv_kernels, self.conv_pools)
        if len({len(x) for x in layers}) != 1 or not self.conv_features:
            raise ValueError("conv_features, conv_kernels and conv_pools need one entry per layer")
        if self.channel_mean is not None and len(self.channel_mean) != self.in_channels:
            raise ValueError(
                f"channel_mean has {len(self.channel_mean)} entries for {self.in_channels} channels"
            )
        if self.feature_size < 1:
            raise ValueError(f"a {self.patch_size}x{self.patch_size} patch is too small for {self}")

    @property
    def outputs(self) -> int:
        """The size of the last layer: code_dim, 1 or annotation_size^2."""
        return {"code": self.code_dim, "central": 1, "patch": self.annotation_size**2}[self.head]

    @property
    def feature_size(self) -> int:
        """The side of the last convolutional feature map (the first FC layer's window)."""
        size = self.patch_size
        for kernel, pool in zip(self.conv_kernels, self.conv_pools, strict=True):
            size = (size - kernel + 1) // pool
        return size

    @property
    def total_stride(self) -> int:
        """The product of the pooling strides: one feature-map step in input pixels."""
        return math.prod(self.conv_pools)

    @property
    def receptive_field(self) -> int:
        """How many input rows one output depends on (<= patch_size; 34 for the default)."""
        size = self.feature_size
        for kernel, pool in reversed(list(zip(self.conv_kernels, self.conv_pools, strict=True))):
            size = size * pool + kernel - 1
        return size

    def with_head(self, head: str) -> Architecture:
        return dataclasses.replace(self, head=head)


def max_pool(x: jax.Array, window: int) -> jax.Array:
    """Non-overlapping max-pooling (VALID: trailing rows / columns that do not fill a window are
    dropped), as a reshape + max, the same values as `nn.max_pool(x, (w, w), (w, w))`."""
    batch, height, width, channels = x.shape
    rows, cols = height // window, width // window
    x = x[:, : rows * window, : cols * window]
    return x.reshape(batch, rows, window, cols, window, channels).max(axis=(2, 4))


class N4Net(nn.Module):
    """The patch CNN of fig. 3.3: (B, M, M, C) patches -> (B, outputs).

    Parameters are named conv1.., fc1.., output so that the dense evaluation in `inference`
    can read them.
    """

    arch: Architecture

    @nn.compact
    def __call__(self, patches: jax.Array, *, train: bool = False) -> jax.Array:
        arch = self.arch
        chex.assert_rank(patches, 4)
        chex.assert_axis_dimension(patches, 1, arch.patch_size)
        chex.assert_axis_dimension(patches, 2, arch.patch_size)
        chex.assert_axis_dimension(patches, 3, arch.in_channels)
        init = nn.initializers.normal(arch.init_std)
        x = patches.astype(jnp.float32)
        if arch.channel_mean is not None:
            x = x - jnp.asarray(arch.channel_mean, jnp.float32)
        layers = zip(arch.conv_features, arch.conv_kernels, arch.conv_pools, strict=True)
        for i, (features, kernel, pool) in enumerate(layers):
            conv = nn.Conv(
                features, (kernel, kernel), padding="VALID", kernel_init=init, name=f"conv{i + 1}"
            )
            x = nn.relu(conv(x))
            if pool > 1:
                x = max_pool(x, pool)
        x = x.reshape(x.shape[0], -1)
        for j, width in enumerate(arch.fc_features):
            x = nn.relu(nn.Dense(width, kernel_init=init, name=f"fc{j + 1}")(x))
            if j < 2 and arch.dropout_rate:
                x = nn.Dropout(arch.dropout_rate, deterministic=not train)(x)
        return nn.Dense(arch.outputs, kernel_init=init, name="output")(x)


@functools.lru_cache(maxsize=64)
def network(arch: Architecture) -> N4Net:
    """`N4Net(arch)`, one instance per architecture: its `apply` is then one function (flax
    modules compare by identity), so states, dictionaries and jitted functions keyed by it
    share their compilations."""
    return N4Net(arch)
