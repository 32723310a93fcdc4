"""Compare the runs of a sweep offline: ``python -m ganlab.compare MULTIRUN_DIR [--metric eval/fid_clf]``.

Reads what each job wrote to disk (``.hydra/overrides.yaml``, ``.hydra/config.yaml``,
``.hydra/hydra.yaml``, ``metrics.jsonl``, ``eval.jsonl``, ``summary.json``), so it needs no W&B.
Writes to ``--out`` (default ``MULTIRUN_DIR/compare``): ``runs.csv`` (one row per job),
``table.md`` / ``table.csv`` (seeds of the same config aggregated as mean ± std, sorted by the
metric) and ``compare.png`` (metric vs learning rate per loss, metric vs z_size, loss and metric
curves of the top configs). For a random search (a study of losses, ``sweep=loss_study``) or with
``--budget-curve``, also the study's figures: ``budget.png``/``budget.csv`` (per loss, the best
metric within a budget of k trials, with its 5-95% band over random orderings of the trials),
``distribution.png`` (the final metric per loss) and ``best_per_loss.md``/``.csv``; ``--wandb``
logs the same numbers as tables of one W&B run in the sweep's group.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from ganlab.errors import GanlabError, make_folder
from ganlab.metrics.names import lower_is_better
from ganlab.report.runs import DEFAULT_METRICS, aggregate, find_runs, metric_columns, pick_metric, shared_overrides
from ganlab.report.study import is_random_search, studies, write_study
from ganlab.report.tables import markdown_table, write_csvs

DESCRIPTION = ("Rank the runs of a sweep by a metric, from what the jobs wrote to disk (no W&B): table.md and "
               "table.csv (seeds of a config as mean ± std), runs.csv (one row per job) and compare.png.")
EXAMPLES = """examples:
  python -m ganlab.compare multirun/seeds-3f2a1b9c0d
  python -m ganlab.compare multirun/lr_zsize_loss-3f2a1b9c0d --metric eval/kid_clf --top 5
  python -m ganlab.compare multirun/multirun-3f2a1b9c0d --metric eval/modes_covered   # 2D: higher is better
"""


def parser() -> argparse.ArgumentParser:
    """The command's arguments (also read by the README test)."""
    p = argparse.ArgumentParser(
        prog="python -m ganlab.compare", description=textwrap.fill(DESCRIPTION, 100), epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweep_dir", type=Path, help="a multirun's directory, multirun/<sweep>-<hash>")
    p.add_argument("--metric", default=None, help="sort by this metric (default: the first of "
                   + ", ".join(DEFAULT_METRICS) + " the runs have)")
    p.add_argument("--order", choices=["auto", "asc", "desc"], default="auto",
                   help="auto: ascending unless the metric is higher-is-better (modes_covered, hq_percent, ...)")
    p.add_argument("--top", type=int, default=3, help="configs whose curves are plotted (default 3)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: SWEEP_DIR/compare)")
    p.add_argument("--budget-curve", action="store_true",
                   help="the study figures per loss (automatic when the sweep is a random search)")
    p.add_argument("--wandb", choices=["off", "auto", "offline", "online"], default="off",
                   help="also log the study's tables to W&B, one run in the sweep's group (default off)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Read a sweep, print the markdown table, write tables and plots."""
    p = parser()
    args = p.parse_args(argv)
    if args.top < 0:
        p.error(f"--top must be >= 0 (configs whose curves are plotted), got {args.top}")
    out = args.out or args.sweep_dir / "compare"
    try:
        runs = find_runs(args.sweep_dir)
        metric = pick_metric(runs, args.metric)
        make_folder(out)  # before any table is computed: --out under a file, on a read-only mount
    except GanlabError as err:
        print(f"ganlab.compare: error: {err}", file=sys.stderr)
        return 2
    descending = args.order == "desc" or (args.order == "auto" and lower_is_better(metric) is False)
    columns = metric_columns(runs, metric)
    rows = aggregate(runs, columns, metric, descending)
    table = markdown_table(rows, columns)
    order = "descending" if descending else "ascending"
    header = f"# {len(runs)} runs, {len(rows)} configs, sorted by {metric} ({order})\n\n"
    (out / "table.md").write_text(header + table)
    write_csvs(out, runs, rows, columns)
    from ganlab.report.plots import plot_comparison  # lazy: matplotlib

    plot_comparison(rows, metric, out / "compare.png", top=args.top)
    print(header + table)
    print(f"wrote {out / 'table.md'}, table.csv, runs.csv, compare.png", file=sys.stderr)
    if args.budget_curve or is_random_search(runs):
        print(study_report(runs, metric, descending, out, args.sweep_dir, args.wandb))
    return 0


def study_report(runs: list, metric: str, descending: bool, out: Path, sweep_dir: Path, wandb_mode: str) -> str:
    """The study's figures, CSVs and best-per-loss table; optionally the same numbers to W&B."""
    from ganlab.report.study_plots import plot_budget, plot_distribution  # lazy: matplotlib

    found = studies(runs, metric, descending)
    shared = shared_overrides(aggregate(runs, [metric], metric, descending))
    best = write_study(out, found, metric, shared)
    title = f"{sweep_dir.name}: " if sweep_dir.name else ""
    plot_budget(found, metric, out / "budget.png", f"{title}best {metric} within k trials (median, 5-95%)")
    plot_distribution(found, metric, out / "distribution.png", f"{title}final {metric} per loss")
    (out / "best_per_loss.md").write_text(best)
    if wandb_mode != "off":
        from ganlab.tracking.wandb_run import log_tables

        log_tables(out, f"study-{sweep_dir.name}", group=sweep_dir.name, mode=wandb_mode, tables={
            "budget": csv_table(out / "budget.csv"), "best_per_loss": csv_table(out / "best_per_loss.csv")})
    print(f"wrote {out / 'budget.png'}, budget.csv, distribution.png, best_per_loss.md/.csv", file=sys.stderr)
    return f"## Study: best {metric} per loss\n\n{best}"


def csv_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of a CSV file."""
    import csv

    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


if __name__ == "__main__":
    from ganlab.errors import interruptible

    sys.exit(interruptible("ganlab.compare", main))
