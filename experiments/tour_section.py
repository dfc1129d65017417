"""What one method contributes to the tour page (`experiments.tour`) and what sections share."""

from __future__ import annotations

import dataclasses
import itertools
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
    ordering: str = ""  # whether the thesis's ranking of the methods holds (`ordering`)


def short_run(
    steps: int, evaluations: int = 0, *, seed: int = 0, **overrides: Any
) -> dict[str, Any]:
    """Preset overrides for a tour run of `steps`: ten log lines, one checkpoint at the end.

    `evaluations` > 0 evaluates that many times during the run (0: at the end only).
    """
    return {
        "seed": seed,
        "num_steps": steps,
        "eval_every": max(1, steps // evaluations) if evaluations else 0,
        "log_every": max(1, steps // 10),
        "checkpoint_every": steps,
        **overrides,
    }


def report_note(workdir: str, report: str = "results.md") -> str:
    return "Full report: " + os.path.join(workdir, report)


def ordering(
    scores: dict[str, float],
    order: tuple[str, ...],
    titles: dict[str, str],
    *,
    lower_is_better: bool = False,
) -> str:
    """One sentence that says whether `scores` rank as the thesis ranks them.

    `order`: the thesis's ranking, best first; `scores`: higher is better unless
    `lower_is_better` (errors). Names missing from `scores` are left out of the comparison.
    """
    ranked = [name for name in order if name in scores]
    chain = " > ".join(titles[name] for name in ranked)
    sign = -1.0 if lower_is_better else 1.0
    broken = [
        f"{titles[a]} {scores[a]:.4g} vs {titles[b]} {scores[b]:.4g}"
        for a, b in itertools.pairwise(ranked)
        if not sign * scores[a] > sign * scores[b]
    ]
    if not broken:
        return f"The thesis's ordering holds at this budget: {chain}."
    return (
        f"The thesis's ordering ({chain}) does not hold at this budget ({'; '.join(broken)}); "
        "a larger --budget trains longer."
    )
