"""Checkpoints with orbax: save every N steps and on exit, keep the last K, resume the latest.

Orbax writes each step into a temporary directory and renames it when complete, so an
interrupted save never leaves a checkpoint that `restore` would pick up. Restoring into a
template state gives back the same pytree structure, dtypes and shardings, which is what makes
an interrupted-and-resumed run bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import orbax.checkpoint as ocp

# Orbax reports every file operation at INFO; a training log needs only its warnings.
logging.getLogger("orbax").setLevel(logging.WARNING)
logging.getLogger("absl").addFilter(
    lambda record: "orbax" not in record.pathname or record.levelno >= logging.WARNING
)


def _for_saving(state: Any) -> Any:
    """On one host, the state as numpy arrays; on several, the sharded arrays as they are.

    Given jax.Arrays, orbax compiles a slicing program per array shape and mesh to find each
    shard, seconds per run on a CPU mesh; numpy arrays it writes as they are. Restoring into a
    sharded template is the same either way. Several hosts each write their own shards.
    """
    if jax.process_count() > 1:
        return state
    return jax.device_get(state)


class Checkpointer:
    """Owns the checkpoint directory of one run."""

    def __init__(self, directory: str | os.PathLike, *, save_every: int, keep: int = 3) -> None:
        if save_every < 1:
            raise ValueError(f"save_every must be >= 1, got {save_every}")
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = os.path.abspath(os.fspath(directory))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            save_interval_steps=save_every,
            enable_async_checkpointing=False,
            create=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    @property
    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def restore(self, template: Any, step: int | None = None) -> Any | None:
        """The state saved at `step` (default: latest), shaped like `template`; None if none."""
        step = self.latest_step if step is None else step
        if step is None:
            return None
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def maybe_save(self, step: int, state: Any) -> bool:
        """Saves if `step` is on the save interval; returns whether it saved."""
        if not self._manager.should_save(step):
            return False
        return self._manager.save(step, args=ocp.args.StandardSave(_for_saving(state)))

    def save(self, step: int, state: Any) -> None:
        """Saves now, whatever the interval (at exit, on SIGTERM); no-op if `step` is saved."""
        if step in self._manager.all_steps():
            return
        self._manager.save(step, args=ocp.args.StandardSave(_for_saving(state)), force=True)
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
