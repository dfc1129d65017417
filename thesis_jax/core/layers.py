"""Strided and transposed convolutions rewritten as stride-1 ones: drop-in for `nn.Conv` and
`nn.ConvTranspose` whose gradients XLA:CPU runs fast.

XLA:CPU compiles the input gradient of a strided convolution (a convolution of the output's
gradient dilated by the stride) and every pass of a transposed one into slow loops: in SPIRAL's
policy, with 16 channels, the backward pass of one 4x4 stride-2 convolution took 14 times its
forward pass. Both layers have exact stride-1 forms:

- a k x k convolution with stride s (k a multiple of s) is a (k/s) x (k/s) stride-1 convolution of
  the input rearranged space-to-depth (each s x s block of pixels becomes one pixel of s*s*C
  channels), with the kernel's taps regrouped the same way;
- a k x k transposed convolution with stride s ("SAME") is s*s stride-1 convolutions of the
  input, one per output phase with that phase's taps of the kernel, interleaved depth-to-space
  (sub-pixel convolution, Shi et al. 2016).

Two stride-1 gradients get the same treatment: the input gradient of a convolution whose output
is smaller than its kernel (`small_output_conv`), and, on request, kernel gradients summed over
slices of the batch that stay in the caches (`kernel_gradient`, `fast_conv`; `Conv`'s
`kernel_gradient_chunk`).

On a CPU, forward passes and kernel gradients (and a stride-1 convolution's input gradient, as
the forward pass of the output's gradient with the flipped kernel) run the compiled kernels of
`core.conv_kernel` wherever they apply (float32, 1 or a multiple of 16 output channels, at least
64 output pixels per image): XLA:CPU runs few-channel convolutions far below the CPU's peak. On
SPIRAL's policy step that took 120 -> 84 ms on 2 cores. Their derivatives are XLA's, so WGAN-GP's
second-order gradients still hold; `native.disabled()` or `THESIS_JAX_NATIVE=0` turn them off.

`Conv` and `ConvTranspose` take the arguments the project uses of their Flax namesakes
(`features`, `kernel_size`, `strides`, `padding` "SAME" for both, also "VALID" for `Conv`,
`kernel_init`) and hold the same parameters, "kernel" [kh, kw, in, out] and "bias" [out], so
parameter trees and checkpoints do not change; the outputs equal Flax's up to float rounding
(tests/core/test_layers.py, tests/core/test_conv_kernel.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from thesis_jax.core import conv_kernel

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """XLA's "SAME" padding (low, high) of one spatial axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv(x: jax.Array, kernel: jax.Array, padding: Any = "VALID") -> jax.Array:
    """A stride-1 `lax` convolution, NHWC input, HWIO kernel (no bias)."""
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_DIMENSIONS)


def _explicit_padding(
    padding: Any, shape: Sequence[int], kernel: Sequence[int], strides: Sequence[int] = (1, 1)
) -> tuple[tuple[int, int], tuple[int, int]]:
    """`padding` ("VALID", "SAME" or ((lo, hi), (lo, hi))) of a convolution as pairs."""
    if padding == "VALID":
        return (0, 0), (0, 0)
    if padding == "SAME":
        return tuple(same_padding(shape[i], kernel[i], strides[i]) for i in range(2))
    return tuple(padding[0]), tuple(padding[1])


def _output_pixels(
    x: jax.Array, kernel_shape: Sequence[int], strides: Sequence[int], padding: Any
) -> int:
    (top, bottom), (left, right) = _explicit_padding(padding, x.shape[1:3], kernel_shape, strides)
    height = (x.shape[1] + top + bottom - kernel_shape[0]) // strides[0] + 1
    width = (x.shape[2] + left + right - kernel_shape[1]) // strides[1] + 1
    return height * width


