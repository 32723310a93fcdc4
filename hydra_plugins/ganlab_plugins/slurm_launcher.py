"""``launcher=slurm``: hydra-submitit-launcher's SlurmLauncher, which does not submit again the jobs of a sweep
that finished or still run in Slurm when the same command is run again (ganlab.launch.slurm_rerun).
Import-light: Hydra imports every plugin at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from hydra.core.utils import JobReturn

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher


class SlurmLauncher(SubmititSlurmLauncher):
    """hydra-submitit's keys unchanged; with no job of the sweep finished or running, its launch unchanged."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from ganlab.launch.slurm_rerun import earlier_jobs, launch_around_earlier

        finished, running = earlier_jobs(Path(str(self.config.hydra.sweep.dir)), job_overrides, initial_job_idx)
        if not finished and not running:
            return super().launch(job_overrides, initial_job_idx)
        return launch_around_earlier(self, finished, running, job_overrides, initial_job_idx)
