"""A run's record on disk: metrics.jsonl, eval.jsonl, samples/*.png, summary.json, always; and the
``Logger`` interface the dashboards (W&B, TensorBoard, CSV) implement, each called by the Tracker."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:  # images arrive as tensors; nothing here needs torch itself (ganlab.compare imports tracking)
    import torch


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

    def preempting(self) -> None:
        """The run is stopping to resume later (a preemption, Ctrl-C): called just before ``finish``."""

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

    def finish(self, exit_code: int = 0, preempted: bool = False) -> None:
        """Close files and loggers; always called, also when training failed. ``preempted``: it stopped to
        resume later (W&B shows the run as preempted, not failed)."""
        try:
            for logger in self.loggers:
                if preempted:
                    logger.preempting()
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

    def finish(self, exit_code: int = 0, preempted: bool = False) -> None:
        pass
