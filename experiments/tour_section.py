"""What one method contributes to the tour page (`experiments.tour`) and what sections share."""

from __future__ import annotations

import dataclasses
import os
from typing import Any


@dataclasses.dataclass(frozen=True)
class TourSection:
    """Pictures and a metrics table that puts the thesis's numbers beside ours."""

    title: str
    summary: str
    pictures: list[tuple[str, str]]  # (path, caption)
    table_header: tuple[str, ...]
    table_rows: list[tuple[str, ...]]
    note: str = ""


def short_run(steps: int, evaluations: int = 0, **overrides: Any) -> dict[str, Any]:
    """Preset overrides for a tour run of `steps`: ten log lines, one checkpoint at the end.

    `evaluations` > 0 evaluates that many times during the run (0: at the end only).
    """
    return {
        "num_steps": steps,
        "eval_every": max(1, steps // evaluations) if evaluations else 0,
        "log_every": max(1, steps // 10),
        "checkpoint_every": steps,
        **overrides,
    }


def report_note(workdir: str, report: str = "results.md") -> str:
    return "Full report: " + os.path.join(workdir, report)
