"""What a training run holds (``Run``), and its checkpoint as plain data (``snapshot`` / ``restore``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ganlab.augment import DiffAugment
from ganlab.data.batches import Batches, DataSet, LabelSampler, LatentSampler
from ganlab.ema import GeneratorEMA
from ganlab.errors import ResumeError
from ganlab.hardware.device import Hardware
from ganlab.losses import GANLoss

if TYPE_CHECKING:  # the run holds typed settings; reading them from the config is ganlab.config's job
    from ganlab.config import TrainerConfig


@dataclass
class Run:
    """Everything a training run holds; built once by ``build_run``."""

    trainer: TrainerConfig
    device: torch.device
    data: DataSet
    batches: Batches
    generator: nn.Module
    discriminator: nn.Module
    loss: GANLoss
    g_opt: torch.optim.Optimizer
    d_opt: torch.optim.Optimizer
    latent: LatentSampler
    z_bank: torch.Tensor
    total_steps: int
    hardware: Hardware | None = None  # None: plain fp32 eager on ``device``
    g_train: nn.Module | None = None  # what the step calls: G itself (None), or G inside DDP
    d_train: nn.Module | None = None
    # issue 12's options; None = off, and then the run is what it was before them (bit for bit)
    g_ema: GeneratorEMA | None = None  # the EMA of G's weights, updated after every step
    sample_from: str = "g"  # "g" or "g_ema": the G that draws grids, is evaluated and exported
    augment: DiffAugment | None = None  # what every image D sees in training passes through
    augment_gen: torch.Generator | None = None  # the augmentation's own random stream (checkpointed)
    classes: LabelSampler | None = None  # G's class labels (conditional runs), its own stream

    def __post_init__(self) -> None:
        self.hardware = Hardware(self.device) if self.hardware is None else self.hardware
        self.g_train = self.generator if self.g_train is None else self.g_train
        self.d_train = self.discriminator if self.d_train is None else self.d_train

    @property
    def sampler(self) -> nn.Module:
        """The G that samples: the EMA G when ``sample_from`` is g_ema, else G itself."""
        return self.g_ema.module if self.sample_from == "g_ema" and self.g_ema is not None else self.generator

    @property
    def other_sampler(self) -> tuple[str, nn.Module] | None:
        """(name, G) of the generator that is logged beside the sampler (with an EMA: the other one)."""
        if self.g_ema is None:
            return None
        return ("g", self.generator) if self.sample_from == "g_ema" else ("g_ema", self.g_ema.module)

    @property
    def shape(self) -> tuple[int, ...]:
        """One sample's shape: (C, H, W) for images, (2,) for points."""
        return self.data.shape


def snapshot(run: Run, step: int, config: dict, eval_state: dict | None = None,
             noise_rng: torch.Generator | None = None) -> dict[str, Any]:
    """The checkpoint of ``run`` at ``step``: plain data, loadable with weights_only=True.

    ``noise_rng``: the generator that stands in for the global RNG (penalty noise) when the run is
    a member of a population; its state is saved where a single run saves the global one.
    """
    if noise_rng is None:
        rng = {"torch": torch.get_rng_state()}
        if run.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(run.device)
    else:
        rng = {"cuda" if run.device.type == "cuda" else "torch": noise_rng.get_state()}
        if run.device.type == "cuda":
            rng["torch"] = torch.get_rng_state()
    rng["latent"] = run.latent.generator.get_state()
    if run.augment_gen is not None:
        rng["augment"] = run.augment_gen.get_state()
    if run.classes is not None:
        rng["labels"] = run.classes.generator.get_state()
    extra: dict[str, Any] = {} if run.g_ema is None else {"generator_ema": run.g_ema.state_dict()}
    n_classes = getattr(run.generator, "n_classes", None)
    if n_classes is not None:  # a conditional G: the checkpoint rebuilds it without loading the data
        extra["n_classes"] = n_classes
    return {
        "step": step,
        "generator": run.generator.state_dict(),
        **extra,
        "discriminator": run.discriminator.state_dict(),
        "g_opt": run.g_opt.state_dict(),
        "d_opt": run.d_opt.state_dict(),
        "rng": rng,
        "img_shape": list(run.shape),
        "config": config,
        "eval": eval_state or {},
    }


def load_error_line(err: Exception) -> str:
    """torch's load_state_dict report (a header, then a tab-indented line per tensor) as one line: the
    module, its first mismatch and how many more (a bad resume is one line, like any bad input)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if len(lines) < 2:
        return " ".join(lines)
    head = lines[0].removeprefix("Error(s) in loading state_dict for ").rstrip(":")
    more = f" (and {len(lines) - 2} more)" if len(lines) > 2 else ""
    return f"{head}: {lines[1]}{more}"


def check_optimizers(run: Run, state: dict[str, Any], path: Path) -> None:
    """A ResumeError when the checkpoint's optimizers are of another kind than the run's: torch would load
    Adam's state into RMSprop without a word and fail at the first step (a KeyError on its missing buffer)."""
    saved = (state.get("config") or {}).get("optimizer") or {}
    for net, opt in (("generator", run.g_opt), ("discriminator", run.d_opt)):
        target = str((saved.get(net) or {}).get("_target_") or "")
        if target and target.rsplit(".", 1)[-1] != type(opt).__name__:
            raise ResumeError(f"{path} trained its {net} with {target}, this run with {type(opt).__name__}: "
                              "resume with the checkpoint's optimizer=...")


def restore(run: Run, state: dict[str, Any], path: Path) -> int:
    """Load a checkpoint into ``run`` and return its step."""
    check_optimizers(run, state, path)
    try:
        run.generator.load_state_dict(state["generator"])
        run.discriminator.load_state_dict(state["discriminator"])
        run.g_opt.load_state_dict(state["g_opt"])
        run.d_opt.load_state_dict(state["d_opt"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise ResumeError(f"{path} does not match this run's model/optimizer config: {load_error_line(err)}") from err
    torch.set_rng_state(state["rng"]["torch"])
    run.latent.generator.set_state(state["rng"]["latent"])
    if "cuda" in state["rng"] and run.device.type == "cuda":
        torch.cuda.set_rng_state(state["rng"]["cuda"], run.device)
    restore_extras(run, state, path)
    return int(state["step"])


def restore_extras(run: Run, state: dict[str, Any], path: Path) -> None:
    """The EMA G and the augmentation/label streams; a checkpoint without them (older, or written with
    the option off) starts them here: the EMA from the restored G, the streams from their seeds."""
    if run.g_ema is not None:
        ema_state = state.get("generator_ema")
        try:
            run.g_ema.load_state_dict(ema_state if ema_state is not None else run.generator.state_dict())
        except (RuntimeError, ValueError) as err:
            raise ResumeError(f"{path}: its generator_ema does not match this run's model config: "
                              f"{load_error_line(err)}") from err
    rng = state["rng"]
    if run.augment_gen is not None and "augment" in rng:
        run.augment_gen.set_state(rng["augment"])
    if run.classes is not None and "labels" in rng:
        run.classes.generator.set_state(rng["labels"])
