"""``logger=tensorboard``: TensorBoard event files (the only module that imports tensorboard, lazily)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganlab.errors import ConfigError
from ganlab.tracking.files import Logger

if TYPE_CHECKING:
    import torch


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
