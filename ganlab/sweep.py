"""Sweep identity and bookkeeping: config-derived sweep/job directory names and the sweep index.

A sweep's directory is named from the sweep file and a hash of the command's overrides, and each
job's directory from a hash of its own overrides, so re-running the same command finds the same
directories (finished jobs are skipped, unfinished ones resume) while different sweeps started in
the same second never share one.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from filelock import FileLock
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

INDEX_NAME = "sweep_index.json"
# overrides that do not change what a job computes, so they do not change its identity
IDENTITY_EXCLUDED = ("resume",)


def overrides_hash(overrides: list[str]) -> str:
    """A short stable hash of a list of overrides (order-independent)."""
    kept = sorted(o for o in overrides if o.lstrip("+~").split("=", 1)[0] not in IDENTITY_EXCLUDED)
    return hashlib.sha1("\n".join(kept).encode()).hexdigest()[:10]


def sweep_dir_name(*, _root_: DictConfig) -> str:
    """``<sweep file or "multirun">-<hash of the command's overrides>`` (resolver ``ganlab_sweep_name``)."""
    name = OmegaConf.select(_root_, "hydra.runtime.choices.sweep", default=None) or "multirun"
    task = list(OmegaConf.select(_root_, "hydra.overrides.task", default=[]) or [])
    return f"{name}-{overrides_hash(task)}"


def job_dir_name(*, _root_: DictConfig) -> str:
    """``job-<hash of this job's overrides>`` (resolver ``ganlab_job_id``)."""
    task = list(OmegaConf.select(_root_, "hydra.overrides.task", default=[]) or [])
    return f"job-{overrides_hash(task)}"


def register_resolvers() -> None:
    """Register the ``${ganlab_sweep_name:}`` and ``${ganlab_job_id:}`` resolvers (idempotent)."""
    if not OmegaConf.has_resolver("ganlab_sweep_name"):
        OmegaConf.register_new_resolver("ganlab_sweep_name", sweep_dir_name)
    if not OmegaConf.has_resolver("ganlab_job_id"):
        OmegaConf.register_new_resolver("ganlab_job_id", job_dir_name)


class PinSweepDir(Callback):
    """Hydra callback: resolve ``hydra.sweep.dir`` once, in the launching process, and pin it.

    Every job recomposes its config with its own overrides, which would give it another hash;
    pinning the resolved directory as a hydra override makes every job (also on Slurm) see the
    sweep's. Also records the sweep's command-line overrides in the sweep index.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Resolve and pin ``hydra.sweep.dir``; note the sweep's overrides in its index."""
        sweep_dir = str(config.hydra.sweep.dir)
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.sweep.dir = sweep_dir
            pinned = [o for o in config.hydra.overrides.hydra if not o.startswith("hydra.sweep.dir=")]
            config.hydra.overrides.hydra = [*pinned, f"hydra.sweep.dir={sweep_dir}"]
        SweepIndex(sweep_dir).update_sweep(name=Path(sweep_dir).name,
                                           overrides=list(config.hydra.overrides.task))


class SweepIndex:
    """``<sweep dir>/sweep_index.json``: one record per job (overrides, status, metrics, error).

    Jobs run in separate processes (joblib, Slurm) and update it under a file lock.
    """

    def __init__(self, sweep_dir: str | Path) -> None:
        self.path = Path(sweep_dir) / INDEX_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.path) + ".lock", timeout=120)

    def read(self) -> dict[str, Any]:
        """The whole index: ``{"jobs": {job_id: record}}``."""
        if not self.path.is_file():
            return {"jobs": {}}
        return json.loads(self.path.read_text())

    def job(self, job_id: str) -> dict[str, Any]:
        """The record of one job ({} when the index does not know it)."""
        with self._lock:
            return self.read()["jobs"].get(job_id, {})

    def update(self, job_id: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the job's record (atomically, under the lock) and return it."""
        with self._lock:
            index = self.read()
            record = {**index["jobs"].get(job_id, {}), **fields, "updated": time.time()}
            index["jobs"][job_id] = record
            self._write(index)
        return record

    def update_sweep(self, **fields: Any) -> None:
        """Set sweep-level fields (name, command-line overrides) beside the jobs."""
        with self._lock:
            self._write({**self.read(), **fields})

    def _write(self, index: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(index, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, self.path)  # readers never see a half-written index
