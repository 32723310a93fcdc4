"""launcher=population on a GPU, through the real entry point: graph vs eager, and aggregate throughput.

1. correctness: the same 4-member population (the blog's Fashion-MNIST config, two seeds x two
   learning rates) eager and with ``hardware.cuda_graph=true``, 40 steps: every member's weights
   agree to 1e-4 of each tensor's scale (the captured step replays the eager step's kernels);
2. speed: one CUDA-graphed run of the blog's config against a CUDA-graphed population of 27 of
   them (seeds 0..26): images/s from the runs' own metrics.jsonl (the median after warm-up),
   the population's aggregate = 27 x a member's. Targets: >= 5M images/s, >= 6x the single run.
Run by benchmarks/gpu_check.py (section "population"); alone: python benchmarks/gpu_population.py --root DIR
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def ganlab(args: list[str], timeout: int) -> None:
    proc = subprocess.run([sys.executable, "-m", "ganlab", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"ganlab {' '.join(args)} failed:\n{proc.stderr[-3000:]}")


def blog(root: str, steps: int) -> list[str]:
    return ["experiment=seed", "data=fashion_mnist", f"data.root={root}", "hardware=gpu", "logger=none",
            "trainer.progress=false", f"trainer.max_steps={steps}", "trainer.log_every=50", "eval.every=0",
            f"trainer.ckpt_every={steps}", f"trainer.sample_every={steps}"]


def images_per_s(job: Path) -> float:
    rows = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["images_per_s"] for r in rows[2:])  # past the warm-up and the capture


def check_graph_matches_eager(root: str, work: Path) -> bool:
    sweeps = {}
    for mode in ("eager", "graph"):
        sweeps[mode] = work / mode
        ganlab(["-m", "seed=0,1", "optimizer.lr=2e-4,5e-4", *blog(root, 40), "launcher=population",
                f"hardware.cuda_graph={mode == 'graph'}", f"hydra.sweep.dir={sweeps[mode]}"], timeout=300)
    worst = 0.0
    for job in sorted(p.name for p in sweeps["eager"].glob("job-*")):
        a = torch.load(sweeps["eager"] / job / "checkpoints" / "step_00000040.pt", weights_only=True)
        b = torch.load(sweeps["graph"] / job / "checkpoints" / "step_00000040.pt", weights_only=True)
        for net in ("generator", "discriminator"):
            for key, value in a[net].items():
                if value.is_floating_point():
                    scale = float(value.abs().max().clamp_min(1e-3))
                    worst = max(worst, float((value - b[net][key]).abs().max()) / scale)
    ok = worst <= 1e-4
    print(f"population graph vs eager, 4 members x 40 steps: worst weight diff {worst:.2e} of scale "
          f"-> {'OK' if ok else 'FAIL'}", flush=True)
    return ok


def measure_speed(root: str, work: Path, members: int, steps: int) -> None:
    single = work / "single"
    ganlab([*blog(root, steps), "hardware.cuda_graph=true", f"hydra.run.dir={single}"], timeout=300)
    population = work / "population"
    ganlab(["-m", f"seed=range(0,{members})", *blog(root, steps), "hardware.cuda_graph=true", "launcher=population",
            f"hydra.sweep.dir={population}"], timeout=600)
    one = images_per_s(single)
    member = statistics.median(images_per_s(job) for job in population.glob("job-*"))
    aggregate = members * member
    print(f"one graphed run: {one:,.0f} images/s; graphed population of {members}: {aggregate:,.0f} images/s "
          f"aggregate ({aggregate / one:.1f}x; targets >= 5,000,000 and >= 6x)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--members", type=int, default=27)
    parser.add_argument("--steps", type=int, default=1500)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ganlab_gpu_population_"))
    ok = check_graph_matches_eager(args.root, work)
    measure_speed(args.root, work, args.members, args.steps)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
