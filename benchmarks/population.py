"""launcher=basic vs launcher=population on the card's grid, through the real entry point.

The grid: optimizer.lr {1e-4, 2e-4, 5e-4} x model.z_size {32, 50, 100} x 3 losses (27 jobs), on the
embedded digits by default, the same steps per job and evaluation on (eval.every=500). Each
launcher runs the whole sweep in a child process of its own, into its own sweep directory; the
script prints the wall time of each sweep, the aggregate images/s (jobs x steps x batch x n_critic
/ wall), how much of the wall came before the first job began and after the last ended, the peak
memory of the sweep's processes together (their proportional set size, sampled every second at
niceness 19: the population's workers share the pages of torch's libraries), the ratio, and how
far the two sweeps' objectives are apart.

On a shared or virtual machine the speed drifts by tens of percent within minutes, and the two
sweeps run one after the other: ``--repeats n`` runs n pairs in the order basic, population,
population, basic, ... (each launcher as often first as second) and prints every pair's ratio and
their median.

    python benchmarks/population.py [--steps 2000] [--repeats 2] [--losses bce,minimax,mse] [--threads 2]
                                    [--lrs 1e-4,2e-4,5e-4] [--z-sizes 32,50,100] [-- overrides]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def tree_pss_kb(root: int) -> int:
    """The proportional set size (shared pages split between their users) of ``root`` and all its descendants
    (the population's forkserver and workers are the launching process's), in kB; 0 off Linux."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
    tree, changed = {root}, True
    while changed:
        grown = tree | {pid for pid, parent in parents.items() if parent in tree}
        changed, tree = grown != tree, grown
    total = 0
    for pid in tree:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        total += sum(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
    return total


def peak_memory(process: subprocess.Popen, every: float = 1.0) -> dict:
    """Sample the process tree's PSS every ``every`` seconds until ``process`` ends; {'peak_kb': ...} after.

    A sample is not free: smaps_rollup walks each process's page tables, 50-100 ms for the population's four
    processes with torch loaded (2026-12-04, AMD EPYC). Every 0.25 s at normal priority that took a quarter of
    a core from a sweep that uses both, and made the population's wall 45-50 s against 37-39 s unsampled. So:
    every second, from a thread at the lowest priority (Linux sets a niceness per thread)."""
    peak = {"peak_kb": 0}

    def sample() -> None:
        with contextlib.suppress(OSError, AttributeError):  # not Linux: sampled at normal priority
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        while process.poll() is None:
            peak["peak_kb"] = max(peak["peak_kb"], tree_pss_kb(process.pid))
            time.sleep(every)

    threading.Thread(target=sample, daemon=True).start()
    return peak


def run_sweep(launcher: str, args: argparse.Namespace, extra: list[str], root: Path) -> dict:
    """One whole sweep under ``launcher`` in its own process; its wall time, peak memory and objectives."""
    sweep = root / f"{launcher}{len(list(root.iterdir()))}"
    command = [sys.executable, "-m", "ganlab", "-m", *grid(args), f"launcher={launcher}",
               f"trainer.max_steps={args.steps}", "logger=none", "trainer.progress=false",
               f"hydra.sweep.dir={sweep}", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)} if args.threads else dict(os.environ)
    start, started_at = time.perf_counter(), time.time()
    proc = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    memory = peak_memory(proc)
    _, stderr = proc.communicate()
    wall, ended_at = time.perf_counter() - start, time.time()
    if proc.returncode != 0:
        raise SystemExit(f"{launcher} sweep failed:\n{stderr[-3000:]}")
    jobs = json.loads((sweep / "sweep_index.json").read_text())["jobs"]
    # the sweep index's clocks (each job's start and end, time.time()): how long the command took before its
    # first job began (the population: composing, writing the jobs' folders, forking its workers) and after
    # its last ended, the rest being the jobs (the basic sweep's per-job set-up included)
    starts = [j["started"] for j in jobs.values() if j.get("started")]
    ends = [j["finished"] for j in jobs.values() if j.get("finished")]
    return {"launcher": launcher, "wall_s": wall, "peak_rss_mb": memory["peak_kb"] / 1024, "jobs": len(jobs),
            "objectives": {k: j.get("objective") for k, j in jobs.items()},
            "before_s": min(starts) - started_at if starts else float("nan"),
            "after_s": ended_at - max(ends) if ends else float("nan")}


