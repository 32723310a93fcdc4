"""The ``sweep`` config group, read from the top-level ``sweeps/`` folder of a ganlab checkout.

A Hydra group is a folder named like the group under a config root; ganlab keeps its multirun
definitions in ``sweeps/`` beside ``conf/`` (one real folder, no symlink), so this source presents
that folder as the group ``sweep`` of a root that holds nothing else. conf/config.yaml puts it on
the search path (``hydra.searchpath: [ganlab-sweeps://]``). An installed wheel ships the same files
as ``ganlab/conf/sweep/``; there this source finds no ``sweeps/`` folder and stays unavailable.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from hydra._internal.core_plugins.file_config_source import FileConfigSource
from hydra.core.object_type import ObjectType
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource

GROUP = "sweep"
CHECKOUT_SWEEPS = Path(__file__).resolve().parents[2] / "sweeps"


class SweepsConfigSource(ConfigSource):
    """``ganlab-sweeps://[folder]``: group ``sweep`` = the files of ``folder`` (default: the checkout's sweeps/)."""

    def __init__(self, provider: str, path: str) -> None:
        super().__init__(provider=provider, path=path)
        self.path = self.path or str(CHECKOUT_SWEEPS)
        self._files = FileConfigSource(provider, self.path)  # the folder itself, as a plain config root

    @staticmethod
    def scheme() -> str:
        return "ganlab-sweeps"

    @staticmethod
    def _inner(config_path: str) -> Optional[str]:
        """The path inside the folder for a path of the group ("" for the group itself; None outside it)."""
        parts = Path(config_path).parts
        if not parts or parts[0] != GROUP:
            return None
        return str(Path(*parts[1:])) if len(parts) > 1 else ""

    def load_config(self, config_path: str) -> ConfigResult:
        inner = self._inner(config_path)
        if not inner:
            raise ConfigLoadError(f"Config not found : {config_path}")
        return self._files.load_config(inner)

    def available(self) -> bool:
        return Path(self.path).is_dir()

    def is_group(self, config_path: str) -> bool:
        inner = "" if config_path == "" else self._inner(config_path)
        return inner is not None and self.available() and self._files.is_group(inner)

    def is_config(self, config_path: str) -> bool:
        inner = self._inner(config_path)
        return bool(inner) and self._files.is_config(inner)

    def list(self, config_path: str, results_filter: Optional[ObjectType]) -> List[str]:
        if config_path == "":  # the root holds the group and nothing else
            return [GROUP] if self.available() and results_filter in (None, ObjectType.GROUP) else []
        inner = self._inner(config_path)
        return [] if inner is None or not self._files.is_group(inner) else self._files.list(inner, results_filter)
