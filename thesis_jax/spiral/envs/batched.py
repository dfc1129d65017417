"""Steps a batch of SPIRAL environments at once, for the actors of sec. 6.3.

`BatchedEnv` holds `batch_size` copies of any environment that follows `spec.Environment` and
exposes the same interface with a leading batch axis: `reset` and `step` return an `Observation`
whose fields are stacked numpy arrays, and `step` takes {component: int array [batch]}.

With `num_workers=0` the environments live in this process and are stepped in a loop. With
`num_workers > 0` they are split into contiguous slices over that many worker processes (started
with the 'forkserver' method where the platform has it, else 'spawn', so no worker inherits a
forked JAX runtime or a half-initialised native library), which step their slices in parallel and
talk to this process over pipes. `make_env` is then pickled, so it must be a module-level callable
such as `functools.partial(LibMyPaint, PaintConfig(grayscale=True))`.

Exceptions raised inside a worker come back as `WorkerError` carrying the worker's traceback; a
worker that dies (e.g. a crash in native code) also raises `WorkerError`. Actions are validated in
this process before anything is sent, so a malformed batch raises the usual TypeError, KeyError or
ValueError with a message naming the component and the offending environment.
"""

import itertools
import multiprocessing
import signal
import traceback
from collections.abc import Callable, Mapping, Sequence
from multiprocessing.connection import Connection
from types import MappingProxyType
from typing import Any

import numpy as np

from thesis_jax.spiral.envs.spec import (
    ActionSpec,
    ArraySpec,
    Environment,
    Observation,
    action_from_array,
    make_action_spec,
)

__all__ = ["BatchedEnv", "WorkerError"]


class WorkerError(RuntimeError):
    """An environment failed inside a worker process; the message holds its traceback."""


def _stack(observations: Sequence[Observation]) -> Observation:
    return Observation(*(np.stack(field) for field in zip(*observations, strict=True)))


def _concatenate(observations: Sequence[Observation]) -> Observation:
    return Observation(*(np.concatenate(field) for field in zip(*observations, strict=True)))


def _close_all(envs: Sequence[Environment]) -> None:
    for env in envs:
        close = getattr(env, "close", None)
        if close is not None:
            close()


