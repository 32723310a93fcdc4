"""Hydra launchers that train the jobs of a multirun as populations (ganlab.launch.population).

``population``: every group of compatible jobs as one batched program in this process.
``slurm_population``: the groups in packs of ``members_per_task`` jobs, one packed population per
Slurm task, through submitit. Both return one JobReturn per job, so every sweeper (the basic grid,
Optuna) works through them. This module stays import-light: Hydra imports every plugin at start-up.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class PopulationLauncher(Launcher):
    """``max_members``: the most members one program trains (0: a whole group at once).
    ``processes``: local worker processes the programs are split across (auto: one per CPU core on
    the CPU, 1 on CUDA; 1: every program in this process); ``threads``: torch threads of each (auto:
    the cores shared out)."""

    def __init__(self, max_members: int = 0, processes: int | str = "auto", threads: int | str = "auto") -> None:
        if isinstance(max_members, bool) or not isinstance(max_members, int) or max_members < 0:
            raise ValueError(f"hydra.launcher.max_members must be an integer >= 0, got {max_members!r}")
        if processes != "auto" and (isinstance(processes, bool) or not isinstance(processes, int) or processes < 1):
            raise ValueError(f"hydra.launcher.processes must be auto or an integer >= 1, got {processes!r}")
        if threads != "auto" and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ValueError(f"hydra.launcher.threads must be auto or an integer >= 1, got {threads!r}")
        self.max_members, self.processes, self.threads = max_members, processes, threads
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function
        self.composed = remember_compositions(hydra_context.config_loader)
        if type(self) is PopulationLauncher:  # workers come from a forkserver importing while the sweeper composes
            from ganlab.launch.population.launcher import start_workers_early

            start_workers_early(self.processes, OmegaConf.select(config, "hardware.device", default="auto"))

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from ganlab.launch.population.launcher import launch_here

        return launch_here(self, job_overrides, initial_job_idx)


def remember_compositions(config_loader: Any) -> dict[tuple[str, ...], DictConfig]:
    """Keep the job configs the sweeper composes to validate a batch, for the launcher to take.

    Every sweeper composes each job of a batch once to fail early (``validate_batch_is_legal``), and
    a launcher composes it again to run it: at ~0.15 s a composition that is 4 s of a 27-job sweep.
    Both call this loader with the same arguments, so the launcher takes the sweeper's result (once:
    ``jobs.prepare`` pops it) instead of composing the same config twice.
    """
    composed: dict[tuple[str, ...], DictConfig] = {}
    load = config_loader.load_sweep_config

    def load_and_remember(master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        config = load(master_config=master_config, sweep_overrides=sweep_overrides)
        composed[tuple(sweep_overrides)] = config
        return config

    config_loader.load_sweep_config = load_and_remember
    return composed


class SlurmPopulationLauncher(PopulationLauncher):
    """Packs of ``members_per_task`` jobs per Slurm task; the other keys as hydra-submitit-launcher's."""

    def __init__(self, members_per_task: int = 8, partition: Optional[str] = None, timeout_min: int = 60,
                 cpus_per_task: int = 1, mem_gb: int = 4, gpus_per_node: Optional[int] = None,
                 signal_delay_s: int = 120, max_num_timeout: int = 3, array_parallelism: int = 16,
                 additional_parameters: Optional[dict[str, Any]] = None, setup: Optional[list[str]] = None) -> None:
        super().__init__(max_members=members_per_task, processes=1)
        if members_per_task < 1:
            raise ValueError(f"hydra.launcher.members_per_task must be >= 1, got {members_per_task}")
        self.members_per_task, self.max_num_timeout = members_per_task, max_num_timeout
        self.queue = {"timeout_min": timeout_min, "cpus_per_task": cpus_per_task, "mem_gb": mem_gb,
                      "gpus_per_node": gpus_per_node, "slurm_partition": partition,
                      "slurm_signal_delay_s": signal_delay_s, "slurm_array_parallelism": array_parallelism,
                      "slurm_additional_parameters": dict(additional_parameters or {}),
                      "slurm_setup": list(setup or [])}

    def slurm_parameters(self) -> dict[str, Any]:
        """submitit's executor parameters (None values left out: the cluster's defaults)."""
        return {k: v for k, v in self.queue.items() if v is not None}

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from ganlab.launch.population.launcher import launch_on_slurm

        return launch_on_slurm(self, job_overrides, initial_job_idx)
