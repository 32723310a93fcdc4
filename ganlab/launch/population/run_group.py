"""Train one group of prepared jobs: as a population where they can share a program, alone where not.

Used in the launching process (``launcher=population``) and inside a Slurm task
(``launcher=slurm_population``, ``PackTask``). Each job's sweep-index record goes through the
same states as a basic-launcher job's (running, then finished, failed or preempted), and a job's
error is the one line a single run prints: a GanlabError or a path OSError (a folder in the way, a full
disk) fails that job and the others go on; any other exception is a bug and its traceback.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any, Iterator

from omegaconf import OmegaConf

from ganlab.build import build_data, build_evaluator
from ganlab.config import RunContext
from ganlab.errors import Preempted, user_error_line
from ganlab.launch.job import SweepJob, leave_preempted, resume_automatically
from ganlab.launch.population import plan
from ganlab.launch.population.jobs import Job, print_error
from ganlab.launch.population.members import Member, build_member, open_tracker
from ganlab.launch.population.trainer import train_population
from ganlab.launch.preemption import StopOnSignal
from ganlab.progress import worker_bar
from ganlab.train import train

log = logging.getLogger(__name__)


def train_group(jobs: list[Job], stop: StopOnSignal | None = None, worker: int | None = None,
                put_off: bool = False) -> bool | None:
    """Train ``jobs`` (one group: they share data, model family, schedule); True when preempted.
    ``worker``: the slot of the worker process training them (None: the launching process).
    ``put_off``: when another process runs one of the jobs now (the same sweep in a second terminal), do
    nothing and return None instead of waiting for it (``train_programs``)."""
    if stop is not None:  # the caller (a Slurm task) holds the signals
        return _train_group(jobs, stop, worker, put_off)
    with StopOnSignal() as own:
        return _train_group(jobs, own, worker, put_off)


def train_programs(programs: list[list[Job]], stop: StopOnSignal) -> bool:
    """Train the programs one after another in this process; True when preempted.

    A program some of whose jobs another process runs now (the same sweep command in a second terminal, on
    a second GPU say) is put off while others are free, so two commands split the sweep's programs instead
    of taking turns; when only such programs are left, the first is waited for (then its results are taken
    or its jobs resumed), as ``launcher=basic`` does with a job (ganlab.launch.job_order)."""
    pending, said = list(programs), set()
    while pending:
        for program in pending:
            preempted = train_group(program, stop, put_off=True)
            if preempted is not None:
                break
            if id(program) not in said:
                said.add(id(program))
                log.info("a program of %d jobs (%s, ...) runs in another process now: put off", len(program),
                         program[0].name)
        else:  # every one left runs elsewhere: wait for the first
            program = pending[0]
            preempted = train_group(program, stop)
        pending.remove(program)
        if preempted:
            return True
    return False


def _train_group(jobs: list[Job], stop: StopOnSignal, worker: int | None, put_off: bool = False) -> bool | None:
    with contextlib.ExitStack() as held:  # each job's lock (JobLock), let go once its record says how it ended
        taken = set()  # ids of the jobs another process finished while this one waited
        for job in sorted(jobs, key=lambda j: j.name):  # one order for every process: none waits on a waiter
            lock = held.enter_context(job.record.lock())
            if put_off:
                if not lock.take():
                    return None  # another process runs this job now: nothing begun, the locks taken so far let go
            elif not lock.wait(stop.requested, on_wait=job.record.say_waiting):
                return True  # stopped while another process ran this job: none of the group begun
            done = job.record.taken_over()
            if done is not None:
                job.result = done["objective"]
                taken.add(id(job))
        ready = [job for job in jobs if id(job) not in taken]  # the program's own order (by z_size)
        return _train_ready(ready, stop, worker) if ready else False


def _train_ready(jobs: list[Job], stop: StopOnSignal, worker: int | None) -> bool:
    for job in jobs:
        job.record.start()
        resume_automatically(job.cfg)
    try:
        data = build_data(jobs[0].cfg)
    except Exception as err:
        if user_error_line(err) is None:
            raise
        for job in jobs:
            _fail(job, err)
        return False
    members: list[Member] = []
    alone: list[Job] = []
    by_name = {job.name: job for job in jobs}
    for job in jobs:
        try:
            member = build_member(job.cfg, job.ctx, data, job.record)
        except Exception as err:
            if user_error_line(err) is None:
                raise
            _fail(job, err)
            continue
        reason = plan.alone_reason(member.config, member.run)
        if reason is not None or len(jobs) == 1:
            log.info("job %s trains alone: %s", job.name, reason or "the only member of its group")
            alone.append(job)
        else:
            members.append(member)
    preempted = False
    for start in sorted({m.start_step for m in members}):  # members resumed at different steps: one program each
        same = [m for m in members if m.start_step == start]
        preempted |= _train_members(same, by_name, stop, worker)
        if preempted:
            return True
    for job in alone:
        preempted |= _train_alone(job, stop, worker)
        if preempted:
            return True
    return False


def _train_members(members: list[Member], by_name: dict[str, Job], stop: StopOnSignal, worker: int | None) -> bool:
    if len(members) == 1:
        return _train_alone(by_name[members[0].name], stop, worker)
    try:
        evaluator = build_evaluator(members[0].cfg, members[0].run.data, members[0].run.device)
        for member in members:
            open_tracker(member)
        log.info("population of %d members (%s), steps %d -> %d", len(members),
                 ", ".join(m.name for m in members), members[0].start_step, members[0].run.total_steps)
        for member in members:
            member_log(by_name[member.name], f"trains in a population of {len(members)} members "
                       f"({', '.join(m.name for m in members)}), steps {member.start_step} -> {member.run.total_steps}")
        outcomes = train_population(members, evaluator, stop.requested, worker)
    except BaseException as err:
        for member in members:
            if member.tracker is not None:
                member.tracker.finish(exit_code=1)
            _fail(by_name[member.name], err)
        if user_error_line(err) is not None:
            return False
        raise
    preempted = False
    for member in members:
        job, outcome = by_name[member.name], outcomes[member.name]
        if isinstance(outcome.error, Preempted):
            member_log(job, str(outcome.error))
            job.record.preempt(outcome.error)
            member.tracker.finish(exit_code=1, preempted=True)
            preempted = True
        elif outcome.error is not None:
            member.tracker.finish(exit_code=1)
            _fail(job, outcome.error)
        else:
            member.tracker.summary(outcome.final)
            member.tracker.finish(exit_code=0)
            try:
                job.result = job.record.finish(outcome.final, member.cfg.objective)
                line = f"finished at step {outcome.final['step']}, {member.cfg.objective} {job.result:.4g}"
                member_log(job, line)
                print(f"ganlab: {job.name}: {line}", flush=True)
            except Exception as err:
                if user_error_line(err) is None:
                    raise
                _fail(job, err)
    return preempted


@contextlib.contextmanager
def job_log_file(job: Job) -> Iterator[None]:
    """The run's log records also in the job's ganlab.log, as Hydra's job logging writes them for a basic job."""
    handler = logging.FileHandler(job.ctx.dir / "ganlab.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def _train_alone(job: Job, stop: StopOnSignal, worker: int | None = None) -> bool:
    """An ordinary run of the job (what the basic launcher does), with its bookkeeping; in a worker, its
    progress bar on the worker's row (as the worker's populations'), not over worker 0's."""
    label, row = worker_bar("train", worker)
    try:
        with job_log_file(job):
            final = train(job.cfg, stop_requested=stop.requested, progress_label=label, progress_position=row)
        job.result = job.record.finish(final, job.cfg.objective)
    except Preempted as err:
        job.record.preempt(err)
        return True
    except Exception as err:
        if user_error_line(err) is None:
            job.record.fail(err)
            raise
        _fail(job, err)
    return False


def member_log(job: Job, message: str) -> None:
    """A line in the job's own ganlab.log (a basic-launcher job's log file; a population logs for many)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with open(job.ctx.dir / "ganlab.log", "a", encoding="utf-8") as f:
        f.write(f"[{stamp}][ganlab.launch.population][INFO] - {message}\n")


def _fail(job: Job, err: BaseException) -> None:
    member_log(job, f"failed: {type(err).__name__}: {err}")
    job.record.fail(err)
    line = user_error_line(err)
    if line is not None:
        print_error(job, line)
        job.result = None  # as a basic-launcher job's config error: the sweeper sees None, the index the error


class PackTask:
    """A Slurm task's work: one packed group of jobs (plain specs) trained as a population.

    ``checkpoint`` makes submitit requeue the same pack after a timeout/preemption signal; each
    member then resumes from the checkpoint it wrote at the signal (``resume=auto``).
    """

    def __call__(self, specs: list[dict[str, Any]]) -> dict[str, Any]:
        import ganlab  # noqa: F401  (resolvers and the sweep source, before any config is read)

        jobs = [job_of(spec) for spec in specs]
        stop = StopOnSignal()
        with stop:
            preempted = train_group(jobs, stop)
        if preempted:
            leave_preempted(stop)
        return {job.name: job.result for job in jobs}

    def checkpoint(self, specs: list[dict[str, Any]]) -> Any:
        """submitit's hook on a timeout signal: run the same pack again (its members resume)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, specs)


def job_of(spec: dict[str, Any]) -> Job:
    """The job back from ``Job.spec()`` (in a Slurm task or a spawned worker)."""
    cfg = OmegaConf.create(spec["cfg"])
    run = cfg.run
    ctx = RunContext(Path(run.dir), run.name, run.group, dict(run.choices), list(run.overrides))
    sweep_dir = Path(spec.get("sweep_dir") or Path(spec["dir"]).parent)  # a spec pickled before it had one
    record = SweepJob(Path(spec["dir"]), sweep_dir, list(run.overrides), spec["num"])
    return Job(spec["num"], spec["overrides"], None, cfg, ctx, record)
