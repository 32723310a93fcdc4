"""Typed schema for the run-level keys, and what a run knows about its Hydra context."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ganlab.errors import ConfigError

GROUPS = ("model", "loss", "optimizer", "data", "hardware", "logger", "experiment", "sweep")


@dataclass
class TrainerConfig:
    """``trainer.*``: how long to train and how often to log, sample and checkpoint."""

    epochs: int = 100
    max_steps: Optional[int] = None
    n_critic: int = 1
    detach_fake: bool = True
    log_every: int = 25
    sample_every: int = 500
    ckpt_every: int = 500
    ckpt_keep: Optional[int] = 3
    n_grid: int = 64
    progress: bool = True


def trainer_config(cfg: DictConfig) -> TrainerConfig:
    """Validate ``cfg.trainer`` against TrainerConfig (unknown keys and wrong types are errors)."""
    try:
        given = OmegaConf.to_container(cfg.trainer, resolve=True)
        merged = OmegaConf.merge(OmegaConf.structured(TrainerConfig), given)
    except OmegaConfBaseException as err:
        raise ConfigError(f"trainer: {err.msg if hasattr(err, 'msg') else err}".splitlines()[0]) from err
    tc: TrainerConfig = OmegaConf.to_object(merged)
    for key in ("epochs", "n_critic", "log_every", "sample_every", "ckpt_every", "n_grid"):
        if getattr(tc, key) < 1:
            raise ConfigError(f"trainer.{key} must be >= 1, got {getattr(tc, key)}")
    if tc.max_steps is not None and tc.max_steps < 1:
        raise ConfigError(f"trainer.max_steps must be >= 1 or null, got {tc.max_steps}")
    if tc.ckpt_keep is not None and tc.ckpt_keep < 1:
        raise ConfigError(f"trainer.ckpt_keep must be >= 1 or null, got {tc.ckpt_keep}")
    if not isinstance(cfg.get("seed"), int) or isinstance(cfg.get("seed"), bool):
        raise ConfigError(f"seed must be an integer, got {cfg.get('seed')!r}")
    return tc


def hydra_context(cfg: DictConfig) -> dict[str, Any]:
    """Run dir, W&B name/group and group choices from Hydra (or defaults outside a Hydra run)."""
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get() if HydraConfig.initialized() else cfg.get("hydra")
    if hc is None:
        return {"output_dir": None, "name": "default", "group": "single", "choices": {}, "multirun": False}
    multirun = str(OmegaConf.select(hc, "mode", default="RUN")).endswith("MULTIRUN")
    output_dir = OmegaConf.select(hc, "runtime.output_dir", default=None)
    choices = OmegaConf.to_container(hc.runtime.choices) if "choices" in hc.runtime else {}
    return {
        "output_dir": output_dir,
        "name": OmegaConf.select(hc, "job.override_dirname", default="") or "default",
        # the sweep's name: its directory's (sweep file + hash of its overrides, see ganlab.sweep)
        "group": Path(str(output_dir)).parent.name if multirun and output_dir else "single",
        "choices": {g: str(choices.get(g)) for g in GROUPS},
        "multirun": multirun,
        "overrides": list(OmegaConf.select(hc, "overrides.task", default=[]) or []),
    }


def tracked_config(cfg: DictConfig, choices: dict[str, str], overrides: list[str] = ()) -> dict[str, Any]:
    """The resolved config plus top-level keys dashboards can group and plot by: ``<group>_choice``
    for each config group, and ``optimizer_lr``-style keys for each overridden (e.g. swept) value."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    plain.pop("hydra", None)
    plain.update({f"{g}_choice": c for g, c in choices.items()})
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if "." in key and (value := OmegaConf.select(cfg, key, default=None)) is not None:
            plain[key.replace(".", "_")] = OmegaConf.to_container(value, resolve=True) \
                if OmegaConf.is_config(value) else value
    return plain
