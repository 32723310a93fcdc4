"""ganlab.quick_exit: a finished command leaves as a normal exit would (threads joined, atexit handlers run,
output flushed, its status) without the interpreter's teardown, which costs ~0.9 s once torch is loaded."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from conftest import REPO

SCRIPT = textwrap.dedent("""
    import atexit, sys, threading, time
    from concurrent.futures import ThreadPoolExecutor
    from ganlab.quick_exit import leave, run_and_leave

    class Teardown:
        def __del__(self):
            print("torn down", flush=True)

    kept = Teardown()  # a module global: deleted by the interpreter's teardown alone
    atexit.register(lambda: print("atexit handler ran"))  # unflushed: only the exit's flush writes it
    threading.Thread(target=lambda: (time.sleep(0.3), print("thread finished", flush=True))).start()
    pool = ThreadPoolExecutor(1)  # never shut down: its idle worker goes when threading's exit hook tells it
    pool.submit(time.sleep, 0.01).result()
    {end}
""")


def run(end: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT.format(end=end)], capture_output=True, text=True, cwd=REPO,
                          timeout=60, check=False)  # a hang (an idle executor's worker joined blindly) times out


def test_leave_does_what_an_exit_does_but_the_teardown():
    normal = run("sys.exit(3)")  # the interpreter's own exit: the same, and the teardown
    assert normal.returncode == 3 and normal.stdout == "thread finished\natexit handler ran\ntorn down\n"
    quick = run("leave(3)")
    assert quick.returncode == 3 and quick.stdout == "thread finished\natexit handler ran\n", quick


@pytest.mark.parametrize(("end", "status", "stderr"), [
    ("run_and_leave(lambda: None)", 0, ""), ("run_and_leave(lambda: 2)", 2, ""),
    ("run_and_leave(lambda: sys.exit(130))", 130, ""),
    ("run_and_leave(lambda: sys.exit('bad input'))", 1, "bad input\n")])
def test_run_and_leave_exits_with_mains_status(end, status, stderr):
    proc = run(end)
    assert (proc.returncode, proc.stderr, proc.stdout) == (status, stderr, "thread finished\natexit handler ran\n")
