"""The one training loop: steps, periodic evaluation, logging, checkpoints, clean interruption.

Every method trains through `train`. It takes a pure `update(state, batch) -> (state, metrics)`
and a `batch_fn(step) -> batch` that returns this process's numpy slice of the batch for a given
step. Because batches are a function of the step and the PRNG key lives in the state, a run that
is interrupted and resumed from its checkpoint produces exactly the same parameters as one that
never stopped.

SIGTERM (a preempted job) or Ctrl-C makes the loop finish the current step, save a checkpoint and
return with `interrupted=True`; running the same command again resumes from there. A second
Ctrl-C aborts at once. A non-finite loss stops the run with `FloatingPointError` naming the step
and the last checkpoint.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import jax
import numpy as np
from absl import logging as absl_logging
from jax.sharding import Mesh

from thesis_jax.core import parallel
from thesis_jax.core.checkpoint import Checkpointer
from thesis_jax.core.errors import NonFiniteLossError
from thesis_jax.core.metrics import MetricWriter, progress_bar

Batch = Any
State = Any


@dataclasses.dataclass(frozen=True)
class Periodic:
    """Calls `fn(step, state)` every `every` steps (and after the last step if `at_end`)."""

    every: int
    fn: Callable[[int, State], None]
    at_end: bool = True


@dataclasses.dataclass(frozen=True)
class LoopResult:
    state: State
    step: int
    interrupted: bool
    eval_metrics: Mapping[str, float]


class StopRequests:
    """Turns SIGTERM and the first Ctrl-C into a flag the loop polls between steps."""

    def __init__(self) -> None:
        self.requested = False
        self.consumed = False  # set by the loop when it stopped because of the request
        self.signal_name = ""
        self._signum = 0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        self._signum = signum
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        if self.requested and not self.consumed and exc[0] is None:
            # Arrived when no step was left to stop (a finished run being resumed, its last
            # checkpoint being written): pass it on, so the caller stops too.
            signal.raise_signal(self._signum)

    def agreed(self) -> bool:
        """Whether any process was asked to stop (all processes must stop together)."""
        if jax.process_count() == 1:
            return self.requested
        from jax.experimental import multihost_utils

        flags = multihost_utils.process_allgather(np.array([self.requested]))
        return bool(np.any(flags))


def _mean_metrics(history: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    fetched = jax.device_get(list(history))
    return {k: float(np.mean([np.asarray(m[k]) for m in fetched])) for k in fetched[0]}


LOOP_FIELDS = ("num_steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints")


def loop_options(config: Mapping[str, Any], **overrides: Any) -> dict[str, Any]:
    """The loop's fields of a preset (`LOOP_FIELDS`) as keyword arguments of `train`.

    `core.train(state, update, batch_fn, workdir=..., **core.loop_options(config))`; keywords
    given here replace the preset's (a binary that trains a phase of a run, say).
    """
    missing = [name for name in LOOP_FIELDS if name not in config]
    if missing:
        raise KeyError(f"the config has no {missing}; every preset defines {LOOP_FIELDS}")
    return {**{name: config[name] for name in LOOP_FIELDS}, **overrides}


class LatestCheckpoint(Protocol):
    """Where a run's last good checkpoint is: a `Checkpointer`, or any record of one."""

    @property
    def directory(self) -> str: ...

    @property
    def latest_step(self) -> int | None: ...


def check_finite(metrics: Mapping[str, float], step: int, checkpointer: LatestCheckpoint) -> None:
    """Raises `NonFiniteLossError` (a `FloatingPointError`) if a loss among `metrics` is NaN or
    infinite."""
    bad = {k: v for k, v in metrics.items() if "loss" in k and not math.isfinite(v)}
    if bad:
        raise NonFiniteLossError(
            f"non-finite {bad} at step {step}; the last good checkpoint is step "
            f"{checkpointer.latest_step} in {checkpointer.directory}. Lower the learning rate "
            "or check the input data, then resume or start a new workdir."
        )


