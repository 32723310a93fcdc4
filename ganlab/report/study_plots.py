"""The study's two figures: the best metric within a budget of trials per loss, and the metric's distribution."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters or in CI
import matplotlib.pyplot as plt  # noqa: E402

from ganlab.report.study import LossStudy  # noqa: E402


def plot_budget(found: list[LossStudy], metric: str, path: Path, title: str = "") -> Path:
    """Per loss: the median best ``metric`` within k trials (line) and its 5-95% band over random orderings."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=90)
    drawn = []
    for i, study in enumerate(found):
        points = [p for p in study.curve if math.isfinite(p.high)]
        if not points:
            continue
        ks = [p.k for p in points]
        color = f"C{i}"
        ax.plot(ks, [p.median for p in points], color=color,
                label=f"{study.loss} ({len(study.runs)} trials, best {points[-1].median:.3g})")
        ax.fill_between(ks, [p.low for p in points], [p.high for p in points], color=color, alpha=0.15)
        drawn += [v for p in points for v in (p.low, p.high)]
    ax.set_xscale("log")
    if drawn and min(drawn) > 0 and max(drawn) / min(drawn) > 20:  # FIDs of a wide search span decades
        ax.set_yscale("log")
    ax.set_xlabel("budget: trials run (random order)")
    ax.set_ylabel(f"best {metric} within the budget")
    ax.set_title(title or f"best {metric} vs budget (median, 5-95% over orderings)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_distribution(found: list[LossStudy], metric: str, path: Path, title: str = "") -> Path:
    """Per loss: a box of the final ``metric`` over its finished trials, the trials as dots, failures counted."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=90)
    data = [study.finished for study in found]
    positions = list(range(1, len(found) + 1))
    ax.boxplot([d if d else [math.nan] for d in data], positions=positions, widths=0.5, showfliers=False)
    for pos, values in zip(positions, data):
        jitter = [pos + 0.18 * ((j * 0.618) % 1 - 0.5) for j in range(len(values))]  # deterministic spread
        ax.scatter(jitter, values, s=8, alpha=0.5, color="C0")
    labels = [f"{s.loss}\n({len(s.runs) - len(s.finished)} failed)" if len(s.finished) < len(s.runs) else s.loss
              for s in found]
    ax.set_xticks(positions, labels, fontsize=8)
    finite = [v for d in data for v in d]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 20:
        ax.set_yscale("log")
    ax.set_ylabel(f"final {metric}")
    ax.set_title(title or f"final {metric} per loss, over all trials")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
