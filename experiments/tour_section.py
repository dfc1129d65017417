"""What one method contributes to the tour page (`experiments.tour`)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class TourSection:
    """Pictures and a metrics table that puts the thesis's numbers beside ours."""

    title: str
    summary: str
    pictures: list[tuple[str, str]]  # (path, caption)
    table_header: tuple[str, ...]
    table_rows: list[tuple[str, ...]]
    note: str = ""
