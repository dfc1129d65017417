"""Local dataset folders named relative to the repository (`../shared/data/...` in presets)."""

from __future__ import annotations

import os
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


def beside_repository(path: str | os.PathLike[str]) -> str:
    """`path` with ~ expanded; a relative path missing from the working directory is looked up
    relative to the repository root instead (so `../shared/data/BSDS500` in a preset works from
    any working directory). Returns the path unchanged when it exists in neither place."""
    path = os.path.expanduser(os.fspath(path))
    if not path or os.path.isabs(path) or os.path.exists(path):
        return path
    beside = os.path.normpath(REPOSITORY / path)
    return beside if os.path.exists(beside) else path
