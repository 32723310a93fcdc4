"""The suite's own plumbing: tests marked xdist_group run on one xdist worker (the Slurm tests need that)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

PROBE = '''
import os, time, pytest

@pytest.mark.xdist_group("g")
@pytest.mark.parametrize("i", range(4))
def test_grouped(i):
    time.sleep(0.2)
    open(f"grouped_{i}.worker", "w").write(os.environ["PYTEST_XDIST_WORKER"])

@pytest.mark.parametrize("i", range(6))
def test_free(i):
    time.sleep(0.2)
    open(f"free_{i}.worker", "w").write(os.environ["PYTEST_XDIST_WORKER"])
'''

CONFTEST = f'''
import importlib.util
spec = importlib.util.spec_from_file_location("suite_conftest", {str(TESTS / "conftest.py")!r})
suite = importlib.util.module_from_spec(spec)
spec.loader.exec_module(suite)
pytest_collection_modifyitems = suite.pytest_collection_modifyitems
'''


def test_an_xdist_group_runs_on_one_worker_while_the_rest_spread(tmp_path: Path) -> None:
    """With the suite's conftest hook, all of group "g" lands on one worker; the ungrouped tests use both.

    Without the hook (pytest 9 with xdist 3.8) each grouped test was a scope of its own and they alternated."""
    (tmp_path / "test_probe.py").write_text(PROBE)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2",
                           "--dist", "loadgroup", "test_probe.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    grouped = {p.read_text() for p in tmp_path.glob("grouped_*.worker")}
    every = {p.read_text() for p in tmp_path.glob("*.worker")}
    assert len(list(tmp_path.glob("*.worker"))) == 10
    assert len(grouped) == 1, f"group g ran on {sorted(grouped)}"
    assert every == {"gw0", "gw1"}, f"the tests ran on {sorted(every)}"
