"""A population's jobs as Hydra's basic launcher prepares and returns them, before and after training.

For every job: compose its config, create its directory, write ``.hydra/``, call the job callbacks,
resolve ``run.*`` while Hydra's config is the job's; and at the end a ``JobReturn``. Grouping jobs
into populations (``plan.group_key``) happens on the prepared configs.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, _save_config, configure_log, filter_overrides, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from ganlab.config import RunContext, plain_config, run_context
from ganlab.launch.job import SweepJob
from ganlab.launch.population import plan

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One job of the sweep, prepared as the basic launcher would before calling the task function."""

    num: int
    overrides: list[str]
    sweep_config: DictConfig  # with its hydra node
    cfg: DictConfig  # the task config, run.* resolved to plain values
    ctx: RunContext
    record: SweepJob
    result: Any = None
    status: JobStatus = JobStatus.COMPLETED
    preempted: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Its id in the sweep index (its directory's path from the sweep's)."""
        return self.record.job_id

    def spec(self) -> dict[str, Any]:
        """Plain data to rebuild the job in another process (a Slurm task)."""
        return {"num": self.num, "overrides": self.overrides, "cfg": OmegaConf.to_container(self.cfg),
                "dir": str(self.ctx.dir), "sweep_dir": str(self.record.index.path.parent)}


def prepare(hydra_context: Any, config: DictConfig, overrides: Sequence[str], num: int,
            composed: dict[tuple[str, ...], DictConfig] | None = None) -> Job:
    """Compose the job's config (or take the sweeper's composition of it from ``composed``), create its
    directory and write its .hydra/ files (as hydra's run_job)."""
    sweep_config = (composed or {}).pop(tuple(overrides), None)
    if sweep_config is None:
        sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = num
        sweep_config.hydra.job.num = num
    HydraConfig.instance().set_config(sweep_config)
    output_dir = os.path.join(str(OmegaConf.select(sweep_config, "hydra.sweep.dir")),
                              str(OmegaConf.select(sweep_config, "hydra.sweep.subdir")))
    with read_write(sweep_config.hydra.runtime), open_dict(sweep_config.hydra.runtime):
        sweep_config.hydra.runtime.output_dir = os.path.abspath(output_dir)
    HydraConfig.instance().set_config(sweep_config)
    task_cfg = copy.deepcopy(sweep_config)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    Path(output_dir).mkdir(parents=True, exist_ok=True)
    if sweep_config.hydra.output_subdir is not None:
        hydra_output = Path(sweep_config.hydra.runtime.output_dir) / str(sweep_config.hydra.output_subdir)
        _save_config(task_cfg, "config.yaml", hydra_output)
        _save_config(copy.deepcopy(HydraConfig.instance().cfg), "hydra.yaml", hydra_output)
        _save_config(sweep_config.hydra.overrides.task, "overrides.yaml", hydra_output)
    ctx = run_context(task_cfg)  # resolved now, while Hydra's config is this job's
    with open_dict(task_cfg):
        task_cfg.run = {"dir": str(ctx.dir), "name": ctx.name, "group": ctx.group, "choices": ctx.choices,
                        "overrides": ctx.overrides}
    record = SweepJob(ctx.dir, Path(str(sweep_config.hydra.sweep.dir)),
                      list(OmegaConf.to_container(sweep_config.hydra.overrides.task)), num)
    return Job(num, list(overrides), sweep_config, task_cfg, ctx, record)


def job_return(job: Job, hydra_context: Any) -> JobReturn:
    """The JobReturn the basic launcher would give; the job callbacks see it end."""
    ret = JobReturn()
    ret.cfg = job.cfg
    ret.hydra_cfg = job.sweep_config
    ret.overrides = list(OmegaConf.to_container(job.sweep_config.hydra.overrides.task))
    ret.working_dir = os.getcwd()
    ret.task_name = str(job.sweep_config.hydra.job.name)
    ret.return_value = job.result
    ret.status = job.status
    hydra_context.callbacks.on_job_end(config=job.sweep_config, job_return=ret)
    return ret


def prepare_all(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Job]:
    """Every job prepared (directories, .hydra/, index records); the finished ones get their stored objective."""
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    Path(str(launcher.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    log.info("Launching %d jobs as populations", len(job_overrides))
    jobs = []
    for offset, overrides in enumerate(job_overrides):
        log.info("\t#%d : %s", initial_job_idx + offset, " ".join(filter_overrides(overrides)))
        job = prepare(launcher.hydra_context, launcher.config, overrides, initial_job_idx + offset,
                      getattr(launcher, "composed", None))
        launcher.hydra_context.callbacks.on_job_start(config=job.sweep_config, task_function=launcher.task_function)
        outside = job.record.outside_error()
        if outside is not None:  # as a basic-launcher job: its one line, failed in the sweep's index
            print_error(job, str(outside))
            job.record.fail(outside)
            job.extra["skipped"] = True
            jobs.append(job)
            continue
        done = job.record.finished_record()
        if done is not None:
            log.info("job %s already finished (sweep index): skipped", job.name)
            job.result, job.extra["skipped"] = done["objective"], True
        jobs.append(job)
    HydraConfig.instance().set_config(launcher.config)
    return jobs


def groups_of(jobs: list[Job], max_members: int) -> list[list[Job]]:
    """The unfinished jobs grouped by what they share, each group cut into programs of at most max_members."""
    by_key: dict[str, list[Job]] = {}
    for job in jobs:
        if not job.extra.get("skipped"):
            by_key.setdefault(plan.group_key(plain_config(job.cfg)), []).append(job)
    return [chunk for group in by_key.values() for chunk in plan.split(group, max_members)]


def print_error(job: Job, line: str) -> None:
    """A member's error as the one line a single run prints (``ganlab.errors.user_error_line``)."""
    print(f"ganlab: error: {job.name}: {line}", file=sys.stderr, flush=True)
