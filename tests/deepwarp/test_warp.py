"""The bilinear sampler S of eq. (4.3.2): exact on integer and half-pixel flows, gradients equal
to autodiff of the gather reference and to finite differences, dtypes, transforms, sharding.

Every test runs twice: on the compiled CPU kernels (`warp_kernel`, when they could be built) and
on the XLA version that other devices run (`native.disabled()`)."""

import contextlib
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec
from jax.test_util import check_grads

from thesis_jax.core import native, parallel
from thesis_jax.deepwarp import bilinear_warp, bilinear_warp_reference, warp_kernel

SHAPES = [(2, 5, 7, 3), (1, 1, 6, 2), (3, 4, 1, 1)]
jit_warp, jit_reference = jax.jit(bilinear_warp), jax.jit(bilinear_warp_reference)


@pytest.fixture(autouse=True, scope="module", params=["kernels", "xla"])
def sampler(request):
    """Runs the module's tests on the CPU kernels, then on XLA's gather and scatter (traced
    afresh; module scope: pytest runs all of one kind, then all of the other)."""
    if request.param == "kernels" and native.compiler() is None:
        pytest.skip("no C++ compiler: the sampler runs on XLA alone")
    jax.clear_caches()  # jitted functions trace again, with or without the kernels
    with native.disabled() if request.param == "xla" else contextlib.nullcontext():
        yield request.param
    jax.clear_caches()


def test_the_cpu_kernels_run_when_built_and_only_then(sampler):
    shape = (2, 5, 7, 3)
    image, flow, cotangent = random_image(shape), off_grid_flow(shape, 2), random_image(shape, 5)

    def both(i, f):
        out, vjp = jax.vjp(bilinear_warp, i, f)
        return out, vjp(cotangent)

    def flow_only(i, f):
        out, vjp = jax.vjp(lambda f: bilinear_warp(i, f), f)
        return out, vjp(cotangent)

    both, flow_only = (jax.jit(fn).lower(image, flow).as_text() for fn in (both, flow_only))
    kernels = sampler == "kernels"
    assert (warp_kernel.FORWARD in both) == kernels and (warp_kernel.BACKWARD in both) == kernels
    assert (warp_kernel.FLOW_BACKWARD in flow_only) == kernels  # no image gradient computed
    assert warp_kernel.BACKWARD not in flow_only


def random_image(shape, seed=0, dtype=np.float32):
    return jnp.asarray(np.random.default_rng(seed).uniform(size=shape).astype(dtype))


def off_grid_flow(shape, scale, seed=1):
    """Flows whose sample positions sit 0.1-0.9 px from the pixel grid, up to `scale` px away."""
    rng = np.random.default_rng(seed)
    whole = rng.integers(-scale, scale + 1, size=(*shape[:3], 2))
    return jnp.asarray((whole + rng.uniform(0.1, 0.9, size=whole.shape)).astype(np.float32))


def sample_positions(flow):
    _, height, width, _ = flow.shape
    x = np.arange(width)[None, None, :] + np.asarray(flow[..., 0], np.float64)
    y = np.arange(height)[:, None] + np.asarray(flow[..., 1], np.float64)
    return x, y


@functools.partial(jax.jit, static_argnums=0)
def vjp_of(warp, image, flow, cotangent):
    return jax.vjp(warp, image, flow)[1](cotangent)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("warp", [bilinear_warp, bilinear_warp_reference])
@pytest.mark.parametrize("transform", [lambda f: f, jax.jit], ids=["eager", "jit"])
def test_zero_flow_is_the_identity(transform, warp, shape):
    image = random_image(shape)
    out = transform(warp)(image, jnp.zeros((*shape[:3], 2)))
    np.testing.assert_array_equal(out, image)


@pytest.mark.parametrize("dx, dy", [(2, -1), (-3, 4), (0, 1), (9, -9)])
def test_integer_flow_shifts_and_repeats_the_edge_pixels(dx, dy):
    image = random_image((2, 5, 7, 3))
    flow = jnp.broadcast_to(jnp.array([dx, dy], jnp.float32), (2, 5, 7, 2))
    rows = np.clip(np.arange(5) + dy, 0, 4)
    columns = np.clip(np.arange(7) + dx, 0, 6)
    expected = np.asarray(image)[:, rows][:, :, columns]
    np.testing.assert_array_equal(jit_warp(image, flow), expected)


