"""Every GPU check of the speed work in one short run (for the few minutes a GPU is lent).

In this order, so that a loan cut short answers the open question first:
1. launcher=population: benchmarks/gpu_population.py (a graphed population of 27 against one graphed
   run, graph vs eager members, the same population with TF32 / eager / twice as large), then
   benchmarks/population_profile.py (where its step's time goes: host inputs, replay, kernels);
2. correctness: the CUDA-graph step against the eager step (losses, grad norms, weights), blog and
   bce configs, fp32; no host sync in plain steps (``torch.cuda.set_sync_debug_mode("error")``
   around eager and replayed steps); bf16 autocast finite;
3. speed: benchmarks/speed_vs_blog.py on CUDA (blog vs ganlab eager / graph / graph+tf32);
4. many runs on one GPU: benchmarks/sweep_throughput.py with 1 and 8 concurrent jobs;
5. tests/test_step.py and the CUDA tests of test_ema.py and test_augment.py under pytest, when importable.
No section starts after ``--budget`` seconds. Every line said is written to $OUT/gpu_check.txt at
once when $OUT is set, so a call cut short still brings back what was measured.

On the GPU machine (no network, no Hydra; see /work/shared/gpu-notes.md):
    benchmarks/gpu_bundle.sh          # here: .whl/ and .bench_data/, carried to the device call
    # there:
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && python3 benchmarks/gpu_check.py --root .bench_data
About 8 minutes in all (give the device call timeout_s=570); --skip drops parts to rerun the rest.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOG: list[str] = []


def say(text: str) -> None:
    """Print, and write to $OUT/gpu_check.txt at once (a device call cut short still returns what was said)."""
    print(text, flush=True)
    LOG.append(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.txt").write_text("\n".join(LOG) + "\n")


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)


def inputs(run, step: int):
    n, b = run.trainer.n_critic, run.batches.batch_size
    return [run.batches.get((step - 1) * n + k) for k in range(n)], [run.latent(b) for _ in range(n)], run.latent(b)


def weight_diff(a, b) -> float:
    """Largest difference of two modules' weights, relative to each tensor's largest magnitude, leaving out
    the biases a BatchNorm cancels (rounding noise that Adam scales up: ganlab.models.inert)."""
    from ganlab.models.inert import biases_before_batchnorm

    inert = set(biases_before_batchnorm(a))
    mine = dict(b.named_parameters())
    return max(((p - mine[n]).abs().max() / p.abs().max().clamp_min(1e-3)).item()
               for n, p in a.named_parameters() if n not in inert)


def check_graph_vs_eager(root: str) -> bool:
    """Graph replay and eager steps from the same start and inputs: losses and weights agree."""

    from ganlab.step import CapturedStep, build_step
    from ganlab.train import build_run

    ok = True
    configs = {"blog": ["experiment=seed", "data=fashion_mnist", f"data.root={root}"],
               "bce": ["data=fashion_mnist", f"data.root={root}", "trainer.n_critic=2"]}
    for name, overrides in configs.items():
        base = [*overrides, "logger=none", "trainer.progress=false", "hardware=gpu"]
        runs, steps = {}, {}
        for mode, extra in (("eager", []), ("graph", ["hardware.cuda_graph=true"])):
            runs[mode] = build_run(compose([*base, *extra]))
            r = runs[mode]
            steps[mode] = build_step(r.generator, r.discriminator, r.loss, r.g_opt, r.d_opt,
                                     r.trainer.detach_fake, r.hardware, r.discriminator)
        assert isinstance(steps["graph"], CapturedStep)
        worst = 0.0
        for step in range(1, 21):
            e = steps["eager"](*inputs(runs["eager"], step), grad_norms=True)
            g = steps["graph"](*inputs(runs["graph"], step), grad_norms=True)
            for a, b in ((e.d_loss, g.d_loss), (e.g_loss, g.g_loss), (e.d_grad, g.d_grad), (e.g_grad, g.g_grad)):
                worst = max(worst, ((a - b).abs() / a.abs().clamp_min(1e-6)).item())
        weights = max(weight_diff(runs["eager"].generator, runs["graph"].generator),
                      weight_diff(runs["eager"].discriminator, runs["graph"].discriminator))
        passed = worst < 1e-3 and weights < 1e-3
        ok &= passed
        say(f"graph vs eager [{name}], 20 steps: max relative diff losses/grad norms {worst:.2e}, "
            f"G and D weights {weights:.2e} of each tensor's scale -> {'OK' if passed else 'FAIL'}")
    return ok


def check_no_sync(root: str) -> bool:
    """Plain steps (batch slice, z, step, NaN bookkeeping) under sync debug mode 'error'."""
    import torch

    from ganlab.step import build_step
    from ganlab.train import build_run

    ok = True
    for extra in ([], ["hardware.cuda_graph=true"]):
        run = build_run(compose(["experiment=seed", "data=fashion_mnist", f"data.root={root}", "logger=none",
                                 "trainer.progress=false", "hardware=gpu", *extra]))
        step_fn = build_step(run.generator, run.discriminator, run.loss, run.g_opt, run.d_opt,
                             run.trainer.detach_fake, run.hardware, run.discriminator)
        first_bad = torch.full((), -1, dtype=torch.long, device=run.hardware.device)
        for step in range(1, 6):  # warm-up and capture happen here, outside the checked region
            step_fn(*inputs(run, step))
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for step in range(6, 30):  # same epoch: no new permutation
                out = step_fn(*inputs(run, step))
                bad = ~(torch.isfinite(out.d_loss) & torch.isfinite(out.g_loss))
                first_bad = torch.where(bad & (first_bad < 0), step, first_bad)
            result = "OK"
        except RuntimeError as err:
            result, ok = f"FAIL ({str(err).splitlines()[0]})", False
        finally:
            torch.cuda.set_sync_debug_mode("default")
        say(f"no host sync in 24 plain steps {'(graph replay)' if extra else '(eager)'}: {result}")
    return ok


def check_bf16(root: str) -> bool:
    import torch

    from ganlab.step import build_step
    from ganlab.train import build_run

    run = build_run(compose(["data=fashion_mnist", f"data.root={root}", "logger=none", "trainer.progress=false",
                             "hardware=gpu", "hardware.precision=bf16", "hardware.cuda_graph=true"]))
    step_fn = build_step(run.generator, run.discriminator, run.loss, run.g_opt, run.d_opt, True, run.hardware,
                         run.discriminator)
    for step in range(1, 11):
        out = step_fn(*inputs(run, step))
    finite = bool(torch.isfinite(out.d_loss) and torch.isfinite(out.g_loss))
    say(f"bf16 autocast + graph, 10 steps: d_loss {out.d_loss.item():.4f} g_loss {out.g_loss.item():.4f} -> "
        f"{'OK' if finite else 'FAIL'}")
    return finite


def run_script(args: list[str], timeout: int) -> bool:
    """Run a script, echoing its output into the log line by line; whether it exited 0 within ``timeout``."""
    say(f"$ {' '.join(args)}")
    start = time.time()
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    for line in proc.stdout:
        say(line.rstrip())
    code = proc.wait()
    timer.cancel()
    if code != 0:
        say(f"exit {code}{' (killed at the timeout)' if time.time() - start >= timeout else ''}")
    say(f"({time.time() - start:.0f} s)")
    return code == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--skip", default="", help="comma list of: population, correctness, speed, sweep, pytest")
    parser.add_argument("--budget", type=float, default=500, help="seconds: no section starts after this")
    parser.add_argument("--more", action="store_true", help="gpu_population.py's part 3 too")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    import torch

    start = time.time()
    root = str(Path(args.root).resolve())
    skip = set(args.skip.split(","))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device (every check fails)"
    say(f"torch {torch.__version__}, {device}, {os.cpu_count()} CPUs")

    def wanted(section: str) -> bool:
        if section in skip:
            return False
        if time.time() - start > args.budget:
            say(f"{section}: skipped, past the {args.budget:.0f} s budget")
            return False
        return True

    ok = True
    try:
        if wanted("population"):  # first: the one target no GPU has measured yet (issue 11)
            # part 3 of gpu_population (TF32, eager, 54 members end to end) only on --more: the profile below
            # measures TF32 and eager in-process, in a fraction of the loan
            ok &= run_script(["benchmarks/gpu_population.py", "--root", root,
                              "--more" if args.more else "--no-more"], timeout=360)
            run_script(["benchmarks/population_profile.py", "--device", "cuda", "--root", root, "--members", "1,27",
                        "--graph"], timeout=180)
        if wanted("correctness"):
            # each check on its own: a failed capture must not cost the rest of a short GPU loan
            for check in (check_graph_vs_eager, check_no_sync, check_bf16):
                try:
                    ok &= check(root)
                except Exception:  # noqa: BLE001 - reported, then the next check runs
                    ok = False
                    say(f"{check.__name__}: FAIL with an exception\n{traceback.format_exc(limit=-8)}")
        if wanted("speed"):
            # 10 epochs: a 3-epoch run of the graphed step was mostly its capture and final checkpoint (0.30 s/epoch
            # against 0.09 from its steps alone, seen on an H200)
            run_script(["benchmarks/speed_vs_blog.py", "--device", "cuda", "--root", root, "--epochs", "10",
                        "--repeats", "1", "--contenders", "blog,ganlab,ganlab+graph,ganlab+graph+tf32"], timeout=200)
        if wanted("sweep"):
            run_script(["benchmarks/sweep_throughput.py", "--device", "cuda", "--root", root, "--jobs", "1,8",
                        "--steps", "1000", "--", "hardware.cuda_graph=true"], timeout=120)
        if wanted("pytest"):
            try:
                import pytest  # noqa: F401

                # -o addopts=: pyproject's addopts ask for pytest-xdist, which may not be there (one file, one process)
                ok &= run_script(["-m", "pytest", "-q", "-o", "addopts=", "tests/test_step.py"], timeout=120)
                # the other files' CUDA tests: the EMA update captured in a graph, DiffAugment on the GPU
                ok &= run_script(["-m", "pytest", "-q", "-o", "addopts=", "tests/test_ema.py", "tests/test_augment.py",
                                  "-k", "cuda"], timeout=90)
            except ImportError:
                say("pytest not installed here: tests/test_step.py skipped (the checks above cover it)")
    finally:
        say(f"correctness: {'all OK' if ok else 'FAILURES above'} ({time.time() - start:.0f} s)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
