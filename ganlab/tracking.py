"""Where metrics and images go: <run dir>/metrics.jsonl, eval.jsonl, samples/*.png and summary.json
always; W&B, TensorBoard and CSV files as the ``logger`` group says (any of them at once).

This is the only module that imports wandb and tensorboard (lazily: a run without them never pays).
"""

from __future__ import annotations

import csv
import json
import math
import netrc
import os
import secrets
import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image

from ganlab.errors import ConfigError


class Logger:
    """Where a run's metrics go besides its files (``logger=wandb``, ``tensorboard``, ``csv``): every method
    a no-op here. Each logger belongs to one run, so several runs can be open in one process."""

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Scalar metrics at ``step``."""

    def log_eval(self, metrics: dict[str, float], step: int) -> None:
        """Evaluation metrics (``eval/...``) at ``step``."""

    def log_image(self, key: str, image: torch.Tensor, step: int) -> None:
        """A uint8 (C, H, W) image at ``step`` (also saved as a PNG by the Tracker)."""

    def summary(self, values: dict[str, Any]) -> None:
        """The run's final values."""

    def finish(self, exit_code: int = 0) -> None:
        """Close; always called, also when training failed."""

    def sync_hint(self) -> str | None:
        """Where this logger's dashboard is, or how to upload it (None: nothing to say)."""
        return None


class Tracker:
    """A run's record: one JSON line per logged step, a PNG per image, summary.json at the end, always;
    and the same calls handed to each of its ``loggers`` (W&B, TensorBoard, CSV).

    ``resume_step``: the step the run starts from. Rows past it (written after the checkpoint a
    resumed run starts from, e.g. before a hard kill) are dropped first, so each step is logged once.
    """

    def __init__(self, run_dir: str | Path, name: str = "default", group: str | None = "single",
                 run_config: dict[str, Any] | None = None, resume_step: int = 0,
                 loggers: list[Logger] | tuple[Logger, ...] = ()) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.name, self.group = name, group
        self.loggers = list(loggers)
        for rows in ("metrics.jsonl", "eval.jsonl"):
            drop_rows_after(self.run_dir / rows, resume_step)
        self._metrics = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")
        self._summary: dict[str, Any] = {}

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Record scalar metrics at ``step``."""
        self._metrics.write(json.dumps({"step": step, **metrics}) + "\n")
        self._metrics.flush()
        for logger in self.loggers:
            logger.log(metrics, step)

    def log_eval(self, metrics: dict[str, float], step: int) -> None:
        """Record evaluation metrics at ``step`` in <run dir>/eval.jsonl (kept apart from the loss rows)."""
        with open(self.run_dir / "eval.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")
        for logger in self.loggers:
            logger.log_eval(metrics, step)

    def log_image(self, key: str, image: torch.Tensor, step: int) -> Path:
        """Save a uint8 (C, H, W) image as <run dir>/samples/<key>_<step>.png and return its path."""
        path = self.run_dir / "samples" / f"{key}_{step:08d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_to_hwc(image)).save(path)
        for logger in self.loggers:
            logger.log_image(key, image, step)
        return path

    def summary(self, values: dict[str, Any]) -> None:
        """Final values of the run (written to summary.json on finish)."""
        self._summary.update(values)
        for logger in self.loggers:
            logger.summary(values)

    def finish(self, exit_code: int = 0) -> None:
        """Close files and loggers; always called, also when training failed."""
        try:
            for logger in self.loggers:
                logger.finish(exit_code)
        finally:
            if self._summary:
                (self.run_dir / "summary.json").write_text(json.dumps(self._summary, indent=2) + "\n")
            self._metrics.close()

    def sync_hint(self) -> str | None:
        """Where the run's dashboards are, or how to upload them, a line per logger (None: files only)."""
        hints = [hint for logger in self.loggers if (hint := logger.sync_hint())]
        return "\n".join(hints) or None