def test_half_pixel_flow_averages_the_neighbours():
    image = np.asarray(random_image((2, 5, 7, 3)))
    half_x = jit_warp(jnp.asarray(image), jnp.zeros((2, 5, 7, 2)).at[..., 0].set(0.5))
    np.testing.assert_array_equal(half_x[:, :, :-1], (image[:, :, :-1] + image[:, :, 1:]) / 2)
    np.testing.assert_array_equal(half_x[:, :, -1], image[:, :, -1])  # clamped at x = W - 1
    half_y = jit_warp(jnp.asarray(image), jnp.zeros((2, 5, 7, 2)).at[..., 1].set(0.5))
    np.testing.assert_array_equal(half_y[:, :-1], (image[:, :-1] + image[:, 1:]) / 2)
    both = jit_warp(jnp.asarray(image), jnp.full((2, 5, 7, 2), 0.5))
    four = (image[:, :-1, :-1] + image[:, :-1, 1:] + image[:, 1:, :-1] + image[:, 1:, 1:]) / 4
    np.testing.assert_allclose(both[:, :-1, :-1], four, rtol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_and_gradients_equal_autodiff_of_the_reference(shape):
    image, flow = random_image(shape), off_grid_flow(shape, scale=12)
    cotangent = random_image(shape, seed=2) - 0.5
    np.testing.assert_allclose(
        jit_warp(image, flow), jit_reference(image, flow), rtol=1e-6, atol=1e-6
    )
    image_grad, flow_grad = vjp_of(bilinear_warp, image, flow, cotangent)
    expected_image_grad, expected_flow_grad = vjp_of(
        bilinear_warp_reference, image, flow, cotangent
    )
    np.testing.assert_allclose(image_grad, expected_image_grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(flow_grad, expected_flow_grad, rtol=1e-5, atol=1e-6)


def test_flow_gradient_is_zero_along_a_clamped_direction_only():
    shape = (4, 6, 8, 3)
    image, flow = random_image(shape), off_grid_flow(shape, scale=12)
    x, y = sample_positions(flow)
    outside_x, outside_y = (x < 0) | (x > 7), (y < 0) | (y > 5)
    for mask in (x < 0, x > 7, y < 0, y > 5, ~outside_x & ~outside_y):
        assert mask.sum() >= 5, "the flow must push samples past every border"
    _, flow_grad = vjp_of(bilinear_warp, image, flow, jnp.ones(shape))
    flow_grad = np.asarray(flow_grad)
    assert np.all(flow_grad[..., 0][outside_x] == 0)
    assert np.all(flow_grad[..., 1][outside_y] == 0)
    assert np.all(flow_grad[..., 0][~outside_x] != 0)  # random image: every slope is non-zero
    assert np.all(flow_grad[..., 1][~outside_y] != 0)


def test_gradient_at_integer_positions_takes_the_slope_towards_the_next_pixel():
    # Zero flow: the slope along x is I[x + 1] - I[x], the last column I[W - 1] - I[W - 2]
    # (on the border the gradient still flows); both implementations agree on it.
    image = random_image((1, 3, 5, 2))
    flow = jnp.zeros((1, 3, 5, 2))
    cotangent = jnp.ones((1, 3, 5, 2))
    _, flow_grad = vjp_of(bilinear_warp, image, flow, cotangent)
    pixels = np.asarray(image, np.float64)
    slope_x = np.diff(pixels, axis=2, append=pixels[:, :, -1:])
    slope_x[:, :, -1] = pixels[:, :, -1] - pixels[:, :, -2]
    slope_y = np.diff(pixels, axis=1, append=pixels[:, -1:])
    slope_y[:, -1] = pixels[:, -1] - pixels[:, -2]
    np.testing.assert_allclose(flow_grad[..., 0], slope_x.sum(-1), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(flow_grad[..., 1], slope_y.sum(-1), rtol=1e-6, atol=1e-7)
    for integer_flow in (flow, flow + 1.0, flow - 2.0):
        expected = vjp_of(bilinear_warp_reference, image, integer_flow, cotangent)
        for got, want in zip(
            vjp_of(bilinear_warp, image, integer_flow, cotangent), expected, strict=True
        ):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_gradients_against_finite_differences_in_float64():
    shape = (2, 4, 5, 2)
    with jax.enable_x64(True):
        image = jnp.asarray(np.random.default_rng(0).uniform(size=shape))
        flow = off_grid_flow(shape, scale=6).astype(jnp.float64)
        assert jit_warp(image, flow).dtype == jnp.float64
        check_grads(jit_warp, (image, flow), order=1, modes=("rev",), eps=1e-4)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_low_precision_inputs_keep_their_dtype_and_are_computed_in_float32(dtype):
    shape = (2, 5, 7, 3)
    image, flow = random_image(shape), off_grid_flow(shape, scale=3)
    low_image, low_flow = image.astype(dtype), flow.astype(dtype)
    out = jit_warp(low_image, low_flow)
    assert out.dtype == dtype
    expected_out = jit_reference(low_image, low_flow)
    low = dtype != jnp.float32
    tolerance = {"rtol": 1e-2, "atol": 1e-2} if low else {"rtol": 1e-5, "atol": 1e-6}
    np.testing.assert_allclose(
        np.asarray(out, np.float32), expected_out.astype(np.float32), **tolerance
    )
    image_grad, flow_grad = vjp_of(bilinear_warp, low_image, low_flow, jnp.ones(shape, dtype))
    assert image_grad.dtype == dtype and flow_grad.dtype == dtype
    expected = vjp_of(bilinear_warp_reference, low_image, low_flow, jnp.ones(shape, dtype))
    for got, want in zip((image_grad, flow_grad), expected, strict=True):
        np.testing.assert_allclose(
            np.asarray(got, np.float32), np.asarray(want, np.float32), **tolerance
        )


def test_each_example_is_warped_on_its_own():
    shape = (5, 6, 8, 3)
    image, flow = random_image(shape), off_grid_flow(shape, scale=4)
    batched = jit_warp(image, flow)
    for i in range(shape[0]):
        one = jit_warp(image[i : i + 1], flow[i : i + 1])
        np.testing.assert_array_equal(batched[i : i + 1], one)


def test_composes_with_jit_vmap_and_grad():
    shape = (2, 5, 7, 3)
    images = jnp.stack([random_image(shape, seed=s) for s in range(3)])
    flows = jnp.stack([off_grid_flow(shape, scale=4, seed=s) for s in range(3)])

    def loss(warp, image, flow):
        return jnp.sum(jnp.sin(3.0 * warp(image, flow)))

    grad_custom = jax.jit(jax.vmap(jax.grad(lambda i, f: loss(bilinear_warp, i, f), (0, 1))))
    grad_reference = jax.jit(
        jax.vmap(jax.grad(lambda i, f: loss(bilinear_warp_reference, i, f), (0, 1)))
    )
    for got, want in zip(grad_custom(images, flows), grad_reference(images, flows), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        jax.jit(jax.vmap(bilinear_warp))(images, flows),
        jnp.stack([bilinear_warp(i, f) for i, f in zip(images, flows, strict=True)]),
        rtol=1e-6,
    )


def test_second_order_reverse_mode_matches_the_reference():
    shape = (2, 5, 7, 3)
    image, flow = random_image(shape), off_grid_flow(shape, scale=4)
    direction = random_image(shape, seed=3), off_grid_flow(shape, scale=1, seed=4)

    def gradient_along_direction(warp):
        loss = lambda i, f: jnp.sum(jnp.sin(3.0 * warp(i, f)))
        grads = lambda i, f: jax.grad(loss, (0, 1))(i, f)
        return jax.grad(
            lambda i, f: sum(jnp.vdot(g, d) for g, d in zip(grads(i, f), direction, strict=True)),
            (0, 1),
        )

    got = jax.jit(gradient_along_direction(bilinear_warp))(image, flow)
    expected = jax.jit(gradient_along_direction(bilinear_warp_reference))(image, flow)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


def test_a_sharded_batch_gives_the_unsharded_result():
    shape = (8, 5, 7, 3)
    image, flow = random_image(shape), off_grid_flow(shape, scale=4)
    loss = lambda i, f: jnp.sum(bilinear_warp(i, f) ** 2)
    step = jax.jit(jax.grad(loss, (0, 1)))
    expected = step(image, flow)
    mesh = parallel.data_mesh()
    sharding = NamedSharding(mesh, PartitionSpec(parallel.DATA_AXIS))
    got = step(jax.device_put(image, sharding), jax.device_put(flow, sharding))
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6)


def test_the_kernels_warp_a_sharded_batch_where_it_lies(sampler):
    if sampler != "kernels":
        pytest.skip("XLA's version gathers the batch (its flat index hides it)")
    mesh = parallel.data_mesh()
    shape = (2 * mesh.devices.size, 5, 7, 3)
    sharded = [
        jax.device_put(x, parallel.batch_sharded(mesh))
        for x in (random_image(shape), off_grid_flow(shape, scale=4))
    ]
    loss = lambda i, f: jnp.sum(bilinear_warp(i, f) ** 2)
    compiled = jax.jit(jax.grad(loss, (0, 1))).lower(*sharded).compile().as_text()
    assert "all-gather" not in compiled
    for target in (warp_kernel.FORWARD, warp_kernel.BACKWARD):
        assert f'custom_call_target="{target}"' in compiled
    assert f"f32[{shape[0]}," not in compiled  # each device holds and warps 2 images


def test_an_explicitly_sharded_batch_is_warped_shard_by_shard():
    shape = (8, 4, 8, 3)
    image, flow = random_image(shape), off_grid_flow(shape, scale=4)
    loss = lambda i, f: jnp.sum(bilinear_warp(i, f) ** 2)
    expected_out = jit_warp(image, flow)
    expected_grads = jax.jit(jax.grad(loss, (0, 1)))(image, flow)
    mesh = jax.make_mesh((8,), ("batch",), axis_types=(AxisType.Explicit,))
    with jax.set_mesh(mesh):
        sharded = [
            jax.device_put(x, NamedSharding(mesh, PartitionSpec("batch"))) for x in (image, flow)
        ]
        out = jax.jit(bilinear_warp)(*sharded)
        grads = jax.jit(jax.grad(loss, (0, 1)))(*sharded)
    assert jax.typeof(out).sharding.spec == PartitionSpec("batch", None, None, None)
    np.testing.assert_allclose(out, expected_out, rtol=1e-6)
    for g, e in zip(grads, expected_grads, strict=True):
        assert jax.typeof(g).sharding.spec[0] == "batch"
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "image_shape, flow_shape, message",
    [
        ((5, 7, 3), (5, 7, 2), r"expects image \(B, H, W, C\) and flow \(B, H, W, 2\)"),
        ((2, 5, 7, 3), (2, 5, 7, 3), r"flow's last axis holds the \(x, y\) displacement"),
        ((2, 5, 7, 3), (2, 5, 8, 2), r"with equal B, H, W"),
        ((2, 5, 7, 3), (1, 5, 7, 2), r"with equal B, H, W"),
    ],
)
def test_bad_shapes_raise_clear_errors(image_shape, flow_shape, message):
    for warp in (bilinear_warp, bilinear_warp_reference):
        with pytest.raises(AssertionError, match=message):
            warp(jnp.zeros(image_shape), jnp.zeros(flow_shape))


def test_integer_images_are_rejected():
    with pytest.raises(AssertionError, match="floating-point image and flow"):
        bilinear_warp(jnp.zeros((1, 3, 3, 1), jnp.uint8), jnp.zeros((1, 3, 3, 2)))


def test_one_trace_per_shape():
    chex.clear_trace_counter()  # the test runs once per sampler
    traced_warp = jax.jit(chex.assert_max_traces(bilinear_warp, n=1))
    shape = (2, 5, 7, 3)
    for seed in range(3):
        traced_warp(random_image(shape, seed), off_grid_flow(shape, scale=2, seed=seed))
