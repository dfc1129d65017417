"""Machinery shared by every method: sharding, checkpoints, metrics, the train loop, presets.

Nothing here knows about a particular method.
"""

from thesis_jax.core import checkpoint, errors, loop, metrics, parallel, presets
from thesis_jax.core.checkpoint import Checkpointer
from thesis_jax.core.errors import CheckpointError, ConfigError, NonFiniteLossError, UserError
from thesis_jax.core.loop import LoopResult, Periodic, check_finite, loop_options, train
from thesis_jax.core.metrics import (
    MetricWriter,
    image_grid,
    save_figure,
    save_gif,
    save_png,
    write_atomic,
)
from thesis_jax.core.presets import get_config
from thesis_jax.core.train_state import (
    TrainState,
    exponential_moving_average,
    max_norm_projection,
)

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "ConfigError",
    "LoopResult",
    "MetricWriter",
    "NonFiniteLossError",
    "Periodic",
    "TrainState",
    "UserError",
    "check_finite",
    "checkpoint",
    "errors",
    "exponential_moving_average",
    "get_config",
    "image_grid",
    "loop",
    "loop_options",
    "max_norm_projection",
    "metrics",
    "parallel",
    "presets",
    "save_figure",
    "save_gif",
    "save_png",
    "train",
    "write_atomic",
]
