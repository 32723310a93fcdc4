"""``logger=wandb``: one W&B run per ganlab run (the only module that imports wandb, lazily)."""

from __future__ import annotations

import netrc
import os
import secrets
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ganlab.tracking.files import Logger, _to_hwc

if TYPE_CHECKING:
    import torch


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

    def preempting(self) -> None:
        if not self._finished:  # with the non-zero exit code that follows: "preempted" on the dashboard
            self._guard(lambda: self.run.mark_preempting())

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
