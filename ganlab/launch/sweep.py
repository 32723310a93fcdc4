"""Sweep identity and bookkeeping: config-derived sweep/job directory names and the sweep index.

A sweep's directory is named from the sweep file and a hash of the command's overrides, and each
job's directory from its number, the overrides that set it apart and a hash of all its overrides
(``job-003-loss=bce,lr=7.75e-04-1a2b3c4d5e``), so re-running the same command finds the same
directories (finished jobs are skipped, unfinished ones resume) while different sweeps started in
the same second never share one. The hash is the job's identity: a directory that already holds it
(also one named ``job-<hash>`` by an older ganlab) is the job's, whatever its number says.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from filelock import FileLock
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from ganlab.errors import ConfigError
from ganlab.naming import dir_label, short_override

INDEX_NAME = "sweep_index.json"
# overrides that do not change what a job computes, so they do not change its identity
IDENTITY_EXCLUDED = ("resume", "launcher")  # how a job is started is not what it computes


def overrides_hash(overrides: list[str]) -> str:
    """A short stable hash of a list of overrides (order-independent)."""
    kept = sorted(o for o in overrides if o.lstrip("+~").split("=", 1)[0] not in IDENTITY_EXCLUDED)
    return hashlib.sha1("\n".join(kept).encode()).hexdigest()[:10]


def sweep_dir_name(*, _root_: DictConfig) -> str:
    """``<sweep file or "multirun">-<hash of the command's overrides>`` (resolver ``ganlab_sweep_name``)."""
    name = OmegaConf.select(_root_, "hydra.runtime.choices.sweep", default=None) or "multirun"
    task = list(OmegaConf.select(_root_, "hydra.overrides.task", default=[]) or [])
    return f"{name}-{overrides_hash(task)}"


def job_dir_for(sweep_dir: str | Path, num: int | None, overrides: list[str],
                common: list[str] | None = None) -> str:
    """The name of a job's directory in ``sweep_dir``: ``job-<num>-<its own overrides>-<hash>``.

    ``common``: the sweep's command-line overrides; the keys they set to one value (not swept) are left
    out of the readable part (every job has them). An existing directory of the same hash, in the
    sweep index or on disk, wins, so a sweep started by an older ganlab (``job-<hash>``) resumes there.
    Every launcher (Hydra's, the population launcher) names job directories through this function.
    """
    digest = overrides_hash(overrides)
    existing = _existing_job_dir(Path(sweep_dir), digest)
    if existing is not None:
        return existing
    shared = _fixed_keys(common or []) | set(IDENTITY_EXCLUDED)
    label = dir_label([o for o in overrides if _key(o) not in shared])
    parts = ["job", f"{num:03d}" if num is not None else None, label or None, digest]
    return "-".join(p for p in parts if p)


def _key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def _fixed_keys(command: list[str]) -> set[str]:
    """The keys a command line sets to a single value (``a=1``, not ``a=1,2`` or ``a=range(3)``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(command))
    except Exception:  # not Hydra's syntax (a hand-written index): show every override
        return set()
    return {o.key_or_group for o in parsed if not o.is_sweep_override()}


def _existing_job_dir(sweep_dir: Path, digest: str) -> str | None:
    """The directory name a job of this hash already has (index first, then the folder), or None."""
    for job_id in SweepIndex.peek(sweep_dir)["jobs"]:
        if job_id == f"job-{digest}" or job_id.endswith(f"-{digest}"):
            return job_id
    if sweep_dir.is_dir():
        found = sorted(p.name for p in sweep_dir.glob(f"job-*{digest}") if p.is_dir())
        if found:
            return found[0]
    return None


def job_dir_name(*, _root_: DictConfig) -> str:
    """This job's directory name, from ``job_dir_for`` (resolver ``ganlab_job_id``)."""
    task = [str(o) for o in OmegaConf.select(_root_, "hydra.overrides.task", default=[]) or []]
    num = OmegaConf.select(_root_, "hydra.job.num", default=None)
    sweep_dir = Path(str(OmegaConf.select(_root_, "hydra.sweep.dir")))
    common = SweepIndex.peek(sweep_dir).get("overrides")
    return job_dir_for(sweep_dir, num, task, common)


