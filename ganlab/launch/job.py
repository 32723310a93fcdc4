"""One job of a multirun: skip it when finished, resume it when not, record it in the sweep index,
stop cleanly on preemption, and return the configured objective to the sweeper."""

from __future__ import annotations

import logging
import math
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig, OmegaConf, open_dict

from ganlab.config import run_context
from ganlab.errors import INTERRUPTED_EXIT, ConfigError, Preempted
from ganlab.launch.coordination import JobLock, SweepStopping
from ganlab.launch.preemption import INTERRUPT_SIGNALS, PREEMPT_SIGNALS, StopOnSignal
from ganlab.launch.sweep import SweepIndex

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


def process_rank() -> int:
    """This process's rank among the processes of one job: torchrun's ``RANK``, or a submitit job's task
    (``hydra.launcher.tasks_per_node=N``, before ``hardware.ddp`` exports it as ``RANK``); 0 for one process."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if "SUBMITIT_EXECUTOR" in os.environ:
        from submitit import JobEnvironment

        return JobEnvironment().global_rank
    return 0


def job_id(job_dir: Path, sweep_dir: Path) -> str:
    """A job's key in its sweep's index: its directory relative to the sweep's (absolute when outside it)."""
    try:
        return job_dir.relative_to(sweep_dir).as_posix()
    except ValueError:
        return str(job_dir)


