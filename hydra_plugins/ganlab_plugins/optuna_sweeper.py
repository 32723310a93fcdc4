"""The sweeper of ``sweep=optuna``: hydra-optuna-sweeper's, ending as every ganlab sweep ends when no trial finished.

Optuna's sweeper asks the study for its best trial after the last one, which raises "No trials are
completed yet" (with a traceback) when every trial failed. This one prints the sweep's summary instead
(each failure was already one ``ganlab: error:`` line) and exits 2, as a grid sweep with failed jobs does.
Optuna's other ValueErrors are its checks of the options (``direction``, an interval's bounds): a ConfigError,
one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper as _OptunaSweeper


class OptunaSweeper(_OptunaSweeper):
    """hydra-optuna-sweeper's OptunaSweeper; the same options (sweeps/optuna.yaml)."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweep_dir = Path(str(config.hydra.sweep.dir))  # pinned by ganlab.launch.sweep.SweepCallback
        for key in ("n_trials", "n_jobs"):  # Optuna's sweeper would run nothing (<= 0), or loop forever (n_jobs 0)
            value = getattr(self.sweeper, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                from ganlab.errors import ConfigError

                raise ConfigError(f"hydra.sweeper.{key}={value!r}: must be an integer >= 1")
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        try:
            return super().sweep(arguments)
        except ValueError as err:
            if "No trials are completed" not in str(err):
                # Optuna's checks of the sweeper's options (direction, a distribution's bounds): one line
                from ganlab.errors import ConfigError

                raise ConfigError(f"hydra.sweeper: {str(err).strip().splitlines()[0]}") from err
            from ganlab.launch.sweep import sweep_summary

            print(sweep_summary(self.sweep_dir), flush=True)
            raise SystemExit(2) from None  # not an Exception: Hydra prints no traceback for it
