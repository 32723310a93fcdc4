"""torch.profiler around a run's loop (``debug=profile``): a trace and a table of the costliest ops in
``<run dir>/profile/``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

log = logging.getLogger(__name__)


@contextmanager
def profiled(out_dir: Path, device: torch.device, record_shapes: bool = False, with_stack: bool = False,
             row_limit: int = 30) -> Iterator[None]:
    """Profile the body (CPU, and CUDA on a GPU); write ``trace.json`` and ``top_ops.txt`` to ``out_dir``.

    The files are written also when the body fails: a trace of a crash is still a trace.
    """
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    prof = profile(activities=activities, record_shapes=record_shapes, with_stack=with_stack)
    try:
        with prof:
            yield
    finally:
        out_dir.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(out_dir / "trace.json"))
        table = prof.key_averages().table(sort_by="self_device_time_total" if cuda else "self_cpu_time_total",
                                          row_limit=row_limit)
        (out_dir / "top_ops.txt").write_text(table + "\n")
        log.info("profile: %s (open in https://ui.perfetto.dev), costliest ops in %s",
                 out_dir / "trace.json", out_dir / "top_ops.txt")