def drop_rows_after(path: Path, step: int) -> None:
    """Rewrite a JSON-lines file without the rows whose ``step`` is past ``step`` (and any partial last line)."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    kept = [line for line in lines if _step_of(line) <= step]
    if len(kept) < len(lines):
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, path)


def _step_of(line: str) -> float:
    try:
        return json.loads(line).get("step", 0)
    except (json.JSONDecodeError, AttributeError):  # a line cut short by a hard kill: drop it
        return float("inf")


def _to_hwc(image: torch.Tensor) -> Any:
    array = image.detach().cpu().permute(1, 2, 0).numpy()
    return array[..., 0] if array.shape[-1] == 1 else array


def has_wandb_credentials() -> bool:
    """True when an API key is in the environment or ~/.netrc (no network, no prompt)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        hosts = netrc.netrc().hosts
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    base = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("//")[-1].split("/")[0]
    return base in hosts


class WandbLogger(Logger):
    """One W&B run per run (``logger=wandb``); the run id is kept in the run dir so a resumed job continues it.

    Several can be open in one process (``reinit="create_new"``: one W&B run per member of a population);
    W&B's service is torn down when the last of them finishes.
    """

    _open = 0  # W&B runs of this process not finished yet

    def __init__(self, run_dir: str | Path, name: str = "default", group: str | None = "single",
                 run_config: dict[str, Any] | None = None, resume_step: int = 0,
                 mode: Literal["auto", "online", "offline", "disabled"] = "auto",
                 project: str = "ganlab", entity: str | None = None, tags: list[str] | None = None,
                 init_timeout: float = 30.0) -> None:
        import wandb

        self._wandb = wandb
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        chosen = ("online" if has_wandb_credentials() else "offline") if mode == "auto" else mode
        id_file = run_dir / "wandb_run_id"
        run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(6)
        kwargs = dict(dir=str(run_dir), project=project, entity=entity, group=group, name=name,
                      tags=list(tags or []), config=run_config or {}, id=run_id, resume="allow",
                      reinit="create_new",
                      settings=wandb.Settings(init_timeout=init_timeout, silent=True, console="off"))
        try:
            self.run = wandb.init(mode=chosen, **kwargs)
        except Exception as err:
            if chosen != "online":
                raise
            warnings.warn(f"W&B online init failed ({err}); continuing offline, sync later with `wandb sync`",
                          stacklevel=2)
            if WandbLogger._open == 0:
                wandb.teardown()  # the failed online attempt still holds the run id in the service
            chosen = "offline"
            self.run = wandb.init(mode="offline", **kwargs)
        WandbLogger._open += 1
        self._finished = False
        self.mode = chosen
        # offline: the folder `wandb sync` uploads; online: the run's page
        self._where = Path(self.run.dir).parent if chosen == "offline" else getattr(self.run, "url", None)
        id_file.write_text(run_id + "\n")

    def _guard(self, call: Any, *args: Any, **kwargs: Any) -> None:
        # W&B's service process can die under us (Slurm signals every process of a preempted
        # job): warn once, go on with files only, so the job can still checkpoint and exit cleanly
        if self.run is None:
            return
        try:
            call(*args, **kwargs)
        except Exception as err:
            warnings.warn(f"W&B stopped working ({type(err).__name__}: {err}); metrics and images go to files only",
                          stacklevel=2)
            self.run = None

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._guard(lambda: self.run.log(metrics, step=step))

    def log_eval(self, metrics: dict[str, float], step: int) -> None:
        self._guard(lambda: self.run.log(metrics, step=step))

    def log_image(self, key: str, image: torch.Tensor, step: int) -> None:
        self._guard(lambda: self.run.log({key: self._wandb.Image(_to_hwc(image))}, step=step))

    def summary(self, values: dict[str, Any]) -> None:
        self._guard(lambda: self.run.summary.update(values))

    def finish(self, exit_code: int = 0) -> None:
        if self._finished:
            return
        self._finished = True
        self._guard(lambda: self.run.finish(exit_code=exit_code))
        WandbLogger._open -= 1
        if WandbLogger._open == 0:
            # offline runs: without teardown the last records can miss the file (seen 2 in 30)
            self._guard(self._wandb.teardown)

    def sync_hint(self) -> str | None:
        if self.mode == "offline" and self._where:
            return f"W&B: offline run; upload it with: wandb sync {self._where}"
        return f"W&B: {self._where}" if self._where else None


