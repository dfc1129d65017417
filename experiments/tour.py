r"""A tour of every method on its offline preset, with a small budget, as one HTML page.

    python -m experiments.tour                      # -> runs/tour/index.html
    python -m experiments.tour --methods=dann --budget=0.5
    python -m experiments.tour --methods=n4fields,deepwarp --seed=2 --workdir=runs/tour_seed2

Each method's binary provides `tour(workdir, budget, seed) -> TourSection`: it trains on its offline
preset, and returns pictures and a table that puts the thesis's numbers beside ours. Methods that
are added later register themselves in `TOUR_MODULES`.
"""

from __future__ import annotations

import html
import importlib
import os
import time

from absl import app, flags
from absl import logging as absl_logging

from experiments.tour_section import TourSection
from thesis_jax.core import parallel, write_atomic
from thesis_jax.core.errors import ConfigError, one_line_errors

TOUR_MODULES = (
    "experiments.n4fields",
    "experiments.deepwarp",
    "experiments.dann",
    "experiments.spiral",
)  # thesis order

_WORKDIR = flags.DEFINE_string("workdir", "runs/tour", "Where the runs and index.html go.")
_METHODS = flags.DEFINE_list(
    "methods", [], "Only these methods (module names without `experiments.`); default: all."
)
_BUDGET = flags.DEFINE_float("budget", 1.0, "Scales every method's number of steps.")
_SEED = flags.DEFINE_integer("seed", 0, "Every section's seed (data, initialisation, sampling).")


def _section_html(section: TourSection, root: str, seconds: float) -> str:
    parts = [
        f"<section><h2>{html.escape(section.title)}</h2>",
        f"<p>{html.escape(section.summary)}</p>",
    ]
    header = "".join(f"<th>{html.escape(h)}</th>" for h in section.table_header)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
        for row in section.table_rows
    )
    parts.append(f"<table><tr>{header}</tr>{rows}</table>")
    if section.ordering:
        parts.append(f"<p class='ordering'><b>{html.escape(section.ordering)}</b></p>")
    if section.note:
        parts.append(f"<p class='note'>{html.escape(section.note)}</p>")
    for path, caption in section.pictures:
        rel = os.path.relpath(path, root)
        parts.append(
            f"<figure><img src='{html.escape(rel)}' alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    parts.append(f"<p class='note'>ran in {seconds:.0f} s</p></section>")
    return "\n".join(parts)


def write_index(root: str, sections: list[tuple[TourSection, float]]) -> str:
    body = "\n".join(_section_html(s, root, t) for s, t in sections)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>thesis_jax tour</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 960px; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; }}
th {{ background: #f3f3f3; }}
img {{ max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }}
figure {{ margin: 1em 0; }} .note {{ color: #666; font-size: 90%; }}
</style></head><body>
<h1>thesis_jax: a tour of Ganin's thesis in JAX</h1>
<p>Every method on its offline preset with a small budget (numbers are not the thesis's
full-scale runs; the thesis column gives the published figures for the nearest experiment).</p>
{body}
</body></html>
"""
    return write_atomic(os.path.join(root, "index.html"), page)


def run_tour(
    workdir: str, methods: list[str] | None = None, budget: float = 1.0, seed: int = 0
) -> str:
    modules = [m for m in TOUR_MODULES if not methods or m.split(".")[-1] in methods]
    unknown = set(methods or ()) - {m.split(".")[-1] for m in TOUR_MODULES}
    if unknown:
        raise ConfigError(
            f"unknown methods {sorted(unknown)}; the tour has "
            f"{[m.split('.')[-1] for m in TOUR_MODULES]}"
        )
    sections = []
    for name in modules:
        start = time.perf_counter()
        module = importlib.import_module(name)
        section = module.tour(os.path.join(workdir, name.split(".")[-1]), budget, seed)
        if section is None:  # interrupted: keep what is done, resume on the next run
            break
        sections.append((section, time.perf_counter() - start))
        write_index(workdir, sections)
    path = write_index(workdir, sections)
    absl_logging.info("tour written to %s", os.path.abspath(path))
    print(f"open {os.path.abspath(path)}")
    return path


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    parallel.initialize_distributed()
    with one_line_errors():
        if _BUDGET.value <= 0:
            raise ConfigError(f"--budget must be > 0, got {_BUDGET.value}")
        run_tour(_WORKDIR.value, _METHODS.value, _BUDGET.value, _SEED.value)


if __name__ == "__main__":
    app.run(main)
