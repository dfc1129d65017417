"""DeepWarp's bilinear sampler as compiled CPU kernels (`bilinear_warp.cc`, XLA FFI custom calls).

XLA:CPU runs `warp.bilinear_warp`'s gather and scatter-add several passes over memory apart;
`bilinear_warp.cc` computes the output in one pass and both gradients in another (the image's
scatter per image on one thread, the flow's from the same reads), or the flow's alone when the
image is not differentiated (DeepWarp's case: the warped eye is the network's input). `warp.py`
uses these whenever JAX's default backend is the CPU, the inputs compute in float32 and the
kernel could be built (`thesis_jax.core.native`), and its XLA version otherwise; the tests hold
the two to the same values and gradients (`tests/deepwarp/test_warp.py`).
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp

from thesis_jax.core import native

SOURCE = pathlib.Path(__file__).with_name("bilinear_warp.cc")
FORWARD, BACKWARD, FLOW_BACKWARD = (
    "thesis_jax_warp_forward",
    "thesis_jax_warp_backward",
    "thesis_jax_warp_flow_backward",
)
SYMBOLS = {
    FORWARD: "ThesisJaxWarpForward",
    BACKWARD: "ThesisJaxWarpBackward",
    FLOW_BACKWARD: "ThesisJaxWarpFlowBackward",
}


def usable() -> bool:
    """Whether a sampler traced now runs these kernels (see `native.usable`)."""
    return native.usable(SOURCE, SYMBOLS)


def _like(x: jax.Array) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(x.shape, jnp.float32)


@native.batch_parallel
def forward(image: jax.Array, flow: jax.Array) -> jax.Array:
    """image (B, H, W, C), flow (B, H, W, 2), float32 -> the warped image (B, H, W, C)."""
    return native.ffi_call(SOURCE, SYMBOLS, FORWARD, _like(image))(image, flow)


@native.batch_parallel
def backward(image: jax.Array, flow: jax.Array, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The gradients (image, flow) of <g, forward(image, flow)>."""
    return native.ffi_call(SOURCE, SYMBOLS, BACKWARD, (_like(image), _like(flow)))(image, flow, g)


@native.batch_parallel
def flow_backward(image: jax.Array, flow: jax.Array, g: jax.Array) -> jax.Array:
    """The flow gradient of <g, forward(image, flow)> alone."""
    return native.ffi_call(SOURCE, SYMBOLS, FLOW_BACKWARD, _like(flow))(image, flow, g)
