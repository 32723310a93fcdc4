"""Per-job overhead of a multirun: process start -> first training step, and job -> next job's first step.

Runs the real entry point (``ganlab.__main__.main``, Hydra and all) in a child process, with
``GANStep.__call__`` wrapped to note when each job's first step finishes. A sweep of ``--jobs``
one-step jobs of the blog's config on Fashion-MNIST then tells how long a job takes before it trains.

    python benchmarks/multirun_overhead.py --jobs 4                  # logger=none
    python benchmarks/multirun_overhead.py --jobs 4 --logger wandb   # + an offline W&B run per job
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def child(ganlab_args: list[str]) -> None:
    """Run ganlab's entry point, appending each job's first-step time (s since spawn) to BENCH_OUT."""
    t_spawn, out = float(os.environ["BENCH_T0"]), Path(os.environ["BENCH_OUT"])
    sys.path.insert(0, str(REPO))
    import ganlab.step as step_module

    original = step_module.GANStep.__call__

    def timed(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        if not getattr(self, "_bench_seen", False):
            self._bench_seen = True
            result.d_loss.cpu()  # the step has really run (matters on CUDA)
            with out.open("a") as f:
                f.write(json.dumps({"first_step_s": time.time() - t_spawn}) + "\n")
        return result

    step_module.GANStep.__call__ = timed
    from ganlab.__main__ import main as ganlab_main

    sys.argv = ["ganlab", *ganlab_args]
    ganlab_main()


def measure(args: argparse.Namespace, multirun: bool) -> dict:
    """Spawn one child (one job, or a sweep of ``args.jobs`` jobs) and collect its timings."""
    work = Path(tempfile.mkdtemp(prefix="ganlab_overhead_"))
    out = work / "first_steps.jsonl"
    logger = ["logger=wandb", "logger.wandb.mode=offline"] if args.logger == "wandb" else ["logger=none"]
    common = ["experiment=seed", "data=fashion_mnist", f"data.root={args.root}", "trainer.max_steps=1",
              "trainer.progress=false", f"hardware={args.hardware}", *logger]
    ganlab_args = (["-m", f"seed={','.join(str(i) for i in range(args.jobs))}", f"hydra.sweep.dir={work / 'sweep'}"]
                   if multirun else [f"hydra.run.dir={work / 'run'}"]) + common
    env = {**os.environ, "BENCH_T0": repr(time.time()), "BENCH_OUT": str(out), "WANDB_SILENT": "true",
           "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("WANDB_API_KEY", None)
    start = time.time()
    env["BENCH_T0"] = repr(start)
    proc = subprocess.run([sys.executable, __file__, "--child", "--", *ganlab_args], env=env, cwd=work,
                          capture_output=True, text=True)
    wall = time.time() - start
    if proc.returncode != 0:
        raise SystemExit(f"ganlab failed:\n{proc.stderr[-3000:]}")
    firsts = [json.loads(line)["first_step_s"] for line in out.read_text().splitlines()]
    return {"wall_s": wall, "first_steps_s": firsts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--logger", choices=["none", "wandb"], default="none")
    parser.add_argument("--hardware", default="cpu")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.child:
        return child([a for a in rest if a != "--"])
    singles, sweeps = [], []
    for _ in range(args.repeats):
        singles.append(measure(args, multirun=False))
        sweeps.append(measure(args, multirun=True))
    first = [s["first_steps_s"][0] for s in singles]
    per_job_wall = [s["wall_s"] / args.jobs for s in sweeps]
    gaps = [b - a for s in sweeps for a, b in zip(s["first_steps_s"], s["first_steps_s"][1:])]
    print(f"hardware={args.hardware} logger={args.logger}, blog config on Fashion-MNIST, 1-step jobs, "
          f"{args.repeats} repeats")
    print(f"single job: process start -> first step   median {statistics.median(first):.2f} s  (all: "
          f"{', '.join(f'{x:.2f}' for x in first)})")
    print(f"single job: process start -> exit          median {statistics.median(s['wall_s'] for s in singles):.2f} s")
    print(f"multirun of {args.jobs}: wall / jobs                median {statistics.median(per_job_wall):.2f} s per job")
    print(f"multirun of {args.jobs}: job -> next job's first step median {statistics.median(gaps):.2f} s")


if __name__ == "__main__":
    main()
