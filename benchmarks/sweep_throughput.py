"""Many runs on one device: N ganlab jobs at once, aggregate images/s against one job alone.

Each job is its own ``python -m ganlab`` process (the blog's config on Fashion-MNIST, logger=none),
all started together on the same device. A job's throughput is the median of its logged
``images_per_s`` after the first log window (warm-up excluded); the aggregate is their sum. The
wall-clock aggregate (all images / time from launch to the last exit, start-up included) is printed too.

    python benchmarks/sweep_throughput.py --device cuda --jobs 1,4,8,16 --steps 600 -- hardware.cuda_graph=true
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


def run_sweep(n_jobs: int, args: argparse.Namespace, extra: list[str]) -> dict[str, float]:
    """Start ``n_jobs`` training processes together and collect their throughput."""
    work = Path(tempfile.mkdtemp(prefix=f"ganlab_sweep{n_jobs}_"))
    hardware = "hardware=gpu" if args.device == "cuda" else "hardware=cpu"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    start = time.time()
    procs = []
    for i in range(n_jobs):
        cmd = [sys.executable, "-m", "ganlab", "experiment=seed", "data=fashion_mnist", f"data.root={args.root}",
               "logger=none", hardware, "trainer.progress=false", f"trainer.max_steps={args.steps}",
               "trainer.sample_every=1000000", "trainer.ckpt_every=1000000", f"seed={i}",
               f"data.batch_size={args.batch_size}",
               f"hydra.run.dir={work / str(i)}", *extra]
        procs.append(subprocess.Popen(cmd, env=env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                      text=True))
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"a job failed:\n{err[-3000:]}")
    wall = time.time() - start
    per_job, images = [], 0
    for i in range(n_jobs):
        rows = [json.loads(line) for line in (work / str(i) / "metrics.jsonl").read_text().splitlines()]
        steady = [r["images_per_s"] for r in rows[1:]] or [rows[-1]["images_per_s"]]
        per_job.append(statistics.median(steady))
        images += rows[-1]["step"] * args.batch_size
    return {"jobs": n_jobs, "aggregate_images_per_s": sum(per_job), "per_job_images_per_s": statistics.median(per_job),
            "wall_s": wall, "wall_images_per_s": images / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="1,2", help="comma list of concurrent job counts")
    parser.add_argument("--steps", type=int, default=300, help="training steps per job")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--batch-size", type=int, default=512, help="the blog's 512; smaller only for smoke tests")
    parser.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS per job (0: unset)")
    parser.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    args, extra = parser.parse_known_args()
    extra = [e for e in extra if e != "--"]
    results = [run_sweep(int(n), args, extra) for n in args.jobs.split(",")]
    base = results[0]["aggregate_images_per_s"]
    print(f"{args.device}, blog config on Fashion-MNIST, {args.steps} steps per job, "
          f"extra overrides: {extra or 'none'}")
    print(f"{'jobs':>4} {'aggregate img/s':>15} {'per job img/s':>13} {'x first row':>11} {'wall s':>7} "
          f"{'wall img/s':>10}")
    for r in results:
        print(f"{r['jobs']:>4} {r['aggregate_images_per_s']:>15.0f} {r['per_job_images_per_s']:>13.0f} "
              f"{r['aggregate_images_per_s'] / base:>11.2f} {r['wall_s']:>7.1f} {r['wall_images_per_s']:>10.0f}")


if __name__ == "__main__":
    main()
