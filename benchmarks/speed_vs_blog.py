"""ganlab's trainer vs the blog's loop (benchmarks/seed_loop.py) on the same config and data.

The blog's config (``experiment=seed``: MLP 50-200-784, MSE on a sigmoid D with BatchNorm1d(1), no
detach, batch 512, Adam 2e-4) on Fashion-MNIST. Each contender trains in its own child process (so
its peak memory is its own), the contenders alternate ``--repeats`` times in one invocation (so load
on a shared machine hits both alike), and the script prints seconds per epoch, images per second,
peak memory and the ratio to the blog. Setup (decoding the data, building models) is timed apart.

    python benchmarks/speed_vs_blog.py                                   # CPU: blog vs ganlab
    python benchmarks/speed_vs_blog.py --device cuda --contenders blog,ganlab,ganlab+graph,ganlab+graph+bf16
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# ganlab variants: hardware overrides on top of experiment=seed data=fashion_mnist
VARIANTS = {
    "ganlab": [],
    "ganlab+graph": ["hardware.cuda_graph=true"],
    "ganlab+graph+bf16": ["hardware.cuda_graph=true", "hardware.precision=bf16"],
    "ganlab+bf16": ["hardware.precision=bf16"],
    "ganlab+tf32": ["hardware.tf32=true"],
    "ganlab+graph+tf32": ["hardware.cuda_graph=true", "hardware.tf32=true"],
    # not the blog's step (fake detached: D's backward skips G); for information, never the comparison
    "ganlab+detach": ["trainer.detach_fake=true"],
}


def peak_rss_mb() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ganlab_worker(root: str, epochs: int, device: str, batch_size: int, extra: list[str]) -> dict[str, float]:
    """Build ganlab's run for the blog's config and time its real training loop."""
    import torch
    from hydra import compose, initialize_config_dir

    sys.path.insert(0, str(REPO))
    from ganlab.loop import run_loop
    from ganlab.tracking import Tracker
    from ganlab.train import build_run

    t0 = time.perf_counter()
    hardware = "hardware=gpu" if device.startswith("cuda") else "hardware=cpu"
    overrides = ["experiment=seed", "data=fashion_mnist", f"data.root={root}", "logger=none", hardware,
                 "trainer.progress=false", f"trainer.epochs={epochs}", "trainer.sample_every=1000000",
                 "trainer.ckpt_every=1000000", f"data.batch_size={batch_size}", *extra]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    run = build_run(cfg)
    setup_s = time.perf_counter() - t0
    out = Path(tempfile.mkdtemp(prefix="ganlab_bench_"))
    try:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        final = run_loop(run, Tracker(out), 0, out / "checkpoints", {})  # includes the final sample + checkpoint
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(out)
    images = run.total_steps * run.batches.batch_size * run.trainer.n_critic
    result = {"setup_s": setup_s, "s_per_epoch": seconds / epochs, "images_per_s": images / seconds,
              "last_d_loss": final["d_loss"], "last_g_loss": final["g_loss"]}
    if device.startswith("cuda"):
        result["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def blog_worker(root: str, epochs: int, device: str, batch_size: int) -> dict[str, float]:
    """Time the blog's loop on the same data."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from seed_loop import run_blog_loop, torchvision_root

    tv_root = torchvision_root(Path(root))
    try:
        return run_blog_loop(tv_root, epochs, batch_size=batch_size, device=device)
    finally:
        shutil.rmtree(tv_root)


def worker(args: argparse.Namespace) -> None:
    """Child process: run one contender and print its numbers as one JSON line."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker == "blog":
        result = blog_worker(args.root, args.epochs, args.device, args.batch_size)
    else:
        result = ganlab_worker(args.root, args.epochs, args.device, args.batch_size, VARIANTS[args.worker])
    result["peak_rss_mb"] = peak_rss_mb()
    result["threads"] = torch.get_num_threads()
    print(json.dumps(result))


def spawn(contender: str, args: argparse.Namespace) -> dict[str, float] | None:
    """Run one contender in a fresh child process and parse its JSON line (None, reported, if it failed)."""
    cmd = [sys.executable, __file__, "--worker", contender, "--root", args.root, "--epochs", str(args.epochs),
           "--device", args.device, "--threads", str(args.threads), "--batch-size", str(args.batch_size)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        print(f"# {contender} failed (dropped; the others go on):\n{proc.stderr[-3000:]}", flush=True)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="alternating measurements per contender")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=512, help="the blog's 512; smaller only for smoke tests")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in every contender (0: torch's default)")
    parser.add_argument("--contenders", default="blog,ganlab", help=f"comma list of blog, {', '.join(VARIANTS)}")
    parser.add_argument("--json", help="also write the raw measurements here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    contenders = args.contenders.split(",")
    runs: dict[str, list[dict]] = {c: [] for c in contenders}
    for r in range(args.repeats):
        order = contenders if r % 2 == 0 else contenders[::-1]  # alternate who goes first
        for contender in order:
            if contender not in runs:  # failed in an earlier repeat
                continue
            result = spawn(contender, args)
            if result is None:
                del runs[contender]
                continue
            runs[contender].append(result)
            print(f"# repeat {r + 1} {contender}: {result['s_per_epoch']:.3f} s/epoch", flush=True)
    if not runs:
        raise SystemExit("every contender failed")
    contenders = list(runs)
    blog = statistics.median(m["s_per_epoch"] for m in runs["blog"]) if "blog" in runs else None
    print(f"\n{args.device}, {args.epochs} epoch(s) per measurement, {args.repeats} alternating repeats, "
          f"threads={runs[contenders[0]][0]['threads']}")
    print(f"{'contender':<20} {'s/epoch med':>11} {'min':>7} {'images/s':>9} {'setup s':>8} {'peak RSS MB':>11} "
          f"{'CUDA MB':>8} {'blog/this':>9}")
    for contender, ms in runs.items():
        med = statistics.median(m["s_per_epoch"] for m in ms)
        print(f"{contender:<20} {med:>11.3f} {min(m['s_per_epoch'] for m in ms):>7.3f} "
              f"{statistics.median(m['images_per_s'] for m in ms):>9.0f} "
              f"{statistics.median(m['setup_s'] for m in ms):>8.2f} "
              f"{max(m['peak_rss_mb'] for m in ms):>11.0f} {max(m.get('cuda_peak_mb', 0) for m in ms):>8.0f} "
              f"{(blog / med if blog else float('nan')):>9.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
