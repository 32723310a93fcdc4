"""A sweep's populations split across local worker processes: the way a CPU's cores are filled.

One population's step on the CPU is a few hundred ops each too small for torch's intra-op threads
to keep two cores busy (27 members of the digits MLP: 13.1 ms per step with 2 threads, 18.9 with
1; the per-member Python of the loop, drawing batches and z, runs on one core either way). Two
processes with one thread each, each training half the members, finish both halves in about the
time of one: ``hydra.launcher.processes`` (auto: one per CPU core on the CPU, 1 on CUDA, where one
program already fills the device).

Each program (a group of jobs, cut at ``max_members``) is split into as many consecutive shards as
it has members up to the process count, and the shards of all programs run at most ``processes`` at
a time, each trained by ``run_group.train_group`` in a forked worker with ``cores / processes``
torch threads. A member computes bit for bit what its job computes alone **at the worker's thread
count**: CPU reductions split their sums by threads, so a job run with 2 threads rounds differently
from the same job with 1 (tests/test_population_launcher.py compares both ways).

A one-thread worker is forked: it inherits the launching process's imports and prepared jobs
(starting in ~0.05 s instead of ~4 s of imports), and it never enters an OpenMP parallel region,
so it cannot meet a thread pool copied half-alive from its parent. Workers with more threads are
spawned.

A preemption signal (SIGTERM, SIGUSR2) reaching the launching process is passed to every worker;
each checkpoints its members at their step and the same command resumes them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from ganlab.launch.population.jobs import Job
from ganlab.launch.population.warm import WarmWorkers, train_shard
from ganlab.launch.preemption import StopOnSignal

log = logging.getLogger(__name__)


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity mask: a Slurm allocation's, a container's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_count(setting: int | str, on_cuda: bool) -> int:
    """The number of worker processes for ``hydra.launcher.processes`` (auto: the CPU cores; 1 on CUDA)."""
    if setting == "auto":
        return 1 if on_cuda else cpu_cores()
    return int(setting)


def shards(programs: list[list[Job]], processes: int) -> list[list[Job]]:
    """Each program cut into up to ``processes`` consecutive shards of near-equal size."""
    out = []
    for program in programs:
        n = min(processes, len(program))
        size, extra = divmod(len(program), n)
        start = 0
        for i in range(n):
            end = start + size + (1 if i < extra else 0)
            out.append(program[start:end])
            start = end
    return out


def thread_count(setting: int | str, processes: int) -> int:
    """Torch threads per worker for ``hydra.launcher.threads`` (auto: the cores shared out, at least 1)."""
    return max(1, cpu_cores() // processes) if setting == "auto" else int(setting)


def train_in_workers(tasks: list[list[Job]], processes: int, threads: int, warm: WarmWorkers | None = None) -> bool:
    """Train every shard in ``tasks``, ``processes`` workers at a time; True when preempted.

    A shard goes to a warm worker (warm.py) while one is left, else to a new one. A new worker is
    forked when it has one thread or this process has not imported torch; otherwise it is spawned
    from the jobs' plain specs: a forked child of a process that has used OpenMP's thread pool (a
    test run, a notebook) can hang in its first parallel region, one with a single thread never
    enters one. The jobs' results come back from the workers; a worker's unexpected error is raised
    here once the running workers have ended (the jobs it left are recorded as failed by its own
    bookkeeping).
    """
    forked = threads == 1 or "torch" not in sys.modules
    context = multiprocessing.get_context("fork" if forked else "spawn")
    by_name = {job.name: job for task in tasks for job in task}
    pending, running = list(tasks), []
    preempted, errors, forwarded = False, [], False

    def start(task: list[Job]) -> tuple[BaseProcess, Connection, str]:
        taken = warm.take([job.spec() for job in task], threads) if warm is not None else None
        if taken is not None:
            return (*taken, "warm")
        receive, send = context.Pipe(duplex=False)
        payload = task if forked else [job.spec() for job in task]
        worker = context.Process(target=train_shard, args=(payload, threads, send), daemon=True)
        worker.start()
        send.close()
        return worker, receive, "forked" if forked else "spawned"

    with StopOnSignal() as stop:
        try:
            while pending or running:
                while pending and len(running) < processes and not stop.requested():
                    task = pending.pop(0)
                    worker, receive, how = start(task)
                    running.append((worker, receive, task))
                    log.info("worker %d (%s): %d jobs, %d torch threads", worker.pid, how, len(task), threads)
                if warm is not None and not pending:  # every shard handed out: the warm workers left over exit
                    warm.close()
                if stop.requested() and not forwarded:  # every worker checkpoints its members
                    for worker, _, _ in running:
                        os.kill(worker.pid, stop.signum)
                    forwarded, pending = True, []
                    preempted = True
                for entry in list(running):
                    worker, receive, task = entry
                    if not receive.poll(0.05):  # True also once the pipe is closed
                        continue
                    try:
                        kind, payload, worker_preempted = receive.recv()
                    except EOFError:  # it died without a word (killed, out of memory); exitcode after join
                        kind, payload, worker_preempted = "died", None, False
                    worker.join()
                    running.remove(entry)
                    if kind == "died":
                        kind, payload = "error", f"worker {worker.pid} ({len(task)} jobs) exited with code " \
                                                 f"{worker.exitcode} before reporting"
                    if kind == "error":
                        errors.append(payload)
                        continue
                    for name, result in payload.items():
                        by_name[name].result = result
                    preempted |= worker_preempted
        finally:
            for worker, _, _ in running:  # an exception here (Ctrl-C): no worker outlives the launcher
                if worker.is_alive():
                    worker.kill()
            if warm is not None:  # more warm workers than shards
                warm.close()
    if errors:
        raise RuntimeError("a population worker failed:\n" + "\n".join(errors))
    return preempted
