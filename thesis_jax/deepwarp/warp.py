"""The bilinear sampler S of DeepWarp (thesis sec. 4.3.2, eq. 4.3.1-4.3.2; Jaderberg et al. 2015).

`bilinear_warp(image, flow)` resamples every image at its own pixel grid moved by a per-pixel
flow: out[b, y, x, c] is the bilinear interpolation of image[b, :, :, c] at the real position
(x + flow[b, y, x, 0], y + flow[b, y, x, 1]). Flow is in pixels, channel 0 moves along columns
(x), channel 1 along rows (y). Positions are clamped to [0, W - 1] x [0, H - 1], so the edge
pixels extend beyond the border.

Gradients (the operation is piecewise differentiable, Jaderberg et al. 2015): the image gradient
scatters the incoming gradient with the four bilinear weights; the flow gradient is the
incoming gradient times the slope of the bilinear surface on the cell that holds the position,
and zero along a direction whose position was clamped from outside [0, W - 1] (resp. [0, H - 1]).
Conventions on the measure-zero sets: the cell is [x0, x0 + 1] with x0 = min(floor(x), W - 2)
(so an integer position takes the slope towards the next pixel, and the last pixel that towards
the previous one), and a position exactly on the border (x = 0 or x = W - 1, e.g. zero flow)
still passes the gradient. `bilinear_warp_reference` is the same function written as plain
gathers whose autodiff gives these values; `bilinear_warp` is a `jax.custom_vjp` that computes
them by hand: one gather of each sample's 2 x 2 neighbourhood forward, and one scatter-add of
its two weighted rows backward. On a CPU it runs compiled kernels instead (`warp_kernel`: one
pass forward, one backward, the flow's gradient alone when the image is not differentiated),
3-4x faster than XLA's gather and scatter, with the same values and gradients.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero
from jax.sharding import NamedSharding, PartitionSpec

from thesis_jax.core import native
from thesis_jax.deepwarp import warp_kernel

_SHAPES = "image (B, H, W, C) and flow (B, H, W, 2)"


def _check_inputs(image: jax.Array, flow: jax.Array) -> None:
    chex.assert_rank([image, flow], 4, custom_message=f"bilinear_warp expects {_SHAPES}")
    chex.assert_axis_dimension(
        flow, 3, 2, custom_message="bilinear_warp: flow's last axis holds the (x, y) displacement"
    )
    chex.assert_equal_shape_prefix(
        [image, flow], 3, custom_message=f"bilinear_warp expects {_SHAPES} with equal B, H, W"
    )
    chex.assert_type(
        [image, flow], float, custom_message="bilinear_warp expects floating-point image and flow"
    )


def _compute_dtype(image: jax.Array, flow: jax.Array) -> jnp.dtype:
    """float32 for 16-bit inputs, float64 when an input is float64 (x64 mode)."""
    return jnp.promote_types(jnp.promote_types(image.dtype, flow.dtype), jnp.float32)


def _clamp_inside(position: jax.Array, upper: int) -> jax.Array:
    """`position` clamped to [0, upper], with derivative 1 on the closed range and 0 outside."""
    inside = (position >= 0) & (position <= upper)
    return jnp.where(inside, position, lax.stop_gradient(jnp.clip(position, 0, upper)))


def bilinear_warp_reference(image: jax.Array, flow: jax.Array) -> jax.Array:
    """eq. (4.3.2) as four gathers, differentiated by plain autodiff: the baseline for tests.

    Args:
      image: (B, H, W, C) floats.
      flow: (B, H, W, 2) floats, in pixels; [..., 0] along x (columns), [..., 1] along y (rows).

    Returns:
      (B, H, W, C) in `image.dtype`, computed in float32 (float64 for float64 inputs).
    """
    _check_inputs(image, flow)
    dtype = _compute_dtype(image, flow)
    _, height, width, _ = image.shape
    source, flow = image.astype(dtype), flow.astype(dtype)
    x = _clamp_inside(jnp.arange(width, dtype=dtype)[None, None, :] + flow[..., 0], width - 1)
    y = _clamp_inside(jnp.arange(height, dtype=dtype)[None, :, None] + flow[..., 1], height - 1)
    x0 = jnp.clip(jnp.floor(x).astype(jnp.int32), 0, max(width - 2, 0))
    y0 = jnp.clip(jnp.floor(y).astype(jnp.int32), 0, max(height - 2, 0))
    x1, y1 = jnp.minimum(x0 + 1, width - 1), jnp.minimum(y0 + 1, height - 1)
    wx, wy = (x - x0)[..., None], (y - y0)[..., None]
    batch = jnp.arange(image.shape[0])[:, None, None]
    top = (1 - wx) * source[batch, y0, x0] + wx * source[batch, y0, x1]
    bottom = (1 - wx) * source[batch, y1, x0] + wx * source[batch, y1, x1]
    return ((1 - wy) * top + wy * bottom).astype(image.dtype)  # eq. (4.3.2)


def _cells(flow: jax.Array, height: int, width: int) -> tuple[jax.Array, ...]:
    """The cell of each sample: its top-left (row, column), fractions wx, wy, the clamp masks.

    Rows count over the whole batch (b * H + y0), so the image is read as one (B * H, W * C)
    matrix: XLA:CPU gathers and scatters with one flat index many times faster than with a
    batch dimension.
    """
    batch = flow.shape[0]
    x = jnp.arange(width, dtype=flow.dtype)[None, None, :] + flow[..., 0]
    y = jnp.arange(height, dtype=flow.dtype)[None, :, None] + flow[..., 1]
    inside_x = (x >= 0) & (x <= width - 1)
    inside_y = (y >= 0) & (y <= height - 1)
    x, y = jnp.clip(x, 0, width - 1), jnp.clip(y, 0, height - 1)
    x0 = jnp.clip(jnp.floor(x).astype(jnp.int32), 0, max(width - 2, 0))
    y0 = jnp.clip(jnp.floor(y).astype(jnp.int32), 0, max(height - 2, 0))
    row = y0 + height * jnp.arange(batch, dtype=jnp.int32)[:, None, None]
    return row, x0, x - x0, y - y0, inside_x, inside_y


def _interpolate(image: jax.Array, flow: jax.Array) -> tuple[jax.Array, ...]:
    """eq. (4.3.2) from one gather of each sample's 2 x 2 neighbourhood.

    Returns the output (B, H, W, C), the slopes d out / dx and d out / dy of the bilinear
    surface on the cell (B, H, W, C each, in the compute dtype) and the cells of `_cells`.
    """
    if image.size >= 2**31:
        raise ValueError(f"bilinear_warp indexes with int32; image {image.shape} is too large")
    dtype = _compute_dtype(image, flow)
    batch, height, width, channels = image.shape
    rows, columns = min(height, 2), min(width, 2)
    cells = _cells(flow.astype(dtype), height, width)
    row, x0, wx, wy = cells[:4]
    corners = lax.gather(
        image.astype(dtype).reshape(batch * height, width * channels),
        jnp.stack([row, x0 * channels], axis=-1),
        lax.GatherDimensionNumbers(
            offset_dims=(3, 4), collapsed_slice_dims=(), start_index_map=(0, 1)
        ),
        (rows, columns * channels),
        mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS,
    ).reshape(batch, height, width, rows, columns, channels)
    top_left, top_right = corners[..., 0, 0, :], corners[..., 0, -1, :]
    bottom_left, bottom_right = corners[..., -1, 0, :], corners[..., -1, -1, :]
    wx, wy = wx[..., None], wy[..., None]
    top = (1 - wx) * top_left + wx * top_right
    bottom = (1 - wx) * bottom_left + wx * bottom_right
    out = (1 - wy) * top + wy * bottom  # eq. (4.3.2)
    slope_x = (1 - wy) * (top_right - top_left) + wy * (bottom_right - bottom_left)
    slope_y = bottom - top
    return out.astype(image.dtype), slope_x, slope_y, cells


def bilinear_warp(image: jax.Array, flow: jax.Array) -> jax.Array:
    """The bilinear sampler S of eq. (4.3.1)-(4.3.2) with hand-written gradients.

    Args:
      image: (B, H, W, C) floats (float32, bfloat16, float16, or float64 in x64 mode).
      flow: (B, H, W, 2) floats, in pixels; [..., 0] along x (columns), [..., 1] along y (rows).

    Returns:
      (B, H, W, C) in `image.dtype`: out[b, y, x, c] = image[b, :, :, c] bilinearly
      interpolated at (x + flow[b, y, x, 0], y + flow[b, y, x, 1]), clamped to the image.
      Computed in float32 (float64 for float64 inputs); gradients come back in the inputs'
      dtypes and equal autodiff of `bilinear_warp_reference`.

    Under a mesh with explicit axes, a batch sharded over them is warped shard by shard
    (`jax.shard_map`); with automatic axes XLA partitions it (the CPU kernels along the batch;
    XLA's own version gathers the whole batch to each device, since the flat index hides it).
    """
    _check_inputs(image, flow)
    warp = _warp_native if _native(image, flow) else _warp
    shardings = [jax.typeof(x).sharding for x in (image, flow)]
    explicit = [sharding for sharding in shardings if any(sharding.spec)]
    if not explicit:
        return warp(image, flow)
    mesh = explicit[0].mesh
    spec = PartitionSpec(next((s.spec[0] for s in explicit if s.spec[0] is not None), None))
    image, flow = (jax.sharding.reshard(x, NamedSharding(mesh, spec)) for x in (image, flow))
    return jax.shard_map(warp, mesh=mesh, in_specs=spec, out_specs=spec)(image, flow)


def _native(image: jax.Array, flow: jax.Array) -> bool:
    """The compiled CPU kernels (`warp_kernel`) compute in float32: not for float64 inputs."""
    return _compute_dtype(image, flow) == jnp.float32 and warp_kernel.usable()


@jax.custom_vjp
def _warp_native(image: jax.Array, flow: jax.Array) -> jax.Array:
    """`_warp` on the CPU kernels: one pass for the output, one for both gradients (or the flow's
    alone when the image is not differentiated, which `symbolic_zeros` tells the forward)."""
    out = warp_kernel.forward(image.astype(jnp.float32), flow.astype(jnp.float32))
    return out.astype(image.dtype)


def _warp_native_forward(image, flow) -> tuple[jax.Array, tuple]:
    out = _warp_native(image.value, flow.value)
    return out, (image.value, flow.value, image.perturbed)


def _warp_native_backward(residuals: tuple, g: jax.Array) -> tuple[jax.Array | None, jax.Array]:
    image, flow, image_perturbed = residuals
    if isinstance(g, SymbolicZero):
        return None, jnp.zeros_like(flow)
    image32, flow32, g32 = (x.astype(jnp.float32) for x in (image, flow, g))
    if not image_perturbed:
        return None, _native_flow_cotangent(image32, flow32, g32).astype(flow.dtype)
    image_grad, flow_grad = _native_cotangents(image32, flow32, g32)
    return image_grad.astype(image.dtype), flow_grad.astype(flow.dtype)


def _xla_cotangents(image: jax.Array, flow: jax.Array, g: jax.Array) -> tuple[jax.Array, ...]:
    return jax.vjp(_warp, image, flow)[1](g)


def _xla_flow_cotangent(image: jax.Array, flow: jax.Array, g: jax.Array) -> jax.Array:
    return jax.vjp(lambda f: _warp(image, f), flow)[1](g)[0]


# The kernels' cotangents, differentiated (second-order gradients) as the XLA version's.
_native_cotangents = native.differentiable(warp_kernel.backward, _xla_cotangents)
_native_flow_cotangent = native.differentiable(warp_kernel.flow_backward, _xla_flow_cotangent)


_warp_native.defvjp(_warp_native_forward, _warp_native_backward, symbolic_zeros=True)


@jax.custom_vjp
def _warp(image: jax.Array, flow: jax.Array) -> jax.Array:
    return _interpolate(image, flow)[0]


def _warp_forward(image: jax.Array, flow: jax.Array) -> tuple[jax.Array, tuple]:
    out, slope_x, slope_y, (row, x0, wx, wy, inside_x, inside_y) = _interpolate(image, flow)
    width, channels = image.shape[2:]
    slope_x = jnp.where(inside_x[..., None], slope_x, 0)
    slope_y = jnp.where(inside_y[..., None], slope_y, 0)
    start = (row * width + x0) * channels
    dtypes = (jnp.zeros((0,), image.dtype), jnp.zeros((0,), flow.dtype))
    return out, (start, wx, wy, slope_x, slope_y, dtypes)


def _channel_sum(x: jax.Array) -> jax.Array:
    """Sum over the last axis, unrolled when short: XLA:CPU reduces a short minor axis slowly."""
    if x.shape[-1] > 16:
        return x.sum(-1)
    total = x[..., 0]
    for channel in range(1, x.shape[-1]):
        total = total + x[..., channel]
    return total


def _warp_backward(residuals: tuple, g: jax.Array) -> tuple[jax.Array, jax.Array]:
    start, wx, wy, slope_x, slope_y, (image_like, flow_like) = residuals
    g = g.astype(slope_x.dtype)
    batch, height, width, channels = g.shape
    rows, columns = min(height, 2), min(width, 2)
    column_weights = jnp.stack([1 - wx, wx], axis=-1)[..., :columns]
    row_weights = jnp.stack([1 - wy, wy], axis=-1)[..., :rows]
    weights = row_weights[..., :, None] * column_weights[..., None, :]  # (B, H, W, rows, columns)
    updates = weights[..., None] * g[..., None, None, :]
    starts = jnp.stack([start, start + width * channels], axis=-1)[..., :rows]
    image_grad = lax.scatter_add(
        jnp.zeros(batch * height * width * channels, g.dtype),
        starts[..., None],
        updates.reshape(batch, height, width, rows, columns * channels),
        lax.ScatterDimensionNumbers(
            update_window_dims=(4,), inserted_window_dims=(), scatter_dims_to_operand_dims=(0,)
        ),
        mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS,
    ).reshape(g.shape)
    flow_grad = jnp.stack([_channel_sum(g * slope_x), _channel_sum(g * slope_y)], axis=-1)
    return image_grad.astype(image_like.dtype), flow_grad.astype(flow_like.dtype)


_warp.defvjp(_warp_forward, _warp_backward)
