"""launcher=population's local workers: shards, launcher keys, a broken worker, the forkserver's preloads."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch


def test_programs_are_cut_into_near_equal_consecutive_shards_and_auto_fills_the_cores():
    from ganlab.launch.population.workers import cpu_cores, shards, thread_count, worker_count

    assert shards([list("abcde")], 2) == [list("abc"), list("de")]
    assert shards([["a"], ["b", "c"], list("defg")], 3) == [["a"], ["b"], ["c"], ["d", "e"], ["f"], ["g"]]
    assert shards([list("ab")], 1) == [list("ab")]
    assert worker_count("auto", on_cuda=True) == 1 and worker_count("auto", on_cuda=False) == cpu_cores()
    assert worker_count(3, on_cuda=True) == 3
    assert thread_count("auto", 2) == max(1, cpu_cores() // 2) and thread_count(4, 2) == 4


@pytest.mark.parametrize("key, value", [("processes", 0), ("processes", "many"), ("processes", True),
                                        ("threads", 0), ("threads", 1.5), ("max_members", -1)])
def test_bad_launcher_values_are_refused_with_the_key(key, value):
    from hydra_plugins.ganlab_plugins.population_launcher import PopulationLauncher

    with pytest.raises(ValueError, match=f"hydra.launcher.{key} must be"):
        PopulationLauncher(**{key: value})


class _StubJob:
    def __init__(self, name: str) -> None:
        self.name, self.result = name, None


@pytest.mark.parametrize("how, message", [("raise", "RuntimeError: worker boom"),
                                          ("exit", "exited with code 3 before reporting")])
def test_a_worker_that_breaks_is_reported_by_the_launching_process(monkeypatch, how, message):
    import os

    import ganlab.launch.population.run_group as run_group
    from ganlab.launch.population.workers import train_in_workers

    def broken(jobs, stop, worker):
        if jobs[0].name == "b":
            if how == "exit":
                os._exit(3)
            raise RuntimeError("worker boom")
        for job in jobs:
            job.result = 1.5
        return False

    monkeypatch.setattr(run_group, "train_group", broken)  # forks of this process inherit the patch
    tasks = [[_StubJob("a")], [_StubJob("b")]]
    with pytest.raises(RuntimeError, match="a population worker failed") as err:
        train_in_workers(tasks, processes=2, threads=1, start_method="fork")
    assert message in str(err.value)
    assert tasks[0][0].result == 1.5  # the healthy worker's results came back


def test_each_running_worker_has_its_own_progress_row(monkeypatch):
    """Workers running side by side get distinct slots (their tqdm bars' rows); a finished one's slot is reused."""
    import ganlab.launch.population.run_group as run_group
    from ganlab.launch.population.workers import train_in_workers

    def record_slot(jobs, stop, worker):
        for job in jobs:
            job.result = worker
        return False

    monkeypatch.setattr(run_group, "train_group", record_slot)
    tasks = [[_StubJob("a")], [_StubJob("b")], [_StubJob("c")]]
    train_in_workers(tasks, processes=2, threads=1, start_method="fork")
    assert [task[0].result for task in tasks[:2]] == [0, 1] and tasks[2][0].result in (0, 1)


PRELOADED = ("torch", "torch._dynamo", "torchvision.utils", "ganlab.launch.population.run_group",
             "ganlab.launch.population.forkserver_exit")


def _imported_on_arrival(conn) -> None:
    conn.send(sorted(m for m in PRELOADED if m in sys.modules))
    conn.close()


def test_workers_arrive_with_the_training_path_imported_and_say_whether_cuda_is_visible():
    from ganlab.launch.population import warm

    assert warm.cuda_visible() == torch.cuda.is_available()
    context = warm.worker_context()
    assert context.get_start_method() == "forkserver"
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_imported_on_arrival, args=(send,), daemon=True)
    process.start()
    send.close()
    assert receive.recv() == sorted(PRELOADED)
    process.join(timeout=30)
    assert process.exitcode == 0
    # the forkserver's quick exit is the forkserver's alone: this (launching) process ends as usual
    assert "ganlab.launch.population.forkserver_exit" not in sys.modules


def test_the_forkserver_leaves_without_the_interpreters_teardown_after_flushing(tmp_path):
    """forkserver_exit, imported in a process: at its exit the output written so far comes out, and nothing
    registered before it (multiprocessing's and torch's own exit work, here a marker) runs."""
    marker = tmp_path / "teardown_ran"
    code = ("import atexit, pathlib, sys\n"
            f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'ran')\n"
            "import ganlab.launch.population.forkserver_exit\n"
            "sys.stdout.write('written before the exit')\n"  # block-buffered into a pipe: flushed by exit_now
            "sys.exit(0)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "written before the exit"
    assert not marker.exists()


@pytest.mark.parametrize("worker", [None, 1])
def test_a_job_trained_alone_draws_its_bar_on_its_workers_row(tmp_path, monkeypatch, worker):
    """A job a worker trains alone (the only member of its group, or an option a population does not batch)
    labels its bar with the worker and draws it on the worker's row, not over worker 0's bar; in the
    launching process (no worker) it is a basic run's bar."""
    from types import SimpleNamespace

    import ganlab.launch.population.run_group as run_group

    from conftest import Terminal, compose_cfg

    job_dir = tmp_path / "job"
    job_dir.mkdir()
    cfg = compose_cfg(["trainer.max_steps=3", "model.middle_size=8", "eval.every=0", "logger=none",
                       "trainer.progress=true"], run_dir=job_dir)
    finished = []
    record = SimpleNamespace(finish=lambda final, objective: finished.append(final["step"]) or 0.5)
    job = SimpleNamespace(name="job-000", cfg=cfg, ctx=SimpleNamespace(dir=job_dir), record=record, result=None)
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert run_group._train_alone(job, SimpleNamespace(requested=lambda: False), worker) is False
    drawn = terminal.getvalue()
    assert finished == [3] and job.result == 0.5
    if worker is None:
        assert "train: 100%" in drawn and "\x1b[A" not in drawn  # row 0, as a basic job's bar
    else:
        assert "train (worker 1): 100%" in drawn and "\x1b[A" in drawn  # one row down, then back up