def _convolve(x: jax.Array, kernel: jax.Array, strides: Sequence[int], padding: Any) -> jax.Array:
    """The forward pass of the layers' convolutions: the compiled CPU kernel (`conv_kernel`)
    where it applies, each image having at least 64 output pixels (SPIRAL's input layer, 320
    canvases 32x32x1 -> 16, 5x5: 3.4 ms against XLA's 14.9; its first strided layer 4.5
    against 7.3), else XLA's. Differentiable: its derivatives are XLA's."""
    strides = tuple(strides)
    if _compiled_applies(x, kernel, kernel.shape, strides, padding):
        pads = _explicit_padding(padding, x.shape[1:3], kernel.shape[:2], strides)
        return conv_kernel.forward(x, kernel, strides, pads)
    return jax.lax.conv_general_dilated(x, kernel, strides, padding, dimension_numbers=_DIMENSIONS)


def _compiled_applies(
    x: jax.Array,
    other: jax.Array,
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    padding: Any,
) -> bool:
    """Whether the compiled kernels run this convolution's forward pass (other: the kernel) or
    kernel gradient (other: the output's gradient): `conv_kernel.supported` and at least 64
    output pixels per image (below that XLA's is as fast or faster)."""
    return _output_pixels(x, kernel_shape, strides, padding) >= 64 and conv_kernel.supported(
        x, other
    )


def _compiled_kernel_gradient(
    x: jax.Array,
    grad: jax.Array,
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    padding: Any,
) -> jax.Array | None:
    """The kernel gradient by the compiled CPU kernel (`conv_kernel`) where it applies and is
    the faster, else None. It is when each image has at least 64 output pixels: on SPIRAL's
    first policy layer (320 images, 32x32x16, 4x4 stride 2) 4.2-5.7 ms against XLA's 12-19, on
    DANN-sized 5x5 layers (128 images, 32x32x32 -> 64) 58 ms against 225; on a critic's last
    layers (8x8 -> 4x4 pixels) XLA's is the faster."""
    if not _compiled_applies(x, grad, kernel_shape, strides, padding):
        return None
    pads = _explicit_padding(padding, x.shape[1:3], kernel_shape[:2], strides)
    return conv_kernel.kernel_gradient(x, grad, tuple(kernel_shape), tuple(strides), pads)


def kernel_gradient(
    x: jax.Array, grad: jax.Array, kernel_shape: Sequence[int], padding: Any, chunk: int = 0
) -> jax.Array:
    """The kernel gradient of `conv(x, kernel, padding)` for the output gradient `grad`.

    chunk > 0: on a CPU, summed over batch slices of at most `chunk` images, each XLA's own
    kernel gradient (`sliced_kernel_gradient`). XLA:CPU computes a kernel gradient as one
    convolution whose window is the whole output and whose contracted channels are the batch;
    past some size its operands fall out of the caches and it slows several-fold. In DANN's
    networks (fig. 5.3, batch 128), slices of 8 images: GTSRB's 5x5 convolution of the 40x40x3
    image 132 -> 42 ms, its 3x3 one of 18x18x96 168 -> 68 ms, SVHN's first 37 -> 19 ms. Other
    platforms, and processes with several devices (each already holds a slice of a sharded
    batch; slicing again cost GTSRB's step a quarter of its speed on 4 simulated CPU devices),
    take the whole batch.
    """
    compiled = _compiled_kernel_gradient(x, grad, kernel_shape, (1, 1), padding)
    if compiled is not None:
        return compiled
    if chunk <= 0 or x.shape[0] <= chunk or jax.device_count() > 1:
        return _whole_kernel_gradient(x, grad, kernel_shape, padding)
    return jax.lax.platform_dependent(
        x,
        grad,
        cpu=functools.partial(
            sliced_kernel_gradient, kernel_shape=kernel_shape, padding=padding, chunk=chunk
        ),
        default=functools.partial(
            _whole_kernel_gradient, kernel_shape=kernel_shape, padding=padding
        ),
    )


def _whole_kernel_gradient(
    x: jax.Array, grad: jax.Array, kernel_shape: Sequence[int], padding: Any
) -> jax.Array:
    kernel = jax.ShapeDtypeStruct(tuple(kernel_shape), x.dtype)
    return jax.linear_transpose(lambda k: conv(x, k, padding), kernel)(grad)[0]


