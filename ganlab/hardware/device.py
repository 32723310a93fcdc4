"""Device selection and the speed switches: CUDA graph capture, bf16 autocast, TF32, DDP."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import torch

from ganlab.errors import ConfigError
from ganlab.hardware.allocator import keep_freed_memory


def resolve_device(device: Literal["auto", "cpu", "cuda"] = "auto") -> torch.device:
    """The torch device for a run: "auto" picks CUDA when one is visible, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("hardware=gpu asks for CUDA, but no CUDA device is visible; use hardware=cpu or auto")
    return torch.device(device)


def command_device(name: str) -> torch.device:
    """``--device`` of ``ganlab.sample`` and ``ganlab.eval``: auto, cpu, cuda, cuda:N (any torch device), checked."""
    if name == "auto":
        return resolve_device("auto")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as err:
        raise ConfigError(f"--device {name}: not a torch device (auto, cpu, cuda, cuda:1, ...)") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device is visible; use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


@dataclass
class Hardware:
    """Where and how a run computes: device, CUDA graph capture, precision, and its DDP rank."""

    device: torch.device
    cuda_graph: bool = False
    precision: Literal["fp32", "bf16"] = "fp32"
    tf32: bool = False
    ddp: bool = False  # one rank of a DistributedDataParallel run
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Only the main rank logs, samples and checkpoints."""
        return self.rank == 0

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype for forward passes (None: plain fp32)."""
        return torch.bfloat16 if self.precision == "bf16" else None


def setup(
    device: Literal["auto", "cpu", "cuda"] = "auto",
    cuda_graph: bool = False,
    precision: Literal["fp32", "bf16"] = "fp32",
    tf32: bool = False,
    ddp: bool = False,
    backend: Literal["auto", "nccl", "gloo"] = "auto",
) -> Hardware:
    """Pick the device, set TF32, and with ``ddp`` join the process group torchrun/Slurm describe."""
    rank, world_size = 0, 1
    if ddp:
        from ganlab.hardware.ddp import init_process_group

        rank, world_size, local_rank = init_process_group(device, backend)
        chosen = torch.device(f"cuda:{local_rank}") if resolve_device(device).type == "cuda" else torch.device("cpu")
        if chosen.type == "cuda":
            torch.cuda.set_device(chosen)
    else:
        chosen = resolve_device(device)
    if chosen.type == "cpu":  # a training loop's large tensors reused, not mmapped afresh each step (allocator.py)
        keep_freed_memory()
    if cuda_graph and chosen.type != "cuda":
        raise ConfigError(f"hardware.cuda_graph=true needs CUDA, but the run is on {chosen.type}; "
                          "set hardware.cuda_graph=false or use hardware=gpu on a CUDA machine")
    if cuda_graph and ddp:
        raise ConfigError("hardware.cuda_graph=true is not supported with hardware=ddp (DDP's all-reduce "
                          "hooks are not captured); use one or the other")
    with warnings.catch_warnings():  # newer torch prefers fp32_precision; the old flag still works
        warnings.simplefilter("ignore")
        # set both ways: the jobs of a multirun share a process, a tf32 job must not leak into the next.
        # (Convolutions use TF32 by default in PyTorch, cudnn.allow_tf32; that default is left alone.)
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return Hardware(chosen, cuda_graph, precision, tf32, ddp, rank, world_size)
