"""launcher=population on a GPU, through the real entry point: aggregate throughput, and graph vs eager.

1. speed: one CUDA-graphed run of the blog's config against a CUDA-graphed population of 27 of them
   (seeds 0..26): images/s from the runs' own metrics.jsonl (the median after warm-up), the
   population's aggregate = 27 x a member's. Targets: >= 5M images/s, >= 6x the single run;
2. correctness: the same 4-member population (the blog's Fashion-MNIST config, two seeds x two
   learning rates) eager and with ``hardware.cuda_graph=true``, 40 steps: every member's weights
   agree to 1e-4 of each tensor's scale (the captured step replays the eager step's kernels);
3. so that one short GPU loan also says where the time goes: the population of 1. with TF32
   matmuls, eager, and twice as large (scaling), each with its wall time (start-up included).
Run by benchmarks/gpu_check.py (section "population"), speed first; alone:
    python benchmarks/gpu_population.py --root DIR
``--device cpu`` (no graph, small sizes) tries the script itself on a machine without a GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def ganlab(args: list[str], timeout: int) -> float:
    """Run ``python -m ganlab ARGS``; its wall time in seconds."""
    start = time.time()
    proc = subprocess.run([sys.executable, "-m", "ganlab", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"ganlab {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return time.time() - start


BATCH: list[str] = []  # --batch-size, as an override (the blog's 512 by default)


def blog(root: str, steps: int, device: str) -> list[str]:
    return [*BATCH, "experiment=seed", "data=fashion_mnist", f"data.root={root}", f"hardware={device}", "logger=none",
            "trainer.progress=false", f"trainer.max_steps={steps}", "trainer.log_every=50", "eval.every=0",
            f"trainer.ckpt_every={steps}", f"trainer.sample_every={steps}"]


def images_per_s(job: Path) -> float:
    rows = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
    return statistics.median(r["images_per_s"] for r in rows[2:])  # past the warm-up and the capture


def population(root: str, work: Path, name: str, members: int, steps: int, device: str, extra: list[str]) -> float:
    """A population of ``members`` seeds of the blog's config: its aggregate images/s (printed with its wall time)."""
    folder = work / name
    wall = ganlab(["-m", f"seed=range(0,{members})", *blog(root, steps, device), "launcher=population", *extra,
                   f"hydra.sweep.dir={folder}"], timeout=400)
    member = statistics.median(images_per_s(job) for job in folder.glob("job-*"))
    print(f"  population of {members} [{name}] {steps} steps: {members * member:,.0f} images/s aggregate "
          f"({member:,.0f} per member), {wall:.0f} s wall", flush=True)
    return members * member


def measure_speed(root: str, work: Path, members: int, steps: int, device: str) -> None:
    graph = ["hardware.cuda_graph=true"] if device == "gpu" else []
    single = work / "single"
    wall = ganlab([*blog(root, steps, device), *graph, f"hydra.run.dir={single}"], timeout=300)
    one = images_per_s(single)
    print(f"  one run {'graphed ' if graph else ''}[{' '.join(graph) or 'eager'}] {steps} steps: {one:,.0f} images/s, "
          f"{wall:.0f} s wall", flush=True)
    aggregate = population(root, work, "graph" if graph else "eager", members, steps, device, graph)
    print(f"population of {members}: {aggregate:,.0f} images/s aggregate = {aggregate / one:.1f}x one run "
          f"(targets on an H100/H200 with the graph: >= 5,000,000 and >= 6x)", flush=True)


def measure_more(root: str, work: Path, members: int, steps: int) -> None:
    """What else one loan can say about the graphed population: TF32, eager, twice the members."""
    print("the same population, other ways:", flush=True)
    population(root, work, "graph+tf32", members, steps, "gpu", ["hardware.cuda_graph=true", "hardware.tf32=true"])
    population(root, work, "eager", members, max(steps // 5, 150), "gpu", [])
    population(root, work, "graph-x2", 2 * members, steps, "gpu", ["hardware.cuda_graph=true"])


def check_graph_matches_eager(root: str, work: Path, device: str) -> bool:
    """On the CPU (no graph) both runs are eager: the check's own plumbing, which must then find no difference."""
    sweeps = {}
    for mode in ("eager", "graph"):
        sweeps[mode] = work / f"check-{mode}"
        ganlab(["-m", "seed=0,1", "optimizer.lr=2e-4,5e-4", *blog(root, 40, device), "launcher=population",
                f"hardware.cuda_graph={mode == 'graph' and device == 'gpu'}", f"hydra.sweep.dir={sweeps[mode]}"],
               timeout=300)
    from ganlab.from_checkpoint import load_models
    from ganlab.models.inert import biases_before_batchnorm

    worst = 0.0
    # job folders differ in name (the override hardware.cuda_graph is part of it): matched by their order
    pairs = zip(sorted(sweeps["eager"].glob("job-*")), sorted(sweeps["graph"].glob("job-*")), strict=True)
    for eager, graph in pairs:
        a = torch.load(eager / "checkpoints" / "step_00000040.pt", weights_only=True)
        b = torch.load(graph / "checkpoints" / "step_00000040.pt", weights_only=True)
        for net, module in zip(("generator", "discriminator"), load_models(a, torch.device("cpu"))):
            inert = set(biases_before_batchnorm(module))  # rounding noise that Adam scales up: left out
            for key, value in a[net].items():
                if value.is_floating_point() and key not in inert:
                    scale = float(value.abs().max().clamp_min(1e-3))
                    worst = max(worst, float((value - b[net][key]).abs().max()) / scale)
    ok = worst <= 1e-4
    print(f"population graph vs eager, 4 members x 40 steps: worst weight diff {worst:.2e} of scale "
          f"-> {'OK' if ok else 'FAIL'}", flush=True)
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--members", type=int, default=27)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--batch-size", type=int, help="instead of the blog's 512 (tiny data sets)")
    parser.add_argument("--more", action=argparse.BooleanOptionalAction, default=True,
                        help="part 3 (TF32, eager, twice the members)")
    args = parser.parse_args()
    if args.batch_size:
        BATCH.append(f"data.batch_size={args.batch_size}")
    work = Path(tempfile.mkdtemp(prefix="ganlab_gpu_population_"))
    device = "gpu" if args.device == "cuda" else "cpu"
    measure_speed(args.root, work, args.members, args.steps, device)
    ok = check_graph_matches_eager(args.root, work, device)
    if device == "gpu" and args.more:
        measure_more(args.root, work, args.members, args.steps)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
