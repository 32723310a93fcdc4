"""W&B modes (auto, online fallback, offline, disabled), runs that always finish, file outputs."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from ganlab.tracking import Tracker
from ganlab.tracking.wandb_run import WandbLogger, has_wandb_credentials

from conftest import run_ganlab
from wandb_reader import find_runs, read_run

FAKE_KEY = "a" * 40


@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_credentials_detection(no_credentials, monkeypatch):
    assert not has_wandb_credentials()
    (no_credentials / ".netrc").write_text(f"machine api.wandb.ai\n  login user\n  password {FAKE_KEY}\n")
    (no_credentials / ".netrc").chmod(0o600)
    assert has_wandb_credentials()
    (no_credentials / ".netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    assert has_wandb_credentials()


def test_auto_without_credentials_is_offline_and_disabled_writes_nothing(no_credentials, tmp_path):
    wandb_logger = WandbLogger(tmp_path / "auto", name="n", group="g", run_config={"a": 1}, mode="auto",
                               entity="lab", project="p")
    tracker = Tracker(tmp_path / "auto", loggers=[wandb_logger])
    assert wandb_logger.mode == "offline"
    tracker.log({"x": 1.0}, step=1)
    tracker.finish()
    run = read_run(find_runs(tmp_path / "auto")[0])
    assert run.config["a"] == 1 and run.history[0]["x"] == 1.0 and run.exit_code == 0
    off = Tracker(tmp_path / "off", loggers=[WandbLogger(tmp_path / "off", mode="disabled")])
    off.log({"x": 1.0}, step=1)
    off.finish()
    assert not find_runs(tmp_path / "off") and (tmp_path / "off" / "metrics.jsonl").is_file()


def test_online_failure_warns_and_continues_offline(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_ganlab(["logger.wandb.mode=online", "logger.wandb.init_timeout=2", "trainer.max_steps=2",
                       "trainer.progress=false", f"hydra.run.dir={run_dir}"], cwd=tmp_path,
                      env={"WANDB_API_KEY": FAKE_KEY, "WANDB_BASE_URL": "http://127.0.0.1:9"})
    assert "continuing offline" in proc.stderr
    [offline] = [p for p in find_runs(run_dir) if "offline-run" in str(p)]
    run = read_run(offline)
    assert run.exit_code == 0 and [h["_step"] for h in run.history if "d_loss" in h] == [2]


def test_failed_training_still_finishes_the_wandb_run(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_ganlab(["loss=mse", "loss.real_target=1e30", "logger.wandb.mode=offline", "trainer.max_steps=4",
                       "trainer.log_every=2", "trainer.progress=false", f"hydra.run.dir={run_dir}"],
                      cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "step 1: d_loss or g_loss is NaN/inf" in proc.stderr
    run = read_run(find_runs(run_dir)[0])
    assert run.exit_code == 1  # finished, and marked failed


def test_progress_bar_and_grid_size(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_ganlab(["logger=none", "trainer.max_steps=3", "trainer.n_grid=16", "trainer.progress=true",
                       f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert "train: 100%" in proc.stderr and "3/3" in proc.stderr
    grid = Image.open(run_dir / "samples" / "samples_00000003.png")
    # 16 digits upscaled 8 -> 32 px, 8 per row, 2 px padding: 8*(32+2)+2 wide, 2*(32+2)+2 high
    assert grid.size == (274, 70)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["step"] == 3 and set(summary) >= {"d_loss", "g_loss", "d_real", "d_fake"}
