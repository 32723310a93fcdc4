"""Imported by the workers' forkserver alone (the last of ``warm.PRELOAD``): it ends without Python's teardown.

The forkserver exits when the launching process has (it reads EOF on a pipe the launching process held).
Finalizing an interpreter that has imported torch and torch._dynamo took it 0.8 s (2026-12-04, 2-core
AMD EPYC), and for that time it held the command's stdout and stderr open, which every worker inherits
from it: a caller reading them (a subprocess pipe, CI, benchmarks/population.py) waited 0.8 s for a
command that had ended. Nothing in the server needs tearing down: it never ran a torch op, writes no
files, and its workers leave through multiprocessing's ``os._exit``, never through atexit.
"""

from __future__ import annotations

import atexit
import os

from ganlab.quick_exit import flush_output


def exit_now() -> None:
    """Flush what was written, then leave without finalizing the interpreter (nor running the other atexit
    handlers: unlike a command's ``quick_exit.leave``, nothing here needs them)."""
    flush_output()
    os._exit(0)


atexit.register(exit_now)  # the last registered runs first: before multiprocessing's and torch's own
