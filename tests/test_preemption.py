"""Preemption without Slurm: the signal flag, the exact-step checkpoint, bit-exact resume, and a W&B
service that dies under a job (as it does when Slurm signals the whole job)."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from ganlab.errors import Preempted
from ganlab.launch.preemption import StopOnSignal
from ganlab.tracking import Tracker
from ganlab.tracking.wandb_run import WandbLogger
from ganlab.train import train

from conftest import FAST, compose_cfg

ARGS = ["trainer.max_steps=8", "trainer.ckpt_every=100", "trainer.ckpt_keep=null", "model.middle_size=16", *FAST]


def test_signals_only_set_a_flag_and_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    with StopOnSignal() as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGUSR2)
        assert stop.requested() and stop.signum == signal.SIGUSR2
    assert signal.getsignal(signal.SIGTERM) is before


def test_stop_checkpoints_the_exact_step_and_resume_is_bit_exact(tmp_path):
    steps_seen = []

    def stop_after_three() -> bool:
        steps_seen.append(None)
        return len(steps_seen) >= 3

    with pytest.raises(Preempted, match="step 3"):
        train(compose_cfg(ARGS, run_dir=tmp_path / "job"), stop_requested=stop_after_three)
    assert sorted(p.name for p in (tmp_path / "job" / "checkpoints").iterdir()) == ["step_00000003.pt"]
    train(compose_cfg([*ARGS, "resume=auto"], run_dir=tmp_path / "job"))
    train(compose_cfg(ARGS, run_dir=tmp_path / "straight"))
    resumed = torch.load(tmp_path / "job" / "checkpoints" / "step_00000008.pt", weights_only=True)
    straight = torch.load(tmp_path / "straight" / "checkpoints" / "step_00000008.pt", weights_only=True)
    for net in ("generator", "discriminator"):
        assert all(torch.equal(resumed[net][k], v) for k, v in straight[net].items())


def test_a_dead_wandb_service_warns_and_files_go_on(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    wandb_logger = WandbLogger(tmp_path, name="n", group="g", mode="offline")
    tracker = Tracker(tmp_path, name="n", group="g", loggers=[wandb_logger])
    tracker.log({"x": 1.0}, step=1)

    def dead(*args, **kwargs):
        raise ConnectionResetError("Connection lost")

    monkeypatch.setattr(wandb_logger.run, "log", dead)
    with pytest.warns(UserWarning, match="W&B stopped working .*Connection lost"):
        tracker.log({"x": 2.0}, step=2)
    tracker.log({"x": 3.0}, step=3)  # no second warning, no error
    tracker.summary({"x": 3.0})
    tracker.finish(exit_code=1)
    assert [line.count('"step"') for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 1, 1]
    assert (tmp_path / "summary.json").is_file()