def sliced_kernel_gradient(
    x: jax.Array, grad: jax.Array, kernel_shape: Sequence[int], padding: Any, chunk: int
) -> jax.Array:
    """XLA's kernel gradient summed over consecutive batch slices of at most `chunk` images (at
    most 16 slices, unrolled: inside a `lax.scan` XLA:CPU runs them many times slower)."""
    batch = x.shape[0]
    size = -(-batch // min(16, -(-batch // chunk)))
    return sum(
        _whole_kernel_gradient(x[i : i + size], grad[i : i + size], kernel_shape, padding)
        for i in range(0, batch, size)
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def small_output_conv(x: jax.Array, kernel: jax.Array, padding: Any = "VALID") -> jax.Array:
    """`conv` whose input gradient is a matmul and k*k shifted adds (col2im).

    XLA:CPU computes a convolution's input gradient as a convolution of the output gradient,
    zero-padded by the kernel size, with the flipped kernel. When the output has fewer pixels
    than the kernel has taps most of that work multiplies the padding's zeros, and XLA:CPU's
    kernel for it is slow besides: in DANN's GTSRB network (fig. 5.3 C) the 5 x 5 convolution
    of 8x8x144 to 4x4x256 took 1.2-1.7 s for its input gradient at batch 128 against 20 ms for
    its forward pass. Here the gradient of each of the k*k shifted input windows is the output
    gradient times that tap of the kernel (one matmul for all taps), added back at its shift:
    about 60 ms. Forward pass and kernel gradient are XLA's own, the kernel gradient over the
    whole batch: a small output's operands stay in the caches, where slices of the batch
    (`kernel_gradient`'s `chunk`) only add passes (that layer at batch 64: 10.9 ms whole, 12.7
    in slices of 8 images).
    """
    return conv(x, kernel, padding)


def _conv_keeping_inputs(x, kernel, padding, *_):
    """Forward pass of `small_output_conv` and `fast_conv`: both backward passes need x."""
    return _convolve(x, kernel, (1, 1), padding), (x, kernel)


def _small_output_conv_bwd(padding, residuals, grad):
    x, kernel = residuals
    kh, kw = kernel.shape[:2]
    (top, _), (left, _) = _explicit_padding(padding, x.shape[1:3], (kh, kw))
    ho, wo = grad.shape[1:3]
    taps = jnp.einsum("nhwf,ijcf->nhwijc", grad, kernel)  # one window gradient per tap
    height, width = ho + kh - 1, wo + kw - 1  # the padded input the windows tile
    padded = sum(
        jnp.pad(taps[:, :, :, i, j], ((0, 0), (i, height - ho - i), (j, width - wo - j), (0, 0)))
        for i in range(kh)
        for j in range(kw)
    )
    dx = padded[:, top : top + x.shape[1], left : left + x.shape[2]]
    grad_kernel = kernel_gradient(x, grad, kernel.shape, padding)
    return dx.astype(x.dtype), grad_kernel.astype(kernel.dtype)


small_output_conv.defvjp(_conv_keeping_inputs, _small_output_conv_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def fast_conv(x: jax.Array, kernel: jax.Array, padding: Any = "VALID", chunk: int = 0) -> jax.Array:
    """`conv` (stride 1) whose passes run the compiled CPU kernels where they apply
    (`conv_kernel`: the forward pass, the input gradient as a forward pass of the output's
    gradient with the flipped kernel, the kernel gradient), else XLA's, the kernel gradient then
    summed over batch slices of `chunk` images (`kernel_gradient`)."""
    return _convolve(x, kernel, (1, 1), padding)


def _fast_conv_bwd(padding, chunk, residuals, grad):
    x, kernel = residuals
    kh, kw = kernel.shape[:2]
    (top, bottom), (left, right) = _explicit_padding(padding, x.shape[1:3], (kh, kw))
    # conv's transpose: the gradient padded by the kernel's size less the input's padding,
    # convolved with the kernel flipped in space and its channels swapped
    pads = ((kh - 1 - top, kh - 1 - bottom), (kw - 1 - left, kw - 1 - right))
    flipped = jnp.flip(kernel, (0, 1)).swapaxes(2, 3)
    # Not where the padding is most of what the flipped kernel reads (an output under twice the
    # kernel's size): there XLA's is faster (DANN MNIST's 8x8 output of a 5x5 kernel).
    wide = grad.shape[1] >= 2 * kh and grad.shape[2] >= 2 * kw
    applies = _compiled_applies(grad, flipped, flipped.shape, (1, 1), pads)
    if wide and min(pads[0] + pads[1]) >= 0 and applies:
        grad_x = conv_kernel.forward(grad, flipped, (1, 1), pads)
    else:
        (grad_x,) = jax.linear_transpose(lambda x: conv(x, kernel, padding), x)(grad)
    grad_kernel = kernel_gradient(x, grad, kernel.shape, padding, chunk)
    return grad_x.astype(x.dtype), grad_kernel.astype(kernel.dtype)


fast_conv.defvjp(_conv_keeping_inputs, _fast_conv_bwd)


def space_to_depth(x: jax.Array, block: tuple[int, int]) -> jax.Array:
    """[N, H, W, C] -> [N, H/bh, W/bw, bh*bw*C], channels ordered (row phase, column phase, C)."""
    bh, bw = block
    n, h, w, c = x.shape
    x = x.reshape(n, h // bh, bh, w // bw, bw, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h // bh, w // bw, bh * bw * c)


def depth_to_space(x: jax.Array, block: tuple[int, int]) -> jax.Array:
    """The inverse of `space_to_depth`."""
    bh, bw = block
    n, h, w, _ = x.shape
    x = x.reshape(n, h, w, bh, bw, -1).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h * bh, w * bw, -1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def strided_conv(
    x: jax.Array, kernel: jax.Array, strides: tuple[int, int], padding: str
) -> jax.Array:
    """`lax.conv` with `strides` (NHWC, HWIO): the forward pass and kernel gradient by the
    compiled CPU kernels where they apply (`conv_kernel`), else XLA's own, and the input
    gradient of the stride-1 form after space-to-depth (`space_to_depth_conv`)."""
    return _convolve(x, kernel, strides, padding)


def _strided_conv_fwd(x, kernel, strides, padding):
    return _convolve(x, kernel, strides, padding), (x, kernel)


def _strided_conv_bwd(strides, padding, residuals, grad):
    x, kernel = residuals
    # The kernel gradient: the compiled kernel's where it applies, else XLA's own. Taken through
    # the space-to-depth form it first rearranged the input into blocks and transposed them
    # batch-minor: 2.8 times as long on SPIRAL's first policy layer (32x32x16, batch 320). The
    # barrier keeps the input's elementwise producers (a ReLU, a bias) out of XLA's
    # transposition of it, where they cost more than the convolution.
    x = jax.lax.optimization_barrier(x)
    grad_kernel = _compiled_kernel_gradient(x, grad, kernel.shape, strides, padding)
    if grad_kernel is None:
        _, kernel_vjp = jax.vjp(
            lambda k: jax.lax.conv_general_dilated(
                x, k, strides, padding, dimension_numbers=_DIMENSIONS
            ),
            kernel,
        )
        (grad_kernel,) = kernel_vjp(grad)
    # The input gradient: a stride-1 convolution's, carried back through the rearrangement
    # (both linear in the input). XLA's own (the gradient dilated by the stride, convolved)
    # is 8 to 11 times slower.
    to_blocks = functools.partial(
        _to_blocks, kernel_shape=kernel.shape, strides=strides, padding=padding
    )
    grad_blocks = valid_conv_input_gradient(grad, _block_kernel(kernel, strides))
    (grad_x,) = jax.linear_transpose(to_blocks, x)(grad_blocks)
    return grad_x, grad_kernel


strided_conv.defvjp(_strided_conv_fwd, _strided_conv_bwd)


def valid_conv_input_gradient(grad: jax.Array, kernel: jax.Array) -> jax.Array:
    """The input gradient of `conv(x, kernel, "VALID")` for the output gradient `grad`, written
    out: the gradient zero-padded by the kernel's size less one, convolved ("VALID") with the
    kernel flipped in space and its channels swapped.

    The same numbers as XLA's transpose of the convolution, which folds the padding and the
    flip into the convolution itself. That matters when the gradient is differentiated again,
    as WGAN-GP's gradient penalty does: XLA:CPU compiles the kernel gradient of such a
    convolution into a plain loop outside its convolution library. In SPIRAL's critic (three
    4x4 stride-2 layers, batch 32) that loop took two thirds of the critic's step: 87 ms ->
    29 ms written out.
    """
    kh, kw = kernel.shape[:2]
    padded = jnp.pad(grad, ((0, 0), (kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
    return conv(padded, jnp.flip(kernel, (0, 1)).swapaxes(2, 3), "VALID")


def _to_blocks(
    x: jax.Array, kernel_shape: tuple[int, ...], strides: tuple[int, int], padding: str
) -> jax.Array:
    """The input of `space_to_depth_conv`'s stride-1 convolution: `x` padded as `padding` pads
    it for `kernel_shape` and `strides`, cut to whole blocks, then space-to-depth."""
    (kh, kw, _, _), (sh, sw) = kernel_shape, strides
    if padding == "SAME":
        pads = [same_padding(x.shape[1], kh, sh), same_padding(x.shape[2], kw, sw)]
    elif padding == "VALID":
        pads = [(0, 0), (0, 0)]
    else:
        raise ValueError(f"padding must be 'SAME' or 'VALID', got {padding!r}")
    # Taps beyond a multiple of the stride are zero; the padded input is cut to whole blocks.
    th, tw = -(-kh // sh) * sh, -(-kw // sw) * sw
    out_h = (x.shape[1] + sum(pads[0]) - kh) // sh + 1
    out_w = (x.shape[2] + sum(pads[1]) - kw) // sw + 1
    need_h, need_w = (out_h - 1) * sh + th, (out_w - 1) * sw + tw
    x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    x = jnp.pad(
        x[:, :need_h, :need_w],
        ((0, 0), (0, max(0, need_h - x.shape[1])), (0, max(0, need_w - x.shape[2])), (0, 0)),
    )
    return space_to_depth(x, (sh, sw))


def _block_kernel(kernel: jax.Array, strides: tuple[int, int]) -> jax.Array:
    """The kernel of `space_to_depth_conv`'s stride-1 convolution: [kh, kw, C, F] zero-padded to
    multiples of the strides, taps regrouped to [kh/sh, kw/sw, sh * sw * C, F]."""
    (kh, kw, c, f), (sh, sw) = kernel.shape, strides
    th, tw = -(-kh // sh) * sh, -(-kw // sw) * sw
    kernel = jnp.pad(kernel, ((0, th - kh), (0, tw - kw), (0, 0), (0, 0)))
    # kernel[b_h * sh + r_h, b_w * sw + r_w, c, f] -> [b_h, b_w, (r_h, r_w, c), f]
    kernel = kernel.reshape(th // sh, sh, tw // sw, sw, c, f).transpose(0, 2, 1, 3, 4, 5)
    return kernel.reshape(th // sh, tw // sw, sh * sw * c, f)


def space_to_depth_conv(
    x: jax.Array, kernel: jax.Array, strides: tuple[int, int], padding: str
) -> jax.Array:
    """`lax.conv` with `strides` (NHWC, HWIO) as a stride-1 convolution after space-to-depth."""
    if tuple(strides) == (1, 1):
        return conv(x, kernel, padding)
    return conv(_to_blocks(x, kernel.shape, strides, padding), _block_kernel(kernel, strides))


def _phase_taps(kernel_size: int, stride: int) -> list[list[tuple[int, int]]]:
    """For each output phase r of one axis of a "SAME" transposed convolution, its (tap, input
    offset) pairs: output m = s*o + r reads input o + offset through kernel tap i."""
    # lax pads the dilated input by `before` (of k + s - 2) and correlates with the kernel.
    total = kernel_size + stride - 2
    before = kernel_size - 1 if stride > kernel_size - 1 else -(-total // 2)
    return [
        [
            (i, (r + i - before) // stride)
            for i in range(kernel_size)
            if (r + i - before) % stride == 0
        ]
        for r in range(stride)
    ]


def transposed_conv(x: jax.Array, kernel: jax.Array, strides: tuple[int, int]) -> jax.Array:
    """`lax.conv_transpose(..., padding="SAME")` (HWIO kernel, not transposed) as one stride-1
    convolution per output phase, interleaved depth-to-space (sub-pixel convolution).

    Each phase convolves with its own taps only (a 4x4 kernel, stride 2: four 2x2 convolutions),
    4/9 of the work of one convolution whose kernel holds every phase's taps padded to 3x3.
    """
    (kh, kw, _, f), (sh, sw) = kernel.shape, strides
    rows, cols = _phase_taps(kh, sh), _phase_taps(kw, sw)
    phases = []
    for taps_h in rows:
        for taps_w in cols:
            if not taps_h or not taps_w:  # a kernel smaller than the stride misses this phase
                phases.append(jnp.zeros((*x.shape[:3], f), x.dtype))
                continue
            # Within a phase the taps are every s-th one and their input offsets consecutive: a
            # dense kernel, the taps in the order of their offsets.
            (first_h, low_h), (last_h, high_h) = taps_h[0], taps_h[-1]
            (first_w, low_w), (last_w, high_w) = taps_w[0], taps_w[-1]
            phase_kernel = kernel[first_h : last_h + 1 : sh, first_w : last_w + 1 : sw]
            phases.append(fast_conv(x, phase_kernel, ((-low_h, high_h), (-low_w, high_w))))
    # Interleaved one axis at a time, each a stack along a new axis next to it and a reshape:
    # XLA:CPU copies those as contiguous runs, where the one transposition of depth_to_space
    # took 4-8 ms for SPIRAL's decoder (320 maps of 8x8x16 -> 16x16x16).
    n, h, w = x.shape[:3]
    rows = [jnp.stack(phases[r * sw : (r + 1) * sw], 3).reshape(n, h, w * sw, f) for r in range(sh)]
    return jnp.stack(rows, 2).reshape(n, h * sh, w * sw, f)


class _Convolution(nn.Module):
    """The fields and parameters Flax's convolutions have: "kernel" [kh, kw, in, out], "bias"."""

    features: int
    kernel_size: Sequence[int]
    strides: Sequence[int] = (1, 1)
    kernel_init: Callable[..., Any] = nn.initializers.lecun_normal()
    bias_init: Callable[..., Any] = nn.initializers.zeros

    def kernel_and_bias(self, channels: int) -> tuple[jax.Array, jax.Array]:
        kh, kw = self.kernel_size
        kernel = self.param("kernel", self.kernel_init, (kh, kw, channels, self.features))
        return kernel, self.param("bias", self.bias_init, (self.features,))


class Conv(_Convolution):
    """`nn.Conv` (NHWC) whose strided case runs as a stride-1 convolution (`strided_conv`), and
    whose stride-1 case with an output of fewer pixels than the kernel has taps computes its
    input gradient as a matmul (`small_output_conv`)."""

    padding: str = "SAME"
    # stride 1, > 0: XLA's kernel gradient summed over batch slices of this size (`fast_conv`)
    kernel_gradient_chunk: int = 0

    @nn.compact
    def __call__(
        self, x: jax.Array, *, pool: Callable[[jax.Array], jax.Array] | None = None
    ) -> jax.Array:
        """The convolution plus its bias; with `pool` (a max-pool), `pool(conv(x)) + bias`.

        That equals `pool(conv(x) + bias)` exactly: rounding is monotonic, so adding a
        per-channel constant moves each window's maximum by that constant. The bias then goes
        to the pooled map (a quarter of the pixels for 2x2 windows), in one pass with what
        follows it, where XLA:CPU spent a pass over the whole map on it (DANN's GTSRB network:
        64 x 36 x 36 x 96 floats, ~10 ms per half batch on 2 cores)."""
        kernel, bias = self.kernel_and_bias(x.shape[-1])
        strides, chunk = tuple(self.strides), self.kernel_gradient_chunk
        kh, kw = self.kernel_size
        if strides != (1, 1):
            y = strided_conv(x, kernel, strides, self.padding)
        elif _output_pixels(x, (kh, kw), strides, self.padding) < kh * kw:
            y = small_output_conv(x, kernel, self.padding)
        else:
            y = fast_conv(x, kernel, self.padding, chunk)
        return (y if pool is None else pool(y)) + bias


class ConvTranspose(_Convolution):
    """`nn.ConvTranspose` ("SAME", `transpose_kernel=False`) as a sub-pixel convolution
    (`transposed_conv`)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        kernel, bias = self.kernel_and_bias(x.shape[-1])
        return transposed_conv(x, kernel, tuple(self.strides)) + bias
