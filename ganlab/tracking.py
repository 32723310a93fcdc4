"""Where metrics and images go: <run dir>/metrics.jsonl and samples/*.png always, W&B optionally.

This is the only module that imports wandb (lazily, so logger=none never pays for it).
"""

from __future__ import annotations

import json
import netrc
import os
import secrets
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from PIL import Image

if TYPE_CHECKING:  # images arrive as tensors; nothing here needs torch itself (ganlab.compare imports this)
    import torch


class Tracker:
    """Files only: one JSON line per logged step, a PNG per image, summary.json at the end.

    ``resume_step``: the step the run starts from. Rows past it (written after the checkpoint a
    resumed run starts from, e.g. before a hard kill) are dropped first, so each step is logged once.
    ``shared_process``: other runs are open in this process at the same time (a population's members).
    """

    def __init__(self, run_dir: str | Path, name: str = "default", group: str | None = "single",
                 run_config: dict[str, Any] | None = None, resume_step: int = 0,
                 shared_process: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.name, self.group = name, group
        for rows in ("metrics.jsonl", "eval.jsonl"):
            drop_rows_after(self.run_dir / rows, resume_step)
        self._metrics = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")
        self._summary: dict[str, Any] = {}

    def log(self, metrics: dict[str, float], step: int) -> None:
        """Record scalar metrics at ``step``."""
        self._metrics.write(json.dumps({"step": step, **metrics}) + "\n")
        self._metrics.flush()

    def log_eval(self, metrics: dict[str, float], step: int) -> None:
        """Record evaluation metrics at ``step`` in <run dir>/eval.jsonl (kept apart from the loss rows)."""
        with open(self.run_dir / "eval.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")

    def log_image(self, key: str, image: torch.Tensor, step: int) -> Path:
        """Save a uint8 (C, H, W) image as <run dir>/samples/<key>_<step>.png and return its path."""
        path = self.run_dir / "samples" / f"{key}_{step:08d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_to_hwc(image)).save(path)
        return path

    def summary(self, values: dict[str, Any]) -> None:
        """Final values of the run (written to summary.json on finish)."""
        self._summary.update(values)

    def finish(self, exit_code: int = 0) -> None:
        """Close files; always called, also when training failed."""
        if self._summary:
            (self.run_dir / "summary.json").write_text(json.dumps(self._summary, indent=2) + "\n")
        self._metrics.close()

    def sync_hint(self) -> str | None:
        """Where the run's dashboard is, or how to upload it (None: files only)."""
        return None


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


class WandbTracker(Tracker):
    """Files plus one W&B run per job; the run id is kept in the run dir so a resumed job continues it."""

    def __init__(self, run_dir: str | Path, name: str = "default", group: str | None = "single",
                 run_config: dict[str, Any] | None = None,
                 mode: Literal["auto", "online", "offline", "disabled"] = "auto",
                 project: str = "ganlab", entity: str | None = None, tags: list[str] | None = None,
                 init_timeout: float = 30.0, resume_step: int = 0, shared_process: bool = False) -> None:
        super().__init__(run_dir, name, group, run_config, resume_step, shared_process)
        self.shared_process = shared_process
        import wandb

        self._wandb = wandb
        chosen = ("online" if has_wandb_credentials() else "offline") if mode == "auto" else mode
        id_file = self.run_dir / "wandb_run_id"
        run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(6)
        kwargs = dict(dir=str(self.run_dir), project=project, entity=entity, group=group, name=name,
                      tags=list(tags or []), config=run_config or {}, id=run_id, resume="allow",
                      reinit="create_new" if shared_process else "finish_previous",
                      settings=wandb.Settings(init_timeout=init_timeout, silent=True, console="off"))
        try:
            self.run = wandb.init(mode=chosen, **kwargs)
        except Exception as err:
            if chosen != "online":
                raise
            warnings.warn(f"W&B online init failed ({err}); continuing offline, sync later with `wandb sync`",
                          stacklevel=2)
            wandb.teardown()  # the failed online attempt still holds the run id in the service
            chosen = "offline"
            self.run = wandb.init(mode="offline", **kwargs)
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
        super().log(metrics, step)
        self._guard(lambda: self.run.log(metrics, step=step))

    def log_eval(self, metrics: dict[str, float], step: int) -> None:
        super().log_eval(metrics, step)
        self._guard(lambda: self.run.log(metrics, step=step))

    def log_image(self, key: str, image: torch.Tensor, step: int) -> Path:
        path = super().log_image(key, image, step)
        self._guard(lambda: self.run.log({key: self._wandb.Image(_to_hwc(image))}, step=step))
        return path

    def summary(self, values: dict[str, Any]) -> None:
        super().summary(values)
        self._guard(lambda: self.run.summary.update(values))

    def finish(self, exit_code: int = 0) -> None:
        try:
            self._guard(lambda: self.run.finish(exit_code=exit_code))
            if not self.shared_process:  # the service serves the other open runs: teardown_wandb() after the last
                # offline runs: without teardown the last records can miss the file (seen 2 in 30)
                self._guard(self._wandb.teardown)
        finally:
            super().finish(exit_code)

    def sync_hint(self) -> str | None:
        if self.mode == "offline" and self._where:
            return f"offline run; upload it with: wandb sync {self._where}"
        return f"{self._where}" if self._where else None


def log_tables(run_dir: Path, name: str, group: str, mode: str, tables: dict[str, tuple[list[str], list[list]]],
               project: str = "ganlab") -> None:
    """One W&B run (in ``group``) holding ``tables`` (name -> (columns, rows)) as wandb.Tables: a sweep's summary.

    ``mode``: auto (online with credentials, else offline), offline or online; never a prompt.
    """
    import wandb

    chosen = ("online" if has_wandb_credentials() else "offline") if mode == "auto" else mode
    with wandb.init(dir=str(run_dir), project=project, group=group, name=name, job_type="summary", mode=chosen,
                    reinit="finish_previous", settings=wandb.Settings(silent=True, console="off")) as run:
        for key, (columns, rows) in tables.items():
            run.log({key: wandb.Table(columns=columns, data=rows)})
    wandb.teardown()


def teardown_wandb() -> None:
    """Shut W&B's service down once the last of several runs in this process finished (flushes offline files)."""
    import sys

    if "wandb" in sys.modules:
        sys.modules["wandb"].teardown()


class SilentTracker(Tracker):
    """The tracker of ranks other than 0: accepts everything, writes nothing."""

    def __init__(self) -> None:  # no run dir, no files
        self._summary = {}

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
