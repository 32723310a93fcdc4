"""The comparison tables of a sweep: markdown for the console and table.md, CSV for spreadsheets."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ganlab.naming import short_override
from ganlab.report.runs import ConfigRow, RunRecord, label, shared_overrides


def _fmt(mean: float, std: float, n: int) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.4g} ± {std:.2g}" if n > 1 else f"{mean:.4g}"


def markdown_table(rows: list[ConfigRow], columns: list[str]) -> str:
    """The aggregated table in markdown, one line per config (overrides shared by all are listed above it).

    Numbers in overrides are shortened for reading (``7.75e-04``, ganlab.naming); the CSVs keep them exact.
    """
    shared = shared_overrides(rows)
    lines = [f"All runs: `{','.join(map(short_override, shared))}`\n"] if shared else []
    lines += ["| rank | config | seeds | " + " | ".join(columns) + " |", "|---|---|---|" + "---|" * len(columns)]
    for rank, row in enumerate(rows, 1):
        seeds = ",".join(str(r.config.get("seed", "?")) for r in row.runs)
        cells = [_fmt(*row.stats[c], n=len(row.runs)) for c in columns]
        incomplete = sum(not r.complete for r in row.runs)
        note = f" ({incomplete} incomplete)" if incomplete else ""
        lines.append(f"| {rank} | `{label(row, shared)}` | {seeds}{note} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_csvs(out: Path, runs: list[RunRecord], rows: list[ConfigRow], columns: list[str]) -> None:
    """runs.csv (every job) and table.csv (configs: mean and std columns per metric)."""
    with open(out / "runs.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "config", "seed", "complete", *columns])
        for r in runs:
            writer.writerow([str(r.path), r.config_key, r.config.get("seed"), r.complete,
                             *[r.final.get(c, "") for c in columns]])
    with open(out / "table.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["rank", "config", "n_seeds", *[f"{c}{s}" for c in columns for s in ("_mean", "_std")]])
        for rank, row in enumerate(rows, 1):
            writer.writerow([rank, row.config_key, len(row.runs), *[v for c in columns for v in row.stats[c]]])


