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
from pathlib import Path
from typing import Any, Sequence

from hydra.core.utils import JobReturn

from ganlab.launch.job import PREEMPTED_EXIT
from ganlab.launch.population.jobs import groups_of, job_return, prepare_all
from ganlab.launch.population.run_group import PackTask, train_group

log = logging.getLogger(__name__)


def launch_here(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """Train every group in this process, one after another; the JobReturns in job order."""
    jobs = prepare_all(launcher, job_overrides, initial_job_idx)
    preempted = False
    for group in groups_of(jobs, launcher.max_members):
        if preempted:
            break
        preempted = train_group(group)
    returns = [job_return(job, launcher.hydra_context) for job in jobs]
    if preempted:  # every member checkpointed its step; the same command resumes them
        raise SystemExit(PREEMPTED_EXIT)
    return returns


def launch_on_slurm(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """Each group, in packs of ``members_per_task``, as one Slurm task (submitit) training a population."""
    import submitit

    jobs = prepare_all(launcher, job_overrides, initial_job_idx)
    packs = groups_of(jobs, launcher.members_per_task)
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    executor = submitit.AutoExecutor(folder=str(sweep_dir / ".submitit" / "%j"), cluster="slurm",
                                     slurm_max_num_timeout=launcher.max_num_timeout)
    executor.update_parameters(**launcher.slurm_parameters())
    if packs:
        submitted = executor.map_array(PackTask(), [[job.spec() for job in pack] for pack in packs])
        for pack, task in zip(packs, submitted):
            log.info("pack of %d members: Slurm job %s", len(pack), task.job_id)
        for pack, task in zip(packs, submitted):
            results = task.results()[0]
            for job in pack:
                job.result = results.get(job.name)
    return [job_return(job, launcher.hydra_context) for job in jobs]
