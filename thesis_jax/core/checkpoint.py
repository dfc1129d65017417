"""Checkpoints with orbax: save every N steps and on exit, keep the last K, resume the latest.

Orbax writes each step into a temporary directory and renames it when complete, so an
interrupted save never leaves a checkpoint that `restore` would pick up. Restoring into a
template state gives back the same pytree structure, dtypes and shardings, which is what makes
an interrupted-and-resumed run bit-identical to an uninterrupted one.

Beside orbax's files each step gets `integrity.json` (every file's size and CRC-32), checked
before a restore: a checkpoint damaged after it was written (a truncated file, a disk that filled
up, a bad copy) is reported by name without handing orbax files it would fail on halfway.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
import traceback
import zlib
from typing import Any

import jax
from absl import logging as absl_logging

from thesis_jax.core.errors import CheckpointError

# Orbax reports every file operation at INFO; a training log needs only its warnings.
logging.getLogger("orbax").setLevel(logging.WARNING)
logging.getLogger("absl").addFilter(
    lambda record: "orbax" not in record.pathname or record.levelno >= logging.WARNING
)


def _orbax() -> Any:
    """`orbax.checkpoint`, imported on first use: a quarter of a second that a binary answering a
    bad flag, or a program that never checkpoints, does not spend."""
    import orbax.checkpoint

    return orbax.checkpoint


def _for_saving(state: Any) -> Any:
    """On one host, the state as numpy arrays; on several, the sharded arrays as they are.

    Given jax.Arrays, orbax compiles a slicing program per array shape and mesh to find each
    shard, seconds per run on a CPU mesh; numpy arrays it writes as they are. Restoring into a
    sharded template is the same either way. Several hosts each write their own shards.
    """
    if jax.process_count() > 1:
        return state
    return jax.device_get(state)


_INTEGRITY = "integrity.json"


def _crc32(path: str) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            crc = zlib.crc32(chunk, crc)
    return crc


def _files(step_dir: str) -> list[str]:
    """The files of a checkpoint step, relative to its folder, sorted; not the manifest itself."""
    found = []
    for root, _, names in os.walk(step_dir):
        for name in names:
            relative = os.path.relpath(os.path.join(root, name), step_dir)
            if relative != _INTEGRITY:
                found.append(relative)
    return sorted(found)


def write_integrity(step_dir: str) -> None:
    """Records every file of a finished checkpoint step: its size and CRC-32."""
    record = {
        name: [os.path.getsize(path), _crc32(path)]
        for name in _files(step_dir)
        for path in [os.path.join(step_dir, name)]
    }
    temporary = os.path.join(step_dir, f".{_INTEGRITY}.tmp")
    with open(temporary, "w") as f:
        json.dump(record, f)
    os.replace(temporary, os.path.join(step_dir, _INTEGRITY))


def integrity_problem(step_dir: str) -> str | None:
    """What is wrong with a step's files against its `integrity.json`; None when all match
    (or when there is no record: steps saved by several hosts, or before records existed)."""
    path = os.path.join(step_dir, _INTEGRITY)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as e:
        return f"its {_INTEGRITY} cannot be read ({e})"
    for name, (size, crc) in sorted(record.items()):
        file = os.path.join(step_dir, name)
        if not os.path.isfile(file):
            return f"{name} is missing"
        if (actual := os.path.getsize(file)) != size:
            return f"{name} has {actual} bytes, {size} when saved"
        if _crc32(file) != crc:
            return f"{name} changed since it was saved (CRC-32)"
    return None


_TRACEBACK = "Traceback (most recent call last):"
_CLOSED_LOOP_NOISE = (
    "asyncio/base_events.py",
    "self._check_closed()",
    "raise RuntimeError('Event loop is closed')",
    "RuntimeError: Event loop is closed",
)


@dataclasses.dataclass
class _LineState:
    line: str = ""  # the start of a line not yet passed or dropped
    passing: bool = False  # the start of this line has been written through
    held: bool = False  # a traceback's first line is held back


class _WithoutClosedLoopNoise(io.TextIOBase):
    """A text stream that passes everything to `stream` but the lines of the tracebacks
    `_CLOSED_LOOP_NOISE` describes. A line that cannot be one of them (a progress bar's
    carriage-return updates) passes at once; a traceback's first line is held back until the
    next line shows whether it is one of them. Each writing thread's lines are told apart
    (tensorstore's threads print while the main thread does)."""

    _STARTS = (_TRACEBACK, "  File ", "    ", "RuntimeError")

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._threads: dict[int, _LineState] = {}

    def write(self, text: str) -> int:
        with self._lock:
            state = self._threads.setdefault(threading.get_ident(), _LineState())
            for piece in re.split(r"(?<=\n)", text):
                if piece:
                    self._write(state, piece)
        return len(text)

    def _write(self, state: _LineState, piece: str) -> None:
        if state.passing:  # the rest of a line already passed through
            self._stream.write(piece)
            state.passing = not piece.endswith("\n")
            return
        state.line += piece
        if not state.line.endswith("\n"):
            if not any(s.startswith(state.line) or state.line.startswith(s) for s in self._STARTS):
                self._release(state)
                self._stream.write(state.line)
                state.line, state.passing = "", True
            return
        line, state.line = state.line[:-1], ""
        if line.startswith(_TRACEBACK):  # a held one followed by another had no frames
            state.held = True
        elif any(pattern in line for pattern in _CLOSED_LOOP_NOISE):
            state.held = False
        else:
            self._release(state)
            self._stream.write(line + "\n")

    def _release(self, state: _LineState) -> None:
        if state.held:
            self._stream.write(_TRACEBACK + "\n")
            state.held = False

    def flush(self) -> None:
        self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._stream.encoding

    def __getattr__(self, name: str) -> Any:  # buffer, errors, ...: the wrapped stream's
        return getattr(self._stream, name)


def _drop_closed_loop_noise() -> None:
    """From the first restore on, keeps a failed restore's stragglers' tracebacks off stderr.

    When a damaged file fails a restore, tensorstore's other reads still in flight report back
    to the event loop orbax has already closed, and each prints `RuntimeError: Event loop is
    closed` with its traceback (through Python's stderr, from tensorstore's threads, for a while
    after the exception): dozens of lines that hide the one that matters. Only lines of those
    tracebacks are dropped; everything else is written as it comes.
    """
    if not isinstance(sys.stderr, _WithoutClosedLoopNoise):
        sys.stderr = _WithoutClosedLoopNoise(sys.stderr)
        logging.getLogger("asyncio").addFilter(_not_a_failed_read)


def _not_a_failed_read(record: logging.LogRecord) -> bool:
    """False for asyncio's `Task exception was never retrieved` about one of orbax's reads: when
    one read of a damaged checkpoint fails, the others' failures are never collected, and
    asyncio logs each with its traceback when the task is collected."""
    error = record.exc_info[1] if record.exc_info else None
    if error is None or "exception was never retrieved" not in record.getMessage():
        return True
    frames = traceback.extract_tb(error.__traceback__)
    from_a_read = any(f"{os.sep}orbax{os.sep}" in frame.filename for frame in frames)
    return not (from_a_read or "tensorstore_spec" in str(error))  # a Future has no frames


class Checkpointer:
    """Owns the checkpoint directory of one run."""

    def __init__(self, directory: str | os.PathLike, *, save_every: int, keep: int = 3) -> None:
        if save_every < 1:
            raise ValueError(f"save_every must be >= 1, got {save_every}")
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.directory = os.path.abspath(os.fspath(directory))
        options = _orbax().CheckpointManagerOptions(
            max_to_keep=keep,
            save_interval_steps=save_every,
            enable_async_checkpointing=False,
            create=True,
        )
        self._manager = _orbax().CheckpointManager(self.directory, options=options)

    @property
    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def restore(self, template: Any, step: int | None = None) -> Any | None:
        """The state saved at `step`, shaped like `template`; None if there is none.

        Without `step`: the newest checkpoint that restores. One that fails (damaged files, a
        disk that filled up mid-write) is reported in one warning line and the next older one
        is tried; once an older one restores, the failed ones are moved to
        `<directory>.damaged/` (kept, out of the way of the resumed run's saves). If none
        restores (damaged, or saved by a different model), nothing is moved and
        `CheckpointError` names the folder to move away.
        """
        abstract = jax.tree.map(_orbax().utils.to_shape_dtype_struct, template)
        if step is not None:
            return self._restore(step, abstract)
        steps = sorted(self.all_steps(), reverse=True)
        failed = []
        for candidate in steps:
            try:
                state = self._restore(candidate, abstract)
            except CheckpointError as e:
                absl_logging.warning("%s", e)
                failed.append(candidate)
                continue
            for step in failed:
                absl_logging.warning("checkpoint step %d %s", step, self._set_aside(step))
            if failed:
                absl_logging.warning(
                    "resuming from step %d, the newest checkpoint in %s that restores",
                    candidate,
                    self.directory,
                )
            return state
        if failed:
            raise CheckpointError(
                f"none of the checkpoints in {self.directory} restores (steps "
                f"{', '.join(map(str, steps))}); move that folder away to start the run over"
            )
        return None

    def _set_aside(self, step: int) -> str:
        """Moves a checkpoint that does not restore out of the way of the run's next saves
        (into `<directory>.damaged/<step>`, kept for inspection); says where it went."""
        if jax.process_count() > 1:  # every host reads it; none may move it under the others
            return "left in place (several processes)"
        destination = os.path.join(f"{self.directory}.damaged", str(step))
        if os.path.exists(destination):
            destination = f"{destination}.{int(time.time())}"
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        shutil.move(os.path.join(self.directory, str(step)), destination)
        self._manager.reload()
        return f"moved to {destination}"

    def _restore(self, step: int, abstract: Any) -> Any:
        if problem := integrity_problem(os.path.join(self.directory, str(step))):
            raise CheckpointError(
                f"checkpoint step {step} in {self.directory} cannot be restored: {problem}"
            )
        _drop_closed_loop_noise()  # before: the stragglers start while restore still runs
        try:
            return self._manager.restore(step, args=_orbax().args.StandardRestore(abstract))
        except Exception as e:  # orbax / tensorstore raise many types for damaged files
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if len(reason) > 160:
                reason = reason[:157] + "..."
            raise CheckpointError(
                f"checkpoint step {step} in {self.directory} cannot be restored "
                f"({type(e).__name__}: {reason})"
            ) from e

    def maybe_save(self, step: int, state: Any) -> bool:
        """Saves if `step` is on the save interval; returns whether it saved."""
        if not self._manager.should_save(step):
            return False
        saved = self._manager.save(step, args=_orbax().args.StandardSave(_for_saving(state)))
        if saved:
            self._record(step)
        return saved

    def save(self, step: int, state: Any) -> None:
        """Saves now, whatever the interval (at exit, on SIGTERM); no-op if `step` is saved."""
        if step in self._manager.all_steps():
            return
        self._manager.save(step, args=_orbax().args.StandardSave(_for_saving(state)), force=True)
        self._manager.wait_until_finished()
        self._record(step)

    def _record(self, step: int) -> None:
        """Writes the finished step's integrity record (one host: several write shards apart)."""
        if jax.process_count() == 1:
            write_integrity(os.path.join(self.directory, str(step)))

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
