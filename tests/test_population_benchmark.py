"""benchmarks/population_core.py runs end to end at a tiny size (its numbers are printed, never asserted)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.fixture(scope="session")
def classifier_cache() -> None:
    """Overrides conftest's autouse fixture for this file: nothing here evaluates a model."""


def test_population_core_prints_a_row_per_contender_and_k():
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "population_core.py"), "--ks", "1,2",
                           "--steps", "2", "--repeats", "1", "--threads", "1", "--middle", "16", "--z", "4"],
                          capture_output=True, text=True, timeout=300, cwd=REPO, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = re.findall(r"^(single|stacked|vmap|prototype)\s+1\s+(\d+)\s+(\d+\.\d+)", proc.stdout, re.MULTILINE)
    assert {(name, int(k)) for name, k, _ in rows} == {("single", 1)} | {
        (name, k) for name in ("stacked", "vmap", "prototype") for k in (1, 2)}
    assert all(float(ms) > 0 for _, _, ms in rows)
