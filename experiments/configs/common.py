"""What every preset file sets the same way."""

from __future__ import annotations

import ml_collections

LOOP_FIELDS = ("num_steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints")


def set_loop(config: ml_collections.ConfigDict, **fields: int) -> None:
    """Sets fields of the train loop (`thesis_jax.core.loop_options` reads them)."""
    unknown = set(fields) - set(LOOP_FIELDS)
    if unknown:
        raise ValueError(f"not loop fields: {sorted(unknown)}; the loop's are {LOOP_FIELDS}")
    config.update(fields)
