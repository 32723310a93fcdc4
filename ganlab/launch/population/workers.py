"""A sweep's populations split across local worker processes: the way a CPU's cores are filled.

One population's step on the CPU is a few hundred ops each too small for torch's intra-op threads
to keep two cores busy (27 members of the digits MLP: 13.1 ms per step with 2 threads, 18.9 with
1; the per-member Python of the loop, drawing batches and z, runs on one core either way). Two
processes with one thread each, each training half the members, finish both halves in about the
time of one: ``hydra.launcher.processes`` (auto: one per CPU core on the CPU, 1 on CUDA, where one
program already fills the device).

Each program (a group of jobs, cut at ``max_members``) is split into as many consecutive shards as
it has members up to the process count, and the shards of all programs run at most ``processes`` at
a time, each trained by ``run_group.train_group`` in a worker with ``cores / processes`` torch
threads. A member computes bit for bit what its job computes alone **at the worker's thread
count**: CPU reductions split their sums by threads, so a job run with 2 threads rounds differently
from the same job with 1 (tests/test_population_equivalence.py compares both ways).

Workers are forked from multiprocessing's forkserver, which imported the training path while the
sweeper composed the jobs (warm.py): a worker starts in milliseconds with torch imported, and,
the forkserver having never run a torch op, with no OpenMP pool copied half-alive into it.

A preemption signal (SIGTERM, SIGUSR2) reaching the launching process is passed to every worker;
each checkpoints its members at their step and the same command resumes them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from ganlab.launch.population.jobs import Job
from ganlab.launch.population.warm import train_shard, worker_context
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


def train_in_workers(tasks: list[list[Job]], processes: int, threads: int, start_method: str | None = None,
                     stop: StopOnSignal | None = None) -> bool:
    """Train every shard in ``tasks``, ``processes`` workers at a time; True when preempted.

    Workers are forked from the forkserver that imported the training path (warm.py), or started by
    ``start_method`` ("fork": a fork of this process, which inherits its state, for tests); a worker's
    jobs reach it as plain specs (Job objects in a fork). The jobs' results come back from the
    workers; a worker's unexpected error is raised here once the running workers have ended (the
    jobs it left are recorded as failed by its own bookkeeping). ``stop``: the caller's signals (else
    SIGTERM/SIGUSR2 here); a signal is passed on to the workers, Ctrl-C as SIGTERM (a terminal's Ctrl-C has
    reached them already, and a second SIGINT would interrupt their checkpoints).
    """
    if stop is None:
        with StopOnSignal() as own:
            return train_in_workers(tasks, processes, threads, start_method, own)
    context = worker_context() if start_method is None else multiprocessing.get_context(start_method)
    forked = context.get_start_method() == "fork"
    by_name = {job.name: job for task in tasks for job in task}
    pending, running = list(tasks), []
    preempted, errors, forwarded = False, [], False

    free_slots = list(range(processes))  # each running worker's progress bar keeps its own terminal row

    def start(task: list[Job], slot: int) -> tuple[BaseProcess, Connection]:
        receive, send = context.Pipe(duplex=False)
        payload = task if forked else [job.spec() for job in task]
        worker = context.Process(target=train_shard, args=(payload, threads, send, slot), daemon=True)
        worker.start()
        send.close()
        return worker, receive

    try:
        while pending or running:
            while pending and len(running) < processes and not stop.requested():
                task, slot = pending.pop(0), free_slots.pop(0)
                worker, receive = start(task, slot)
                running.append((worker, receive, task, slot))
                log.info("worker %d (%s): %d jobs, %d torch threads", worker.pid, context.get_start_method(),
                         len(task), threads)
            if stop.requested() and not forwarded:  # every worker checkpoints its members
                for worker, *_ in running:
                    try:
                        os.kill(worker.pid, signal.SIGTERM if stop.signum == signal.SIGINT else stop.signum)
                    except ProcessLookupError:  # it has ended already (a terminal's Ctrl-C reached it first)
                        pass
                forwarded, pending = True, []
                preempted = True
            for entry in list(running):
                worker, receive, task, slot = entry
                if not receive.poll(0.05):  # True also once the pipe is closed
                    continue
                try:
                    kind, payload, worker_preempted = receive.recv()
                except EOFError:  # it died without a word (killed, out of memory); exitcode after join
                    kind, payload, worker_preempted = "died", None, False
                worker.join()
                running.remove(entry)
                free_slots.append(slot)
                free_slots.sort()
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
        for worker, *_ in running:  # an exception here (a second Ctrl-C): no worker outlives it
            if worker.is_alive():
                worker.kill()
    if errors:
        raise RuntimeError("a population worker failed:\n" + "\n".join(errors))
    return preempted
