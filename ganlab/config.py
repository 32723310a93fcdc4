"""The composed config as typed values: where conf/ lives, composing it, the trainer schema, the run context.

This module and ``ganlab.build`` are the only ones below the entry points that read a DictConfig:
they turn it into typed settings and objects that the rest of ganlab takes as plain arguments.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ganlab.errors import ConfigError, GanlabError
from ganlab.naming import short_overrides
from ganlab.ranges import check_ranges
from ganlab.unread_keys import check_unread_keys, interpolations

# From a checkout, use the repo's conf/ (edits take effect at once); installed, the copy shipped
# inside the package as ganlab.conf.
_REPO_CONF = Path(__file__).resolve().parent.parent / "conf"
CONFIG_PATH = str(_REPO_CONF) if (_REPO_CONF / "config.yaml").is_file() else "pkg://ganlab.conf"
GROUPS = ("model", "loss", "optimizer", "data", "augment", "hardware", "launcher", "logger", "experiment", "sweep",
          "debug")


def config_dirs() -> tuple[Path, Path]:
    """(the conf/ folder, the sweep group's folder): the checkout's conf/ and sweeps/, or the installed copies."""
    if not CONFIG_PATH.startswith("pkg://"):
        return _REPO_CONF, _REPO_CONF.parent / "sweeps"
    from importlib.resources import files

    root = Path(str(files("ganlab.conf")))
    return root, root / "sweep"


def default_choices() -> dict[str, str]:
    """The option conf/config.yaml's defaults list picks in each group (groups that default to none left out)."""
    conf, _ = config_dirs()
    picked = {}
    for entry in OmegaConf.load(conf / "config.yaml").get("defaults", []):
        if isinstance(entry, DictConfig):
            picked.update({str(k): str(v) for k, v in entry.items() if v is not None})
    return picked


def config_groups() -> dict[str, list[str]]:
    """Each config group's options, read from the files (no Hydra: fast enough for ``--help``)."""
    conf, sweeps = config_dirs()
    return {group: sorted(p.stem for p in (sweeps if group == "sweep" else conf / group).glob("*.yaml"))
            for group in GROUPS}


def help_groups() -> str:
    """The groups block of ``python -m ganlab --help`` (resolver ``ganlab_help_groups``): ``model  mlp*, dcgan``."""
    picked = default_choices()
    lines = []
    for group, options in config_groups().items():
        ordered = sorted(options, key=lambda o: o != picked.get(group))  # the default first, marked *
        lines.append(f"{group:<11} " + ", ".join(f"{o}*" if o == picked.get(group) else o for o in ordered))
    return "\n  ".join(lines)


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
    # issue 12: the EMA of G's weights (null: off), its warm-up, and which G samples and is evaluated
    g_ema: Optional[float] = None
    g_ema_start: int = 0
    sample_from: str = "auto"  # auto (g_ema when g_ema is set, else g) | g | g_ema


@dataclass
class RunContext:
    """``run.*``: where a run records itself and under which name; Hydra fills it, the Python API sets it."""

    dir: Path
    name: str = "default"  # the job's overrides, numbers shortened (ganlab.naming): its W&B run name
    group: str = "single"  # the sweep's name (its directory's), "single" for a single run
    choices: dict[str, str] = field(default_factory=dict)  # the chosen option of each config group
    overrides: list[str] = field(default_factory=list)  # the job's command-line overrides


def hydra_error_line(err: Exception) -> str:
    """Hydra's report of a bad override (an unknown option or key, bad syntax) as one line.

    "In 'config': Could not find 'loss/foo'" + "Available options in 'loss':" + one option per line
    -> "Could not find 'loss/foo' (available options in 'loss': acgan, bce, ...)"; "Could not override
    'trainer.x'." + its OmegaConf cause -> "Could not override 'trainer.x': Key 'x' is not in struct (...)".
    """
    from hydra.errors import InstantiationException, OverrideParseException

    if isinstance(err, InstantiationException) and isinstance(err.__cause__, (ValueError, GanlabError)):
        # a launcher's or a component's own check of its arguments already names the key and the value
        return str(err.__cause__).strip().splitlines()[0]
    text = str(err).split("Config search path:")[0]  # where Hydra looked: noise for a typo
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    head, rest = lines[0].removeprefix("In 'config': ").rstrip("."), lines[1:]
    if isinstance(err, OverrideParseException) and not head.startswith("Error parsing override"):
        head = f"{err.override}: {head}"  # "no viable alternative at input '[1'" alone does not say where
    cause = err.__cause__
    if isinstance(cause, OmegaConfBaseException) and str(cause).strip():
        head += ": " + str(cause).strip().splitlines()[0]
    available = next((i for i, line in enumerate(rest) if line.startswith("Available options in")), None)
    if available is not None:
        rest = rest[:available] + [rest[available] + " " + ", ".join(rest[available + 1:])]
    # "To append ..." -> "to append ...", but not "ValueError(...)"
    rest = [line[0].lower() + line[1:] if re.match(r"[A-Z][a-z]+\b", line) else line for line in rest]
    return head + (f" ({'; '.join(rest)})" if rest else "")


def compose_config(overrides: list[str]) -> DictConfig:
    """The config ``python -m ganlab <overrides>`` would train with (same conf/, same defaults)."""
    from hydra import compose, initialize_config_dir, initialize_config_module
    from hydra.errors import HydraException

    try:
        if CONFIG_PATH.startswith("pkg://"):
            init = initialize_config_module(config_module=CONFIG_PATH.removeprefix("pkg://"), version_base="1.3")
        else:
            init = initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3")
        with init:
            return compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(hydra_error_line(err)) from err


def plain_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain containers, without Hydra's node and the run context (for checkpoints)."""
    body = OmegaConf.masked_copy(cfg, [k for k in cfg if k not in ("hydra", "run")])
    try:
        return OmegaConf.to_container(body, resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError(f"config: {err.msg if hasattr(err, 'msg') else err}".splitlines()[0]) from err


def validate(cfg: DictConfig) -> dict[str, Any]:
    """Check every value's range and that every key added with ``+`` is read (one line naming the first bad
    key); return the plain config."""
    plain = plain_config(cfg)
    check_ranges(plain, frozenset(interpolations(cfg)))  # copies checked last: an error names the key set
    # the command line's overrides (a Hydra job, a population member); none when built from Python
    overrides = OmegaConf.select(cfg, "run.overrides", default=None, throw_on_resolution_failure=False)
    check_unread_keys(cfg, [str(o) for o in overrides or []])
    return plain


def trainer_config(cfg: DictConfig) -> TrainerConfig:
    """Validate ``cfg.trainer`` against TrainerConfig (unknown keys and wrong types are errors)."""
    try:
        given = OmegaConf.to_container(cfg.trainer, resolve=True)
        merged = OmegaConf.merge(OmegaConf.structured(TrainerConfig), given)
    except OmegaConfBaseException as err:
        raise ConfigError(f"trainer: {err.msg if hasattr(err, 'msg') else err}".splitlines()[0]) from err
    return OmegaConf.to_object(merged)


def run_context(cfg: DictConfig) -> RunContext:
    """``cfg.run`` as a RunContext; outside a Hydra run, ``run.dir`` must be set by the caller."""
    try:
        node = OmegaConf.to_container(cfg.run, resolve=True)
    except OmegaConfBaseException as err:
        raise ConfigError("run.dir is not set: outside `python -m ganlab` (e.g. train(cfg) from Python) set "
                          f"cfg.run.dir to the run's directory ({str(err).splitlines()[0]})") from err
    choices = {g: str((node.get("choices") or {}).get(g)) for g in GROUPS} if node.get("choices") else {}
    if choices.get("logger") == "None" and cfg.get("logger"):  # Hydra records no choice for a list of options
        choices["logger"] = ",".join(cfg.logger)  # logger=[wandb,tensorboard]: "wandb,tensorboard"
    return RunContext(Path(node["dir"]), short_overrides(str(node.get("name") or "")) or "default",
                      node.get("group") or "single",
                      choices, [str(o) for o in node.get("overrides") or []])


def tracked_config(cfg: DictConfig, ctx: RunContext) -> dict[str, Any]:
    """The resolved config plus top-level keys dashboards can group and plot by: ``<group>_choice``
    for each config group, and ``optimizer_lr``-style keys for each overridden (e.g. swept) value."""
    plain = plain_config(cfg)
    plain.update({f"{g}_choice": c for g, c in ctx.choices.items()})
    for override in ctx.overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if "." in key and (value := OmegaConf.select(cfg, key, default=None)) is not None:
            plain[key.replace(".", "_")] = OmegaConf.to_container(value, resolve=True) \
                if OmegaConf.is_config(value) else value
    return plain
