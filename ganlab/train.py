"""train(cfg): build data, models, loss, optimizers and tracker from config, then run the step loop."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig

from ganlab import loop
from ganlab.build import (
    build_augment,
    build_data,
    build_evaluator,
    build_hardware,
    build_latent,
    build_loss,
    build_models,
    build_optimizers,
    build_profiler,
    build_tracker,
)
from ganlab.checkpoint import list_checkpoints, load_checkpoint, resolve_resume
from ganlab.config import TrainerConfig, plain_config, run_context, tracked_config, trainer_config, validate
from ganlab.data.batches import DataSet, LabelSampler
from ganlab.ema import GeneratorEMA
from ganlab.errors import ConfigError, Preempted, ResumeError
from ganlab.grids import GRID_SEED
from ganlab.hardware import ddp
from ganlab.metrics.names import objective_problem, step_names
from ganlab.progress import run_summary
from ganlab.run import Run, restore
from ganlab.tracking import SilentTracker, Tracker

log = logging.getLogger(__name__)


def build_run(cfg: DictConfig, data: DataSet | None = None) -> Run:
    """Build every object of a run from the composed config, seeding the global RNG first.

    ``data``: an already built data set to share (the population launcher builds it once for all members).
    """
    validate(cfg)  # every value in its range, before anything is built
    tc = trainer_config(cfg)
    torch.manual_seed(cfg.seed)
    hardware = build_hardware(cfg)
    device = hardware.device
    data = (data or build_data(cfg)).to(device)
    batches = data.batches(cfg.data.batch_size, cfg.seed)
    if batches.batch_size < cfg.data.batch_size:
        log.warning("data.batch_size=%d > the data set's size: using %d", cfg.data.batch_size, batches.batch_size)
    generator, discriminator = build_models(cfg, data.shape, data.n_classes)
    generator, discriminator = generator.to(device), discriminator.to(device)
    loss = build_loss(cfg, discriminator)
    problem = objective_problem(str(cfg.objective), bool(cfg.eval.every), step_names(loss.has_penalty,
                                                                                    loss.aux_classifier))
    if problem is not None:  # else every trial of a sweep would train to its end and fail there
        raise ConfigError(f"objective={cfg.objective}: {problem}")
    check_pack(getattr(discriminator, "pack", 1), batches.batch_size, hardware.world_size)
    g_train, d_train = generator, discriminator
    if hardware.ddp:
        ddp.check_batch(batches.batch_size, hardware.world_size)
        g_train, d_train = ddp.wrap(generator, device), ddp.wrap(discriminator, device)
    g_opt, d_opt = build_optimizers(cfg, generator, discriminator)
    latent = build_latent(cfg, generator.z_size, device, cfg.seed)
    z_bank = latent(tc.n_grid, torch.Generator(device=device).manual_seed(GRID_SEED))
    steps_from_epochs = tc.epochs * batches.per_epoch // tc.n_critic
    total = min(steps_from_epochs, tc.max_steps) if tc.max_steps else steps_from_epochs
    if tc.max_steps and total < tc.max_steps:  # easy to miss with a small data set (data.max_train)
        log.warning("trainer.max_steps=%d, but trainer.epochs=%d of %d batches (n_critic %d) end at step %d: "
                    "training %d steps (raise trainer.epochs for more)", tc.max_steps, tc.epochs,
                    batches.per_epoch, tc.n_critic, total, total)
    if total < 1:
        raise ConfigError(f"no training steps: {tc.epochs} epoch(s) of {batches.per_epoch} batches, "
                          f"n_critic={tc.n_critic}")
    run = Run(tc, device, data, batches, generator, discriminator, loss, g_opt, d_opt, latent, z_bank, total,
              hardware, g_train, d_train)
    add_optional_parts(run, cfg, tc)
    return run


AUGMENT_SEED_OFFSET = 104_729  # the augmentation stream: seeded apart from z's (the bare seed) and the labels'


def add_optional_parts(run: Run, cfg: DictConfig, tc: TrainerConfig) -> None:
    """The EMA G, the augmentation and the class labels, each only when its option is on (else the run
    is exactly what it was without them): built after everything else, so they draw nothing from the
    global RNG before the networks are initialised."""
    if tc.sample_from not in ("auto", "g", "g_ema"):
        raise ConfigError(f"trainer.sample_from={tc.sample_from!r}: must be auto, g or g_ema")
    if tc.sample_from == "g_ema" and tc.g_ema is None:
        raise ConfigError("trainer.sample_from=g_ema needs an EMA: set trainer.g_ema (e.g. 0.999)")
    if tc.g_ema is not None:
        run.g_ema = GeneratorEMA(run.generator, tc.g_ema, tc.g_ema_start)
        run.sample_from = "g" if tc.sample_from == "g" else "g_ema"
    run.augment = build_augment(cfg, run.data.shape)
    if run.augment is not None:
        seed = cfg.seed * 1_000_003 + AUGMENT_SEED_OFFSET + run.hardware.rank  # each rank draws its own
        run.augment_gen = torch.Generator(device=run.device).manual_seed(seed)
    if getattr(run.generator, "n_classes", None) is not None:
        run.classes = LabelSampler(run.generator.n_classes, run.device, cfg.seed)


def check_pack(pack: int, batch_size: int, world_size: int) -> None:
    """A packed D (``model.pack``) scores groups of ``pack`` samples: every (per-rank) batch must divide."""
    if pack > 1 and (batch_size // world_size) % pack:
        raise ConfigError(f"model.pack={pack}: the batch of {batch_size // world_size} samples"
                          f"{' per rank' if world_size > 1 else ''} must divide by {pack} (set data.batch_size)")


def already_trained(step: int, total: int, run_dir: Path, path: Path) -> dict[str, Any]:
    """A resume with no step left: the run's own final metrics when it finished in ``run_dir`` (the same
    command again, ``resume=auto``), else a ResumeError (no metrics to report: a checkpoint from elsewhere,
    or one past this run's end)."""
    summary = run_dir / "summary.json"
    if step == total and summary.is_file():
        final = json.loads(summary.read_text())
        if final.get("step") == step:
            print(f"ganlab: run already finished at step {step}: {run_dir}", flush=True)
            return {**final, "run_dir": str(run_dir)}
    raise ResumeError(f"{path} is at step {step} and this run ends at step {total} (trainer.max_steps, "
                      "trainer.epochs): nothing left to train")


def train(cfg: DictConfig, stop_requested: Callable[[], bool] | None = None, progress_label: str = "train",
          progress_position: int = 0) -> dict[str, Any]:
    """Train a GAN as ``cfg`` says; write samples, checkpoints and metrics under ``cfg.run.dir``.

    Returns the final logged metrics (plus ``step`` and ``run_dir``). When ``stop_requested()``
    turns true (a preemption signal), the current step is checkpointed and ``ganlab.errors.Preempted`` raised.
    ``progress_label`` / ``progress_position``: the progress bar's name and terminal row (a population worker
    training a job alone draws it on its own row, beside the other workers' bars).
    """
    run = build_run(cfg)  # validates first: a bad value writes nothing
    ctx = run_context(cfg)
    config_plain = plain_config(cfg)
    run_dir = ddp.main_run_dir(ctx.dir) if run.hardware.ddp else ctx.dir  # rank 0's dir on every rank
    ckpt_dir = run_dir / "checkpoints"
    start_step, resumed = 0, None
    resume_path = resolve_resume(cfg.get("resume"), ckpt_dir)
    if resume_path is not None:
        resumed = load_checkpoint(resume_path)
        start_step = restore(run, resumed, resume_path)
        log.info("resumed from %s at step %d", resume_path, start_step)
        if start_step >= run.total_steps:
            return already_trained(start_step, run.total_steps, run_dir, resume_path)
    tracker: Tracker = build_tracker(cfg, run_dir, ctx.name, ctx.group, tracked_config(cfg, ctx), start_step) \
        if run.hardware.is_main else SilentTracker()  # only rank 0 logs
    try:
        evaluator = build_evaluator(cfg, run.data, run.device) if run.hardware.is_main else None  # rank 0 evaluates
        if evaluator is not None and resumed is not None:  # best-so-far survives a resume (older checkpoints: none)
            evaluator.load_state_dict(resumed.get("eval") or {})
        with build_profiler(cfg, run_dir, run.device):  # debug=profile: a torch.profiler trace of the loop
            final = loop.run_loop(run, tracker, start_step, ckpt_dir, config_plain, stop_requested, evaluator,
                                      progress_label, progress_position)
    except BaseException as err:
        tracker.finish(exit_code=1, preempted=isinstance(err, Preempted))
        raise
    tracker.summary(final)
    tracker.finish(exit_code=0)
    ddp.barrier()  # ranks leave together, after rank 0's last checkpoint
    if run.hardware.is_main:
        saved = list_checkpoints(ckpt_dir)
        print(run_summary(final, run_dir, saved[-1][1] if saved else None, tracker.sync_hint()), flush=True)
    return {**final, "run_dir": str(run_dir)}