class SweepJob:
    """One job's record in its sweep's index: skip it when finished, mark it running, finished, failed
    or preempted. The index lives in the sweep's directory; a job's id is its directory's path from there
    (``hydra.sweep.subdir`` resolved: one folder name by default, several with Hydra's
    ``${hydra.job.override_dirname}`` and a value holding a ``/``)."""

    def __init__(self, job_dir: Path, sweep_dir: Path, overrides: list[str], num: int | None) -> None:
        self.dir = Path(os.path.abspath(job_dir))
        self.job_id = job_id(self.dir, Path(os.path.abspath(sweep_dir)))
        self.index = SweepIndex(sweep_dir)
        self.record = {"dir": str(self.dir), "overrides": list(overrides), "num": num, "pid": os.getpid(),
                       "slurm_job_id": os.environ.get("SLURM_JOB_ID")}

    @classmethod
    def of_hydra(cls, hc: DictConfig) -> SweepJob:
        """The job Hydra is running now (``hc``: its HydraConfig)."""
        return cls(Path(str(hc.runtime.output_dir)), Path(str(hc.sweep.dir)), list(hc.overrides.task),
                   OmegaConf.select(hc, "job.num", default=None))

    def outside_error(self) -> ConfigError | None:
        """The error of a job whose folder is outside its sweep's: ``check_subdir`` refuses such a
        ``hydra.sweep.subdir`` written out (``/a/${hydra.job.num}``); one that only a resolver makes absolute
        (``${oc.env:RUNS}/${hydra.job.num}``) shows here, where the job's folder is known."""
        if not Path(self.job_id).is_absolute():
            return None
        return ConfigError(f"hydra.sweep.subdir put this job in {self.dir}, outside hydra.sweep.dir (where the sweep's "
                           "index is and ganlab.compare looks); use one folder per job inside it, e.g. "
                           "${hydra.job.num}")

    def finished_record(self) -> dict[str, Any] | None:
        """The index record of an earlier attempt that finished (its objective is reused), else None."""
        done = self.index.job(self.job_id)
        return done if done.get("status") == "finished" else None

    def lock(self) -> JobLock:
        """The lock its running process holds (``JobLock``): its first, where one job is several processes (DDP
        ranks: each runs this job; the others would wait for the first, which waits for them to join it)."""
        return JobLock(self.index.path.parent, self.job_id, enabled=process_rank() == 0)

    def say_waiting(self) -> None:
        """Log that another process runs this job and this one waits for it."""
        other = self.index.job(self.job_id)
        where = f"Slurm job {other['slurm_job_id']}" if other.get("slurm_job_id") else f"pid {other.get('pid')}"
        log.warning("job %s is running in another process (%s): waiting for it to end", self.job_id, where)

    def taken_over(self) -> dict[str, Any] | None:
        """Once the lock is held: the record of the process that was waited for, when it finished the job."""
        done = self.finished_record()
        if done is not None:
            log.info("job %s was finished by another process: its result taken", self.job_id)
        return done

    def start(self) -> None:
        """Mark the job running (one more attempt)."""
        attempts = int(self.index.job(self.job_id).get("attempts", 0)) + 1
        self.index.update(self.job_id, **{**self.record, "pid": os.getpid()}, status="running", error=None,
                          attempts=attempts, started=time.time())  # pid now: a population worker's, not its parent's

    def finish(self, final: dict[str, Any], objective_name: str) -> float:
        """Record the final metrics and the objective; return the objective."""
        value = objective_value(final, objective_name)
        metrics = {k: v for k, v in final.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        self.index.update(self.job_id, status="finished", metrics=metrics, objective=value,
                          objective_name=objective_name, finished=time.time())
        return value

    def fail(self, err: BaseException, **fields: Any) -> None:
        """Record the failure (the error as one line)."""
        self.index.update(self.job_id, status="failed", error=f"{type(err).__name__}: {err}", finished=time.time(),
                          **fields)

    def preempt(self, err: Preempted) -> None:
        """Record that the job stopped on a preemption signal after checkpointing ``err.step``."""
        self.index.update(self.job_id, status="preempted", error=str(err), stopped_at_step=err.step)
        log.warning("job %s %s; it resumes there when run again", self.job_id, err)


def resume_automatically(cfg: DictConfig) -> None:
    """A sweep job's run dir is its own: any checkpoint there is its progress (``resume=auto`` unless set)."""
    if cfg.get("resume") is None:
        with open_dict(cfg):
            cfg.resume = "auto"


def leave_preempted(stop: StopOnSignal) -> None:
    """Exit after a preemption: on SIGUSR2 let submitit checkpoint and requeue; on SIGTERM leave for Slurm's requeue;
    on Ctrl-C stop the whole command (the same command resumes it)."""
    handler = stop.previous_handler(stop.signum)
    if stop.signum == signal.SIGUSR2 and handler is not None:
        handler(stop.signum, None)  # submitit: checkpoint the submission, requeue, exit
    if stop.signum == signal.SIGINT:
        print("ganlab: interrupted (Ctrl-C); the same command resumes the sweep", file=sys.stderr, flush=True)
        raise SystemExit(INTERRUPTED_EXIT) from None
    # SIGTERM (scancel, scontrol requeue): leave without a result so Slurm's requeue reruns us
    raise SystemExit(PREEMPTED_EXIT) from None


def run_single_job(cfg: DictConfig, train: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """Run ``train(cfg)`` as a single run: Ctrl-C or SIGTERM checkpoints the step it is at and stops with a
    line on how to go on, rather than a traceback and the steps since the last checkpoint lost. Under DDP
    (torchrun passes its signals on to every rank) the ranks agree on the step (``ddp.agreed_stop``)."""
    stop = StopOnSignal(INTERRUPT_SIGNALS)
    try:
        with stop:
            return train(cfg, stop_requested=stop.requested)
    except Preempted as err:
        if os.environ.get("RANK", "0") == "0":  # one line, not one per DDP rank
            name = signal.Signals(stop.signum).name if stop.signum is not None else "a signal on another rank"
            print(f"ganlab: stopped by {name} after checkpointing step {err.step}; to go on, run the same "
                  f"command with resume={run_context(cfg).dir}", file=sys.stderr, flush=True)
        raise SystemExit(INTERRUPTED_EXIT if stop.signum == signal.SIGINT else PREEMPTED_EXIT) from None


def run_sweep_job(cfg: DictConfig, hc: DictConfig, train: Callable[..., dict[str, Any]]) -> float | None:
    """Run ``train(cfg)`` as one job of a multirun whose Hydra config is ``hc``; return its objective (None for a
    job of a stopping sweep: not begun, or stopped after checkpointing its step)."""
    job = SweepJob.of_hydra(hc)
    outside = job.outside_error()
    if outside is not None:
        job.fail(outside)  # in the sweep's index, so that its summary lists it and the command exits 2
        raise outside
    done = job.finished_record()
    if done is not None:
        log.info("job %s already finished (sweep index): skipped", job.job_id)
        return done["objective"]
    launcher = str(OmegaConf.select(hc, "launcher._target_", default=""))
    # a local_parallel worker: the launching process marks the sweep stopping on Ctrl-C or SIGTERM
    stopping = SweepStopping(hc.sweep.dir) if launcher.endswith("LocalParallelLauncher") else None
    if stopping is not None and stopping():
        log.info("job %s not begun: the sweep is stopping", job.job_id)
        return None
    # Ctrl-C too where a terminal's Ctrl-C reaches the job: in the command's own process or a local worker of it
    # (not a Slurm task)
    in_reach = launcher.endswith("BasicLauncher") or stopping is not None
    stop = StopOnSignal(INTERRUPT_SIGNALS if in_reach else PREEMPT_SIGNALS)
    requested = stop.requested if stopping is None else lambda: stop.requested() or stopping()
    with stop, job.lock() as lock:  # the index records what happened before the lock is let go
        if lock.wait(requested, on_wait=job.say_waiting):
            done = job.taken_over()
            if done is not None:
                return done["objective"]
            job.start()
            resume_automatically(cfg)
            try:
                final = train(cfg, stop_requested=requested)
                return job.finish(final, cfg.objective)
            except Preempted as err:
                job.preempt(err)
            except Exception as err:
                job.fail(err)
                raise
    # stopped by a signal: after checkpointing its step, or while it waited for another process (not begun)
    if stopping is not None and stop.signum in (None, signal.SIGINT):
        return None  # the launching process says it, once, and stops the command (launch.parallel)
    leave_preempted(stop)