def run_group() -> str:
    """A run's W&B group (resolver ``ganlab_run_group``): the sweep's directory name in a multirun, else "single"."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    return Path(str(hc.sweep.dir)).name if str(hc.mode).endswith("MULTIRUN") else "single"


def register_resolvers() -> None:
    """Register the ``ganlab_sweep_name``, ``ganlab_job_id`` and ``ganlab_run_group`` resolvers, and
    ``ganlab_help_groups`` (the groups block of ``--help``, conf/hydra/help/ganlab.yaml) (idempotent)."""
    from ganlab.config import help_groups

    for name, fn in (("ganlab_sweep_name", sweep_dir_name), ("ganlab_job_id", job_dir_name),
                     ("ganlab_run_group", run_group), ("ganlab_help_groups", help_groups)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


# the least value of each numeric Slurm option (launcher=slurm's and slurm_population's; None: the cluster's
# default). sbatch itself took timeout_min=-5 and ran the job; mem_gb=0 is Slurm's "all the node's memory"
SLURM_LEAST = {"timeout_min": 1, "cpus_per_task": 1, "gpus_per_node": 0, "tasks_per_node": 1, "mem_gb": 0, "nodes": 1,
               "cpus_per_gpu": 1, "gpus_per_task": 0, "signal_delay_s": 0, "max_num_timeout": 0,
               "array_parallelism": 1, "members_per_task": 1}


def check_launcher(launcher: DictConfig) -> None:
    """A ConfigError for launcher options its library would reject only once the jobs are composed (in a
    traceback), or pass on to Slurm unchecked.

    joblib's (``launcher=local_parallel``) ``n_jobs``: an integer, not 0 (-1: every core, -2: all but one, ...).
    The Slurm launchers' counts and minutes: integers in range. sbatch refuses what only the cluster knows (a
    partition, too much memory: one line, ganlab.__main__); the population launchers check the rest.
    """
    target = str(launcher.get("_target_", ""))
    if target.rsplit(".", 1)[-1] in ("JoblibLauncher", "LocalParallelLauncher"):  # Hydra's own, or ganlab's
        n_jobs = launcher.get("n_jobs")
        if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs == 0:
            raise ConfigError(f"hydra.launcher.n_jobs={n_jobs!r}: must be an integer other than 0 "
                              "(at most that many jobs at once; -1: one per core)")
    if target.rsplit(".", 1)[-1] in ("SlurmLauncher", "SlurmPopulationLauncher"):
        for key, least in SLURM_LEAST.items():
            value = launcher.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise ConfigError(f"hydra.launcher.{key}={value!r}: must be an integer >= {least}")


def check_subdir(raw: str) -> None:
    """A ConfigError for a ``hydra.sweep.subdir`` (unresolved) that would not give each job a folder of its own
    inside the sweep's: a constant (every job in one folder) or a path leaving the sweep's folder (absolute, or
    with ``..``: ``ganlab.compare <sweep dir>`` would not find its runs). Several parts are fine: the index
    keys each job by its path from the sweep's folder."""
    fix = "leave it out (job-<num>-<overrides>-<hash>) or use one folder per job, e.g. ${hydra.job.num}"
    if "${" not in raw:
        raise ConfigError(f"hydra.sweep.subdir={raw}: every job would write to the same folder; {fix}")
    literal = re.sub(r"\$\{[^}]*\}", "x", raw)
    if literal.startswith("/") or ".." in literal.split("/"):
        raise ConfigError(f"hydra.sweep.subdir={raw}: must be a folder inside hydra.sweep.dir (where the sweep's "
                          f"index is and ganlab.compare looks); {fix}")


def check_chdir(hydra: DictConfig) -> None:
    """A ConfigError for ``hydra.job.chdir=true``: ganlab writes every file into the run's folder by its own
    paths, and reads the paths it is given (data.root, resume) from where it was started; moving into the
    run's folder would only make those paths point elsewhere (and the population launcher never moves)."""
    if OmegaConf.select(hydra, "job.chdir", default=False):
        raise ConfigError("hydra.job.chdir=true: ganlab writes every file into the run's folder already, and "
                          "relative paths (data.root, resume) mean where you run it; leave hydra.job.chdir=false")


def stop_on(err: ConfigError) -> None:
    """Stop the command with the error's one line (Hydra turns a callback's exceptions into warnings and goes
    on; SystemExit it lets through)."""
    print(f"ganlab: error: {err}", file=sys.stderr)
    raise SystemExit(2) from None


