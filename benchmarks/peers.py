"""Running a peer implementation's benchmark (PyTorch) in its own interpreter, and JSON reports.

A peer script prints one JSON object per line on stdout and exits 0, or exits 3 after printing
`{"skipped": reason}` when its framework is missing. `run_peer` turns every outcome into a dict
the report can show: the peer's result, `{"skipped": reason}` or `{"failed": what happened}`.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

SKIPPED_EXIT_CODE = 3


def run_peer(interpreter: str, script: pathlib.Path, arguments: Sequence[str]) -> dict[str, Any]:
    """Runs `interpreter script arguments...`; returns its last JSON line or why there is none."""
    found = shutil.which(interpreter)  # a path, or a name on $PATH such as python3
    python = pathlib.Path(found or interpreter)
    if not python.exists():
        return {"skipped": f"no PyTorch interpreter at {python}"}
    command = [str(python), str(script), *arguments]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode == SKIPPED_EXIT_CODE and lines:
        return json.loads(lines[-1])
    if result.returncode != 0 or not lines:
        return {
            "failed": f"{' '.join(command)} exited with {result.returncode}:\n"
            f"{result.stderr[-3000:]}"
        }
    return json.loads(lines[-1])


def write_json(path: str | pathlib.Path | None, report: dict[str, Any]) -> None:
    """Writes `report` to `path` (parents created); nothing if `path` is empty."""
    if not path:
        return
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
