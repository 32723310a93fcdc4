"""Preemption: turn Slurm's SIGTERM (scancel, ``scontrol requeue``) and pre-timeout SIGUSR2 into a
checkpoint at the exact step, instead of dying mid-step; and, where a person runs ganlab at a terminal
(a single run, the basic launcher's jobs), Ctrl-C (SIGINT) too: a second Ctrl-C stops at once.

The signal handler only sets a flag; the training loop checks it at the bottom of each step, saves
a checkpoint of that step and raises ``ganlab.errors.Preempted``. The job then exits; when Slurm runs it again
it resumes from that checkpoint (``resume=auto`` on the job's config-derived run directory).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any, Callable

PREEMPT_SIGNALS = (signal.SIGTERM, signal.SIGUSR2)
INTERRUPT_SIGNALS = (*PREEMPT_SIGNALS, signal.SIGINT)


class StopOnSignal:
    """Context manager: while active, SIGTERM/SIGUSR2 set a flag instead of running their handlers.

    ``previous_handler(signum)`` gives the handler that was installed before (submitit's USR2
    handler checkpoints the submission and requeues the job), to call once training has stopped.
    """

    def __init__(self, signals: tuple[int, ...] = PREEMPT_SIGNALS,
                 on_signal: Callable[[int], None] | None = None) -> None:
        self.signals = signals
        self.on_signal = on_signal  # called with the signal, in the handler (keep it short: a file touched)
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def requested(self) -> bool:
        """True once a preemption signal arrived."""
        return self.signum is not None

    def _flag(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        if signum == signal.SIGINT:  # the next Ctrl-C does what it did before (KeyboardInterrupt): no waiting
            signal.signal(signum, self._previous[signum])
        if self.on_signal is not None:
            self.on_signal(signum)

    def previous_handler(self, signum: int) -> Callable[[int, FrameType | None], Any] | None:
        """The handler of ``signum`` from before this context (None when it was the default/ignore)."""
        handler = self._previous.get(signum)
        return handler if callable(handler) else None

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():  # signals only reach the main thread
            for signum in self.signals:
                self._previous[signum] = signal.signal(signum, self._flag)
        return self

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
