"""What every preset file sets the same way."""

from __future__ import annotations

import ml_collections

from thesis_jax.core.loop import LOOP_FIELDS


def set_loop(config: ml_collections.ConfigDict, **fields: int) -> None:
    """Sets fields of the train loop (`thesis_jax.core.loop_options` reads them)."""
    unknown = set(fields) - set(LOOP_FIELDS)
    if unknown:
        raise ValueError(f"not loop fields: {sorted(unknown)}; the loop's are {LOOP_FIELDS}")
    config.update(fields)
