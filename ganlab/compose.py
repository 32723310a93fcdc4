"""Compose the run config outside ``@hydra.main``, for the small commands (classifier, eval)."""

from __future__ import annotations

from hydra import compose, initialize_config_dir, initialize_config_module
from hydra.errors import HydraException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from ganlab.__main__ import CONFIG_PATH
from ganlab.errors import ConfigError


def compose_config(overrides: list[str]) -> DictConfig:
    """The config ``python -m ganlab <overrides>`` would train with (same conf/, same defaults)."""
    try:
        if CONFIG_PATH.startswith("pkg://"):
            init = initialize_config_module(config_module=CONFIG_PATH.removeprefix("pkg://"), version_base="1.3")
        else:
            init = initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3")
        with init:
            return compose(config_name="config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(str(err).splitlines()[0]) from err
