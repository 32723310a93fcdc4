"""Jobs that meet another process: a job's lock (held by the process running it, waited for by another, taken
by a DDP job's first rank only), what a Slurm sweep run again finds of its earlier jobs, and the same sweep run
twice at once."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import FAST, logged_steps, sweep_index


def test_a_job_lock_waits_for_its_holder_and_a_stop_gives_up(tmp_path):
    from ganlab.launch.coordination import JobLock

    first, second = JobLock(tmp_path, "job-000"), JobLock(tmp_path, "job-000")
    told = []
    with first:
        assert first.wait(lambda: False, on_wait=lambda: told.append("first"))
        assert JobLock(tmp_path, "job-001").wait(lambda: False, on_wait=lambda: told.append("other job"))
        assert not second.wait(lambda: True, on_wait=lambda: told.append("second"))  # held: waits, then stops
        assert not second.take() and not second.held  # a look that takes it only when free (a population's put_off)
    assert told == ["second"]
    with second:
        assert second.wait(lambda: True, on_wait=lambda: told.append("again"))  # let go: taken at once
    assert told == ["second"]
    with JobLock(tmp_path, "job-000") as third:
        assert third.take() and third.held and not first.take()
        assert third.take() and third.wait(lambda: True, on_wait=lambda: told.append("held"))  # held: no-ops
    assert first.take()  # third's one release let it go (a second acquisition would have kept it)
    first.__exit__()
    assert told == ["second"]


def test_a_slurm_rerun_finds_the_jobs_finished_or_running_elsewhere_and_reads_how_they_ended(tmp_path):
    """What launcher=slurm run again uses (ganlab.launch.slurm_rerun): a job recorded finished, or running with its
    lock held by another process, is not submitted again; one recorded running whose lock is free (its task died),
    failed, or of another job number (the sweep changed) is."""
    from hydra.core.utils import JobStatus

    from ganlab.launch.coordination import JobLock
    from ganlab.launch.slurm_rerun import earlier_jobs, result_of
    from ganlab.launch.sweep import SweepIndex

    index = SweepIndex(tmp_path)
    for num, (job_id, status) in enumerate((("job-a", "running"), ("job-b", "running"), ("job-c", "finished"),
                                            ("job-d", "failed"))):
        index.update(job_id, overrides=[f"x={num}"], num=num, status=status,
                     objective=0.5 if status == "finished" else None)
    probe = JobLock(tmp_path, "job-a")
    assert not probe.held_elsewhere()  # nobody holds it (no .running/ folder yet)
    jobs = [["x=0"], ["x=1"], ["x=2"], ["x=3"], ["x=4"]]
    with JobLock(tmp_path, "job-a") as held:
        assert held.wait(lambda: False, on_wait=lambda: None)
        assert probe.held_elsewhere() and not JobLock(tmp_path, "job-b").held_elsewhere()
        finished, running = earlier_jobs(tmp_path, jobs, 0)
        assert list(finished) == [2] and finished[2]["objective"] == 0.5 and running == {0: "job-a"}
        assert earlier_jobs(tmp_path, jobs, 10) == ({}, {})  # other job numbers: other jobs
    assert earlier_jobs(tmp_path, jobs[:2], 0) == ({}, {})
    assert probe.wait(lambda: True, on_wait=lambda: None)  # the look took nothing with it

    done = result_of({"status": "finished", "objective": 0.25}, ["x=1"])
    assert done.status == JobStatus.COMPLETED and done.return_value == 0.25 and done.overrides == ["x=1"]
    failed = result_of({"status": "failed", "error": "NonFiniteLossError: step 7: NaN"}, ["x=2"])
    assert failed.status == JobStatus.COMPLETED and failed.return_value is None  # as a failing job returns
    assert result_of({"status": "preempted"}, ["x=3"]) is None and result_of({"status": "running"}, ["x=3"]) is None


def test_only_a_jobs_first_process_takes_its_lock(tmp_path, monkeypatch):
    # a DDP job is several processes each running it: rank 1 waited for rank 0's lock, rank 0 for rank 1 to join
    from ganlab.launch.job import SweepJob, process_rank

    for name in ("RANK", "SUBMITIT_EXECUTOR", "SUBMITIT_LOCAL_GLOBALID"):
        monkeypatch.delenv(name, raising=False)
    job = SweepJob(tmp_path / "sweep" / "job-000", tmp_path / "sweep", [], 0)
    assert process_rank() == 0 and job.lock().enabled
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")  # a submitit task of tasks_per_node=2, before DDP exports RANK
    monkeypatch.setenv("SUBMITIT_LOCAL_GLOBALID", "1")
    assert process_rank() == 1 and not job.lock().enabled
    monkeypatch.setenv("RANK", "0")  # torchrun's
    assert process_rank() == 0 and job.lock().enabled
    with job.lock() as held:
        monkeypatch.setenv("RANK", "1")
        assert job.lock().wait(lambda: True, on_wait=lambda: None)  # rank 1 runs beside rank 0's lock
        assert held.wait(lambda: True, on_wait=lambda: None)


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "population"])
def test_the_same_sweep_run_twice_at_once_trains_each_job_once(tmp_path, launcher):
    # as after a Ctrl-C of a Slurm sweep's command while its jobs go on, then the command again; before, both ran
    # each job into one folder: its metrics.jsonl held each step twice and its checkpoints came from either
    sweep = tmp_path / "sweep"
    args = ["-m", "seed=0,1", "model.middle_size=16", "trainer.max_steps=300", "trainer.log_every=25",
            "eval.every=0", *FAST, f"hydra.sweep.dir={sweep}"]
    commands = [[sys.executable, "-m", "ganlab", *args],
                [sys.executable, "-m", "ganlab", *args, f"launcher={launcher}"]]
    procs = [subprocess.Popen(c, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for c in commands]
    outs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outs
    for out in outs:
        assert "2 jobs, 2 finished" in out, out
    jobs = sweep_index(sweep)
    assert len(jobs) == 2 and all(r["status"] == "finished" and r["attempts"] == 1 for r in jobs.values()), jobs
    for job_id in jobs:
        steps = logged_steps(sweep / job_id / "metrics.jsonl")
        assert steps == list(range(25, 301, 25)), steps
    assert "".join(outs).count("finished at step 300") == 2, outs  # each job trained by one of them

