"""A population worker's work (``train_shard``), and where workers come from: multiprocessing's forkserver,
started early with the training path imported.

A worker would spend its first seconds importing: torch (~2.9 s on the 2-core dev machine),
``torch._dynamo`` (~2 s: torch.optim imports it at the first optimizer a member builds),
torchvision's grid maker (~1 s at the first sample grid) and the rest of the training path. The
launching process, meanwhile, has serial seconds of its own before it can hand out any job: the
sweeper composes every job's config to validate the batch (~0.22 s each: 6 s for the card's 27
jobs). ``PopulationLauncher.setup`` runs before that composition and starts the forkserver there
(``start_server``): one process that imports the training path once, on the other core, while the
sweeper composes. Each worker is then forked from it in milliseconds with everything imported,
its shard passed as plain specs (``Job.spec``); later batches of the sweep (Optuna's) reuse it.

The forkserver leaves without the interpreter's teardown once the launching process has ended
(forkserver_exit.py): it holds the command's output open, and finalizing torch took it 0.8 s.

The forkserver never runs a torch op, so no OpenMP thread pool exists in it to be copied half-alive
into a worker (a fork of a process that has used one can hang in its first parallel region): its
workers may have any number of threads, whatever the launching process has done (a notebook that
trained before). The launching process itself no longer imports torch on this path; whether CUDA
is visible (``hardware.device=auto``) it asks of a worker (``cuda_visible``).
"""

from __future__ import annotations

import logging
import multiprocessing
import traceback
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from ganlab.launch.preemption import INTERRUPT_SIGNALS, StopOnSignal

if TYPE_CHECKING:
    from multiprocessing.context import BaseContext

    from ganlab.launch.population.jobs import Job

log = logging.getLogger(__name__)

# what the forkserver imports before forking any worker: a worker then starts in milliseconds
PRELOAD = ("torch", "torch._dynamo", "torchvision.utils", "ganlab", "ganlab.launch.population.run_group",
           "ganlab.launch.population.forkserver_exit")  # last: its exit hook runs before the others


def train_shard(jobs: list[Job] | list[dict[str, Any]], threads: int, conn: Connection, slot: int = 0) -> None:
    """A worker's work: train ``jobs`` (one shard; plain specs from another process, Job objects in a fork
    of the launching process) with ``threads`` torch threads; send back the results and whether it was
    preempted. ``slot`` (0 .. processes - 1, free while it runs) is its progress bar's row."""
    try:
        import torch

        import ganlab  # noqa: F401  (resolvers and the sweep source, in a spawned worker)
        from ganlab.launch.population.run_group import job_of, train_group

        torch.set_num_threads(threads)  # before any op
        jobs = [job_of(job) if isinstance(job, dict) else job for job in jobs]
        with StopOnSignal(INTERRUPT_SIGNALS) as stop:  # a terminal's Ctrl-C reaches the workers too
            preempted = train_group(jobs, stop, worker=slot)
        conn.send(("done", {job.name: job.result for job in jobs}, preempted))
    except BaseException:  # noqa: BLE001  (reported to the launching process, which raises it)
        conn.send(("error", traceback.format_exc(), False))
    finally:
        conn.close()


def has_forkserver() -> bool:
    """Whether this platform has multiprocessing's forkserver (POSIX; not Windows)."""
    return "forkserver" in multiprocessing.get_all_start_methods()


def start_server() -> None:
    """Start the forkserver now (idempotent), importing ``PRELOAD`` in it while this process goes on."""
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(list(PRELOAD))
    forkserver.ensure_running()  # returns at once; the server imports, then serves forks


def worker_context() -> BaseContext:
    """Where workers come from: the forkserver (started and preloaded here if not yet), else spawn."""
    if not has_forkserver():
        return multiprocessing.get_context("spawn")
    start_server()
    return multiprocessing.get_context("forkserver")


def _report_cuda(conn: Connection) -> None:
    import torch

    conn.send(torch.cuda.is_available())
    conn.close()


def cuda_visible() -> bool:
    """Whether a worker sees CUDA, asked of one (this process need not import torch to know)."""
    context = worker_context()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_report_cuda, args=(send,), daemon=True)
    process.start()
    send.close()
    try:
        return bool(receive.recv())
    except EOFError as err:
        raise RuntimeError(f"a population worker died (exit code {process.exitcode}) asking for CUDA") from err
    finally:
        process.join()
