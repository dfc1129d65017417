"""JaxPaint's stroke integral as a compiled CPU kernel (`stroke_depth.cc`, an XLA FFI custom call).

`jax_paint.dense_line_integral` evaluates every segment of a stroke at every pixel, which suits a
GPU; on a CPU most of that work is exact zeros (a pixel further than the brush radius from a
segment gets nothing from it). `stroke_depth.cc` computes the same sum over each segment's
neighbourhood only, on XLA's intra-op threads: 2.5-6x faster than the dense XLA loop on the
benchmark's random strokes (`benchmarks/spiral_envs.py`), more for thin brushes. JaxPaint uses it
whenever JAX's default backend is the CPU and it could be built (`thesis_jax.core.native`: g++,
compiled once on first use; `THESIS_JAX_NATIVE=0` or `native.disabled()` turn it off), and the
dense version otherwise; both give the same canvases to float32 rounding
(`tests/spiral/test_stroke_kernel.py`).
"""

from __future__ import annotations

import functools
import pathlib

import jax
import jax.numpy as jnp

from thesis_jax.core import native

SOURCE = pathlib.Path(__file__).with_name("stroke_depth.cc")
TARGET = "thesis_jax_stroke_depth"
SYMBOLS = {TARGET: "ThesisJaxStrokeDepth"}


def usable() -> bool:
    """Whether JaxPaint traced now renders with this kernel (see `native.usable`)."""
    return native.usable(SOURCE, SYMBOLS)


def stroke_depth(start: jax.Array, end: jax.Array, radius: jax.Array, size: int) -> jax.Array:
    """The kernel's `dab_line_integral`: start, end [B, S, 2]; radius [B] -> [B, size, size].

    CPU only, after `usable()`. Partitioned over devices along the batch and vmappable
    (`native.batch_parallel`).
    """
    start, end, radius = (jnp.asarray(x, jnp.float32) for x in (start, end, radius))
    return _call(size)(start, end, radius)


@functools.cache
def _call(size: int):
    def call(start, end, radius):
        result = jax.ShapeDtypeStruct((*radius.shape, size, size), jnp.float32)
        return native.ffi_call(SOURCE, SYMBOLS, TARGET, result)(start, end, radius)

    return native.batch_parallel(call)
