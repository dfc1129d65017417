"""A convolution's forward pass and kernel gradient as compiled CPU kernels (`convolution.cc`).

XLA:CPU runs convolutions with few channels far from the CPU's arithmetic peak, and computes a
kernel gradient as one convolution whose contracted axis is the batch, after copying the layer's
input batch-minor. In SPIRAL's policy step (320 canvases of 32x32, 16 channels) the input
convolution (one input channel, 5x5) took 15 ms, the first strided layer's kernel gradient 16 ms
for the copy and 13 ms for the convolution. `convolution.cc` (XLA FFI custom calls, built with
g++ on first use by `thesis_jax.core.native`) computes both on zero-padded copies of each image,
16 output channels per vector register, on XLA's intra-op threads: 3.4 and 4.6 ms.

- `forward(x, kernel, strides, padding)`: `lax.conv_general_dilated` (NHWC, HWIO, explicit
  padding); its derivatives are XLA's.
- `kernel_gradient(x, g, kernel_shape, strides, padding)`: the gradient of that convolution with
  respect to its kernel for the output gradient g; its own derivatives are XLA's.
- `supported(x, other)`: whether they apply (float32, output channels 1 or a multiple of 16, the
  kernels built, JAX's default backend the CPU); `core.layers` asks it, and the size of the
  output, and otherwise runs XLA's.

They agree with XLA's to float32 rounding (`tests/core/test_conv_kernel.py`), shard along the
batch over devices and map under `jax.vmap` (`native.batch_parallel`).
"""

from __future__ import annotations

import functools
import math
import pathlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from thesis_jax.core import native

SOURCE = pathlib.Path(__file__).with_name("convolution.cc")
KERNEL_GRADIENT = "thesis_jax_conv_kernel_gradient"
FORWARD = "thesis_jax_conv_forward"
SYMBOLS = {KERNEL_GRADIENT: "ThesisJaxConvKernelGradient", FORWARD: "ThesisJaxConvForward"}
LANES = 16  # output channels per vector register in the kernel
MAX_GROUPS = 32  # the batch is summed in at most this many groups, one thread each


def supported(x: jax.Array, other: jax.Array) -> bool:
    """Whether `forward` (other: the kernel) or `kernel_gradient` (other: the output's
    gradient) may run the compiled kernels for these operands now: both float32, 4-D, output
    channels (their last axis) 1 or a multiple of 16, and the kernels built for JAX's CPU
    backend."""
    return (
        x.dtype == jnp.float32
        and other.dtype == jnp.float32
        and x.ndim == other.ndim == 4
        and (other.shape[-1] % LANES == 0 or other.shape[-1] == 1)
        and native.usable(SOURCE, SYMBOLS)
    )


def reference(
    x: jax.Array,
    grad: jax.Array,
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    padding: tuple[tuple[int, int], tuple[int, int]],
) -> jax.Array:
    """XLA's kernel gradient of the convolution (what the kernel computes)."""
    kernel = jax.ShapeDtypeStruct(tuple(kernel_shape), x.dtype)
    return jax.linear_transpose(lambda k: _xla_conv(x, k, strides, padding), kernel)(grad)[0]


def _xla_conv(x, kernel, strides, padding):
    return jax.lax.conv_general_dilated(
        x, kernel, tuple(strides), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def _attributes(strides, padding) -> dict[str, np.int64]:
    """The custom calls' geometry attributes (the bottom and right padding follow from the
    output's shape)."""
    (sh, sw), ((top, _), (left, _)) = strides, padding
    return {
        "stride_h": np.int64(sh),
        "stride_w": np.int64(sw),
        "top": np.int64(top),
        "left": np.int64(left),
    }


def kernel_gradient(
    x: jax.Array,
    grad: jax.Array,
    kernel_shape: Sequence[int],
    strides: Sequence[int],
    padding: tuple[tuple[int, int], tuple[int, int]],
) -> jax.Array:
    """The kernel gradient [kh, kw, Ci, Co] of the convolution of x [N, H, W, Ci] (NHWC) with
    `strides` and explicit `padding` ((top, bottom), (left, right)), for the output gradient
    grad [N, Ho, Wo, Co]. Run the kernel only where `supported`; differentiable (XLA's)."""
    kernel = jax.ShapeDtypeStruct(tuple(kernel_shape), x.dtype)
    convolve = functools.partial(_xla_conv, strides=strides, padding=padding)
    height, width = jax.eval_shape(convolve, x, kernel).shape[1:3]
    if grad.shape[1:3] != (height, width) or kernel_shape[2:] != (x.shape[3], grad.shape[3]):
        raise ValueError(
            f"kernel_gradient: x {x.shape}, kernel {tuple(kernel_shape)}, strides {strides} "
            f"and padding {padding} give outputs [N, {height}, {width}, {kernel_shape[3]}], "
            f"not {grad.shape}"
        )
    fn = _differentiable(tuple(kernel_shape), tuple(strides), tuple(map(tuple, padding)))
    return fn(x, grad)


@functools.cache
def _differentiable(kernel_shape, strides, padding):
    def compiled(x, grad):
        groups = math.gcd(x.shape[0], MAX_GROUPS)
        grouped = _call(kernel_shape, strides, padding)(
            x.reshape(groups, -1, *x.shape[1:]), grad.reshape(groups, -1, *grad.shape[1:])
        )
        return grouped.sum(0)

    def xla(x, grad):
        return reference(x, grad, kernel_shape, strides, padding)

    return native.differentiable(compiled, xla)


@functools.cache
def _call(kernel_shape, strides, padding):
    kh, kw, ci, co = kernel_shape
    attributes = _attributes(strides, padding)

    def call(x, grad):
        result = jax.ShapeDtypeStruct((x.shape[0], kh, kw, ci, co), jnp.float32)
        return native.ffi_call(SOURCE, SYMBOLS, KERNEL_GRADIENT, result)(
            x, grad, kernel_height=np.int64(kh), kernel_width=np.int64(kw), **attributes
        )

    return native.batch_parallel(call)


def forward(
    x: jax.Array,
    kernel: jax.Array,
    strides: Sequence[int],
    padding: tuple[tuple[int, int], tuple[int, int]],
) -> jax.Array:
    """`lax.conv_general_dilated(x, kernel, strides, padding)` (NHWC, HWIO, explicit padding)
    by the compiled kernel. Run it only where `supported(x, kernel)`; differentiable (XLA's)."""
    return _forward(tuple(strides), tuple(map(tuple, padding)))(x, kernel)


@functools.cache
def _forward(strides, padding):
    attributes = _attributes(strides, padding)

    def call(x, kernel):
        result = jax.eval_shape(
            functools.partial(_xla_conv, strides=strides, padding=padding), x, kernel
        )
        return native.ffi_call(SOURCE, SYMBOLS, FORWARD, result)(x, kernel, **attributes)

    def xla(x, kernel):
        return _xla_conv(x, kernel, strides, padding)

    return native.differentiable(native.batch_parallel(call, shared=1), xla)
