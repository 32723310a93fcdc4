"""A population worker's work (``train_shard``), and workers started before the jobs are known (``WarmWorkers``),
so that their imports overlap the sweep's composition.

A population worker spends its first seconds importing: torch (~2.9 s on the 2-core dev machine),
``torch._dynamo`` (~2 s; torch.optim imports it at the first optimizer a member builds) and the
rest of the training path. The launching process, meanwhile, has its own serial seconds before it
can hand out any job: the sweeper composes every job's config to validate the batch (~0.22 s
each: 6 s for the card's 27 jobs). ``PopulationLauncher.setup`` runs before that composition, so it
starts the workers there (``WarmWorkers``): each imports the training path while the launching
process composes, then waits for its shard. The launching process itself never imports torch on
this path (it only prepares, groups and dispatches jobs), so it can fork workers with any number
of threads: no OpenMP pool exists in it to be copied half-alive.

A warm worker receives its jobs as plain specs (``Job.spec``) and trains them exactly as a worker
forked after the jobs were prepared (``train_shard``); it also reports whether CUDA is visible,
which the launching process needs (``hardware.device=auto``) and could only learn by importing torch.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any

from ganlab.launch.preemption import StopOnSignal

if TYPE_CHECKING:
    from ganlab.launch.population.jobs import Job

log = logging.getLogger(__name__)


def train_shard(jobs: list[Job] | list[dict[str, Any]], threads: int, conn: Connection) -> None:
    """A worker's work: train ``jobs`` (one shard; plain specs in a spawned or warm worker) with ``threads``
    torch threads; send back the results and whether it was preempted."""
    try:
        import torch

        import ganlab  # noqa: F401  (resolvers and the sweep source, in a spawned worker)
        from ganlab.launch.population.run_group import job_of, train_group

        torch.set_num_threads(threads)  # before any op: a forked worker then never enters an OpenMP region
        jobs = [job_of(job) if isinstance(job, dict) else job for job in jobs]
        with StopOnSignal() as stop:
            preempted = train_group(jobs, stop)
        conn.send(("done", {job.name: job.result for job in jobs}, preempted))
    except BaseException:  # noqa: BLE001  (reported to the launching process, which raises it)
        conn.send(("error", traceback.format_exc(), False))
    finally:
        conn.close()


def _serve(conn: Connection) -> None:
    """A warm worker: import the training path, report ready (with CUDA's visibility), train the shard it is sent."""
    try:
        import torch
        import torch._dynamo  # noqa: F401  (torch.optim imports it at the first optimizer a member builds)

        import ganlab  # noqa: F401  (resolvers and the sweep source)
        from ganlab.launch.population import run_group  # noqa: F401  (the whole training path)

        conn.send(("ready", torch.cuda.is_available()))
    except BaseException:  # noqa: BLE001  (reported to the launching process, which raises it)
        conn.send(("error", traceback.format_exc(), False))
        conn.close()
        return
    task = conn.recv()
    if task is None:  # more warm workers than shards: not needed
        conn.close()
        return
    specs, threads = task
    train_shard(specs, threads, conn)


@dataclass
class _Warm:
    process: BaseProcess
    conn: Connection
    ready: bool = False


class WarmWorkers:
    """``count`` forked workers importing the training path now, each to train one shard later (or none)."""

    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("fork")
        self.workers: list[_Warm] = []
        self.cuda: bool | None = None  # what the first ready worker reported
        for _ in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(theirs,), daemon=True)
            process.start()
            theirs.close()
            self.workers.append(_Warm(process, ours))

    @staticmethod
    def possible() -> bool:
        """Whether this process may fork warm workers: on Linux, and not once torch is imported here (its OpenMP
        pool, if used, would be copied half-alive into a worker with several threads)."""
        return "torch" not in sys.modules and sys.platform.startswith("linux")

    def _await(self, worker: _Warm) -> bool:
        """Wait for ``worker`` to be ready; False (logged) when it failed to start."""
        if worker.ready:
            return True
        try:
            message = worker.conn.recv()
        except EOFError:
            worker.process.join()
            message = ("error", f"worker {worker.process.pid} exited with code {worker.process.exitcode}")
        if message[0] != "ready":
            log.warning("a warm population worker failed to start:\n%s", message[1])
            worker.process.join()
            return False
        worker.ready = True
        if self.cuda is None:
            self.cuda = bool(message[1])
        return True

    def cuda_visible(self) -> bool:
        """Whether CUDA is visible to the workers (waits for one to be ready); RuntimeError when none starts."""
        self.workers = [w for w in self.workers if self._await(w)]
        if not self.workers:
            raise RuntimeError("no warm population worker started (see the warnings above)")
        return bool(self.cuda)

    def take(self, specs: list[dict[str, Any]], threads: int) -> tuple[BaseProcess, Connection] | None:
        """Hand a shard (plain specs) to a ready warm worker: its process and pipe, or None when none is left."""
        while self.workers:
            worker = self.workers.pop(0)
            if self._await(worker):
                worker.conn.send((specs, threads))
                return worker.process, worker.conn
        return None

    def close(self) -> None:
        """Stop the workers not handed a shard (a ready one is told to exit, one still importing is terminated)."""
        for worker in self.workers:
            if worker.ready:
                worker.conn.send(None)
            else:
                worker.process.terminate()
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                worker.process.kill()
            worker.conn.close()
        self.workers = []
