"""hardware=ddp: two gloo processes on CPU under torchrun make one run (rank 0 logs and checkpoints)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_entry import job_dirs

from ganlab.hardware.ddp import shard
from ganlab.train import build_run, train

from conftest import FAST, compose_cfg, jsonl_rows, run_ganlab
from wandb_reader import find_runs, read_run

ARGS = ["hardware=ddp", "model.middle_size=16", "trainer.epochs=1", "trainer.log_every=5", "trainer.progress=false"]


def torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    env.pop("WANDB_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "ganlab", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


# the blog's hardest path for DDP: D's backward runs into G (no detach), two D updates per G update,
# BatchNorm on D's output (buffers broadcast); the submitit test below covers the default (detached) path
BLOG_STEP = ["loss=mse", "trainer.detach_fake=false", "trainer.n_critic=2", "model.d_output_batchnorm=true",
             "model.d_sigmoid=true"]


def test_two_gloo_ranks_make_one_run_with_single_process_step_count(tmp_path):
    run_dir = tmp_path / "ddp"
    proc = torchrun([*ARGS, *BLOG_STEP, "hardware.backend=gloo", "logger.wandb.mode=offline",
                     f"hydra.run.dir={run_dir}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single_total = build_run(compose_cfg([*FAST, *BLOG_STEP, "model.middle_size=16", "trainer.epochs=1"])).total_steps
    assert single_total == 1797 // 64 // 2  # digits, global batch 64, 2 batches per step: one epoch
    rows = jsonl_rows(run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [5, 10, single_total]  # written once, by rank 0
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == [f"step_{single_total:08d}.pt"]
    [wandb_file] = find_runs(run_dir)  # one W&B run, not one per rank
    wandb_run = read_run(wandb_file)
    assert [h["_step"] for h in wandb_run.history if "d_loss" in h] == [r["step"] for r in rows]
    assert wandb_run.exit_code == 0
    # the DDP checkpoint is a plain single-process checkpoint: resume it without DDP
    ckpt = run_dir / "checkpoints" / f"step_{single_total:08d}.pt"
    state = torch.load(ckpt, weights_only=True)
    assert not any(k.startswith("module.") for k in state["generator"])
    result = train(compose_cfg([*FAST, *BLOG_STEP, "model.middle_size=16", "trainer.epochs=2", f"resume={ckpt}"],
                               run_dir=tmp_path / "r"))
    assert result["step"] == 2 * single_total


def test_batch_must_split_over_the_ranks(tmp_path):
    proc = torchrun([*ARGS, "logger=none", "data.batch_size=63", f"hydra.run.dir={tmp_path / 'bad'}"], tmp_path)
    assert proc.returncode != 0
    assert "ganlab: error: data.batch_size=63 is the global batch under hardware=ddp" in proc.stderr


def test_shards_are_disjoint_and_cover_the_global_batch():
    batch = torch.arange(12)
    parts = [shard(batch, rank, 3) for rank in range(3)]
    assert [p.tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


@pytest.mark.slow
def test_submitit_tasks_per_node_make_one_ddp_run(tmp_path):
    """The Slurm path, on submitit's local executor: tasks_per_node=2 ranks find each other via submitit."""
    sweep = tmp_path / "sweep"
    run_ganlab(["-m", "hardware=ddp", "hydra/launcher=submitit_local", "hydra.launcher.tasks_per_node=2",
                "hydra.launcher.timeout_min=5", "model.middle_size=16", "trainer.max_steps=6", "trainer.log_every=2",
                *FAST, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    [job] = job_dirs(sweep)
    rows = jsonl_rows(job / "metrics.jsonl")
    assert [r["step"] for r in rows] == [2, 4, 6]  # one writer: rank 0 (two independent runs would write 6 rows)
    assert (job / "checkpoints" / "step_00000006.pt").is_file()
    logs = sorted((sweep / ".submitit").glob("*/*_log.err"))
    assert len(logs) == 2  # two tasks ran


def test_ddp_with_ema_augmentation_conditioning_and_packing(tmp_path):
    """Issue 12's options under DDP: every rank keeps the EMA of the bare G, draws its own augmentations,
    slices the batch's labels as its images; rank 0 checkpoints the EMA G, whose run resumes without DDP."""
    run_dir = tmp_path / "ddp"
    options = ["trainer.g_ema=0.9", "augment=diffaugment", "model.conditional=concat", "model.pack=2",
               "eval.n_samples=64", "eval.kid_subsets=2"]
    proc = torchrun([*ARGS, *options, "trainer.epochs=1", "hardware.backend=gloo", "logger=none",
                     f"hydra.run.dir={run_dir}"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [ckpt] = (run_dir / "checkpoints").iterdir()
    state = torch.load(ckpt, weights_only=True)
    assert "generator_ema" in state and state["n_classes"] == 10 and "augment" in state["rng"]
    [row] = jsonl_rows(run_dir / "eval.jsonl")
    assert "eval/cond_accuracy" in row and "eval_g/fid_clf" in row
    result = train(compose_cfg([*FAST, *options, "model.middle_size=16", "trainer.epochs=2", f"resume={ckpt}"],
                               run_dir=tmp_path / "r"))
    assert result["step"] == 2 * state["step"]


def rank_pids(agent: int) -> dict[int, int]:
    """torchrun's worker processes (children of its agent ``agent``) by their RANK."""
    found = {}
    for child in subprocess.run(["pgrep", "-P", str(agent)], capture_output=True, text=True).stdout.split():
        try:
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        rank = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"RANK=")]
        if rank:
            found[int(rank[0])] = int(child)
    return found


@pytest.mark.slow
def test_a_signal_on_one_rank_stops_every_rank_at_one_checkpointed_step(tmp_path):
    # each rank sees a preemption signal at its own step; stopping on its own flag, rank 1 left while rank 0
    # went on into the next step's all_reduce (a gloo error, no checkpoint). Only rank 1 is signalled here: the
    # case where the ranks' steps differ most
    import signal
    import time

    run_dir = tmp_path / "ddp"
    args = [*ARGS, "trainer.epochs=100", "trainer.ckpt_every=100000", "hardware.backend=gloo", "logger=none",
            "eval.every=0", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}
    with (tmp_path / "err").open("w") as err:
        agent = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                                  "-m", "ganlab", *args], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.time() + 120
        while time.time() < deadline and not (run_dir / "metrics.jsonl").is_file():
            time.sleep(0.2)
        os.kill(rank_pids(agent.pid)[1], signal.SIGTERM)
        agent.wait(timeout=120)
    stderr = (tmp_path / "err").read_text()
    [line] = [line for line in stderr.splitlines() if line.startswith("ganlab: stopped")]
    assert line.startswith("ganlab: stopped by a signal on another rank after checkpointing step "), stderr[-3000:]
    step = int(line.split("step ")[1].split(";")[0])
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == [f"step_{step:08d}.pt"]
    assert step % 10 == 0  # the ranks agree every 10th step
