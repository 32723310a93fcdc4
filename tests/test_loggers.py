"""logger=tensorboard and logger=csv beside wandb and none, several at once, and several runs open in one
process (the population launcher opens one tracker per member). TensorBoard's files are read back with
the tensorboard package's own event reader."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
import torch

from ganlab.build import build_tracker
from ganlab.errors import ConfigError
from ganlab.tracking import Tracker
from ganlab.tracking.csv_run import CsvLogger
from ganlab.tracking.tensorboard_run import TensorBoardLogger
from ganlab.tracking.wandb_run import WandbLogger
from ganlab.train import train

from conftest import compose_cfg, jsonl_rows, run_ganlab
from wandb_reader import find_runs, read_run

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

SHORT = ["trainer.max_steps=6", "trainer.log_every=2", "trainer.sample_every=3", "eval.every=3",
         "eval.n_samples=64", "eval.kid_subsets=2", "model.middle_size=16", "trainer.progress=false"]


def events(log_dir: Path) -> EventAccumulator:
    """Everything TensorBoard itself would show for one run directory."""
    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_tensorboard_event_files_read_back_with_tensorboards_reader(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_ganlab(["logger=tensorboard", *SHORT, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert f"TensorBoard: tensorboard --logdir {run_dir / 'tensorboard'}" in proc.stdout
    tb = events(run_dir / "tensorboard")
    local = jsonl_rows(run_dir / "metrics.jsonl")
    assert [e.step for e in tb.Scalars("d_loss")] == [2, 4, 6]
    assert [e.value for e in tb.Scalars("g_loss")] == pytest.approx([r["g_loss"] for r in local])
    evals = jsonl_rows(run_dir / "eval.jsonl")
    assert [e.step for e in tb.Scalars("eval/fid_clf")] == [3, 6]
    assert [e.value for e in tb.Scalars("eval/fid_clf")] == pytest.approx([r["eval/fid_clf"] for r in evals])
    images = tb.Images("samples")
    assert [i.step for i in images] == [3, 6] and images[0].width > 0
    assert images[0].encoded_image_string[:4] == b"\x89PNG"
    hparams = events(run_dir / "tensorboard" / "hparams")  # one row of the HParams tab: settings + final metrics
    assert hparams.Scalars("final/eval/fid_clf")[0].value == pytest.approx(evals[-1]["eval/fid_clf"])
    assert "_hparams_/session_start_info" in hparams.PluginTagToContent("hparams")
    assert not (run_dir / "wandb").exists() and not (run_dir / "metrics.csv").exists()


def test_csv_rows_match_the_json_lines_and_a_late_column_widens_the_header(tmp_path):
    run_dir = tmp_path / "run"
    run_ganlab(["logger=csv", *SHORT, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    local = jsonl_rows(run_dir / "metrics.jsonl")
    written = rows(run_dir / "metrics.csv")
    assert [int(r["step"]) for r in written] == [2, 4, 6]
    assert [float(r["d_loss"]) for r in written] == pytest.approx([r["d_loss"] for r in local])
    assert [int(r["step"]) for r in rows(run_dir / "eval.csv")] == [3, 6]
    assert "eval/fid_clf" in rows(run_dir / "eval.csv")[0]
    logger = CsvLogger(tmp_path / "late")
    logger.log({"a": 1.0}, 1)
    logger.log({"a": 2.0, "b": 3.0}, 2)
    assert rows(tmp_path / "late" / "metrics.csv") == [{"step": "1", "a": "1.0", "b": ""},
                                                       {"step": "2", "a": "2.0", "b": "3.0"}]
    CsvLogger(tmp_path / "late", resume_step=1)  # a resumed run drops the rows past its checkpoint
    assert [r["step"] for r in rows(tmp_path / "late" / "metrics.csv")] == ["1"]


def test_several_loggers_at_once_through_the_entry_point(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_ganlab(["logger=[wandb,tensorboard,csv]", "logger.wandb.mode=offline", *SHORT,
                       f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert "wandb sync" in proc.stdout and "tensorboard --logdir" in proc.stdout
    [wandb_file] = find_runs(run_dir)
    run = read_run(wandb_file)
    assert [h["_step"] for h in run.history if "d_loss" in h] == [2, 4, 6]
    assert run.config["logger_choice"] == "wandb,tensorboard,csv"
    assert [e.step for e in events(run_dir / "tensorboard").Scalars("d_loss")] == [2, 4, 6]
    assert [int(r["step"]) for r in rows(run_dir / "metrics.csv")] == [2, 4, 6]


def test_several_runs_open_in_one_process_each_keep_their_own_records(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    cfg = compose_cfg(["logger=[wandb,tensorboard,csv]", "logger.wandb.mode=offline"])
    trackers = [build_tracker(cfg, tmp_path / f"member{i}", name=f"m{i}", group="pop") for i in range(3)]
    assert [type(logger) for logger in trackers[0].loggers] == [WandbLogger, TensorBoardLogger, CsvLogger]
    image = torch.zeros(3, 8, 8, dtype=torch.uint8)
    for step in (1, 2, 3):  # interleaved, as a population's loop logs its members
        for i, tracker in enumerate(trackers):
            tracker.log({"d_loss": 10.0 * i + step}, step)
            tracker.log_image("samples", image + i, step)
    for tracker in reversed(trackers):  # finishing one leaves the others open and working
        tracker.summary({"d_loss": -1.0})
        tracker.finish()
    for i in range(3):
        member = tmp_path / f"member{i}"
        [wandb_file] = find_runs(member)
        run = read_run(wandb_file)
        assert run.name == f"m{i}" and run.group == "pop" and run.exit_code == 0
        assert [h["d_loss"] for h in run.history if "d_loss" in h] == [10.0 * i + s for s in (1, 2, 3)]
        assert [e.value for e in events(member / "tensorboard").Scalars("d_loss")] == [10.0 * i + s for s in (1, 2, 3)]
        assert [float(r["d_loss"]) for r in rows(member / "metrics.csv")] == [10.0 * i + s for s in (1, 2, 3)]


def test_a_resumed_run_logs_each_step_once_in_tensorboard(tmp_path):
    args = ["logger=tensorboard", "trainer.max_steps=4", "trainer.log_every=1", "trainer.ckpt_every=2",
            "trainer.ckpt_keep=null", "eval.every=0", "model.middle_size=16", "trainer.progress=false"]
    run_dir = tmp_path / "run"
    train(compose_cfg(args, run_dir=run_dir))
    (run_dir / "checkpoints" / "step_00000004.pt").unlink()  # as if killed after step 3's log
    train(compose_cfg([*args, "resume=auto"], run_dir=run_dir))
    assert [e.step for e in events(run_dir / "tensorboard").Scalars("d_loss")] == [1, 2, 3, 4]


def test_tensorboard_missing_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"logger=tensorboard needs the tensorboard package: pip install"):
        build_tracker(compose_cfg(["logger=tensorboard"]), tmp_path)


def test_a_logger_entry_without_a_target_is_a_config_error(tmp_path):
    cfg = compose_cfg(["logger=none", "+logger.mine=3"])
    with pytest.raises(ConfigError, match=r"logger.mine: not a logger"):
        build_tracker(cfg, tmp_path)
    assert isinstance(build_tracker(compose_cfg(["logger=none"]), tmp_path), Tracker)
