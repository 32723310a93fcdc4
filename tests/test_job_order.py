"""A second process on the same sweep: launcher=basic puts off a job the other runs now, launcher=population (in
one process) a program, so the two commands split the sweep (ganlab.launch.job_order,
hydra_plugins/ganlab_plugins/basic_launcher.py, ganlab/launch/population/run_group.py:train_programs)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from ganlab.launch.coordination import JobLock
from ganlab.launch.job_order import job_order, running_elsewhere
from ganlab.launch.sweep import SweepIndex

from conftest import FAST, logged_steps, sweep_index


def test_a_busy_job_is_put_off_and_the_put_off_go_free_ones_first():
    busy_now = {0, 2}
    looked = []

    def busy(position: int) -> bool:
        looked.append(position)
        return position in busy_now

    order = job_order(5, busy)
    assert [next(order) for _ in range(3)] == [1, 3, 4]  # 0 and 2 put off, each looked at when its turn came
    busy_now.discard(2)  # the other process finished job 2, job 0 still runs there
    assert next(order) == 2  # a free one first
    assert list(order) == [0]  # the last one even while busy: its run waits for the other process
    assert looked == [0, 1, 2, 3, 4, 0, 2, 0]
    assert list(job_order(3, lambda p: False)) == [0, 1, 2]
    assert list(job_order(3, lambda p: True)) == [0, 1, 2]


def test_running_elsewhere_needs_a_running_record_and_its_lock_held(tmp_path):
    sweep = tmp_path / "sweep"
    index = SweepIndex(sweep)
    index.update("job-000", overrides=["seed=0"], num=0, status="running")
    index.update("job-001", overrides=["seed=1"], num=1, status="finished")
    assert running_elsewhere(sweep, ["seed=0"], 0) is None  # recorded running, but its process is gone
    JobLock(sweep, "job-000").path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from filelock import FileLock; "
                               "lock = FileLock(sys.argv[1]); lock.acquire(); print('held', flush=True); "
                               "time.sleep(60)", str(JobLock(sweep, "job-000").path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert running_elsewhere(sweep, ["seed=0"], 0) == "job-000"
        assert running_elsewhere(sweep, ["seed=0"], 1) is None  # another job number: another job
        assert running_elsewhere(sweep, ["seed=1"], 1) is None  # finished
        assert running_elsewhere(sweep, ["seed=2"], 2) is None  # unknown
    finally:
        holder.kill()
        holder.wait()


def run_twice_at_once(args: list[str], sweep, cwd, jobs: int, steps: list[int]) -> list[str]:
    """The same sweep command twice, the second started once the first runs a job; asserts that they split the
    jobs: both finish, each job trained once (one attempt, every logged step once), by both processes, two at
    the same time (before, one trained while the other waited on its lock). Their outputs."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # two commands on the machine's cores
    first = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not any(r.get("status") == "running" for r in SweepIndex.peek(sweep)["jobs"].values()):
        assert time.time() < deadline and first.poll() is None, "the first command never started a job"
        time.sleep(0.2)
    second = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outs = [proc.communicate(timeout=300)[0] for proc in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outs
    for out in outs:
        assert f"{jobs} jobs, {jobs} finished" in out, out
    records = sweep_index(sweep)
    assert len(records) == jobs and all(r["status"] == "finished" and r["attempts"] == 1 for r in records.values())
    assert {r["pid"] for r in records.values()} == {first.pid, second.pid}, (records, outs)
    spans = [(r["started"], r["finished"], r["pid"]) for r in records.values()]
    assert any(a[2] != b[2] and a[0] < b[1] and b[0] < a[1] for a in spans for b in spans), spans
    for job_id in records:
        logged = logged_steps(sweep / job_id / "metrics.jsonl")
        assert logged == steps, (job_id, logged)
    return outs


@pytest.mark.slow
def test_the_same_basic_sweep_in_two_terminals_splits_its_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    args = [sys.executable, "-m", "ganlab", "-m", "seed=0,1,2,3", "model.middle_size=16", "trainer.max_steps=2000",
            "trainer.log_every=500", "eval.every=0", *FAST, f"hydra.sweep.dir={sweep}"]
    outs = run_twice_at_once(args, sweep, tmp_path, jobs=4, steps=[500, 1000, 1500, 2000])
    assert "put off" in outs[1], outs[1]


@pytest.mark.slow
def test_the_same_population_sweep_in_two_terminals_splits_its_programs(tmp_path):
    # in one process (hydra.launcher.processes=1, the CUDA default), programs of two members: before, the second
    # command waited on each program the first trained and reached the next one with it
    sweep = tmp_path / "sweep"
    args = [sys.executable, "-m", "ganlab", "-m", "seed=0,1,2,3,4,5,6,7", "launcher=population",
            "hydra.launcher.processes=1", "hydra.launcher.max_members=2", "model.middle_size=16",
            "trainer.max_steps=1500", "trainer.log_every=500", "eval.every=0", *FAST, f"hydra.sweep.dir={sweep}"]
    outs = run_twice_at_once(args, sweep, tmp_path, jobs=8, steps=[500, 1000, 1500])
    assert "put off" in outs[1], outs[1]
