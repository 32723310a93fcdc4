"""The comparison figure of a sweep: metric vs learning rate per loss, metric vs z_size, curves of the top configs.

A colour is a loss in every panel (the top configs' curves take their loss's colour); in the curves a config's
rank is its marker and a key its line style and fill, so one logged point still tells them apart."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters or in CI
import matplotlib.pyplot as plt  # noqa: E402

from ganlab.report.runs import ConfigRow, RunRecord, label, shared_overrides  # noqa: E402


def _by_loss(rows: list[ConfigRow], metric: str, x_key: str) -> dict[str, dict[float, list[float]]]:
    """loss choice -> x value -> the metric of every run with that x (over all other settings and seeds)."""
    out: dict[str, dict[float, list[float]]] = {}
    for row in rows:
        for run in row.runs:
            x, y = run.value(x_key), run.final.get(metric)
            if isinstance(x, (int, float)) and y is not None and math.isfinite(y):
                out.setdefault(run.loss, {}).setdefault(float(x), []).append(y)
    return out


def loss_colours(rows: list[ConfigRow]) -> dict[str, str]:
    """Each loss of the sweep its colour, the same in every panel."""
    losses = sorted({run.loss for row in rows for run in row.runs})
    return {loss: f"C{i % 10}" for i, loss in enumerate(losses)}


def _metric_vs(ax: plt.Axes, rows: list[ConfigRow], metric: str, x_key: str, label: str, log_x: bool,
               colours: dict[str, str]) -> None:
    series = _by_loss(rows, metric, x_key)
    for loss, points in sorted(series.items()):
        xs = sorted(points)
        means = [statistics.fmean(points[x]) for x in xs]
        stds = [statistics.stdev(points[x]) if len(points[x]) > 1 else 0.0 for x in xs]
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, color=colours[loss], label=f"loss={loss}")
    if log_x and series:
        ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs {label} (mean ± std over runs)")
    if series:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, f"no run has {x_key} and {metric}", ha="center", va="center", transform=ax.transAxes)


def _first_run(row: ConfigRow) -> RunRecord:
    return row.runs[0]


RANK_MARKERS = ("o", "s", "^", "D", "v", "P", "*", "X")


def _curves(ax: plt.Axes, rows: list[ConfigRow], source: str, keys: tuple[str, ...], title: str,
            colours: dict[str, str]) -> None:
    drawn = False
    for rank, row in enumerate(rows, 1):
        run = _first_run(row)
        points = run.curves if source == "metrics" else run.evals
        colour = colours[run.loss]
        marker = RANK_MARKERS[(rank - 1) % len(RANK_MARKERS)]
        # the loss is the colour, the rank the marker (about ten along a curve), the key the line style and the
        # fill: a single logged point still tells g_loss (filled) from d_loss (hollow)
        for key, style, fill in zip(keys, ("-", "--"), (colour, "none")):
            xy = [(p["step"], p[key]) for p in points if key in p and p[key] is not None and math.isfinite(p[key])]
            if xy:
                steps, values = zip(*xy)
                ax.plot(steps, values, style, color=colour, label=f"#{rank} {key}", marker=marker,
                        markerfacecolor=fill, markevery=max(1, len(xy) // 10))
                drawn = True
    ax.set_xlabel("step")
    ax.set_title(title)
    if drawn:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "nothing logged", ha="center", va="center", transform=ax.transAxes)


def plot_comparison(rows: list[ConfigRow], metric: str, path: Path, top: int = 3) -> Path:
    """One PNG with four panels; the top configs are ``rows[:top]`` (rows come sorted best first)."""
    best = rows[:top]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), dpi=80)
    colours = loss_colours(rows)
    _metric_vs(axes[0, 0], rows, metric, "optimizer.generator.lr", "learning rate (G)", log_x=True, colours=colours)
    _metric_vs(axes[0, 1], rows, metric, "model.z_size", "z_size", log_x=False, colours=colours)
    _curves(axes[1, 0], best, "metrics", ("g_loss", "d_loss"), f"losses of the top {len(best)} configs (first seed)",
            colours)
    source = "eval" if metric.startswith("eval/") else "metrics"
    _curves(axes[1, 1], best, source, (metric,), f"{metric} of the top {len(best)} configs (first seed)", colours)
    shared = shared_overrides(rows)
    legend = "\n".join(f"#{i}: {label(row, shared)}" for i, row in enumerate(best, 1))
    fig.text(0.01, 0.005, legend, fontsize=7, va="bottom", family="monospace")
    fig.tight_layout(rect=(0, 0.03 + 0.02 * len(best), 1, 1))
    fig.savefig(path)
    plt.close(fig)
    return path
