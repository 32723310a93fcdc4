"""Where a population's step time goes, in one process: the host's input preparation, the step itself
(eager, and on CUDA the graph's replay alone), the whole loop, and the costliest ops.

The members are built as the population launcher builds them (``build_member`` under each seed,
one shared data set, ``Population``); the blog's Fashion-MNIST config by default. Per population
size it prints ms per step of:

- ``inputs``: ``step_reals`` alone (each member's real batches, stacked; host time, launches only on
  CUDA);
- ``step``:   the step on fixed real batches, its z draws included (eager; on CUDA, with ``--graph``,
  the copy into the graph's buffers and the replay), waited for;
- ``loop``:   inputs + step + the loop's NaN bookkeeping, as the trainer runs them: what images/s sees;
then torch.profiler's costliest ops of a few eager steps and, on CUDA, the kernels launched per step.

    python benchmarks/population_profile.py --root DIR --device cuda --members 1,27 --graph
    python benchmarks/population_profile.py --root DIR --members 4 --batch-size 64   # the CPU
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ganlab.build import build_data  # noqa: E402
from ganlab.config import RunContext  # noqa: E402
from ganlab.launch.population.members import Population, build_member  # noqa: E402
from ganlab.launch.population.trainer import step_reals  # noqa: E402


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def build_population(args: argparse.Namespace, members: int, extra: list[str]) -> Population:
    work = Path(tempfile.mkdtemp(prefix="ganlab_population_profile_"))
    hardware = "hardware=gpu" if args.device == "cuda" else "hardware=cpu"
    base = ["experiment=seed", "data=fashion_mnist", f"data.root={args.root}", hardware, "logger=none",
            "trainer.progress=false", *([f"data.batch_size={args.batch_size}"] if args.batch_size else []),
            *args.overrides, *extra]
    data, built = None, []
    for k in range(members):
        cfg = compose([*base, f"seed={k}"])
        data = data or build_data(cfg)
        built.append(build_member(cfg, RunContext(dir=work / f"member{k}"), data))
    return Population(built)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def ms_per_step(fn, steps: int, device: str) -> float:
    sync(device)
    start = time.perf_counter()
    for step in range(steps):
        fn(step)
    sync(device)
    return (time.perf_counter() - start) / steps * 1e3


def measure(args: argparse.Namespace, members: int, label: str, extra: list[str]) -> None:
    pop = build_population(args, members, extra)
    runs = [m.run for m in pop.members]
    first = runs[0]
    n_critic, batch = first.trainer.n_critic, first.batches.batch_size
    fixed = step_reals(runs, 1, n_critic)
    for step in range(1, 6):  # warm-up; with the graph: 3 eager steps, the capture, a replay
        pop.step(step_reals(runs, step, n_critic))
    first_bad = torch.full((members,), -1, dtype=torch.long, device=first.device)

    def loop(step: int) -> None:
        nonlocal first_bad
        out = pop.step(step_reals(runs, step + 6, n_critic))
        bad = ~(torch.isfinite(out.d_loss) & torch.isfinite(out.g_loss))
        first_bad = torch.where(bad & (first_bad < 0), step, first_bad)

    inputs = ms_per_step(lambda step: step_reals(runs, step + 6, n_critic), args.steps, args.device)
    step = ms_per_step(lambda _: pop.step(fixed), args.steps, args.device)
    whole = ms_per_step(loop, args.steps, args.device)
    images = members * batch * n_critic / whole * 1e3
    print(f"{label:<14} K={members:<3} inputs {inputs:7.2f}  step {step:7.2f}  loop {whole:7.2f} ms/step  "
          f"-> {images:12,.0f} images/s aggregate", flush=True)


def profile_ops(args: argparse.Namespace, members: int) -> None:
    """torch.profiler over a few eager steps (inputs included): the costliest ops, kernels per step."""
    from torch.profiler import ProfilerActivity, profile

    pop = build_population(args, members, ["hardware.cuda_graph=false"])
    runs = [m.run for m in pop.members]
    n_critic = runs[0].trainer.n_critic
    for step in range(1, 4):
        pop.step(step_reals(runs, step, n_critic))
    cuda = args.device == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    steps = 3
    sync(args.device)
    with profile(activities=activities) as prof:
        for step in range(4, 4 + steps):
            pop.step(step_reals(runs, step, n_critic))
        sync(args.device)
    events = prof.key_averages()
    print(f"\ncostliest ops, K={members}, {steps} eager steps (inputs included):")
    print(events.table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total", row_limit=args.rows))
    if cuda:
        kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA]
        busy = sum(e.device_time for e in kernels) / steps / 1e3
        print(f"kernels per step: {len(kernels) / steps:.0f}, their time {busy:.2f} ms per step", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cpu")
    parser.add_argument("--members", default="1,27", help="population sizes")
    parser.add_argument("--batch-size", type=int, help="instead of the blog's 512")
    parser.add_argument("--steps", type=int, default=50, help="steps per timing")
    parser.add_argument("--graph", action="store_true", help="CUDA: also the captured step, and with TF32")
    parser.add_argument("--rows", type=int, default=25, help="rows of the op table")
    parser.add_argument("overrides", nargs="*", help="more config overrides (after --)")
    args = parser.parse_args()
    print(f"# torch {torch.__version__}, {args.device}"
          f"{' ' + torch.cuda.get_device_name() if args.device == 'cuda' else ''}; ms per population step")
    sizes = [int(k) for k in args.members.split(",")]
    for members in sizes:
        measure(args, members, "eager", ["hardware.cuda_graph=false"])
        if args.graph:
            measure(args, members, "graph", ["hardware.cuda_graph=true"])
            measure(args, members, "graph+tf32", ["hardware.cuda_graph=true", "hardware.tf32=true"])
    torch.backends.cuda.matmul.allow_tf32 = False
    profile_ops(args, sizes[-1])


if __name__ == "__main__":
    main()
