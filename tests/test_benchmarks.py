"""The benchmark scripts run end to end on tiny data (their numbers are printed, never asserted); gpu_check's
plumbing without CUDA."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, write_idx_images


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    import struct

    path.write_bytes(struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_fashion(tmp_path: Path) -> Path:
    """Four IDX files, images and labels, as torchvision (the blog's loader) and ganlab both read them."""
    root = tmp_path / "fashion"
    rng = np.random.default_rng(0)
    for split, n in (("train", 48), ("t10k", 16)):
        write_idx_images(root / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)), gz=False)
        write_idx_labels(root / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n))
    return root


def bench(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], capture_output=True,
                          text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_speed_vs_blog_prints_both_contenders_and_the_ratio(tiny_fashion):
    # ganlab+graph needs CUDA: on the CPU it fails, is reported and dropped, and the others still finish
    out = bench("speed_vs_blog.py", "--root", str(tiny_fashion), "--repeats", "1", "--batch-size", "16",
                "--threads", "1", "--contenders", "blog,ganlab+graph,ganlab")
    assert out.count("# ganlab+graph failed (dropped") == 1 and "cuda_graph=true needs CUDA" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if re.match(r"^(blog|ganlab[+\w]*)\s+\d", line)}
    assert set(rows) == {"blog", "ganlab"}
    assert float(rows["blog"][-1]) == 1.0 and float(rows["ganlab"][-1]) > 0  # blog/this ratio column
    assert all(float(rows[c][1]) > 0 for c in rows)  # s/epoch measured


@pytest.mark.slow
def test_multirun_overhead_and_sweep_throughput_run(tiny_fashion):
    out = bench("multirun_overhead.py", "--root", str(tiny_fashion), "--jobs", "2", "--repeats", "1")
    assert re.search(r"process start -> first step\s+median \d+\.\d+ s", out)
    assert re.search(r"job -> next job's first step median \d+\.\d+ s", out)
    out = bench("sweep_throughput.py", "--root", str(tiny_fashion), "--jobs", "1,2", "--steps", "4",
                "--batch-size", "16", "--threads", "1")
    assert re.search(r"^\s+2\s+\d+", out, re.M)  # a row for 2 concurrent jobs


def test_gpu_check_reports_each_failed_check_and_goes_on(tmp_path):
    """Without CUDA every correctness check fails, each reported on its own (a GPU loan is short)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is here: run benchmarks/gpu_check.py itself")
    skip = "speed,sweep,population,pytest"
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--skip", skip],
                          capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, "OUT": str(tmp_path)})
    assert proc.returncode == 1, proc.stderr[-2000:]
    for check in ("check_graph_vs_eager", "check_no_sync", "check_bf16"):
        assert f"{check}: FAIL with an exception" in proc.stdout
    assert proc.stdout.count("ConfigError: hardware=gpu asks for CUDA") == 3  # the error itself, each time
    assert (tmp_path / "gpu_check.txt").read_text().strip().splitlines()[-1].startswith("correctness: FAILURES above")
    said = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--budget", "0"],
                          capture_output=True, text=True, timeout=300, cwd=REPO).stdout
    for section in ("population", "correctness", "speed", "sweep", "pytest"):  # none starts past the budget
        assert f"{section}: skipped, past the 0 s budget" in said


@pytest.mark.slow
def test_gpu_population_runs_its_speed_and_check_sections_on_the_cpu(tiny_fashion):
    out = bench("gpu_population.py", "--device", "cpu", "--root", str(tiny_fashion), "--members", "2",
                "--steps", "150", "--batch-size", "16")
    single = re.search(r"one run \[eager\] 150 steps: ([\d,]+) images/s", out)
    member = re.search(r"population of 2 \[eager\] 150 steps: ([\d,]+) images/s aggregate \(([\d,]+) per member", out)
    assert single and member, out
    assert int(member[1].replace(",", "")) >= 2 * int(member[2].replace(",", "")) - 2  # aggregate = 2 x a member's
    assert re.search(r"population of 2: [\d,]+ images/s aggregate = \d+\.\dx one run", out)
    assert "population graph vs eager, 4 members x 40 steps: worst weight diff 0.00e+00 of scale -> OK" in out


def test_ema_decays_prints_the_raw_g_and_each_decay_as_a_run_with_that_decay_would(tmp_path):
    import json

    from ganlab.train import train

    from conftest import FAST, compose_cfg

    args = ["model.middle_size=16", "trainer.max_steps=4", "eval.n_samples=64", "eval.kid_subsets=2"]
    out = bench("ema_decays.py", "--decays", "0.5,0.9", "--eval-at", "2,4", "--", *args)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert set(rows[-1]) == {"step", "train_s", "g", "0.5", "0.5_bn", "0.9", "0.9_bn"}
    final = train(compose_cfg([*FAST, *args, "trainer.g_ema=0.9", "eval.every=4"], run_dir=tmp_path))
    assert rows[-1]["g"] == round(final["eval_g/fid_clf"], 2) and rows[-1]["0.9"] == round(final["eval/fid_clf"], 2)


def test_population_profile_prints_each_part_of_a_step_and_the_costliest_ops(tiny_fashion):
    out = bench("population_profile.py", "--root", str(tiny_fashion), "--members", "1,2", "--batch-size", "16",
                "--steps", "3", "--rows", "5")
    for k in (1, 2):
        row = re.search(rf"^eager\s+K={k}\s+inputs\s+([\d.]+)\s+step\s+([\d.]+)\s+loop\s+([\d.]+) ms/step\s+->\s+"
                        r"([\d,]+) images/s aggregate", out, re.M)
        assert row and all(float(row[i].replace(",", "")) > 0 for i in range(1, 5)), out
    assert "costliest ops, K=2, 3 eager steps" in out and "aten::" in out
