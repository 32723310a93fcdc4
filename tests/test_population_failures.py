"""launcher=population when things go wrong: a member that goes NaN or cannot write its checkpoint fails alone, and
a preempted population (a signal to the launching process, Ctrl-C, or to its workers) resumes every member."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

from ganlab.launch.population.step import PopulationStep

from conftest import FAST, checkpoint_at, logged_steps, run_ganlab, signal_once_logging, sweep_index
from population_sweeps import ONE, TINY, run_main
from wandb_reader import find_runs, read_run


def test_a_nan_member_fails_at_its_step_keeps_its_last_good_checkpoint_and_the_others_finish(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = PopulationStep.__call__

    def poisoned(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 13:  # member 1's G goes NaN in step 13 (found at the log step 15)
            with torch.no_grad():
                self.generator.params[0][1].fill_(float("nan"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PopulationStep, "__call__", poisoned)
    sweep = tmp_path / "sweep"
    code = run_main(["-m", "loss=bce,hinge,mse", *TINY, *FAST, "launcher=population", ONE, f"hydra.sweep.dir={sweep}"],
                    monkeypatch)
    assert code == 2  # a failed job: the sweep's summary, exit 2
    jobs = sorted(sweep_index(sweep).items(), key=lambda kv: kv[1]["num"])
    statuses = [r["status"] for _, r in jobs]
    assert statuses == ["finished", "failed", "finished"]
    failed_id, failed = jobs[1]
    assert failed["error"].startswith("NonFiniteLossError: step 13: d_loss or g_loss is NaN/inf")
    kept = sorted(p.name for p in (sweep / failed_id / "checkpoints").iterdir())
    assert kept == ["step_00000010.pt"]  # the last good checkpoint
    assert logged_steps(sweep / failed_id / "metrics.jsonl") == [5, 10]
    for job_id, _ in (jobs[0], jobs[2]):
        assert (sweep / job_id / "checkpoints" / "step_00000020.pt").is_file()


@pytest.mark.parametrize("losses", ["bce,hinge,mse", "hinge"], ids=["in-a-population", "alone"])
def test_a_member_whose_checkpoint_cannot_be_written_fails_in_one_line_and_the_others_finish(
        tmp_path, monkeypatch, capfd, losses):
    # a file where the hinge member makes its checkpoints folder (as a full disk would fail its writes): the
    # error was a traceback that stopped every member of the population; a single run prints one line
    from ganlab.launch.population import run_group

    original = run_group.build_member

    def blocked(cfg, ctx, *args, **kwargs):
        member = original(cfg, ctx, *args, **kwargs)
        if ctx.choices["loss"] == "hinge":
            (ctx.dir / "checkpoints").write_text("")
        return member

    monkeypatch.setattr(run_group, "build_member", blocked)
    sweep = tmp_path / "sweep"
    code = run_main(["-m", f"loss={losses}", *TINY, *FAST, "launcher=population", ONE, f"hydra.sweep.dir={sweep}"],
                    monkeypatch)
    stderr = capfd.readouterr().err
    assert code == 2, stderr  # a failed job: the sweep's summary, exit 2
    assert "Traceback" not in stderr
    records = sweep_index(sweep)
    failed = [job_id for job_id, r in records.items() if r["status"] == "failed"]
    assert len(failed) == 1 and "loss=hinge" in records[failed[0]]["overrides"]
    assert records[failed[0]]["error"].startswith("FileExistsError")
    assert f"ganlab: error: {failed[0]}: {sweep / failed[0] / 'checkpoints'}: File exists" in stderr.splitlines()
    others = [job_id for job_id in records if job_id not in failed]
    assert len(others) == len(losses.split(",")) - 1
    for job_id in others:
        assert records[job_id]["status"] == "finished"
        assert (sweep / job_id / "checkpoints" / "step_00000020.pt").is_file()


def test_a_preempted_population_resumes_every_member_where_it_stopped(tmp_path, monkeypatch):
    from ganlab.launch.preemption import StopOnSignal

    args = ["-m", "loss=bce,hinge", "optimizer.lr=1e-4,3e-4", *TINY, *FAST, "launcher=population", ONE]
    straight = tmp_path / "straight"
    assert run_main([*args, f"hydra.sweep.dir={straight}"], monkeypatch) == 0
    steps = {"n": 0}

    def stop_after_seven(self):
        steps["n"] += 1
        return steps["n"] >= 7

    sweep = tmp_path / "sweep"
    with monkeypatch.context() as patch:
        patch.setattr(StopOnSignal, "requested", stop_after_seven)
        assert run_main([*args, f"hydra.sweep.dir={sweep}"], monkeypatch) == 143  # as a preempted job exits
    assert {r["status"] for r in sweep_index(sweep).values()} == {"preempted"}
    assert all(r["stopped_at_step"] == 7 for r in sweep_index(sweep).values())
    assert run_main([*args, f"hydra.sweep.dir={sweep}"], monkeypatch) == 0  # the same command: resumes
    for job_id, record in sweep_index(sweep).items():
        assert record["status"] == "finished" and record["attempts"] == 2
        assert logged_steps(sweep / job_id / "metrics.jsonl") == [5, 10, 15, 20]
        a, b = checkpoint_at(straight / job_id, 20), checkpoint_at(sweep / job_id, 20)
        assert all(torch.equal(v, b["generator"][k]) for k, v in a["generator"].items())
    assert run_main([*args, f"hydra.sweep.dir={sweep}"], monkeypatch) == 0  # finished members are skipped
    assert all(r["attempts"] == 2 for r in sweep_index(sweep).values())


def signal_once_logging_sweep(args: list[str], sweep: Path, cwd: Path, jobs: int, signum: int = signal.SIGTERM,
                              to_group: bool = False) -> dict:
    """Start the sweep, signal it once each of its ``jobs`` jobs logged two rows (SIGTERM: the launching process
    only, as a scheduler's kill of the job step's leader; Ctrl-C: its process group); the index."""
    proc = signal_once_logging(args, f"{sweep.name}/job-*/metrics.jsonl", cwd, jobs, signum, to_group)
    assert proc.returncode == 128 + signum, proc.stderr
    found = sweep_index(sweep)
    assert {r["status"] for r in found.values()} == {"preempted"} and len(found) == jobs
    if signum == signal.SIGINT:
        last = proc.stderr.strip().splitlines()[-1]
        assert last == "ganlab: interrupted (Ctrl-C); the same command resumes the sweep", proc.stderr
    return found


def assert_resumed_to_the_end(sweep: Path, stopped: dict[str, int]) -> None:
    """Every job finished on its second attempt, keeping its preemption checkpoint, every row logged once."""
    for job_id, record in sweep_index(sweep).items():
        assert record["status"] == "finished" and record["attempts"] == 2
        saved = sorted(p.name for p in (sweep / job_id / "checkpoints").glob("*.pt"))
        assert saved == [f"step_{stopped[job_id]:08d}.pt", f"step_{LONG_STEPS:08d}.pt"]
        assert logged_steps(sweep / job_id / "metrics.jsonl") == list(range(50, LONG_STEPS + 1, 50))


LONG_STEPS = 1500  # SIGTERM comes at step 100 + one 0.2 s poll (~30 steps): the rest is margin for a busy CPU
LONG = ["model.middle_size=16", f"trainer.max_steps={LONG_STEPS}", "trainer.log_every=50", "trainer.ckpt_every=100000",
        "eval.every=0", *FAST, "launcher=population"]


@pytest.mark.slow
def test_sigterm_checkpoints_every_member_and_the_same_command_resumes_them(tmp_path):
    sweep = tmp_path / "sweep"
    tracked = [a for a in LONG if a != "logger=none"] + ["logger=wandb", "logger.wandb.mode=offline"]
    args = ["-m", "seed=0,1", *tracked, ONE, f"hydra.sweep.dir={sweep}"]
    jobs = signal_once_logging_sweep(args, sweep, tmp_path, 2)
    assert len({r["stopped_at_step"] for r in jobs.values()}) == 1  # every member checkpointed the same step
    for job_id in jobs:  # each member's W&B run: preempted, not failed
        assert [(r.preempting, r.exit_code) for r in map(read_run, find_runs(sweep / job_id))] == [(True, 1)]
    run_ganlab(args, cwd=tmp_path)
    assert_resumed_to_the_end(sweep, {job_id: r["stopped_at_step"] for job_id, r in jobs.items()})


@pytest.mark.slow
@pytest.mark.parametrize("signum,to_group", [(signal.SIGTERM, False), (signal.SIGINT, True)], ids=["sigterm", "ctrl_c"])
def test_a_signal_reaches_every_worker_and_the_same_command_resumes_each_job(tmp_path, signum, to_group):
    """Four jobs in two workers of two: the launching process passes SIGTERM on, each worker checkpoints its
    members at its own step, and the same command resumes all four to the step the straight sweep ends at.
    Ctrl-C reaches every process of the group (the forkserver ignores it): a traceback in each before."""
    sweep = tmp_path / "sweep"
    args = ["-m", "seed=0,1,2,3", *LONG, "hydra.launcher.processes=2", "hydra.launcher.threads=1",
            f"hydra.sweep.dir={sweep}"]
    jobs = signal_once_logging_sweep(args, sweep, tmp_path, 4, signum, to_group)
    assert len({r["pid"] for r in jobs.values()}) == 2  # two workers trained them
    run_ganlab(args, cwd=tmp_path)
    assert_resumed_to_the_end(sweep, {job_id: r["stopped_at_step"] for job_id, r in jobs.items()})
