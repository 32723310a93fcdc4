"""Jobs in local worker processes (``launcher=local_parallel``, joblib/loky) that stop cleanly.

A terminal's Ctrl-C reaches the whole foreground process group. In each worker the job's own handler
(``run_sweep_job``) checkpoints the step it is at; here, instead of a KeyboardInterrupt that makes joblib kill
the workers mid-step, the handler marks the sweep stopping (``SweepStopping``): jobs not begun do not begin,
and running ones stop too where the signal reached this process alone (``kill -INT``, SIGTERM). Once every job
returned, the command stops with one line; the same command resumes the sweep. A second Ctrl-C stops at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from hydra.core.utils import JobReturn

from ganlab.launch.coordination import SweepStopping
from ganlab.launch.job import leave_preempted
from ganlab.launch.preemption import INTERRUPT_SIGNALS, StopOnSignal


def launch_stoppably(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
    """hydra-joblib-launcher's launch, with Ctrl-C, SIGTERM and SIGUSR2 turned into "checkpoint every job, stop"."""
    from hydra_plugins.hydra_joblib_launcher import _core

    stopping = SweepStopping(Path(str(launcher.config.hydra.sweep.dir)))
    stopping.clear()  # left by an earlier command of this sweep that was stopped twice
    with StopOnSignal(INTERRUPT_SIGNALS, on_signal=lambda signum: stopping.mark()) as stop:
        returns = list(_core.launch(launcher=launcher, job_overrides=job_overrides, initial_job_idx=initial_job_idx))
    stopping.clear()
    if stop.requested():
        leave_preempted(stop)
    return returns