def train(
    state: State,
    update: Callable[[State, Batch], tuple[State, Mapping[str, Any]]],
    batch_fn: Callable[[int], Batch],
    *,
    num_steps: int,
    workdir: str | os.PathLike,
    mesh: Mesh | None = None,
    log_every: int = 50,
    checkpoint_every: int = 1000,
    keep_checkpoints: int = 3,
    eval_fn: Callable[[State], Mapping[str, float]] | None = None,
    eval_every: int = 0,
    periodic: Sequence[Periodic] = (),
    writer: MetricWriter | None = None,
    desc: str = "train",
    max_steps_this_run: int | None = None,
    on_restore: Callable[[State], State] | None = None,
) -> LoopResult:
    """Trains `state` to `num_steps`, resuming from `workdir/checkpoints` if it holds any.

    Args:
      state: the initial state (a pytree with an integer `step` leaf), used as the template
        for restoring; it is replicated over `mesh`.
      update: a pure function; it is jitted here with data-parallel shardings and donation.
      batch_fn: step -> this process's numpy slice of the global batch for that step.
      num_steps: total number of updates of the run.
      workdir: where checkpoints and metrics go.
      mesh: the data mesh (default: all devices).
      eval_fn: state -> scalars, every `eval_every` steps (0: only at the end) and at the end.
      periodic: other things to do every N steps (image grids, say).
      max_steps_this_run: stop (with a checkpoint) after this many steps of this invocation.
      on_restore: applied to a state restored from `workdir` (say, to set hyperparameters that
        PBT changed since the checkpoint was written).
    """
    mesh = mesh or parallel.data_mesh()
    workdir = os.fspath(workdir)
    own_writer = writer is None
    writer = writer or MetricWriter(workdir)
    checkpointer = Checkpointer(
        os.path.join(workdir, "checkpoints"), save_every=checkpoint_every, keep=keep_checkpoints
    )
    state = parallel.replicate(state, mesh)
    restored = checkpointer.restore(state)
    if restored is not None:
        state = restored if on_restore is None else on_restore(restored)
        absl_logging.info("resumed from %s at step %d", checkpointer.directory, int(state.step))
    start = int(jax.device_get(state.step))
    writer.truncate_after(start)
    step_fn = parallel.jit_update(update, mesh)
    last_eval: dict[str, float] = {}
    history: list[Mapping[str, Any]] = []
    interrupted = False
    step = start
    bar = progress_bar(num_steps, initial=start, desc=desc)
    tick, tick_step = time.perf_counter(), start
    stop_every = 1 if jax.process_count() == 1 else 10
    try:
        with StopRequests() as stop:
            while step < num_steps:
                batch = parallel.shard_batch(batch_fn(step), mesh)
                state, metrics = step_fn(state, batch)
                step += 1
                history.append(metrics)
                bar.update(1)
                if step % log_every == 0 or step == num_steps:
                    values = _mean_metrics(history)
                    history.clear()
                    check_finite(values, step, checkpointer)
                    now = time.perf_counter()
                    values["steps_per_sec"] = (step - tick_step) / max(now - tick, 1e-9)
                    tick, tick_step = now, step
                    writer.scalars(step, {f"train/{k}": v for k, v in values.items()}, echo=False)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in list(values.items())[:3]})
                if eval_fn is not None and eval_every and step % eval_every == 0:
                    last_eval = dict(eval_fn(state))
                    writer.scalars(step, {f"eval/{k}": v for k, v in last_eval.items()})
                for job in periodic:
                    if step % job.every == 0:
                        job.fn(step, state)
                checkpointer.maybe_save(step, state)
                out_of_budget = (
                    max_steps_this_run is not None and step - start >= max_steps_this_run
                )
                if out_of_budget or (step % stop_every == 0 and stop.agreed()):
                    interrupted = step < num_steps
                    stop.consumed = interrupted
                    break
            checkpointer.save(step, state)
        if interrupted:
            absl_logging.warning(
                "stopped at step %d/%d (%s); checkpoint saved in %s. Run the same command to "
                "resume.",
                step,
                num_steps,
                stop.signal_name or "step budget of this run",
                checkpointer.directory,
            )
        else:
            for job in periodic:
                if job.at_end and (step % job.every or step == 0):  # step 0: nothing trained
                    job.fn(step, state)
            if eval_fn is not None:
                if not (eval_every and step % eval_every == 0 and step > start):
                    last_eval = dict(eval_fn(state))
                    writer.scalars(step, {f"eval/{k}": v for k, v in last_eval.items()})
    finally:
        bar.close()
        checkpointer.close()
        writer.flush()
        if own_writer:
            writer.close()
    return LoopResult(state=state, step=step, interrupted=interrupted, eval_metrics=last_eval)