class TensorBoardLogger(Logger):
    """TensorBoard event files in <run dir>/tensorboard (``logger=tensorboard``): scalars, eval metrics,
    sample images, and at the end the run's hyperparameters with its final metrics (the HParams tab).

    A resumed run purges the events past its checkpoint's step, as the JSON lines are trimmed.
    """

    def __init__(self, run_dir: str | Path, name: str = "default", group: str | None = "single",
                 run_config: dict[str, Any] | None = None, resume_step: int = 0, flush_secs: float = 10.0) -> None:
        try:
            import tensorboard  # noqa: F401  (torch's SummaryWriter needs it; say so in one line)
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise ConfigError("logger=tensorboard needs the tensorboard package: pip install tensorboard "
                              f"(or pip install -e '.[tensorboard]') ({err})") from None
        self.log_dir = Path(run_dir) / "tensorboard"
        self._writer = SummaryWriter(str(self.log_dir), purge_step=resume_step + 1 if resume_step else None,
                                     flush_secs=int(flush_secs))
        self._hparams = {k: v for k, v in (run_config or {}).items()
                         if isinstance(v, (int, float, str, bool)) and not isinstance(v, dict)}
        self._final: dict[str, float] = {}
        self.name = name

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self._writer.add_scalar(key, value, step)

    def log_eval(self, metrics: dict[str, float], step: int) -> None:
        self.log(metrics, step)

    def log_image(self, key: str, image: torch.Tensor, step: int) -> None:
        self._writer.add_image(key, image.detach().cpu(), step, dataformats="CHW")

    def summary(self, values: dict[str, Any]) -> None:
        self._final.update({k: float(v) for k, v in values.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)})

    def finish(self, exit_code: int = 0) -> None:
        if self._final and self._hparams:  # one row per run in TensorBoard's HParams tab
            self._writer.add_hparams(self._hparams, {f"final/{k}": v for k, v in self._final.items()},
                                     run_name="hparams", global_step=int(self._final.get("step", 0)))
        self._writer.close()

    def sync_hint(self) -> str | None:
        return f"TensorBoard: tensorboard --logdir {self.log_dir}"


class CsvLogger(Logger):
    """<run dir>/metrics.csv and eval.csv, one row per logged step (``logger=csv``), for a spreadsheet or pandas.

    A metric that first appears late (a penalty, a new eval metric) widens the header: the file is rewritten.
    """

    def __init__(self, run_dir: str | Path, name: str = "default", group: str | None = "single",
                 run_config: dict[str, Any] | None = None, resume_step: int = 0) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._headers: dict[Path, list[str]] = {}
        for rows in ("metrics.csv", "eval.csv"):
            _drop_csv_rows_after(self.run_dir / rows, resume_step)
            self._headers[self.run_dir / rows] = _read_csv(self.run_dir / rows)[0]

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._append(self.run_dir / "metrics.csv", {"step": step, **metrics})

    def log_eval(self, metrics: dict[str, float], step: int) -> None:
        self._append(self.run_dir / "eval.csv", {"step": step, **metrics})

    def _append(self, path: Path, row: dict[str, Any]) -> None:
        header = self._headers[path]
        if not header or any(k not in header for k in row):  # first row, or a new column: rewrite
            header, rows = _read_csv(path)
            header = header + [k for k in row if k not in header]
            _write_csv(path, header, [*rows, row])
            self._headers[path] = header
            return
        with open(path, "a", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, header, restval="").writerow(row)


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file() or path.stat().st_size == 0:
        return [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _write_csv(path: Path, header: list[str], rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, header, restval="")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _drop_csv_rows_after(path: Path, step: int) -> None:
    header, rows = _read_csv(path)
    kept = [r for r in rows if _is_step_at_most(r.get("step"), step)]
    if len(kept) < len(rows):
        _write_csv(path, header, kept)


def _is_step_at_most(value: str | None, step: int) -> bool:
    try:
        return int(float(value or "")) <= step
    except ValueError:  # a row cut short by a hard kill
        return False


class SilentTracker(Tracker):
    """The tracker of ranks other than 0: accepts everything, writes nothing."""

    def __init__(self) -> None:  # no run dir, no files, no loggers
        self._summary, self.loggers = {}, []

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_eval(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_image(self, key: str, image: torch.Tensor, step: int) -> None:
        pass

    def summary(self, values: dict[str, Any]) -> None:
        pass

    def finish(self, exit_code: int = 0) -> None:
        pass
