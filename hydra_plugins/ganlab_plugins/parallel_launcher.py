"""``launcher=local_parallel``: hydra-joblib-launcher's launcher, made to stop a sweep cleanly on Ctrl-C.

Joblib answers a KeyboardInterrupt in the launching process by killing its workers mid-step: every running job
lost its steps since its last checkpoint and stayed "running" in the sweep index. This launcher turns Ctrl-C and
SIGTERM into "checkpoint and stop" (ganlab.launch.parallel). Import-light: Hydra imports every plugin at start-up.
"""

from __future__ import annotations

from typing import Sequence

from hydra.core.utils import JobReturn

from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher


class LocalParallelLauncher(JoblibLauncher):
    """Joblib's keys (``n_jobs``, ...) unchanged."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from ganlab.launch.parallel import launch_stoppably

        return launch_stoppably(self, job_overrides, initial_job_idx)
