"""A study of losses read back (Lucic et al. 2018): per loss, the best metric within a budget of trials,
the distribution of the final metric, and the best configuration; as CSV, markdown and two figures."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from ganlab.report.budget import BudgetPoint, budget_curve
from ganlab.report.runs import BOOKKEEPING, RunRecord

SAMPLER_KEY = ("hydra", "sweeper", "sampler", "_target_")


@dataclass
class LossStudy:
    """One loss's trials: their final metric (None: failed), its budget curve, its best trial."""

    loss: str
    runs: list[RunRecord]
    values: list[float | None]
    curve: list[BudgetPoint]

    @property
    def finished(self) -> list[float]:
        return [v for v in self.values if v is not None and math.isfinite(v)]

    @property
    def best(self) -> RunRecord | None:
        scored = [(v, r) for v, r in zip(self.values, self.runs) if v is not None and math.isfinite(v)]
        return min(scored, key=lambda vr: vr[0])[1] if scored else None


def is_random_search(runs: list[RunRecord]) -> bool:
    """True when the runs came from a random-search sweeper (Optuna's RandomSampler): a study."""
    return any(str(r.hydra_value(SAMPLER_KEY)).endswith("RandomSampler") for r in runs)


def studies(runs: list[RunRecord], metric: str, descending: bool = False) -> list[LossStudy]:
    """The runs grouped by loss, each group's budget curve on ``metric`` (lower is better unless descending)."""
    by_loss: dict[str, list[RunRecord]] = {}
    for run in sorted(runs, key=lambda r: (r.num if r.num is not None else 0, str(r.path))):  # trial order
        by_loss.setdefault(run.loss, []).append(run)
    out = []
    for loss, members in sorted(by_loss.items()):
        values = [r.final.get(metric) if isinstance(r.final.get(metric), (int, float)) else None for r in members]
        signed = [None if v is None else (-v if descending else v) for v in values]
        curve = budget_curve(signed)
        if descending:
            curve = [BudgetPoint(p.k, -p.mean, -p.median, -p.high, -p.low) for p in curve]
        out.append(LossStudy(loss, members, values, curve))
    return out


def write_study(out: Path, found: list[LossStudy], metric: str, shared: list[str]) -> str:
    """budget.csv, best_per_loss.csv and the markdown table of the best configuration per loss (returned)."""
    with open(out / "budget.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["loss", "k", f"{metric}_mean", f"{metric}_median", f"{metric}_p05", f"{metric}_p95"])
        for study in found:
            for p in study.curve:
                writer.writerow([study.loss, p.k, p.mean, p.median, p.low, p.high])
    lines = [f"| loss | trials | failed | best {metric} | median {metric} | best configuration |",
             "|---|---|---|---|---|---|"]
    with open(out / "best_per_loss.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["loss", "trials", "failed", f"best_{metric}", f"median_{metric}", "best_run", "overrides"])
        for study in found:
            best = study.best
            finished = sorted(study.finished)
            median = finished[len(finished) // 2] if finished else math.nan
            overrides = [o for o in (best.overrides if best else [])
                         if o not in shared and not o.lstrip("+~").startswith(BOOKKEEPING)]
            value = min(finished) if finished else math.nan
            writer.writerow([study.loss, len(study.runs), len(study.runs) - len(finished), value, median,
                             str(best.path) if best else "", " ".join(overrides)])
            config = ", ".join(f"`{o}`" for o in overrides) or "n/a"
            lines.append(f"| {study.loss} | {len(study.runs)} | {len(study.runs) - len(finished)} | {value:.4g} | "
                         f"{median:.4g} | {config} |")
    return "\n".join(lines) + "\n"
