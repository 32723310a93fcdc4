"""ganlab's Hydra plugins: the ``sweep`` config group served from ``sweeps/``, the Optuna sweeper of
``sweep=optuna``, the population launchers, the basic, local parallel and Slurm launchers.

Hydra finds plugins by scanning the ``hydra_plugins`` namespace package; an editable install
(``pip install -e .``) hides this folder from that scan, so ganlab also registers them itself
(``register``), which is a no-op where the scan already found them.
"""

from __future__ import annotations


def register_sources() -> None:
    """Make the ``ganlab-sweeps://`` config source known to Hydra (cheap: no plugin scan)."""
    from hydra._internal.sources_registry import SourcesRegistry

    from hydra_plugins.ganlab_plugins.sweeps_source import SweepsConfigSource

    SourcesRegistry.instance().register(SweepsConfigSource)


def register_plugins() -> None:
    """Make ganlab's Hydra plugins known to Hydra's plugin registry (the sweeper, the launchers)."""
    from hydra.core.plugins import Plugins

    from hydra_plugins.ganlab_plugins.basic_launcher import BasicLauncher
    from hydra_plugins.ganlab_plugins.optuna_sweeper import OptunaSweeper
    from hydra_plugins.ganlab_plugins.parallel_launcher import LocalParallelLauncher
    from hydra_plugins.ganlab_plugins.population_launcher import PopulationLauncher, SlurmPopulationLauncher
    from hydra_plugins.ganlab_plugins.slurm_launcher import SlurmLauncher

    for plugin in (OptunaSweeper, BasicLauncher, LocalParallelLauncher, PopulationLauncher, SlurmPopulationLauncher,
                   SlurmLauncher):
        Plugins.instance().register(plugin)
