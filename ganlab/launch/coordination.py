"""How the processes of one sweep keep out of each other's way: one writer per job (``JobLock``), and a
command told to stop telling the jobs it runs in other processes (``SweepStopping``). Both live as files in
the sweep's folder, so they work across processes and, with a shared file system, across Slurm nodes."""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock, Timeout

STOPPING_NAME = ".stopping"  # see SweepStopping
RUNNING_DIR = ".running"  # the jobs' locks: see JobLock


class SweepStopping:
    """``<sweep dir>/.stopping``: the command was told to stop (Ctrl-C, SIGTERM) and waits for the jobs it runs
    in other processes (``launcher=local_parallel``) to checkpoint. Those jobs look for it, as well as for
    signals of their own (``kill -INT`` reaches the launching process alone): a running job stops at its next
    step, one not begun does not begin. Calling it looks at the file at most every ``every_s`` seconds (a
    stat per step would cost a CUDA-graphed step a few percent); once seen it stays seen."""

    def __init__(self, sweep_dir: str | Path, every_s: float = 0.2) -> None:
        self.path = Path(sweep_dir) / STOPPING_NAME
        self.every_s = every_s
        self._seen = False
        self._next_look = 0.0

    def mark(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)

    def __call__(self) -> bool:
        if not self._seen and time.monotonic() >= self._next_look:
            self._seen = self.path.exists()
            self._next_look = time.monotonic() + self.every_s
        return self._seen


class JobLock:
    """Held by the process that runs a job, while it runs it: a second process asked to run the same job (the
    same sweep command in another terminal, or run again after a Ctrl-C left its Slurm jobs going) waits for the
    first, then takes its result or goes on from its checkpoint; two processes writing one run folder would
    interleave its logs and checkpoints (launcher=basic first puts such a job off until its other jobs are done:
    ganlab.launch.job_order; launcher=population in one process a program: run_group.train_programs). The lock
    is the kernel's (flock): a process that dies lets go of it. A file system without locks (some network mounts)
    runs the job unlocked, as before, with a warning."""

    def __init__(self, sweep_dir: str | Path, job_id: str, poll_s: float = 0.5, enabled: bool = True) -> None:
        self.path = Path(sweep_dir) / RUNNING_DIR / f"{hashlib.sha1(job_id.encode()).hexdigest()[:16]}.lock"
        self.job_id = job_id
        self.poll_s = poll_s
        self.enabled = enabled  # False: another process of the same job holds it (a DDP rank > 0)
        self._lock = FileLock(self.path)
        self.held = False

    def wait(self, give_up: Callable[[], bool], on_wait: Callable[[], None]) -> bool:
        """Take the lock, waiting (``on_wait()`` once) while another process holds it; False, not holding it,
        when ``give_up()`` first (a stop signal while waiting)."""
        waited = False
        while not self.take(timeout=self.poll_s if waited else 0):
            if not waited:
                on_wait()
                waited = True
            if give_up():
                return False
        return True

    def take(self, timeout: float = 0) -> bool:
        """Take the lock if no other process holds it (within ``timeout`` seconds); whether this process holds it
        now. Where flock is refused the job runs unlocked, with a warning (True). Taking it again while held is a
        no-op: filelock counts acquisitions, and a second one would keep the lock past the one release."""
        if not self.enabled or self.held:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=timeout)
        except Timeout:
            return False
        except OSError as err:  # not a Timeout (caught above): flock refused
            print(f"ganlab: warning: no lock for job {self.job_id} ({self.path}: {err.strerror}); it runs "
                  "unlocked: do not run the same sweep twice at once", file=sys.stderr, flush=True)
            return True
        self.held = True
        return True

    def held_elsewhere(self) -> bool:
        """Whether another process holds the lock now (a look: taken and let go at once when free)."""
        if not self.path.parent.is_dir():
            return False
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return True
        except OSError:  # no flock here: nothing can be known, as JobLock.wait runs such jobs unlocked
            return False
        self._lock.release()
        return False

    def __enter__(self) -> "JobLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.held:
            self._lock.release()
            self.held = False
