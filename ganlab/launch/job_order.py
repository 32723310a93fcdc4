"""The order in which one command runs its sweep's jobs when another process runs the same sweep.

The same sweep command started in two terminals (each with a GPU of its own, say) used to run every job in
turn: the second waited on the first's job lock (``JobLock``), took its result, and reached the next job as
the first did, so one of them trained and the other waited. Run in this order, a job another process is
running now is put off until the end (by then usually finished: its result is taken), so the two commands
split the sweep between them, each job trained once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ganlab.launch.coordination import JobLock
from ganlab.launch.sweep import SweepIndex


def records_by_job(sweep_dir: str | Path) -> dict[tuple[tuple[str, ...], Any], tuple[str, dict[str, Any]]]:
    """The sweep index's records keyed as a launcher knows its jobs: (overrides, job number) -> (job id, record)."""
    records = SweepIndex.peek(sweep_dir)["jobs"]
    return {(tuple(r.get("overrides") or ()), r.get("num")): (job_id, r) for job_id, r in records.items()}


def runs_elsewhere(sweep_dir: str | Path, job_id: str | None, record: dict[str, Any]) -> bool:
    """Whether job ``job_id`` (its index ``record``) runs in another process now: recorded running and its lock
    held (not: not begun, ended, or recorded running by a process that is gone)."""
    return job_id is not None and record.get("status") == "running" and JobLock(sweep_dir, job_id).held_elsewhere()


def running_elsewhere(sweep_dir: str | Path, overrides: Sequence[str], num: int) -> str | None:
    """The id of the job (these overrides, this number) when it runs in another process now (``runs_elsewhere``);
    else None."""
    job_id, record = records_by_job(sweep_dir).get((tuple(overrides), num), (None, {}))
    return job_id if runs_elsewhere(sweep_dir, job_id, record) else None


def job_order(count: int, busy: Callable[[int], bool]) -> Iterator[int]:
    """Positions 0..count-1: in order, except that one ``busy`` when its turn comes is put off until the end; the
    put-off ones then go free ones first, else the earliest (whose run waits for the other process)."""
    put_off = []
    for position in range(count):
        if busy(position):
            put_off.append(position)
        else:
            yield position
    while put_off:
        position = next((p for p in put_off if not busy(p)), put_off[0])
        put_off.remove(position)
        yield position
