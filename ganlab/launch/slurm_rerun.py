"""``launcher=slurm`` run again: the jobs of the sweep that finished, or still run in Slurm (the command stopped by
Ctrl-C, which leaves its Slurm jobs going), are not submitted again. A finished job's task would only start to
skip it; a running job's second task would wait on the job's lock (``JobLock``) holding an allocation, a GPU each
on a GPU partition, until the first ended. The command takes their results from the sweep's index (waiting for
the running ones) and submits the rest as one array.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf

from ganlab.launch.coordination import JobLock
from ganlab.launch.job_order import records_by_job, runs_elsewhere
from ganlab.launch.sweep import SweepIndex

log = logging.getLogger(__name__)


def earlier_jobs(sweep_dir: Path, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
                 ) -> tuple[dict[int, dict[str, Any]], dict[int, str]]:
    """What the sweep's index knows of these jobs (by position; the same overrides and job number): the finished
    ones (their records, with ``job_id``) and the ones another process runs now (their ids: recorded running,
    lock held)."""
    by_job = records_by_job(sweep_dir)
    finished, running = {}, {}
    for position, overrides in enumerate(job_overrides):
        job_id, record = by_job.get((tuple(overrides), initial_job_idx + position), (None, {}))
        if record.get("status") == "finished":
            finished[position] = {**record, "job_id": job_id}
        elif runs_elsewhere(sweep_dir, job_id, record):
            running[position] = job_id
    return finished, running


def wait_for(sweep_dir: Path, job_id: str) -> dict[str, Any]:
    """Wait until the process running ``job_id`` lets go of its lock; the job's index record then."""
    with JobLock(sweep_dir, job_id) as lock:
        lock.wait(give_up=lambda: False, on_wait=lambda: None)  # Ctrl-C here: KeyboardInterrupt, as anywhere
    return SweepIndex(sweep_dir).job(job_id)


def result_of(record: dict[str, Any], overrides: Sequence[str]) -> JobReturn | None:
    """The JobReturn of a job that ended elsewhere: finished (its objective) or failed (None, as a failing job
    returns to the sweeper: the index holds its error, the sweep's summary lists it and exits 2); None when it
    must run again (stopped unfinished)."""
    if record.get("status") not in ("finished", "failed"):
        return None  # preempted, or its task died: submitted again (a requeued old task and it share the lock)
    ret = JobReturn()
    ret.overrides = list(overrides)
    ret.working_dir = os.getcwd()
    ret.status = JobStatus.COMPLETED
    ret.return_value = record.get("objective") if record["status"] == "finished" else None
    return ret


def launch_around_earlier(launcher: Any, finished: dict[int, dict[str, Any]], running: dict[int, str],
                          job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """The jobs ``earlier_jobs`` found: the finished ones' results taken, the running ones waited for here; the
    others submitted as one array, and then those of the waited-for that stopped unfinished; in job order."""
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    results: dict[int, JobReturn] = {}
    for position, record in finished.items():
        log.info("job %s already finished (sweep index): not submitted again", record["job_id"])
        results[position] = result_of(record, job_overrides[position])
    records = SweepIndex.peek(sweep_dir)["jobs"]
    for job_id in running.values():
        log.warning("job %s still runs in Slurm job %s: not submitted again, this command waits for it", job_id,
                    records.get(job_id, {}).get("slurm_job_id") or "?")
    free = [p for p in range(len(job_overrides)) if p not in running and p not in finished]
    waits = {}
    if free:
        waits[tuple(free)] = submit_array(launcher, [(initial_job_idx + p, job_overrides[p]) for p in free])
    again = []
    for position, job_id in running.items():
        ret = result_of(wait_for(sweep_dir, job_id), job_overrides[position])
        if ret is None:
            again.append(position)
        else:
            log.info("job %s ended in its earlier Slurm job: its result taken", job_id)
            results[position] = ret
    if again:
        waits[tuple(again)] = submit_array(launcher, [(initial_job_idx + p, job_overrides[p]) for p in again])
    for positions, wait in waits.items():
        results.update(zip(positions, wait()))
    return [results[p] for p in range(len(job_overrides))]


def submit_array(launcher: Any, numbered: list[tuple[int, Sequence[str]]]) -> Callable[[], list[JobReturn]]:
    """hydra-submitit-launcher 1.2's ``launch``, with each job's number given (not counted from the first), so
    that a subset of a sweep keeps its jobs' numbers (and folders); returns the wait for their results."""
    import submitit

    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    params = launcher.params
    init_keys = {"max_num_timeout", "submitit_folder"}
    executor = submitit.AutoExecutor(cluster=launcher._EXECUTOR, folder=params["submitit_folder"],
                                     **{f"{launcher._EXECUTOR}_max_num_timeout": params["max_num_timeout"]})
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{key if key in base else f"{launcher._EXECUTOR}_{key}": value
                                  for key, value in params.items() if key not in init_keys})
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    job_params = []
    for num, overrides in numbered:
        log.info("\t#%d : %s", num, " ".join(filter_overrides(overrides)))
        job_params.append((list(overrides), "hydra.sweep.dir", num, f"job_id_for_{num}", Singleton.get_state()))
    jobs = executor.map_array(launcher, *zip(*job_params))
    return lambda: [job.results()[0] for job in jobs]
