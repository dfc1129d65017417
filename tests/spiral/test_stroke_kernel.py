"""JaxPaint's compiled CPU stroke kernel: the dense XLA version's sums over each segment's
neighbourhood, under jit, vmap and a batch split over devices; clear errors when it cannot be
built."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thesis_jax.core import native, parallel
from thesis_jax.spiral.envs import jax_paint, spec, stroke_kernel

needs_kernel = pytest.mark.skipif(
    native.compiler() is None, reason="no C++ compiler: JaxPaint renders with XLA alone"
)


def random_segments(rng: np.random.Generator, batch: int, segments: int, size: int):
    """Strokes' chords as the renderer makes them: consecutive, some off the canvas, some of zero
    length, radii from a fraction of a pixel to wider than the canvas's quarter."""
    points = rng.uniform(-0.2 * size, 1.2 * size, (batch, segments + 1, 2)).astype(np.float32)
    points[:, 1:] = points[:, :1] + np.cumsum(rng.normal(0, 3, (batch, segments, 2)), 1)
    points[0, 3] = points[0, 2]  # a zero-length segment
    radius = rng.choice([0.3, 1.0, 2.6, 8.3, 12.5, 25.0, 31.0], batch).astype(np.float32)
    return jnp.asarray(points[:, :-1]), jnp.asarray(points[:, 1:]), jnp.asarray(radius)


@needs_kernel
def test_the_kernel_builds_wherever_a_compiler_is():
    """CI has g++: a kernel that silently fell back to XLA there would fail here."""
    assert stroke_kernel.usable()
    assert native.build(stroke_kernel.SOURCE).exists()


@needs_kernel
@pytest.mark.parametrize("size", [32, 64, 100])
def test_kernel_sums_equal_the_dense_version(size):
    start, end, radius = random_segments(np.random.default_rng(size), 24, 16, size)
    kernel = jax.jit(stroke_kernel.stroke_depth, static_argnums=3)(start, end, radius, size)
    dense = jax.jit(jax_paint.dense_line_integral, static_argnums=3)(start, end, radius, size)
    assert kernel.shape == dense.shape == (24, size, size)
    np.testing.assert_allclose(kernel, dense, rtol=1e-5, atol=1e-5 * float(jnp.max(dense)))
    assert float(jnp.max(dense)) > 1.0 and float(jnp.mean(dense == 0)) > 0.3  # ink, and none


@needs_kernel
def test_jax_paint_renders_with_the_kernel_on_cpu_unless_disabled():
    config = spec.PaintConfig()
    state = jax_paint.init_state(config, 2)
    actions = jnp.ones((2, len(spec.paint_action_spec(config))), jnp.int32)
    render = functools.partial(jax_paint.render_step, config)
    assert stroke_kernel.TARGET in jax.jit(render).lower(state, actions).as_text()
    with native.disabled():  # traced afresh (a new function: jit caches traces per function)
        dense = jax.jit(lambda s, a: render(s, a)).lower(state, actions).as_text()
    assert stroke_kernel.TARGET not in dense


@needs_kernel
def test_kernel_under_nested_vmap():
    start, end, radius = random_segments(np.random.default_rng(0), 12, 16, 32)
    flat = stroke_kernel.stroke_depth(start, end, radius, 32)
    nested = jax.jit(jax.vmap(jax.vmap(lambda s, e, r: stroke_kernel.stroke_depth(s, e, r, 32))))(
        *(x.reshape(3, 2, 2, *x.shape[1:]) for x in (start, end, radius))
    )
    np.testing.assert_allclose(nested.reshape(flat.shape), flat, atol=1e-6)
    unbatched_end = jax.vmap(lambda s: stroke_kernel.stroke_depth(s, end[:4], radius[:4], 32))(
        start.reshape(3, 4, *start.shape[1:])
    )
    for i in range(3):
        expected = stroke_kernel.stroke_depth(start[4 * i : 4 * i + 4], end[:4], radius[:4], 32)
        np.testing.assert_allclose(unbatched_end[i], expected, atol=1e-6)


@needs_kernel
def test_a_batch_split_over_devices_is_rendered_where_it_lies():
    mesh = parallel.data_mesh()
    devices = mesh.devices.size
    start, end, radius = random_segments(np.random.default_rng(1), 4 * devices, 16, 64)
    sharded = [jax.device_put(x, parallel.batch_sharded(mesh)) for x in (start, end, radius)]
    render = jax.jit(lambda s, e, r: stroke_kernel.stroke_depth(s, e, r, 64))
    compiled = render.lower(*sharded).compile().as_text()
    assert "all-gather" not in compiled, "an opaque custom call would gather the batch"
    assert "f32[4,64,64]{2,1,0} custom-call" in compiled  # 4 strokes per device
    out = render(*sharded)
    assert out.sharding.spec[0] == parallel.DATA_AXIS
    np.testing.assert_allclose(out, stroke_kernel.stroke_depth(start, end, radius, 64), atol=1e-6)
