"""Leave a finished command at once: what a normal exit does, then ``os._exit``, without the interpreter's teardown.

A process that imported torch spends ~0.45 s after its last line tearing the interpreter down (module
dictionaries, torch's C++ statics), ~0.7 s once torch._dynamo is loaded (the first torch.optim optimizer loads
it): ``python -m ganlab`` ended 0.86-0.95 s after its last line (2026-12-05, AMD EPYC, torch 2.14), every run
and every sweep, and the test suite starts several hundred of them. That teardown only frees memory, which the
kernel frees anyway. Everything a normal exit does before it is done here, in the same order: threading's exit
hooks and the other non-daemon threads joined, the atexit handlers run (logging's flush and close,
multiprocessing's and loky's worker shutdown, W&B's, weakref finalizers), stdout and stderr flushed; then the
process ends with main's status.

Only where a command ends (the ``__main__`` blocks and the console script), never inside ``main()``, which
tests call in their own process; an unexpected exception takes the interpreter's own way out (its traceback).
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import Callable, NoReturn


def run_and_leave(main: Callable[[], int | None]) -> NoReturn:
    """``main()``, then ``leave`` with its status (its return value, or a SystemExit's code)."""
    try:
        code = main()
    except SystemExit as stop:
        code = stop.code
    leave(code)


def leave(code: int | str | None = 0) -> NoReturn:
    """End the process with status ``code`` as ``sys.exit(code)`` would, skipping only the interpreter's teardown."""
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"): the message on stderr, status 1
        print(code, file=sys.stderr)
        code = 1
    # the interpreter's own first two steps of an exit, in its order: threading's exit hooks (those of
    # concurrent.futures' and loky's executors, which let their idle workers go) and the joining of non-daemon
    # threads (a bare join would wait forever on such idle workers: local_parallel's loky pool hung so), then
    # the atexit handlers, last registered first
    threading._shutdown()
    atexit._run_exitfuncs()
    flush_output()
    os._exit(code)


def flush_output() -> None:
    """Write out what stdout and stderr hold: ``os._exit`` does not (also forkserver_exit's)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed, None, or replaced by an object without flush
            pass
