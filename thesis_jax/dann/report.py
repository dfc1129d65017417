"""The report of a DANN experiment: Table 5.I as markdown, and learning curves (fig. 5.5).

`results_table` averages the rows of one or more seeds, shows the share of the source-only ->
train-on-target gap each adaptation method covers (Table 5.I's brackets) and the thesis's figure
beside ours; `plot_learning_curves` draws the target test accuracy of every model over training
(fig. 5.5 draws the same for the semi-supervised setting, as error); `stability` is the ratio of
the final to the best accuracy on such a curve (1.0: no late decline).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from thesis_jax.core.metrics import read_metrics, save_figure

Curve = tuple[Sequence[int], Sequence[float]]  # steps, accuracies
ACCURACY_COLUMNS = ("target_accuracy", "target_accuracy_svm")
GAP_METHODS = ("sa", "dann")


def _mean(rows: Sequence[Mapping[str, float]], key: str) -> float | None:
    values = [row[key] for row in rows if key in row]
    return float(np.mean(values)) if values else None


def _cell(rows: Sequence[Mapping[str, float]], key: str) -> str:
    values = [row[key] for row in rows if key in row]
    if not values:
        return ""
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def _gap(accuracy: float | None, low: float | None, high: float | None) -> str:
    if accuracy is None or low is None or high is None or high <= low:
        return ""
    return f"{100 * (accuracy - low) / (high - low):.1f}%"


def learning_curve(workdir: str) -> Curve:
    """The `eval/target_accuracy` records of `<workdir>/metrics.jsonl` as (steps, accuracies)."""
    records = [r for r in read_metrics(workdir) if "eval/target_accuracy" in r]
    return [int(r["step"]) for r in records], [float(r["eval/target_accuracy"]) for r in records]


def stability(curve: Curve) -> float:
    """Final accuracy / best accuracy of a learning curve (1.0 when the last is the best)."""
    accuracies = np.asarray(curve[1], np.float64)
    if accuracies.size == 0 or accuracies.max() <= 0:
        raise ValueError("a learning curve needs at least one positive accuracy")
    return float(accuracies[-1] / accuracies.max())


def results_table(
    results: Sequence[Mapping[str, Mapping[str, float]]],
    *,
    title: str,
    method_titles: Mapping[str, str],
    thesis: Mapping[str, float] | None = None,
    seeds: Sequence[int] | None = None,
    curves: Sequence[Mapping[str, Curve]] = (),
    notes: Sequence[str] = (),
) -> str:
    """Markdown shaped like Table 5.I, over one or more seeds.

    Args:
      results: per seed, method -> {"target_accuracy", "target_accuracy_svm", ...}.
      title: the heading.
      method_titles: method -> row title, in row order (methods absent from `results` skipped).
      thesis: method -> the thesis's accuracy for the same source/target pair.
      seeds: the seed of each entry of `results` (shown in the per-seed table).
      curves: per seed, method -> learning curve; adds the final / best column.
      notes: extra lines under the table.
    """
    if not results:
        raise ValueError("results holds no seed")
    methods = [m for m in method_titles if any(m in r for r in results)]
    per_method = {m: [r[m] for r in results if m in r] for m in methods}
    bounds = {
        key: (
            _mean(per_method.get("source_only", []), key),
            _mean(per_method.get("train_on_target", []), key),
        )
        for key in ACCURACY_COLUMNS
    }
    n = len(results)
    header = "| method | network | linear SVM | gap covered |"
    if curves:
        header += " final / best |"
    header += " thesis |"
    lines = [f"# {title}", "", header, "|" + "---|" * (header.count("|") - 1)]
    for method in methods:
        rows = per_method[method]
        key = next((k for k in ACCURACY_COLUMNS if _mean(rows, k) is not None), None)
        gap = _gap(_mean(rows, key), *bounds[key]) if key and method in GAP_METHODS else ""
        cells = [method_titles[method], *(_cell(rows, k) for k in ACCURACY_COLUMNS), gap]
        if curves:
            ratios = [stability(c[method]) for c in curves if method in c]
            cells.append(f"{min(ratios):.3f}" if ratios else "")
        cells.append(f"{thesis[method]:.4f}" if thesis and method in thesis else "")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "'network': the trained network's own predictions"
        + (f", mean ± standard deviation over {n} seeds" if n > 1 else "")
        + ". 'linear SVM': its last hidden layer with the last layer retrained as a linear SVM "
        "on source features (how the thesis compares with SA in Table 5.I). 'gap covered': "
        "(method - source only) / (train on target - source only), on the network column, for "
        "SA on the SVM column.",
    ]
    if curves:
        lines.append(
            "'final / best': the final target accuracy over the best one seen during training "
            "(evaluated every `eval_every` steps; the worst seed): 1.0 means no late decline."
        )
    if thesis:
        lines.append("'thesis': Table 5.I of the thesis for the same source/target pair.")
    if n > 1:
        seeds = list(seeds) if seeds is not None else list(range(n))
        lines += ["", "Per seed (network):", ""]
        lines.append("| method | " + " | ".join(f"seed {s}" for s in seeds) + " |")
        lines.append("|---|" + "---|" * n)
        for method in methods:
            cells = []
            for row in results:
                value = row.get(method, {})
                key = next((k for k in ACCURACY_COLUMNS if k in value), None)
                cells.append(f"{value[key]:.4f}" if key else "")
            lines.append(f"| {method_titles[method]} | " + " | ".join(cells) + " |")
    lines += ["", *notes] if notes else []
    return "\n".join(lines) + "\n"


def plot_learning_curves(
    curves: Sequence[Mapping[str, Curve]],
    path: str,
    *,
    method_titles: Mapping[str, str],
    thesis: Mapping[str, float] | None = None,
) -> str:
    """Target test accuracy over training, one colour per method, one line per seed.

    The thesis's final accuracies, where given, are dashed horizontal lines in the same colour.
    Written atomically; returns `path`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.0, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    colours = {}
    for index, method in enumerate(m for m in method_titles if any(m in c for c in curves)):
        colour = f"C{index}"
        colours[method] = colour
        for seed, seed_curves in enumerate(curves):
            if method not in seed_curves:
                continue
            steps, accuracies = seed_curves[method]
            axis.plot(
                steps,
                accuracies,
                color=colour,
                linewidth=1.5,
                alpha=1.0 if seed == 0 else 0.45,
                label=method_titles[method] if seed == 0 else None,
            )
        if thesis and method in thesis:
            axis.axhline(thesis[method], color=colour, linestyle="--", linewidth=1.0)
    if not colours:
        raise ValueError("no learning curve to draw")
    axis.set_xlabel("training step")
    axis.set_ylabel("target test accuracy")
    axis.set_ylim(0.0, 1.0)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize="small")
    if thesis:
        axis.set_title("solid: ours (one line per seed); dashed: thesis, Table 5.I", fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path)
