"""A sweep read back from disk: one ``RunRecord`` per job, configs aggregated over seeds.

Reads what each job wrote (``.hydra/overrides.yaml``, ``.hydra/config.yaml``, ``.hydra/hydra.yaml``,
``metrics.jsonl``, ``eval.jsonl``, ``summary.json``), so it needs neither W&B nor torch.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ganlab.errors import GanlabError
from ganlab.naming import short_override, split_items

# the metric a table is sorted by when none is named: the first one the runs have
DEFAULT_METRICS = ("eval/fid_clf", "eval/fid_inception", "eval/mode_reverse_kl", "eval/jsd_hist", "g_loss")
# overrides that do not define a config (how a run is started, logged or resumed)
BOOKKEEPING = ("seed=", "hydra.", "resume=", "logger", "trainer.progress=", "launcher=")


@dataclass
class RunRecord:
    """One job of a sweep, as read back from its directory."""

    path: Path
    overrides: list[str]
    config: dict[str, Any]
    choices: dict[str, str]
    final: dict[str, float]
    curves: list[dict[str, float]] = field(default_factory=list)  # metrics.jsonl rows
    evals: list[dict[str, float]] = field(default_factory=list)   # eval.jsonl rows
    complete: bool = True
    hydra: dict[str, Any] = field(default_factory=dict)  # the job's .hydra/hydra.yaml, unresolved
    num: int | None = None  # the job's number in its sweep (the trial order of a random search)

    def hydra_value(self, path: tuple[str, ...]) -> Any:
        """A value of the job's Hydra config by path, None when absent."""
        node: Any = self.hydra
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node

    @property
    def config_key(self) -> str:
        """The overrides that define this run's configuration (seed and bookkeeping left out)."""
        kept = [o for o in self.overrides if not o.lstrip("+~").startswith(BOOKKEEPING)]
        return ",".join(sorted(kept)) or "(defaults)"

    @property
    def loss(self) -> str:
        """The loss option the run chose (its Hydra choice, else its loss class)."""
        return self.choices.get("loss") or str(self.value("loss._target_")).rsplit(".", 1)[-1]

    def value(self, dotted: str) -> Any:
        """A config value by dotted key, None when absent."""
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node


class CompareError(GanlabError):
    """A directory that holds no readable runs, or a metric none of them has."""


def _jsonl(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a job killed mid-write leaves a partial last line
            continue
    return rows


def _config(hydra_dir: Path) -> dict[str, Any]:
    cfg = OmegaConf.load(hydra_dir / "config.yaml")
    cfg.pop("run", None)  # ${hydra:...} values: they resolve only inside the job's own Hydra run
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException:  # an env/custom resolver missing here: unresolved values are still informative
        return OmegaConf.to_container(cfg, resolve=False)


def read_run(job_dir: Path) -> RunRecord:
    """Everything one job left on disk."""
    hydra_dir = job_dir / ".hydra"
    overrides = [str(o) for o in OmegaConf.load(hydra_dir / "overrides.yaml")]
    choices: dict[str, str] = {}
    hydra: dict[str, Any] = {}
    num = None
    if (hydra_dir / "hydra.yaml").is_file():
        hydra_cfg = OmegaConf.load(hydra_dir / "hydra.yaml")
        choices = {str(k): str(v) for k, v in OmegaConf.to_container(hydra_cfg.hydra.runtime.choices).items()}
        hydra = OmegaConf.to_container(hydra_cfg, resolve=False)
        num = OmegaConf.select(hydra_cfg, "hydra.job.num", default=None)
    curves, evals = _jsonl(job_dir / "metrics.jsonl"), _jsonl(job_dir / "eval.jsonl")
    summary_path = job_dir / "summary.json"
    if summary_path.is_file():
        final, complete = json.loads(summary_path.read_text()), True
    else:  # crashed or still running: the last rows it logged
        final, complete = {**(curves[-1] if curves else {}), **(evals[-1] if evals else {})}, False
    return RunRecord(job_dir, overrides, _config(hydra_dir), choices, final, curves, evals, complete, hydra,
                     num if isinstance(num, int) else None)


def find_runs(sweep_dir: Path) -> list[RunRecord]:
    """Every job under ``sweep_dir`` (any directory with .hydra/overrides.yaml), in job order."""
    if not sweep_dir.is_dir():
        raise CompareError(f"{sweep_dir} is not a directory (pass a sweep dir, e.g. multirun/<sweep>-<hash>)")
    jobs = sorted({p.parent.parent for p in sweep_dir.rglob("overrides.yaml") if p.parent.name == ".hydra"},
                  key=lambda p: (len(p.parts), int(p.name) if p.name.isdigit() else 0, str(p)))
    if not jobs:
        raise CompareError(f"{sweep_dir} holds no runs (no */.hydra/overrides.yaml)")
    return [read_run(job) for job in jobs]


def pick_metric(runs: list[RunRecord], metric: str | None) -> str:
    """The sort metric: the one asked for (it must exist), else the first of DEFAULT_METRICS some run has."""
    present = {k for r in runs for k in r.final}
    if metric:
        if metric not in present:
            known = ", ".join(sorted(k for k in present if not k.endswith("_step")))
            raise CompareError(f"--metric {metric}: no run has it (they have: {known})")
        return metric
    for candidate in DEFAULT_METRICS:
        if candidate in present:
            return candidate
    raise CompareError("no run has a metric to sort by (did any finish? see their summary.json)")


def metric_columns(runs: list[RunRecord], metric: str) -> list[str]:
    """The sort metric first, then the other final eval metrics, then the final losses."""
    keys = {k for r in runs for k, v in r.final.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    evals = sorted(k for k in keys if k.startswith("eval/") and "_best" not in k)
    losses = [k for k in ("d_loss", "g_loss") if k in keys]
    return [metric] + [k for k in evals + losses if k != metric]


@dataclass
class ConfigRow:
    """The runs of one config (seeds), aggregated."""

    config_key: str
    runs: list[RunRecord]
    stats: dict[str, tuple[float, float]]  # metric -> (mean, std over seeds)


def _mean_std(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else 0.0


def aggregate(runs: list[RunRecord], columns: list[str], metric: str, descending: bool) -> list[ConfigRow]:
    """Group runs by config, mean ± std over seeds, sorted by ``metric`` (NaN last)."""
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(run.config_key, []).append(run)
    rows = [ConfigRow(key, members, {c: _mean_std([r.final.get(c) for r in members]) for c in columns})
            for key, members in groups.items()]

    def order(row: ConfigRow) -> tuple[bool, float]:
        mean = row.stats[metric][0]
        return (math.isnan(mean), -mean if descending else mean)

    return sorted(rows, key=order)


def shared_overrides(rows: list[ConfigRow]) -> list[str]:
    """Overrides every config has: said once above the table, left out of its config column."""
    sets = [set(split_items(row.config_key)) for row in rows]
    return sorted(set.intersection(*sets)) if len(sets) > 1 else []


def label(row: ConfigRow, shared: list[str]) -> str:
    """The overrides that set this config apart from the others, numbers shortened (``lr=7.75e-04``)."""
    own = [o for o in split_items(row.config_key) if o not in shared] or split_items(row.config_key)
    return ",".join(map(short_override, own)) or row.config_key


