"""What a run says and keeps: progress lines outside a terminal, the end-of-run summary, one row per
step after a hard kill and resume, and W&B failures that never stop training."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from ganlab.progress import Progress, run_summary
from ganlab.tracking import Tracker, drop_rows_after
from ganlab.tracking.wandb_run import WandbLogger
from ganlab.train import train

from conftest import FAST, Terminal, compose_cfg, logged_steps, run_ganlab


def test_outside_a_terminal_progress_is_a_line_at_most_every_30_s():
    stream = io.StringIO()
    progress = Progress(total=1000, stream=stream)
    for step in range(1, 1001):
        progress.update(step, {"d_loss": 0.5, "g_loss": 1.25})
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1  # a fast run: only the final line, no bar redraws
    assert lines[0].startswith("train: 100% 1000/1000 steps") and "d_loss 0.500, g_loss 1.250" in lines[0]
    slow = io.StringIO()
    progress = Progress(total=3, stream=slow, every_s=0.0)  # every update is "30 s later"
    for step in (1, 2, 3):
        progress.update(step, {})
    progress.close()
    assert [line.split(" steps")[0] for line in slow.getvalue().splitlines()] == [
        "train: 33% 1/3", "train: 66% 2/3", "train: 100% 3/3", "train: 100% 3/3"]


def test_on_a_terminal_progress_is_a_bar_and_disabled_prints_nothing():
    tty = Terminal()
    progress = Progress(total=5, stream=tty)
    for step in range(1, 6):
        progress.update(step, {"d_loss": 0.1, "g_loss": 0.2})
    progress.close()
    assert "train: 100%" in tty.getvalue() and "5/5" in tty.getvalue() and "\r" in tty.getvalue()
    second = Terminal()  # a population worker's bar: its own label, drawn one row down and back up
    progress = Progress(total=5, stream=second, label="population of 2 (worker 1)", position=1)
    progress.update(5, {"d_loss": 0.1, "g_loss": 0.2})
    progress.close()
    assert "population of 2 (worker 1): 100%" in second.getvalue() and "\x1b[A" in second.getvalue()
    line = io.StringIO()
    progress = Progress(total=2, stream=line, label="population of 2 (worker 1)", position=1)
    progress.update(2, {})
    progress.close()
    assert line.getvalue().startswith("population of 2 (worker 1): 100% 2/2 steps")
    quiet = io.StringIO()
    progress = Progress(total=5, enabled=False, stream=quiet)
    progress.update(5, {})
    progress.close()
    assert quiet.getvalue() == ""


def test_a_finished_run_says_where_everything_is_and_what_it_scored(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_ganlab(["model.middle_size=16", "trainer.max_steps=4", "eval.every=2", "eval.n_samples=64",
                       "eval.kid_subsets=2", "trainer.progress=true", "logger.wandb.mode=offline",
                       f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    out = proc.stdout
    assert f"ganlab: run finished at step 4: {run_dir}" in out
    assert "final: " in out and "fid_clf" in out and "best:  " in out and "(step " in out
    assert f"checkpoint: {run_dir / 'checkpoints' / 'step_00000004.pt'}" in out
    assert f"samples: {run_dir / 'samples'}" in out
    [sync] = [line for line in out.splitlines() if "wandb sync" in line]
    offline_dir = sync.split("wandb sync ")[1]
    assert offline_dir.startswith(str(run_dir / "wandb" / "offline-run-")) and os.path.isdir(offline_dir)
    assert "train: 100% 4/4 steps" in proc.stderr and proc.stderr.count("train: ") == 1  # one line, no bar


def test_run_summary_without_evaluation_or_wandb(tmp_path):
    text = run_summary({"step": 3, "d_loss": 0.7, "g_loss": 0.9}, tmp_path, None, None)
    assert text.splitlines() == [f"ganlab: run finished at step 3: {tmp_path}", "  final: d_loss 0.7, g_loss 0.9",
                                 f"  samples: {tmp_path / 'samples'}"]


def test_a_resume_drops_the_rows_logged_after_its_checkpoint(tmp_path):
    base = [*FAST, "model.middle_size=16", "trainer.log_every=1", "trainer.ckpt_every=4", "eval.every=2",
            "eval.n_samples=64", "eval.kid_subsets=2", "trainer.ckpt_keep=null"]
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    train(compose_cfg([*base, "trainer.max_steps=10"], run_dir=straight))
    train(compose_cfg([*base, "trainer.max_steps=10"], run_dir=killed))
    for step in (8, 10):  # as if killed hard after logging step 10 but before checkpoint 8 was written
        (killed / "checkpoints" / f"step_{step:08d}.pt").unlink()
    with open(killed / "metrics.jsonl", "a") as f:
        f.write('{"step": 11, "d_lo')  # and cut off mid-line
    train(compose_cfg([*base, "trainer.max_steps=10", "resume=auto"], run_dir=killed))
    assert logged_steps(killed / "metrics.jsonl") == list(range(1, 11))
    assert logged_steps(killed / "eval.jsonl") == [2, 4, 6, 8, 10]
    a = torch.load(straight / "checkpoints" / "step_00000010.pt", weights_only=True)
    b = torch.load(killed / "checkpoints" / "step_00000010.pt", weights_only=True)
    assert all(torch.equal(a["generator"][k], v) for k, v in b["generator"].items())


@pytest.mark.slow
def test_kill_9_then_resume_auto_logs_each_step_once(tmp_path):
    run_dir = tmp_path / "run"
    common = [*FAST, "model.middle_size=16", "trainer.log_every=1", "trainer.ckpt_every=100", "eval.every=0",
              f"hydra.run.dir={run_dir}"]
    child = subprocess.Popen([sys.executable, "-m", "ganlab", *common, "trainer.max_steps=3000"], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 250):
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    logged = logged_steps(metrics) if metrics.exists() else []
    assert 250 <= len(logged) < 600  # killed mid-run, past a checkpoint
    run_ganlab([*common, "trainer.max_steps=600", "resume=auto"], cwd=tmp_path)
    assert logged_steps(metrics) == list(range(1, 601))


def test_drop_rows_after_keeps_a_file_without_later_rows_untouched(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n')
    before = path.stat().st_mtime_ns
    drop_rows_after(path, 2)
    assert path.stat().st_mtime_ns == before and logged_steps(path) == [1, 2]
    drop_rows_after(path, 1)
    assert logged_steps(path) == [1]
    drop_rows_after(tmp_path / "missing.jsonl", 0)  # nothing to do, no error


def test_a_dead_wandb_service_never_stops_evaluation_logging(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    wandb_logger = WandbLogger(tmp_path, name="n", group="g", mode="offline")
    tracker = Tracker(tmp_path, name="n", group="g", loggers=[wandb_logger])

    def dead(*args, **kwargs):
        raise BrokenPipeError("the wandb service is gone")

    monkeypatch.setattr(wandb_logger.run, "log", dead)
    with pytest.warns(UserWarning, match="W&B stopped working .*service is gone"):
        tracker.log_eval({"eval/fid_clf": 3.0}, step=2)
    tracker.log_eval({"eval/fid_clf": 2.0}, step=4)  # no error, no second warning
    tracker.log_image("samples", torch.zeros(3, 4, 4, dtype=torch.uint8), step=4)
    tracker.finish(exit_code=0)
    assert logged_steps(tmp_path / "eval.jsonl") == [2, 4]  # the files got everything