class SweepCallback(Callback):
    """Hydra callback of every multirun: pins the sweep's directory at its start, sums it up at its end.

    Start: resolve ``hydra.sweep.dir`` once, in the launching process, and pin it. Every job
    recomposes its config with its own overrides, which would give it another hash; pinning the
    resolved directory as a hydra override makes every job (also on Slurm) see the sweep's. The
    sweep's command-line overrides go into the sweep index. End: a few lines on the console (how
    many jobs finished or failed, the best objective, where the index is, how to compare the runs).
    """

    launcher: str = ""  # the launcher (_target_) of the multirun this process launches: what a Ctrl-C of it says

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check Hydra's options that a single run depends on."""
        try:
            check_chdir(config.hydra)
        except ConfigError as err:
            stop_on(err)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Check the launcher's options; resolve and pin ``hydra.sweep.dir``; note the overrides in the index."""
        try:
            check_chdir(config.hydra)
            check_launcher(config.hydra.launcher)
            check_subdir(str(config.hydra.sweep._get_node("subdir")._value()))
        except ConfigError as err:
            stop_on(err)
        SweepCallback.launcher = str(config.hydra.launcher.get("_target_", ""))
        sweep_dir = str(config.hydra.sweep.dir)
        with read_write(config.hydra), open_dict(config.hydra):
            config.hydra.sweep.dir = sweep_dir
            # as typed: iterating the ListConfig would resolve an override's own ${...} (a subdir of
            # ${hydra.job.override_dirname} would be pinned as the launcher's overrides, then fail to parse)
            typed = OmegaConf.to_container(config.hydra.overrides.hydra, resolve=False)
            pinned = [o for o in typed if not str(o).startswith("hydra.sweep.dir=")]
            config.hydra.overrides.hydra = [*pinned, f"hydra.sweep.dir={sweep_dir}"]
        try:
            SweepIndex(sweep_dir).update_sweep(name=Path(sweep_dir).name,
                                               overrides=OmegaConf.to_container(config.hydra.overrides.task,
                                                                                resolve=False))
        except OSError:  # Hydra would only warn; the launcher makes the same folder next and stops in one line
            return

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Print the sweep's summary from its index; exit 2 when a job of the sweep failed."""
        sweep_dir = Path(str(config.hydra.sweep.dir))
        print(sweep_summary(sweep_dir), flush=True)
        if any(r.get("status") == "failed" for r in SweepIndex(sweep_dir).read()["jobs"].values()):
            raise SystemExit(2)  # the jobs' errors were printed as one line each, listed again above


def interrupted_line() -> str:
    """What a Ctrl-C of the command says where training did not take it (a second one, or outside training); for a
    Slurm sweep's command, which waits for its jobs, that the jobs go on without it."""
    if SweepCallback.launcher.rsplit(".", 1)[-1] in ("SlurmLauncher", "SlurmPopulationLauncher"):
        return ("ganlab: interrupted (Ctrl-C); the sweep's Slurm jobs go on (squeue shows them, scancel stops them), "
                "and the same command waits for them and reports the sweep")
    return "ganlab: interrupted (Ctrl-C)"


def sweep_summary(sweep_dir: Path) -> str:
    """The lines a finished multirun prints: job counts by status, the best objective, what to run next."""
    jobs = SweepIndex(sweep_dir).read()["jobs"]
    counts: dict[str, int] = {}
    for record in jobs.values():
        counts[record.get("status", "unknown")] = counts.get(record.get("status", "unknown"), 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    lines = [f"ganlab: sweep {sweep_dir.name}: {len(jobs)} jobs, {tally} ({sweep_dir})" if jobs else
             f"ganlab: sweep {sweep_dir.name}: no jobs: its values gave none, e.g. an empty range ({sweep_dir})"]
    scored = [(r["objective"], job_id, r) for job_id, r in jobs.items()
              if r.get("status") == "finished" and isinstance(r.get("objective"), (int, float))]
    if scored:
        value, job_id, record = min(scored)  # sweepers minimise the objective
        lines.append(f"  lowest {record.get('objective_name', 'objective')}: {value:.4g} in {job_id} "
                     f"({','.join(map(short_override, record.get('overrides', []))) or 'defaults'})")
    for job_id, record in sorted(jobs.items()):
        if record.get("status") == "failed":
            lines.append(f"  failed: {job_id}: {record.get('error')}")
    lines.append(f"  index: {sweep_dir / INDEX_NAME}")
    lines.append(f"  compare: python -m ganlab.compare {sweep_dir}")
    return "\n".join(lines)


class SweepIndex:
    """``<sweep dir>/sweep_index.json``: one record per job (overrides, status, metrics, error).

    Jobs run in separate processes (joblib, Slurm) and update it under a file lock.
    """

    def __init__(self, sweep_dir: str | Path) -> None:
        self.path = Path(sweep_dir) / INDEX_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._locks: dict[int, FileLock] = {}

    @property
    def _lock(self) -> FileLock:
        """This process's lock on the index: a forked population worker takes its own (filelock refuses an
        inherited one, whose state belongs to the parent)."""
        pid = os.getpid()
        if pid not in self._locks:
            self._locks[pid] = FileLock(str(self.path) + ".lock", timeout=120)
        return self._locks[pid]

    @staticmethod
    def peek(sweep_dir: str | Path) -> dict[str, Any]:
        """The index of ``sweep_dir`` without creating anything ({"jobs": {}} when there is none)."""
        path = Path(sweep_dir) / INDEX_NAME
        try:
            return json.loads(path.read_text()) if path.is_file() else {"jobs": {}}
        except (OSError, json.JSONDecodeError):  # being replaced this instant: read it as empty
            return {"jobs": {}}

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
