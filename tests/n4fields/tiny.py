"""Small stand-ins shared by the N4-Fields tests: a narrow network, a fast-compiling key.

Every test builds its network from `tiny_arch`, so the compiled functions (keyed by the
architecture) are shared across the test modules.
"""

import jax

from thesis_jax.n4fields import Architecture

CHANNEL_MEAN = (0.4, 0.5, 0.6, 0.5)


def tiny_arch(head: str = "code", channels: int = 3) -> Architecture:
    """The default layer geometry (kernels 5/4/3, three 2x2 poolings, receptive field 34, two
    FC layers with dropout) with fewer filters: conv 8/16/16, FC 256/256."""
    return Architecture(
        in_channels=channels,
        conv_features=(8, 16, 16),
        fc_features=(256, 256),
        head=head,
        channel_mean=CHANNEL_MEAN[:channels],
        init_std=0.1,
    )


def prng_key(seed: int = 0) -> jax.Array:
    """A JAX key of the "rbg" implementation: on XLA:CPU it compiles in a fraction of the time
    threefry takes (every parameter initialiser and dropout mask draws from it); the functions
    under test take any key."""
    return jax.random.key(seed, impl="rbg")