def _worker_main(connection: Connection, make_env: Callable[[], Environment], count: int) -> None:
    """A worker's loop: builds `count` environments, then serves reset/step/close requests.

    Every request gets one reply, ("ok", payload) or ("error", traceback text). Ctrl-C is left
    to the parent, which shuts the workers down through `BatchedEnv.close`.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    envs: list[Environment] = []
    try:
        envs = [make_env() for _ in range(count)]
        spec = envs[0].action_spec()
        connection.send(("ok", (dict(spec), dict(envs[0].observation_spec()))))
    except Exception:
        connection.send(("error", traceback.format_exc()))
        _close_all(envs)
        connection.close()
        return
    while True:
        try:
            command, payload = connection.recv()
        except EOFError:
            break
        if command == "close":
            break
        try:
            if command == "reset":
                reply = _stack([env.reset(seed) for env, seed in zip(envs, payload, strict=True)])
            elif command == "step":
                reply = _stack(
                    [
                        env.step(action_from_array(row, spec))
                        for env, row in zip(envs, payload, strict=True)
                    ]
                )
            else:
                raise ValueError(f"unknown command {command!r}")
            connection.send(("ok", reply))
        except Exception:
            connection.send(("error", traceback.format_exc()))
    _close_all(envs)
    connection.close()


def _default_start_method() -> str:
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


class BatchedEnv:
    """`batch_size` environments from `make_env`, stepped together; see the module docstring.

    Usage:

        make_env = functools.partial(LibMyPaint, PaintConfig())
        with BatchedEnv(make_env, batch_size=16, num_workers=4) as envs:
            observation = envs.reset(seeds=range(16))   # observation.canvas: [16, 64, 64, 3]
            observation = envs.step({name: np.zeros(16, int) for name in envs.action_spec()})
    """

    def __init__(
        self,
        make_env: Callable[[], Environment],
        batch_size: int,
        num_workers: int = 0,
        start_method: str | None = None,
    ):
        """Builds the environments (in worker processes when `num_workers > 0`).

        Args:
          make_env: returns a new environment; picklable when `num_workers > 0`.
          batch_size: number of environments.
          num_workers: 0 steps the environments in this process; otherwise the number of worker
            processes (at most `batch_size` are started).
          start_method: the multiprocessing start method; 'forkserver' where available.

        Raises:
          WorkerError: `make_env` failed in a worker.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"num_workers must be 0 (in-process) or positive, got {num_workers}")
        self._batch_size = batch_size
        self._envs: list[Environment] = []
        self._workers: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        self._slices: list[slice] = []
        self._dead_worker = ""
        if num_workers == 0:
            self._envs = [make_env() for _ in range(batch_size)]
            spec, obs_spec = self._envs[0].action_spec(), self._envs[0].observation_spec()
        else:
            spec, obs_spec = self._start_workers(
                make_env, min(num_workers, batch_size), start_method or _default_start_method()
            )
        self._spec = make_action_spec(spec)
        self._observation_spec = MappingProxyType(
            {
                name: ArraySpec((batch_size, *s.shape), s.dtype, s.minimum, s.maximum)
                for name, s in obs_spec.items()
            }
        )

    def _start_workers(
        self, make_env: Callable[[], Environment], num_workers: int, start_method: str
    ) -> tuple[Mapping[str, int], Mapping[str, ArraySpec]]:
        context = multiprocessing.get_context(start_method)
        bounds = np.linspace(0, self._batch_size, num_workers + 1).round().astype(int)
        self._slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
        for envs in self._slices:
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=_worker_main,
                args=(child_end, make_env, envs.stop - envs.start),
                daemon=True,
                name=f"BatchedEnv-{len(self._workers)}",
            )
            process.start()
            child_end.close()
            self._workers.append((process, parent_end))
        try:
            specs = self._gather()
        except WorkerError:
            self.close()
            raise
        return specs[0]

    # ------------------------------------------------------------------------------------------
    # Environment interface, batched.

    @property
    def batch_size(self) -> int:
        return self._batch_size

    def action_spec(self) -> ActionSpec:
        """The spec of one environment; `step` takes an int array [batch] per component."""
        return self._spec

    def observation_spec(self) -> Mapping[str, ArraySpec]:
        """One environment's observation spec with a leading batch axis."""
        return self._observation_spec

    def reset(self, seeds: Sequence[int] | np.ndarray | None = None) -> Observation:
        """Resets every environment; `seeds` gives one seed (or None) per environment."""
        if seeds is None:
            seeds = [None] * self._batch_size
        else:
            seeds = [None if s is None else int(s) for s in seeds]
            if len(seeds) != self._batch_size:
                raise ValueError(
                    f"expected {self._batch_size} seeds, one per env, got {len(seeds)}"
                )
        if self._envs:
            return _stack([env.reset(seed) for env, seed in zip(self._envs, seeds, strict=True)])
        return self._broadcast("reset", [seeds[envs] for envs in self._slices])

    def step(self, actions: Mapping[str, Any]) -> Observation:
        """Steps every environment; `actions` maps each component to an int array [batch].

        Raises:
          TypeError, KeyError, ValueError: malformed actions (the message names the component).
          WorkerError: an environment raised inside a worker.
        """
        rows = self._validate(actions)
        if self._envs:
            return _stack(
                [
                    env.step(action_from_array(row, self._spec))
                    for env, row in zip(self._envs, rows, strict=True)
                ]
            )
        return self._broadcast("step", [rows[envs] for envs in self._slices])

    def close(self) -> None:
        """Closes the environments and stops the workers. Safe to call twice."""
        _close_all(getattr(self, "_envs", ()))
        self._envs = []
        for _, connection in getattr(self, "_workers", ()):
            try:
                connection.send(("close", None))
            except (BrokenPipeError, EOFError, OSError):
                pass
            connection.close()
        for process, _ in getattr(self, "_workers", ()):
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join()
        self._workers = []

    def __enter__(self) -> "BatchedEnv":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self):
        self.close()

    # ------------------------------------------------------------------------------------------

    def _validate(self, actions: Mapping[str, Any]) -> np.ndarray:
        """Checks a batch of actions; returns int32 [batch, num_components] in spec order."""
        if not isinstance(actions, Mapping):
            raise TypeError(
                f"actions must map each component of {list(self._spec)} to an int array "
                f"[{self._batch_size}], got {type(actions).__name__}"
            )
        missing = [name for name in self._spec if name not in actions]
        unknown = [name for name in actions if name not in self._spec]
        if missing or unknown:
            raise KeyError(
                f"action keys must be exactly {list(self._spec)}; missing {missing}, "
                f"unknown {unknown}"
            )
        rows = np.empty((self._batch_size, len(self._spec)), np.int32)
        for i, (name, size) in enumerate(self._spec.items()):
            values = np.asarray(actions[name])
            if values.shape != (self._batch_size,):
                raise ValueError(
                    f"actions[{name!r}] must have shape ({self._batch_size},), one value per "
                    f"environment, got {values.shape}"
                )
            if not np.issubdtype(values.dtype, np.integer):
                raise TypeError(f"actions[{name!r}] must be integers, got dtype {values.dtype}")
            bad = np.flatnonzero((values < 0) | (values >= size))
            if bad.size:
                raise ValueError(
                    f"actions[{name!r}][{bad[0]}] = {values[bad[0]]} is out of range [0, {size})"
                )
            rows[:, i] = values
        return rows

    def _broadcast(self, command: str, payloads: Sequence[Any]) -> Observation:
        if not self._workers:
            raise RuntimeError("this BatchedEnv is closed")
        if self._dead_worker:
            raise WorkerError(
                f"{self._dead_worker} earlier; close this BatchedEnv and start a new one"
            )
        for (_, connection), payload in zip(self._workers, payloads, strict=True):
            connection.send((command, payload))
        return _concatenate(self._gather())

    def _gather(self) -> list[Any]:
        """One reply from every worker (all of them, so the pipes stay in step), or the error."""
        replies, errors = [], []
        for (process, connection), envs in zip(self._workers, self._slices, strict=True):
            where = f"worker {process.name} (environments {envs.start}..{envs.stop - 1})"
            try:
                status, payload = connection.recv()
            except (EOFError, ConnectionResetError):
                process.join(timeout=1)
                self._dead_worker = f"{where} exited unexpectedly (exit code {process.exitcode})"
                errors.append(self._dead_worker)
                continue
            if status == "ok":
                replies.append(payload)
            else:
                errors.append(f"{where} raised:\n{payload}")
        if errors:
            raise WorkerError("\n".join(errors))
        return replies
