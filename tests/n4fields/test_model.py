"""The patch CNN of fig. 3.3: layer geometry, the three heads of sec. 3.4, max-norm (sec. 3.3.3)."""

import jax
import numpy as np
import pytest

from tests.n4fields import tiny
from tests.n4fields.tiny import prng_key
from thesis_jax import n4fields
from thesis_jax.n4fields.train import init_params


def test_default_architecture_tiles_the_34_patch():
    arch = n4fields.Architecture()
    assert arch.patch_size == 34 and arch.annotation_size == 16 and arch.code_dim == 16
    assert arch.feature_size == 2  # 34 -5-> 30 -/2-> 15 -4-> 12 -/2-> 6 -3-> 4 -/2-> 2
    assert arch.receptive_field == 34
    assert arch.total_stride == 8
    assert arch.dropout_rate == 0.5 and arch.init_std == 0.01
    with pytest.raises(ValueError, match="too small"):
        n4fields.Architecture(conv_kernels=(15, 9, 5))


@pytest.mark.parametrize(
    "head, channels, outputs",
    [("code", 3, 16), ("central", 3, 1), ("patch", 3, 256), ("code", 4, 16), ("patch", 4, 256)],
)
def test_output_shapes_per_head(head, channels, outputs):
    # RGB or RGBD (NYU) input; the last layer has 16, 1 or 256 units (sec. 3.4)
    arch = tiny.tiny_arch(head, channels)
    x = jax.ShapeDtypeStruct((5, 34, 34, channels), np.float32)
    variables = jax.eval_shape(n4fields.N4Net(arch).init, prng_key(0), x)
    assert jax.eval_shape(n4fields.N4Net(arch).apply, variables, x).shape == (5, outputs)
    shapes = jax.tree.map(lambda leaf: leaf.shape, variables["params"])
    assert shapes["conv1"]["kernel"] == (5, 5, channels, 8)
    assert shapes["fc1"]["kernel"] == (2 * 2 * 16, 256)
    assert shapes["output"]["kernel"] == (256, outputs)


def test_initial_weights_dropout_and_input_checks(tiny_arch):
    model = n4fields.N4Net(tiny_arch)
    x = jax.random.uniform(prng_key(3), (5, 34, 34, 3))
    params = init_params(prng_key(0), tiny_arch)
    assert set(params) == {"conv1", "conv2", "conv3", "fc1", "fc2", "output"}
    # weights from N(0, init_std^2), biases zero (sec. 3.3.3)
    weights = np.concatenate([np.ravel(layer["kernel"]) for layer in params.values()])
    np.testing.assert_allclose(weights.std(), tiny_arch.init_std, rtol=0.1)
    assert all(np.all(layer["bias"] == 0) for layer in params.values())
    # dropout acts only when training; at test time the output is deterministic
    train = lambda key: model.apply({"params": params}, x, train=True, rngs={"dropout": key})
    assert not np.allclose(train(prng_key(1)), train(prng_key(2)))
    np.testing.assert_array_equal(
        model.apply({"params": params}, x), model.apply({"params": params}, x)
    )
    with pytest.raises(AssertionError):
        model.apply({"params": params}, x[:, 1:-1, 1:-1])
