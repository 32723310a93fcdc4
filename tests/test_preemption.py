"""Preemption without Slurm: the signal flag, the exact-step checkpoint, bit-exact resume, and a W&B
service that dies under a job (as it does when Slurm signals the whole job)."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
import torch

from ganlab.errors import Preempted
from ganlab.launch.coordination import SweepStopping
from ganlab.launch.preemption import INTERRUPT_SIGNALS, StopOnSignal
from ganlab.tracking import Tracker
from ganlab.tracking.wandb_run import WandbLogger
from ganlab.train import train

from conftest import FAST, compose_cfg, logged_steps, run_ganlab, signal_once_logging, sweep_index

ARGS = ["trainer.max_steps=8", "trainer.ckpt_every=100", "trainer.ckpt_keep=null", "model.middle_size=16", *FAST]


def test_signals_only_set_a_flag_and_handlers_come_back():
    before = signal.getsignal(signal.SIGTERM)
    seen = []
    with StopOnSignal(on_signal=seen.append) as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGUSR2)
        assert stop.requested() and stop.signum == signal.SIGUSR2 and seen == [signal.SIGUSR2]
    assert signal.getsignal(signal.SIGTERM) is before


def test_ctrl_c_sets_the_flag_once_and_a_second_one_interrupts():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own, whatever the runner set
    try:
        with StopOnSignal(INTERRUPT_SIGNALS) as stop:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)
            assert stop.signum == signal.SIGINT
            with pytest.raises(KeyboardInterrupt):  # the second Ctrl-C does not wait for a checkpoint
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_outside_training_is_one_line_and_exit_130(monkeypatch, capsys):
    # a command's Ctrl-C (ganlab.eval's evaluation, ganlab.compare) or ganlab's second one: a traceback before
    import ganlab.__main__ as entry
    from ganlab.errors import interruptible

    def interrupted() -> int:
        raise KeyboardInterrupt

    assert interruptible("ganlab.eval", interrupted) == 130
    assert capsys.readouterr().err == "ganlab.eval: interrupted (Ctrl-C)\n"
    assert interruptible("ganlab.eval", lambda: 0) == 0
    monkeypatch.setattr(entry, "_hydra_main", interrupted)
    monkeypatch.setattr("sys.argv", ["ganlab", "trainer.max_steps=1"])
    with pytest.raises(SystemExit) as exit_info:
        entry.main()
    assert exit_info.value.code == 130 and capsys.readouterr().err == "ganlab: interrupted (Ctrl-C)\n"
    for module in ("classifier", "compare", "eval", "sample", "study"):  # each command's entry goes through it
        source = (Path(entry.__file__).parent / f"{module}.py").read_text()
        assert f'interruptible("ganlab.{module}", main)' in source, module  # under sys.exit or run_and_leave


def test_a_slurm_sweeps_command_says_on_ctrl_c_that_its_jobs_go_on(tmp_path, monkeypatch):
    # the command waits for its Slurm jobs; a Ctrl-C of it stops the waiting, not the jobs
    from ganlab.launch.sweep import SweepCallback, interrupted_line

    monkeypatch.setattr(SweepCallback, "launcher", "")
    assert interrupted_line() == "ganlab: interrupted (Ctrl-C)"
    for launcher, goes_on in (("slurm", True), ("slurm_population", True), ("basic", False), ("population", False)):
        cfg = compose_cfg(["launcher=" + launcher, f"hydra.sweep.dir={tmp_path / launcher}"], hydra_config=True)
        SweepCallback().on_multirun_start(cfg)
        line = interrupted_line()
        assert line.startswith("ganlab: interrupted (Ctrl-C)")
        assert ("the sweep's Slurm jobs go on (squeue shows them, scancel stops them)" in line) == goes_on, launcher


LONG = ["model.middle_size=16", "trainer.max_steps=800", "trainer.log_every=25", "trainer.ckpt_every=100000",
        "eval.every=0", *FAST]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_a_single_run_stopped_by_a_signal_checkpoints_its_step_and_says_how_to_go_on(tmp_path, signum):
    # before: Ctrl-C was a KeyboardInterrupt traceback and SIGTERM a silent death, the steps since the last
    # checkpoint lost either way
    run = tmp_path / "run"
    args = [*LONG, f"hydra.run.dir={run}"]
    proc = signal_once_logging(args, "run/metrics.jsonl", tmp_path, 1, signum, to_group=signum == signal.SIGINT)
    assert proc.returncode == 128 + signum, proc.stderr
    [line] = [line for line in proc.stderr.splitlines() if line.startswith("ganlab:")]
    stopped = re.fullmatch(rf"ganlab: stopped by {signal.Signals(signum).name} after checkpointing step (\d+); "
                           rf"to go on, run the same command with resume={re.escape(str(run))}", line)
    assert stopped, line
    step = int(stopped.group(1))
    assert [p.name for p in (run / "checkpoints").glob("*.pt")] == [f"step_{step:08d}.pt"] and step < 800
    run_ganlab([*args, f"resume={run}"], cwd=tmp_path)
    assert logged_steps(run / "metrics.jsonl") == list(range(25, 801, 25))  # every row once, none lost or repeated


@pytest.mark.slow
def test_ctrl_c_stops_a_basic_sweep_and_the_same_command_resumes_it(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "seed=0,1", *LONG, f"hydra.sweep.dir={sweep}"]
    proc = signal_once_logging(args, "sweep/job-*/metrics.jsonl", tmp_path, 1, signal.SIGINT, to_group=True)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "ganlab: interrupted (Ctrl-C); the same command resumes the sweep"
    [(job_id, record)] = sweep_index(sweep).items()  # the second never began
    assert record["status"] == "preempted" and record["stopped_at_step"] < 800
    run_ganlab(args, cwd=tmp_path)
    jobs = sweep_index(sweep)
    assert {r["status"] for r in jobs.values()} == {"finished"} and len(jobs) == 2 and jobs[job_id]["attempts"] == 2
    assert logged_steps(sweep / job_id / "metrics.jsonl") == list(range(25, 801, 25))


@pytest.mark.slow
@pytest.mark.parametrize("signum,to_group", [(signal.SIGINT, True), (signal.SIGINT, False), (signal.SIGTERM, False)],
                         ids=["ctrl_c", "kill_int", "sigterm"])
def test_a_stopped_local_parallel_sweep_checkpoints_every_running_job_and_the_same_command_resumes_it(
        tmp_path, signum, to_group):
    # before: joblib killed its workers mid-step on Ctrl-C; every running job lost its steps and stayed "running".
    # A terminal's Ctrl-C reaches the workers; kill -INT and SIGTERM reach the launching process alone
    sweep = tmp_path / "sweep"
    args = ["-m", "launcher=local_parallel", "seed=0,1,2", *LONG, f"hydra.sweep.dir={sweep}"]
    proc = signal_once_logging(args, "sweep/job-*/metrics.jsonl", tmp_path, 2, signum, to_group=to_group)
    assert proc.returncode == 128 + signum and "Traceback" not in proc.stderr, proc.stderr
    if signum == signal.SIGINT:
        assert proc.stderr.splitlines()[-1] == "ganlab: interrupted (Ctrl-C); the same command resumes the sweep"
    jobs = sweep_index(sweep)
    stopped = {job_id: r for job_id, r in jobs.items() if r["status"] == "preempted"}
    # none left "running"; on a loaded machine one job may finish before the other logged its rows (its worker
    # started seconds earlier), and the third then began in its place; else the third never began
    finished = [job_id for job_id, r in jobs.items() if r["status"] == "finished"]
    assert stopped and len(stopped) + len(finished) == len(jobs) and (len(jobs) == 2 or finished), (jobs, proc.stderr)
    for job_id, record in stopped.items():
        step = record["stopped_at_step"]
        assert [p.name for p in (sweep / job_id / "checkpoints").glob("*.pt")] == [f"step_{step:08d}.pt"]
        assert 0 < step < 800
    assert not (sweep / ".stopping").exists()
    if not to_group:  # the resume is the same after either stop; once is enough for the suite's time
        return
    run_ganlab(args, cwd=tmp_path)
    resumed = sweep_index(sweep)
    assert len(resumed) == 3 and {r["status"] for r in resumed.values()} == {"finished"}
    for job_id in stopped:
        assert resumed[job_id]["attempts"] == 2
        # every row once, none lost or repeated
        assert logged_steps(sweep / job_id / "metrics.jsonl") == list(range(25, 801, 25))


def test_a_stopping_sweep_is_seen_at_most_every_interval_and_stays_seen(tmp_path):
    stopping = SweepStopping(tmp_path / "sweep", every_s=3600)
    assert not stopping()
    stopping.mark()
    assert not stopping()  # not looked at again within the interval: no stat per training step
    assert SweepStopping(tmp_path / "sweep")()
    looked = SweepStopping(tmp_path / "sweep", every_s=0)
    assert looked()
    stopping.clear()
    assert looked() and not (tmp_path / "sweep" / ".stopping").exists()  # once seen, seen


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


def test_a_preempted_run_is_preempted_in_wandb_not_failed(tmp_path):
    from wandb_reader import find_runs, read_run

    args = [*ARGS[:-len(FAST)], "trainer.progress=false", "logger=wandb", "logger.wandb.mode=offline"]
    with pytest.raises(Preempted):
        train(compose_cfg(args, run_dir=tmp_path), stop_requested=lambda: True)
    [stopped] = [read_run(path) for path in find_runs(tmp_path)]
    assert stopped.preempting and stopped.exit_code == 1  # the dashboard's "preempted" (a failure: 1 alone)
    train(compose_cfg([*args, "resume=auto"], run_dir=tmp_path))
    runs = sorted((r.preempting, r.exit_code) for r in map(read_run, find_runs(tmp_path)))
    assert runs == [(False, 0), (True, 1)]  # the resumed attempt finished as an ordinary run


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
