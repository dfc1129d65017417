"""The errors a user causes and can fix: the binaries print their message in one line.

`presets.run` (every experiment binary) and the tools (`experiments.gaze`, `experiments.tour`)
catch `UserError` and `FileNotFoundError` (a dataset or input that is not there), write
`error: <message>` to stderr and exit non-zero, without a traceback; `THESIS_JAX_DEBUG=1` in the
environment lets the exception through, traceback and all.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


class UserError(Exception):
    """Something the user can fix; the message says what, and how."""

    exit_code = 1


class ConfigError(UserError, ValueError):
    """A preset, field or value given on the command line (or in code) is not valid."""

    exit_code = 2


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be restored; the message names its step and folder."""


class NonFiniteLossError(UserError, FloatingPointError):
    """A loss became NaN or infinite; the message names the step and the last good checkpoint."""


def debugging() -> bool:
    """Whether `THESIS_JAX_DEBUG` asks for tracebacks instead of one-line errors."""
    return os.environ.get("THESIS_JAX_DEBUG", "").lower() not in ("", "0", "false", "no")


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """User errors (and missing files) leave the program as `error: ...` and an exit code."""
    if debugging():
        yield
        return
    try:
        yield
    except UserError as e:
        sys.stderr.write(f"error: {e}\n")
        sys.exit(e.exit_code)
    except FileNotFoundError as e:  # a dataset or input that is not there: the message says which
        sys.stderr.write(f"error: {e}\n")
        sys.exit(1)
