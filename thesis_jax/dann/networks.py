"""DANN networks: feature extractor G_f, label predictor G_y, domain classifier G_d.

The architectures of thesis fig. 5.3 (A: MNIST, LeNet-5 style; B: SVHN, after Srivastava et al.
2014; C: GTSRB, after Ciresan et al. 2012), the domain classifiers of sec. 5.4.2 (x -> 1024 ->
1024 -> 2, and x -> 100 -> 2 for MNIST), and the shallow one-hidden-layer DANN of sec. 5.3.1
(sigmoid hidden layer, softmax output, logistic domain regressor, eq. 5.3.1-5.3.4). The gradient
reversal layer sits between G_f and G_d (fig. 5.1).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from thesis_jax.core import layers
from thesis_jax.dann.grl import gradient_reversal

ARCHITECTURES = ("mnist", "svhn", "gtsrb", "shallow")
INPUT_SHAPES = {"mnist": (28, 28, 3), "svhn": (32, 32, 3), "gtsrb": (40, 40, 3)}


def max_pool(x: jax.Array, window: int, stride: int, padding: str) -> jax.Array:
    """Max-pooling with the values of `nn.max_pool`, in forms whose backward pass XLA:CPU runs
    fast: non-overlapping windows that tile the input are a reshape + max; other windows (the
    SVHN network's 3x3 windows at stride 2) the max of window*window strided slices of the
    input padded with -inf. XLA:CPU's select-and-scatter, the gradient of `nn.max_pool`, is about
    10x slower (22 ms against 2 ms for a 128x24x24x32 input).

    The gradient differs from select-and-scatter's only where a window holds its maximum more
    than once: it is shared between the tied entries instead of going to the first. After a
    ReLU the ties are zeros, whose gradient the ReLU stops, so the parameters' gradients agree.
    """
    _, height, width, channels = x.shape
    if window == stride and height % window == 0 and width % window == 0:
        x = x.reshape(-1, height // window, window, width // window, window, channels)
        return x.max(axis=(2, 4))
    pads = [
        layers.same_padding(size, window, stride) if padding == "SAME" else (0, 0)
        for size in (height, width)
    ]
    x = jnp.pad(x, ((0, 0), *pads, (0, 0)), constant_values=-jnp.inf)
    span_h, span_w = (((size - window) // stride) * stride + 1 for size in x.shape[1:3])
    slices = [
        x[:, i : i + span_h : stride, j : j + span_w : stride]
        for i in range(window)
        for j in range(window)
    ]
    return functools.reduce(jnp.maximum, slices)


class ConvFeatures(nn.Module):
    """Conv -> ReLU [-> max-pool] blocks; `layers` holds (features, kernel, pool, pool_stride).

    The convolutions are `core.layers.Conv` (`nn.Conv`'s parameters and values; a small output's
    input gradient as a matmul, `layers.small_output_conv`; the compiled CPU kernels of
    `core.conv_kernel` where they apply, else, with `kernel_gradient_chunk`, XLA's kernel
    gradients over batch slices, `layers.fast_conv`)."""

    layers: Sequence[tuple[int, int, int, int]]
    padding: str = "VALID"
    kernel_gradient_chunk: int = 0  # > 0: `layers.fast_conv`'s kernel gradient
    # Before a tiling max-pool, add the bias after the pool (`layers.Conv(x, pool=...)`): the
    # same values on a quarter of the pixels, GTSRB's step ~3% faster. Only GTSRB's network does:
    # MNIST's step does not gain, and its bias gradient's other summation order, harmless in
    # itself, re-draws an 8,000-step DANN run (real MNIST -> MNIST-M seed 0: target accuracy
    # 0.678 -> 0.651, proxy A-distance 1.47 -> 1.72), so the README's results would no longer
    # reproduce bit for bit.
    bias_after_pool: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for features, kernel, pool, stride in self.layers:
            conv = layers.Conv(
                features,
                (kernel, kernel),
                padding=self.padding,
                kernel_gradient_chunk=self.kernel_gradient_chunk,
            )
            if pool and pool == stride:
                # Max-pooling commutes with the ReLU (and the bias): windows that tile the map
                # are pooled first, leaving a quarter of the ReLUs (GTSRB's step 4% faster).
                # Overlapping windows (SVHN's) keep the ReLU first, which XLA fuses into their
                # slices.
                pooled = functools.partial(
                    max_pool, window=pool, stride=stride, padding=self.padding
                )
                if self.bias_after_pool:
                    x = nn.relu(conv(x, pool=pooled))
                else:
                    x = nn.relu(pooled(conv(x)))
            else:
                x = nn.relu(conv(x))
                if pool:
                    x = max_pool(x, pool, stride, self.padding)
        return x.reshape(x.shape[0], -1)


class MLP(nn.Module):
    """Dense layers with ReLU (or sigmoid) between them, dropout after each hidden layer."""

    hidden: Sequence[int]
    outputs: int
    dropout_rate: float = 0.0
    activation: str = "relu"

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> tuple[jax.Array, jax.Array]:
        """Returns (logits, last hidden layer)."""
        act = nn.relu if self.activation == "relu" else nn.sigmoid
        for width in self.hidden:
            x = act(nn.Dense(width)(x))
            if self.dropout_rate:
                x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        return nn.Dense(self.outputs)(x), x


def _components(
    architecture: str,
    num_classes: int,
    shallow_hidden: int,
    domain_hidden: Sequence[int],
    domain_dropout: float | None,
) -> tuple[nn.Module, nn.Module, nn.Module]:
    features, labels, domains = _thesis_components(architecture, num_classes, shallow_hidden)
    if domain_hidden or domain_dropout is not None:
        domains = MLP(
            tuple(domain_hidden) or domains.hidden,
            2,
            domains.dropout_rate if domain_dropout is None else domain_dropout,
            domains.activation,
        )
    return features, labels, domains


def _thesis_components(
    architecture: str, num_classes: int, shallow_hidden: int
) -> tuple[nn.Module, nn.Module, nn.Module]:
    if architecture == "mnist":  # fig. 5.3 (A)
        return (
            ConvFeatures([(32, 5, 2, 2), (48, 5, 2, 2)]),
            MLP([100, 100], num_classes),
            MLP([100], 2),
        )
    if architecture == "svhn":  # fig. 5.3 (B), dropout as Srivastava et al. (2014)
        return (
            ConvFeatures([(64, 5, 3, 2), (64, 5, 3, 2), (128, 5, 0, 0)], padding="SAME"),
            MLP([3072, 2048], num_classes, dropout_rate=0.5),
            MLP([1024, 1024], 2, dropout_rate=0.5),
        )
    if architecture == "gtsrb":  # fig. 5.3 (C)
        return (
            # Kernel gradients over slices of 8 images where the compiled kernels do not run
            # (`native.disabled()`): the step 1.83 -> 2.50 per second on 2 CPU cores before
            # they did (the MNIST and SVHN networks' 5-9% slower that way, so not theirs).
            ConvFeatures(
                [(96, 5, 2, 2), (144, 3, 2, 2), (256, 5, 2, 2)],
                kernel_gradient_chunk=8,
                bias_after_pool=True,
            ),
            MLP([512], num_classes),
            MLP([1024, 1024], 2),
        )
    if architecture == "shallow":  # sec. 5.3.1: G_f = sigmoid(Wx + b), eq. (5.3.1)
        return (
            MLP([], shallow_hidden),
            MLP([], num_classes),  # softmax(V G_f + c)
            MLP([], 2),  # logistic regressor, eq. (5.3.4), as a 2-way softmax
        )
    raise ValueError(f"unknown architecture {architecture!r}; choose one of {ARCHITECTURES}")


class DANN(nn.Module):
    """G_f, G_y and G_d with a gradient reversal layer before G_d (fig. 5.1).

    `__call__(x, lam, train=...)` returns a dict with `logits` (G_y), `domain_logits` (G_d on
    R(G_f(x)) with R reversing gradients scaled by `lam`), `features` (G_f(x)) and `hidden`
    (the last hidden layer of G_y, the descriptor used by the SA baseline and SVM retraining).
    """

    architecture: str = "mnist"
    num_classes: int = 10
    shallow_hidden: int = 100
    domain_hidden: tuple[int, ...] = ()
    domain_dropout: float | None = None

    def setup(self) -> None:
        (self.feature_extractor, self.label_predictor, self.domain_classifier) = _components(
            self.architecture,
            self.num_classes,
            self.shallow_hidden,
            self.domain_hidden,
            self.domain_dropout,
        )

    def __call__(
        self,
        x: jax.Array,
        lam: jax.Array | float = 0.0,
        *,
        train: bool = False,
        with_domain: bool = True,
    ) -> dict[str, jax.Array]:
        if self.architecture == "shallow":
            x = x.reshape(x.shape[0], -1)
            features = nn.sigmoid(self.feature_extractor(x, train=train)[0])
        else:
            features = self.feature_extractor(x)
        logits, hidden = self.label_predictor(features, train=train)
        outputs = {"logits": logits, "features": features, "hidden": hidden}
        if with_domain:
            reversed_features = gradient_reversal(features, lam)
            outputs["domain_logits"] = self.domain_classifier(reversed_features, train=train)[0]
        return outputs
