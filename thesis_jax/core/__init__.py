"""Machinery shared by every method: sharding, checkpoints, logging, the train loop, configs.

Nothing here knows about a particular method.
"""

from thesis_jax.core import checkpoint, config, logging, loop, parallel
from thesis_jax.core.checkpoint import Checkpointer
from thesis_jax.core.config import ConfigError, get_config
from thesis_jax.core.logging import (
    MetricWriter,
    image_grid,
    save_figure,
    save_gif,
    save_png,
    write_atomic,
)
from thesis_jax.core.loop import LoopResult, Periodic, train
from thesis_jax.core.train_state import TrainState, exponential_moving_average

__all__ = [
    "Checkpointer",
    "ConfigError",
    "LoopResult",
    "MetricWriter",
    "Periodic",
    "TrainState",
    "checkpoint",
    "config",
    "exponential_moving_average",
    "get_config",
    "image_grid",
    "logging",
    "loop",
    "parallel",
    "save_figure",
    "save_gif",
    "save_png",
    "train",
    "write_atomic",
]
