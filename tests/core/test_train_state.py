"""core.train_state: the max-norm projection and the parameter average, on known answers."""

import jax.numpy as jnp
import numpy as np
import pytest

from thesis_jax import core


def _params():
    return {
        "conv1": {"kernel": jnp.array([[3.0, 0.1], [4.0, 0.1]]), "bias": jnp.array([9.0, 9.0])},
        "dense": {"kernel": jnp.array([[0.0, 6.0], [8.0, 0.0]])},
    }


def test_max_norm_projection_rescales_each_unit_over_its_inputs():
    projected = core.max_norm_projection(_params(), 1.0)
    np.testing.assert_allclose(projected["conv1"]["kernel"][:, 0], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_allclose(projected["conv1"]["kernel"][:, 1], [0.1, 0.1])  # under the cap
    np.testing.assert_array_equal(projected["conv1"]["bias"], [9.0, 9.0])  # biases untouched
    np.testing.assert_allclose(projected["dense"]["kernel"], [[0.0, 1.0], [1.0, 0.0]], rtol=1e-6)


def test_max_norm_projection_of_named_layers_only():
    projected = core.max_norm_projection(_params(), 1.0, layers=("conv1",))
    np.testing.assert_allclose(projected["conv1"]["kernel"][:, 0], [0.6, 0.8], rtol=1e-6)
    np.testing.assert_array_equal(projected["dense"]["kernel"], _params()["dense"]["kernel"])


def test_max_norm_projection_of_a_conv_kernel_takes_the_window_and_input_channels():
    kernel = jnp.ones((3, 3, 2, 4)) * jnp.arange(1.0, 5.0)  # filter k has norm k * sqrt(18)
    projected = core.max_norm_projection({"c": {"kernel": kernel}}, 3.0)["c"]["kernel"]
    norms = jnp.sqrt(jnp.sum(projected**2, axis=(0, 1, 2)))
    np.testing.assert_allclose(norms, [min(k * np.sqrt(18), 3.0) for k in range(1, 5)], rtol=1e-6)


def test_exponential_moving_average_warms_up_then_averages():
    average, params = {"w": jnp.zeros(())}, {"w": jnp.ones(())}
    first = core.exponential_moving_average(average, params, decay=0.99, step=0)
    assert float(first["w"]) == pytest.approx(0.9)  # d = 1 / 10 at step 0
    late = core.exponential_moving_average(average, params, decay=0.99, step=10_000)
    assert float(late["w"]) == pytest.approx(0.01, rel=1e-4)


def test_loop_options_takes_the_five_fields_and_overrides():
    config = dict(num_steps=10, log_every=2, eval_every=5, checkpoint_every=4, keep_checkpoints=1)
    assert core.loop_options(config) == config
    assert core.loop_options(config, num_steps=3)["num_steps"] == 3
    with pytest.raises(KeyError, match="keep_checkpoints"):
        core.loop_options({k: v for k, v in config.items() if k != "keep_checkpoints"})
