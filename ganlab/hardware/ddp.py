"""hardware=ddp: one run over the processes torchrun (or Slurm through submitit) starts.

Semantics: ``data.batch_size`` stays the *global* batch. Every rank draws the same global batch and
the same z (same seed, same permutation) and keeps its own contiguous 1/world_size slice of both, so
a DDP run takes the same number of steps over the same data as a single process, and DDP's gradient
averaging makes its updates those of the global batch (BatchNorm statistics are per rank's slice).
Only rank 0 logs, samples and checkpoints; every rank resumes from the same checkpoint.
"""

from __future__ import annotations

import atexit
import os
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn

from ganlab.errors import ConfigError


def init_process_group(device: str, backend: str) -> tuple[int, int, int]:
    """Join the process group described by torchrun's (or Slurm's) environment; (rank, world, local rank)."""
    if "RANK" not in os.environ and ("SUBMITIT_EXECUTOR" in os.environ or "SUBMITIT_LOCAL_JOB_ID" in os.environ):
        from submitit.helpers import TorchDistributedEnvironment

        # a submitit job (Slurm or local) with tasks_per_node=N: derive MASTER_ADDR/PORT, RANK,
        # WORLD_SIZE and LOCAL_RANK from its job environment
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise ConfigError("hardware=ddp needs a distributed launcher: torchrun --nproc_per_node=N -m ganlab "
                          "hardware=ddp ..., or Slurm through submitit with hydra.launcher.tasks_per_node=N")
    if not dist.is_initialized():
        use_cuda = device != "cpu" and torch.cuda.is_available()
        chosen = ("nccl" if use_cuda else "gloo") if backend == "auto" else backend
        dist.init_process_group(backend=chosen)
        atexit.register(_destroy)
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0))


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` inside DistributedDataParallel (parameters broadcast from rank 0, grads averaged)."""
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def shard(batch: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """This rank's contiguous slice of a global batch (world_size must divide its length)."""
    size = batch.shape[0] // world_size
    return batch[rank * size : (rank + 1) * size]


def check_batch(batch_size: int, world_size: int) -> None:
    """The global batch must split evenly over the ranks (DDP averages equal-sized shards)."""
    if batch_size % world_size:
        raise ConfigError(f"data.batch_size={batch_size} is the global batch under hardware=ddp and must be "
                          f"divisible by the {world_size} processes")


def main_run_dir(run_dir: Path) -> Path:
    """Rank 0's run directory on every rank (Hydra may name each rank's own by its start second)."""
    holder: list[Any] = [str(run_dir)]
    dist.broadcast_object_list(holder, src=0)
    return Path(holder[0])


def agreed_stop(local: Callable[[], bool], device: torch.device, every: int = 10) -> Callable[[], bool]:
    """A stop request the ranks agree on: the loop asks at the same steps on every rank, and every ``every``-th
    ask max-reduces the ranks' own flags (one small all_reduce, not one per step); the other asks say False.

    Each rank sees a preemption signal at its own step; stopping on its own flag, one rank would checkpoint and
    leave while the others wait in the next step's gradient all_reduce until the scheduler kills them.
    """
    asks = 0

    def requested() -> bool:
        nonlocal asks
        asks += 1
        if asks % every:
            return False
        flag = torch.tensor(int(local()), device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    return requested


def barrier() -> None:
    """Wait for every rank (no-op outside a process group)."""
    if dist.is_initialized():
        dist.barrier()
