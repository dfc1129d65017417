"""Shared tiny DeepWarp settings: one config factory, one batch and one state per session, so
the tests that jit `update` or `loss` on them reuse each other's compiled functions."""

import jax
import ml_collections
import numpy as np
import pytest

H, W = 13, 17
MARGIN = 2


def make_tiny_config(variant: str, loss: str = "l2", angle_dims: int = 1):
    return ml_collections.ConfigDict(
        {
            "model": {"variant": variant, "widths": (4, 8, 4, 4), "kernels": (5, 3, 3, 1),
                      "lcm_widths": (4,)},
            "crop_size": (W, H),
            "angle_dims": angle_dims,
            "learning_rate": 3e-3,
            "loss": loss,
            "margin": MARGIN,
        }
    )  # fmt: skip


@pytest.fixture(scope="session")
def tiny_config():
    """`tiny_config(variant, loss="l2", angle_dims=1)`: a 17 x 13 network of 4-8 channels."""
    return make_tiny_config


@pytest.fixture(scope="session")
def shift_batch():
    """Smooth random images; the target is the input moved down one row (margin 2)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(0)
    base = gaussian_filter(rng.random((8, H + 8, W + 8, 3)), (0, 1.5, 1.5, 0))
    base = ((base - base.min()) / (base.max() - base.min())).astype(np.float32)
    return {
        "image": base[:, 4 : 4 + H, 4 : 4 + W],
        "landmarks": np.tile(np.array([[W / 2, H / 2]], np.float32), (8, 7, 1)),
        "angle": np.full((8, 1), 10.0, np.float32),
        "target": base[:, 1 : 5 + H, 2 : 6 + W],  # centre: base[3:3+H, 4:4+W]
    }


@pytest.fixture(scope="session")
def cfw_state():
    """The untrained tiny CFW (l2 loss) of seed 0: its flow is zero, its warp the identity."""
    from thesis_jax import deepwarp

    return deepwarp.init(jax.random.PRNGKey(0), make_tiny_config("cfw"))
