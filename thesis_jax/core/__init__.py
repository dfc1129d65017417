"""Machinery shared by every method: sharding, checkpoints, metrics, the train loop, presets.

Nothing here knows about a particular method.
"""

from thesis_jax.core import checkpoint, loop, metrics, parallel, presets
from thesis_jax.core.checkpoint import Checkpointer
from thesis_jax.core.loop import LoopResult, Periodic, check_finite, loop_options, train
from thesis_jax.core.metrics import (
    MetricWriter,
    image_grid,
    save_figure,
    save_gif,
    save_png,
    write_atomic,
)
from thesis_jax.core.presets import ConfigError, get_config
from thesis_jax.core.train_state import (
    TrainState,
    exponential_moving_average,
    max_norm_projection,
)

__all__ = [
    "Checkpointer",
    "ConfigError",
    "LoopResult",
    "MetricWriter",
    "Periodic",
    "TrainState",
    "check_finite",
    "checkpoint",
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