def grid(args: argparse.Namespace) -> list[str]:
    """The sweep's axes as overrides."""
    return [f"optimizer.lr={args.lrs}", f"model.z_size={args.z_sizes}", f"loss={args.losses}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="steps per job (default 2000)")
    parser.add_argument("--losses", default="bce,minimax,mse", help="the loss axis (default bce,minimax,mse)")
    parser.add_argument("--batch", type=int, default=64, help="data.batch_size, for images/s (default: digits' 64)")
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of the sweeps (0: torch's default)")
    parser.add_argument("--lrs", default="1e-4,2e-4,5e-4", help="the optimizer.lr axis")
    parser.add_argument("--z-sizes", default="32,50,100", help="the model.z_size axis")
    parser.add_argument("--repeats", type=int, default=1, help="pairs of sweeps, alternating which runs first")
    parser.add_argument("--keep", action="store_true", help="keep the sweep directories")
    args, extra = parser.parse_known_args()
    extra = [e for e in extra if e != "--"]
    root = Path(tempfile.mkdtemp(prefix="ganlab_population_bench_"))
    pairs = []
    try:
        for repeat in range(args.repeats):
            order = ("basic", "population") if repeat % 2 == 0 else ("population", "basic")
            runs = {launcher: run_sweep(launcher, args, extra, root) for launcher in order}
            pairs.append((runs["basic"], runs["population"]))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    jobs = pairs[0][0]["jobs"]
    images = jobs * args.steps * args.batch
    print(f"{jobs} jobs ({' x '.join(grid(args))}), {args.steps} steps each, evaluation "
          f"{'off' if 'eval.every=0' in extra else 'on'}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f} at the end, overrides: {' '.join(extra) or 'none'}")
    print(f"{'pair':<5} {'launcher':<12} {'wall s':>8} {'images/s':>10} {'peak PSS MB':>12} {'before s':>9} "
          f"{'after s':>8} {'ratio':>7}")
    for i, (basic, population) in enumerate(pairs, 1):
        ratio = basic["wall_s"] / population["wall_s"]
        for r in (basic, population):
            shown = f"{ratio:>6.2f}x" if r is population else ""
            print(f"{i:<5} {r['launcher']:<12} {r['wall_s']:>8.1f} {images / r['wall_s']:>10.0f} "
                  f"{r['peak_rss_mb']:>12.0f} {r['before_s']:>9.1f} {r['after_s']:>8.1f} {shown:>7}")
    print("before s / after s: from the command's start to its first job's, and from its last job's end to the "
          "command's (the sweep index's clocks); the rest of the wall is the jobs")
    ratios = [basic["wall_s"] / population["wall_s"] for basic, population in pairs]
    print(f"population / basic: {statistics.median(ratios):.2f}x faster end to end (median of {len(ratios)} "
          f"pair{'s' * (len(ratios) > 1)}: {', '.join(f'{r:.2f}' for r in ratios)})")
    basic, population = pairs[0]
    diffs = [abs(population["objectives"][k] - v) for k, v in basic["objectives"].items()
             if v is not None and population["objectives"].get(k) is not None]
    print(f"objective (d_gap) agreement over {len(diffs)} jobs: max |basic - population| = {max(diffs):.2e}"
          + ("" if args.threads == 1 else " (the population's workers run 1 torch thread each, the basic jobs "
             "torch's default: CPU sums round by thread count, so the runs drift apart; --threads 1 gives 0)"))


if __name__ == "__main__":
    main()
