"""One job of a multirun: skip it when finished, resume it when not, record it in the sweep index,
stop cleanly on preemption, and return the configured objective to the sweeper."""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf, open_dict

from ganlab.errors import ConfigError
from ganlab.launch.preemption import StopOnSignal
from ganlab.launch.sweep import SweepIndex
from ganlab.loop import Preempted

log = logging.getLogger(__name__)

PREEMPTED_EXIT = 143  # 128 + SIGTERM, what a killed job would report


def objective_value(final: dict[str, Any], metric: str) -> float:
    """The final metric a run hands back to Hydra (and so to Optuna).

    ``d_gap`` = |D(x) - D(G(z))| at the last step, a stand-in until a sample-quality metric
    lands: 0 when D cannot tell real from fake (but also when D is degenerate, as in
    ``experiment=seed``). Any other name is a final logged metric (``g_loss``, ``d_loss``, ...).
    """
    values = dict(final)
    if "d_real" in values and "d_fake" in values:
        values["d_gap"] = abs(values["d_real"] - values["d_fake"])
    if metric not in values or not isinstance(values[metric], (int, float)):
        known = ", ".join(sorted(k for k, v in values.items() if isinstance(v, (int, float))))
        raise ConfigError(f"objective={metric!r} is not a final metric of this run (known: {known})")
    return float(values[metric])


def _job_info(hc: DictConfig) -> dict[str, Any]:
    output_dir = Path(str(hc.runtime.output_dir))
    return {
        "job_id": output_dir.name,
        "sweep_dir": output_dir.parent,  # hydra.sweep.subdir is one component: ${ganlab_job_id:}
        "record": {
            "dir": str(output_dir),
            "overrides": list(hc.overrides.task),
            "num": OmegaConf.select(hc, "job.num", default=None),
            "pid": os.getpid(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        },
    }


def run_sweep_job(cfg: DictConfig, hc: DictConfig, train: Callable[..., dict[str, Any]]) -> float:
    """Run ``train(cfg)`` as one job of a multirun whose Hydra config is ``hc``; return its objective."""
    info = _job_info(hc)
    index, job_id = SweepIndex(info["sweep_dir"]), info["job_id"]
    done = index.job(job_id)
    if done.get("status") == "finished":
        log.info("job %s already finished (sweep index): skipped", job_id)
        return done["objective"]
    attempts = int(done.get("attempts", 0)) + 1
    index.update(job_id, **info["record"], status="running", error=None, attempts=attempts, started=time.time())
    if cfg.get("resume") is None:
        with open_dict(cfg):
            cfg.resume = "auto"  # the run dir is this job's own: any checkpoint there is its progress
    stop = StopOnSignal()
    try:
        with stop:
            final = train(cfg, stop_requested=stop.requested)
        value = objective_value(final, cfg.objective)
    except Preempted as err:
        index.update(job_id, status="preempted", error=str(err), stopped_at_step=err.step)
        log.warning("job %s %s; it resumes there when run again", job_id, err)
        handler = stop.previous_handler(stop.signum)
        if stop.signum == signal.SIGUSR2 and handler is not None:
            handler(stop.signum, None)  # submitit: checkpoint the submission, requeue, exit
        # SIGTERM (scancel, scontrol requeue): leave without a result so Slurm's requeue reruns us
        raise SystemExit(PREEMPTED_EXIT) from None
    except Exception as err:
        index.update(job_id, status="failed", error=f"{type(err).__name__}: {err}", finished=time.time())
        raise
    metrics = {k: v for k, v in final.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    index.update(job_id, status="finished", metrics=metrics, objective=value,
                 objective_name=cfg.objective, finished=time.time())
    return value
