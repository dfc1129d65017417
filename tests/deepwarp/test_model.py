"""DeepWarp's network (thesis sec. 4.3): shapes per variant, inputs, LCM bounds, training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from thesis_jax import deepwarp

H, W = 13, 17


def _inputs(batch=2, seed=0, angle_dims=1):
    rng = np.random.default_rng(seed)
    image = rng.random((batch, H, W, 3), np.float32)
    landmarks = rng.random((batch, 7, 2), np.float32) * np.array([W, H], np.float32)
    angles = rng.uniform(-30, 30, (batch, angle_dims)).astype(np.float32)
    return image, landmarks, angles


def _model(variant):
    return deepwarp.DeepWarp(variant=variant, widths=(4, 6, 4, 4), lcm_widths=(3,))


@pytest.mark.parametrize("variant", deepwarp.VARIANTS)
def test_every_variant_maps_an_eye_to_an_eye_and_starts_as_the_identity(variant):
    image, landmarks, angles = _inputs()
    model = _model(variant)
    variables = model.init(jax.random.PRNGKey(0), image, landmarks, angles)
    out = model.apply(variables, image, landmarks, angles)
    assert out["output"].shape == image.shape
    assert out["flow"].shape == (2, H, W, 2)
    assert ("mask" in out) == (variant == "cfw_lcm")
    assert ("coarse_output" in out) == variant.startswith("cfw")
    # Flow convolutions start at zero: the untrained warp is the identity; the LCM mask starts
    # small, so the output is the input lightened a little.
    np.testing.assert_allclose(out["flow"], 0.0, atol=1e-6)
    if variant == "cfw_lcm":
        mask = np.asarray(out["mask"])
        assert mask.shape == (2, H, W, 1)
        np.testing.assert_allclose(mask, 0.002, atol=1e-4)
        np.testing.assert_allclose(out["output"], image * (1 - mask) + mask, atol=1e-5)
    else:
        np.testing.assert_allclose(out["output"], image, atol=1e-5)


def test_lcm_output_stays_in_the_unit_range_and_only_brightens():
    image, landmarks, angles = _inputs(batch=3)
    model = _model("cfw_lcm")
    variables = model.init(jax.random.PRNGKey(1), image, landmarks, angles)
    # Push the mask logits to extremes: M must stay in [0, 1] and O_final between O and white.
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: x * 50.0 if "lcm" in jax.tree_util.keystr(path) else x,
        variables["params"],
    )
    params["lcm"]["Conv_1"]["kernel"] = jnp.ones_like(params["lcm"]["Conv_1"]["kernel"]) * 5.0
    out = model.apply({**variables, "params": params}, image, landmarks, angles)
    mask, output, warped = (np.asarray(out[k]) for k in ("mask", "output", "flow"))
    assert mask.min() >= 0.0 and mask.max() <= 1.0 and mask.max() > 0.9
    assert output.min() >= 0.0 and output.max() <= 1.0 + 1e-6
    del warped


def test_anchor_maps_are_offsets_to_each_landmark_eq_4_3_5():
    landmarks = jnp.array([[[3.0, 2.0], [10.0, 5.0]]])
    maps = np.asarray(deepwarp.anchor_maps(landmarks, 6, 12))
    assert maps.shape == (1, 6, 12, 4)
    # x - x_i and y - y_i, in units of the crop width.
    np.testing.assert_allclose(maps[0, 4, 7, 0], (7 - 3) / 12, rtol=1e-6)
    np.testing.assert_allclose(maps[0, 4, 7, 1], (7 - 10) / 12, rtol=1e-6)
    np.testing.assert_allclose(maps[0, 4, 7, 2], (4 - 2) / 12, rtol=1e-6)
    np.testing.assert_allclose(maps[0, 4, 7, 3], (4 - 5) / 12, rtol=1e-6)
    # At half scale pixel (i, j) covers full-size pixels 2i, 2i+1: centre 2i + 0.5.
    half = np.asarray(deepwarp.anchor_maps(landmarks, 3, 6, scale=0.5))
    np.testing.assert_allclose(half[0, 1, 2, 0], (4.5 - 3) / 12, rtol=1e-6)


@pytest.mark.parametrize("kernel_size", [(1, 1), (3, 3), (5, 5), (4, 3)])
def test_the_convolution_of_affine_maps_is_the_convolution_of_the_maps_themselves(kernel_size):
    from thesis_jax.deepwarp.model import affine_maps, affine_maps_conv

    rng = np.random.default_rng(0)
    coefficients = jnp.asarray(rng.normal(size=(2, 3, 5)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(*kernel_size, 5, 4)), jnp.float32)
    maps = affine_maps(coefficients, H, W)
    # a + b x + c y at column x, row y
    np.testing.assert_allclose(
        maps[1, 4, 7], coefficients[1, 0] + 7 * coefficients[1, 1] + 4 * coefficients[1, 2]
    )
    expected = jax.lax.conv_general_dilated(
        maps, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    got = affine_maps_conv(coefficients, kernel, H, W)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    # and its gradients, which reach the angle embedding through the coefficients
    weights = jnp.asarray(rng.normal(size=expected.shape), jnp.float32)
    direct = jax.grad(
        lambda c, k: jnp.sum(
            weights
            * jax.lax.conv_general_dilated(
                affine_maps(c, H, W), k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
        ),
        argnums=(0, 1),
    )(coefficients, kernel)
    fast = jax.grad(lambda c, k: jnp.sum(weights * affine_maps_conv(c, k, H, W)), argnums=(0, 1))(
        coefficients, kernel
    )
    for a, b in zip(fast, direct, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("extra_channels", [0, 5])
def test_the_first_layer_is_one_convolution_of_the_image_the_affine_maps_and_the_rest(
    extra_channels,
):
    """Sec. 4.3.3's inputs as maps: the image, the angle embedding's 16 constant maps, the 14
    anchor maps (and for the 1x module of ms / cfw the coarse module's maps), concatenated in
    that order along the first kernel's input channels."""
    from thesis_jax.deepwarp.model import InputConv, affine_maps, input_coefficients

    image, landmarks, _ = _inputs(batch=3)
    rng = np.random.default_rng(1)
    embedding = jnp.asarray(rng.random((3, 16)), jnp.float32)
    coefficients = input_coefficients(embedding, landmarks, W, 1.0)
    np.testing.assert_allclose(
        affine_maps(coefficients, H, W),
        np.concatenate(
            [
                np.broadcast_to(embedding[:, None, None], (3, H, W, 16)),
                deepwarp.anchor_maps(landmarks, H, W),
            ],
            axis=-1,
        ),
        rtol=1e-6,
        atol=1e-6,
    )
    extra = jnp.asarray(rng.random((3, H, W, extra_channels)), jnp.float32)
    layer = InputConv(8, 5)
    variables = layer.init(
        jax.random.PRNGKey(0), image, coefficients, extra if extra_channels else None
    )
    got = layer.apply(variables, image, coefficients, extra if extra_channels else None)
    kernel = variables["params"]["kernel"]
    assert kernel.shape == (5, 5, 3 + 30 + extra_channels, 8)
    maps = jnp.concatenate([image, affine_maps(coefficients, H, W), extra], axis=-1)
    expected = jax.lax.conv_general_dilated(
        maps, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_the_angle_changes_the_flow_once_trained_a_little():
    image, landmarks, _ = _inputs(batch=1)
    model = _model("cfw")
    variables = model.init(jax.random.PRNGKey(0), image, landmarks, jnp.zeros((1, 1)))
    params = jax.tree.map(lambda x: x + 0.05, variables["params"])  # leave the zero init
    flows = [
        model.apply({**variables, "params": params}, image, landmarks, jnp.full((1, 1), a))["flow"]
        for a in (-20.0, 20.0)
    ]
    assert float(jnp.abs(flows[0] - flows[1]).max()) > 1e-3


def test_unknown_variant_and_bad_shapes_fail_clearly():
    image, landmarks, angles = _inputs()
    with pytest.raises(ValueError, match="unknown DeepWarp variant"):
        _model("big").init(jax.random.PRNGKey(0), image, landmarks, angles)
    with pytest.raises(AssertionError):
        _model("ss").init(jax.random.PRNGKey(0), image, landmarks[:, :5], angles)


def test_update_learns_to_warp_the_input_onto_a_shifted_target(cfw_state, shift_batch):
    batch, state = shift_batch, cfw_state
    update = jax.jit(deepwarp.update)
    history = []
    for _ in range(40):
        state, metrics = update(state, batch)
        history.append(float(metrics["mse"]))
    assert history[-1] < 0.3 * history[0], history
    assert int(state.step) == 40
    assert set(state.model_state) == {"batch_stats"}
    # The learned flow moves content down: it samples from the row above (flow_y < 0).
    out = deepwarp.predict(
        state.params, batch, apply_fn=state.apply_fn, model_state=state.model_state
    )
    assert float(np.median(out["flow"][..., 1])) < -0.5


def test_registration_loss_forgives_the_misalignment_that_l2_punishes(tiny_config, shift_batch):
    batch = shift_batch
    state = deepwarp.init(jax.random.PRNGKey(0), tiny_config("cfw", loss="registration_l2"))
    value, (metrics, _) = deepwarp.loss(
        state.params,
        batch,
        state.rng,
        apply_fn=state.apply_fn,
        hparams=state.hparams,
        model_state=state.model_state,
    )
    # The untrained model is the identity warp: the 1-row-shifted crop of the ground truth
    # matches it exactly (eq. 4.4.1), while the aligned l2 does not.
    assert float(value) < 1e-10
    assert float(metrics["mse"]) > 1e-3
    assert float(metrics["aligned_fraction"]) == 0.0
