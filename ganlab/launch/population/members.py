"""The members of a population: each an ordinary run (its config, objects, tracker, checkpoints), and the
stacked program they are trained by.

A member is built exactly as ``train(cfg)`` builds its run (``build_run`` under the member's seed,
``restore`` from its newest checkpoint), so its init, data order, z stream and penalty noise are
those of the job run alone; the stacked modules and optimizers are copies of the members' own, and
``Population.write_back`` copies them back, so everything that reads a run (sampling, checkpoints,
``ganlab.sample``, ``resume=``) sees ordinary objects.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig

from ganlab.build import build_tracker
from ganlab.checkpoint import load_checkpoint, resolve_resume
from ganlab.config import RunContext, plain_config, tracked_config
from ganlab.data.batches import DataSet
from ganlab.launch.job import SweepJob
from ganlab.launch.population.optim import from_torch
from ganlab.launch.population.stacked import StackedModule
from ganlab.launch.population.step import DrawingStep, PopulationStep, loss_groups
from ganlab.metrics.evaluator import EvalRecord
from ganlab.run import Run, restore
from ganlab.step import CapturedStep, set_capturable
from ganlab.tracking import Tracker
from ganlab.train import build_run

log = logging.getLogger(__name__)


@dataclass
class Member:
    """One job trained inside a population."""

    cfg: DictConfig  # the job's composed config (run.* already plain values)
    ctx: RunContext
    config: dict  # the resolved config a checkpoint stores
    run: Run
    start_step: int
    noise: torch.Generator  # the member's global-RNG stream (penalty noise), as it would be alone
    record: EvalRecord
    job: SweepJob | None = None
    tracker: Tracker | None = None  # opened by open_tracker, once the member is known to train in a population

    @property
    def name(self) -> str:
        """Its id in the sweep index (its job directory's name outside a sweep)."""
        return self.job.job_id if self.job is not None else self.ctx.dir.name

    @property
    def ckpt_dir(self) -> Path:
        return self.ctx.dir / "checkpoints"


def build_member(cfg: DictConfig, ctx: RunContext, data: DataSet, job: SweepJob | None = None) -> Member:
    """The member's run as ``train(cfg)`` would build and resume it, and its eval record (no tracker yet)."""
    run = build_run(cfg, data=data)
    start_step, record, resumed = 0, EvalRecord(), None
    resume_path = resolve_resume(cfg.get("resume"), ctx.dir / "checkpoints")
    if resume_path is not None:
        resumed = load_checkpoint(resume_path)
        start_step = restore(run, resumed, resume_path)  # also the global RNG: the member's noise stream below
        record.load_state_dict(resumed.get("eval") or {})
        log.info("member %s resumed from %s at step %d", ctx.dir.name, resume_path, start_step)
    noise = torch.Generator(device=run.device)
    noise.set_state(torch.cuda.get_rng_state(run.device) if run.device.type == "cuda" else torch.get_rng_state())
    return Member(cfg, ctx, plain_config(cfg), run, start_step, noise, record, job)


def open_tracker(member: Member) -> Tracker:
    """The member's tracker, as its run alone would open it (its run dir, W&B name and group), one of several."""
    cfg, ctx = member.cfg, member.ctx
    member.tracker = build_tracker(cfg, ctx.dir, ctx.name, ctx.group, tracked_config(cfg, ctx), member.start_step)
    return member.tracker


class Population:
    """The stacked program of some members: G and D stacked, their optimizers vectorised, one step."""

    def __init__(self, members: list[Member]) -> None:
        # each loss's members side by side (stable: in their given order within a loss): the step then
        # takes a loss's rows as a slice; ``members`` is this order everywhere a population is read
        self.members = [members[k] for _, ks in loss_groups([m.run.loss for m in members]) for k in ks]
        runs = [m.run for m in self.members]
        first = runs[0]
        self.hardware = first.hardware
        self.generator = StackedModule([r.generator for r in runs])
        self.discriminator = StackedModule([r.discriminator for r in runs])
        for opt in [r.g_opt for r in runs] + [r.d_opt for r in runs]:
            set_capturable(opt, False, first.device)  # plain state: the stacked optimizer keeps its own
        self.g_opt = from_torch([r.g_opt for r in runs], self.generator)
        self.d_opt = from_torch([r.d_opt for r in runs], self.discriminator)
        step = PopulationStep(self.generator, self.discriminator, [r.loss for r in runs], self.g_opt, self.d_opt,
                              [m.noise for m in self.members], first.trainer.detach_fake, first.hardware.autocast_dtype)
        drawing = DrawingStep(step, [r.latent for r in runs], first.batches.batch_size, self.generator.z_max)
        self.step = CapturedStep(drawing) if first.hardware.cuda_graph else drawing

    @property
    def z_max(self) -> int:
        """The stacked G's latent width (narrower members' z are zero-padded to it)."""
        return self.generator.z_max

    def write_back(self, which: list[int] | None = None) -> None:
        """Copy the stacked weights and optimizer states into the members' own modules and optimizers."""
        for k in range(len(self.members)) if which is None else which:
            run = self.members[k].run
            self.generator.write_member_into(k, run.generator)
            self.discriminator.write_member_into(k, run.discriminator)
            run.g_opt.load_state_dict(self.g_opt.member_state_dict(k))
            run.d_opt.load_state_dict(self.d_opt.member_state_dict(k))

    def write_generators_back(self) -> None:
        """Only G's weights (for sample grids): cheaper than write_back, the optimizers are not needed."""
        for k, member in enumerate(self.members):
            self.generator.write_member_into(k, member.run.generator)
