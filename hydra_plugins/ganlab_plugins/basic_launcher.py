"""``launcher=basic``: Hydra's basic launcher (the jobs one after another in this process), except that a job
another process is running now (the same sweep command in a second terminal) is put off until the end
(ganlab.launch.job_order), so that two such commands split the sweep. Import-light: Hydra imports every plugin
at start-up."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from hydra._internal.core_plugins.basic_launcher import BasicLauncher as HydraBasicLauncher
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from omegaconf import open_dict

log = logging.getLogger(__name__)


class BasicLauncher(HydraBasicLauncher):
    """Hydra's ``launch`` loop (hydra-core 1.3), run in ``job_order``; the results in job order, as Hydra's."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from ganlab.launch.job_order import job_order, running_elsewhere

        setup_globals()
        assert self.hydra_context is not None and self.config is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(job_overrides)} jobs locally")

        said: set[int] = set()

        def busy(position: int) -> bool:
            job_id = running_elsewhere(sweep_dir, job_overrides[position], initial_job_idx + position)
            if job_id is not None and position not in said:  # once: the put-off ones are looked at again
                log.info(f"\t#{initial_job_idx + position} : runs in another process now (job {job_id}): put off")
                said.add(position)
            return job_id is not None

        runs: dict[int, JobReturn] = {}
        for position in job_order(len(job_overrides), busy):
            idx = initial_job_idx + position
            overrides = job_overrides[position]
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = idx
                sweep_config.hydra.job.num = idx
            runs[position] = run_job(hydra_context=self.hydra_context, task_function=self.task_function,
                                     config=sweep_config, job_dir_key="hydra.sweep.dir",
                                     job_subdir_key="hydra.sweep.subdir")
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return [runs[position] for position in range(len(job_overrides))]
