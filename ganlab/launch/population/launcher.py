"""``launcher=population`` and ``launcher=slurm_population``: the jobs of a multirun, grouped, each group
trained as one batched program.

Every job is prepared as Hydra's basic launcher would (jobs.py), the jobs are grouped by what they
share (plan.py), and each group is trained by ``trainer.train_population`` (a job that cannot be a
member trains alone, with ``train``), groups one after another. Each member leaves what a basic-
launcher job leaves: its directory, its sweep-index record and objective, its W&B run in the
sweep's group, ordinary checkpoints. On Slurm, the groups go in packs of ``members_per_task``
through submitit, one packed population per Slurm task.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from hydra.core.utils import JobReturn
from omegaconf import OmegaConf

from ganlab.launch.job import leave_preempted
from ganlab.launch.population.jobs import groups_of, job_return, prepare_all
from ganlab.launch.population.warm import cuda_visible, has_forkserver, start_server
from ganlab.launch.population.workers import cpu_cores, shards, thread_count, train_in_workers, worker_count
from ganlab.launch.preemption import INTERRUPT_SIGNALS, StopOnSignal

log = logging.getLogger(__name__)


def start_workers_early(processes: int | str, device: str) -> bool:
    """Start the workers' forkserver now (warm.py), while the sweeper composes the jobs, where they will be
    split across workers: ``processes`` > 1, or auto on a CPU machine (``device``: the launching config's
    hardware.device; auto on a visible GPU trains in this process, and the forkserver then idles)."""
    if processes == 1 or str(device).startswith("cuda") or not has_forkserver():
        return False
    if processes != "auto" and int(processes) < 2 or processes == "auto" and cpu_cores() < 2:
        return False
    start_server()
    return True


def launch_here(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """Train every group on this machine: split across ``processes`` local workers (workers.py), or in
    this process one group after another; the JobReturns in job order."""
    jobs = prepare_all(launcher, job_overrides, initial_job_idx)
    programs = groups_of(jobs, launcher.max_members)
    on_cuda = launcher.processes == "auto" and any(uses_cuda(program[0].cfg) for program in programs)
    processes = worker_count(launcher.processes, on_cuda)
    # members by z_size before the cut: a shard's generators are as wide as its widest member's z (the rest
    # zero-padded), so narrow members together make a narrower shard (the card's grid: ~7% off the slowest)
    programs = [sorted(program, key=lambda job: int(OmegaConf.select(job.cfg, "model.z_size", default=0) or 0))
                for program in programs]
    # the dearest shards first (members x D updates per step), so the last to start are the short ones
    tasks = sorted(shards(programs, processes), key=lambda t: -len(t) * int(t[0].cfg.trainer.n_critic))
    preempted = False
    with StopOnSignal(INTERRUPT_SIGNALS) as stop:  # SIGTERM, SIGUSR2 and Ctrl-C: every member checkpoints
        if processes > 1 and len(tasks) > 1:
            preempted = train_in_workers(tasks, processes, thread_count(launcher.threads, processes), stop=stop)
        else:
            from ganlab.launch.population.run_group import train_programs  # torch: only where training runs here

            if launcher.threads != "auto":
                import torch

                torch.set_num_threads(int(launcher.threads))
            preempted = train_programs(programs, stop)
    returns = [job_return(job, launcher.hydra_context) for job in jobs]
    if preempted:  # every member checkpointed its step; the same command resumes them
        leave_preempted(stop)
    return returns


def uses_cuda(cfg: Any) -> bool:
    """Whether the job's hardware trains on CUDA (``hardware.device``: cuda, or auto with a GPU visible: asked of
    a worker where this process has not imported torch, which it would otherwise do for this alone)."""
    device = str(cfg.hardware.device)
    if device == "auto":
        if "torch" not in sys.modules and has_forkserver():
            return cuda_visible()
        import torch

        return torch.cuda.is_available()
    return device.startswith("cuda")


def launch_on_slurm(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """Each group, in packs of ``members_per_task``, as one Slurm task (submitit) training a population.
    Jobs still running in an earlier Slurm task (the command run again after a Ctrl-C) are not packed again:
    this command waits for them (ganlab.launch.slurm_rerun) and packs those that stopped unfinished."""
    import submitit

    from ganlab.launch.population.run_group import PackTask
    from ganlab.launch.slurm_rerun import result_of, wait_for

    jobs = prepare_all(launcher, job_overrides, initial_job_idx)
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    elsewhere = [job for job in jobs if not job.extra.get("skipped") and job.record.lock().held_elsewhere()]
    for job in elsewhere:
        job.extra["skipped"] = True
        log.warning("job %s still runs in an earlier Slurm task: not packed again, this command waits for it", job.name)
    executor = submitit.AutoExecutor(folder=str(sweep_dir / ".submitit" / "%j"), cluster="slurm",
                                     slurm_max_num_timeout=launcher.max_num_timeout)
    executor.update_parameters(**launcher.slurm_parameters())

    def submit(packs: list[list[Any]]) -> list[tuple[list[Any], Any]]:
        if not packs:
            return []
        submitted = executor.map_array(PackTask(), [[job.spec() for job in pack] for pack in packs])
        for pack, task in zip(packs, submitted):
            log.info("pack of %d members: Slurm job %s", len(pack), task.job_id)
        return list(zip(packs, submitted))

    running = submit(groups_of(jobs, launcher.members_per_task))
    again = []
    for job in elsewhere:
        ended = result_of(wait_for(sweep_dir, job.name), job.overrides)
        if ended is not None:
            job.result = ended.return_value
            log.info("job %s ended in its earlier Slurm task: its result taken", job.name)
        else:  # stopped unfinished (preempted, or its task died): packed now, it resumes from its checkpoint
            job.extra["skipped"] = False
            again.append(job)
    running += submit(groups_of(again, launcher.members_per_task))
    for pack, task in running:
        results = task.results()[0]
        for job in pack:
            job.result = results.get(job.name)
    return [job_return(job, launcher.hydra_context) for job in jobs]
