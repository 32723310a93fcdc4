"""train(cfg): build data, models, loss, optimizers and tracker from config, then run the step loop."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from omegaconf import DictConfig, OmegaConf
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ganlab.build import build, check_arguments
from ganlab.checkpoint import load_checkpoint, prune_checkpoints, resolve_resume, save_checkpoint, step_path
from ganlab.config import TrainerConfig, hydra_context, trainer_config, tracked_config
from ganlab.data import LatentSampler, ShuffledBatches
from ganlab import distributed
from ganlab.errors import ConfigError, NonFiniteLossError, ResumeError
from ganlab.hardware import Hardware
from ganlab.evaluation import Evaluator, build_evaluator
from ganlab.losses import GANLoss
from ganlab.scatter import scatter_samples
from ganlab.toy2d import BatchSource
from ganlab.step import build_step
from ganlab.preemption import Preempted
from ganlab.tracking import Tracker

log = logging.getLogger(__name__)

GRID_SEED = 1234  # the z bank for sample grids is the same in every run, so grids compare across runs
MIN_CELL = 28  # sample-grid cells narrower than this are upscaled


@dataclass
class Run:
    """Everything a training run holds; built once by ``build_run``."""

    trainer: TrainerConfig
    device: torch.device
    batches: ShuffledBatches | BatchSource
    generator: nn.Module
    discriminator: nn.Module
    loss: GANLoss
    g_opt: torch.optim.Optimizer
    d_opt: torch.optim.Optimizer
    latent: LatentSampler
    z_bank: torch.Tensor
    pixel_range: tuple[float, float]
    img_shape: tuple[int, ...]
    total_steps: int
    hardware: Hardware | None = None  # None: plain fp32 eager on ``device``
    g_train: nn.Module | None = None  # what the step calls: G itself (None), or G inside DDP
    d_train: nn.Module | None = None

    def __post_init__(self) -> None:
        self.hardware = Hardware(self.device) if self.hardware is None else self.hardware
        self.g_train = self.generator if self.g_train is None else self.g_train
        self.d_train = self.discriminator if self.d_train is None else self.d_train


def build_run(cfg: DictConfig) -> Run:
    """Build every object of a run from the composed config, seeding the global RNG first."""
    tc = trainer_config(cfg)
    torch.manual_seed(cfg.seed)
    hardware = build(cfg.hardware, "hardware")
    hardware = hardware if isinstance(hardware, Hardware) else Hardware(hardware)  # a bare device works too
    device = hardware.device
    data = build(cfg.data.dataset, "data.dataset")
    if isinstance(data, torch.Tensor):  # an in-memory image set: sliced by a shuffled index per step
        images = data.to(device)
        img_shape = tuple(images.shape[1:])
        batches = ShuffledBatches(images, cfg.data.batch_size, cfg.seed)
        if batches.batch_size < cfg.data.batch_size:
            log.warning("data.batch_size=%d > %d images: using %d", cfg.data.batch_size, len(images), batches.batch_size)
    else:  # a source that makes its own batches (the 2D benchmarks, ganlab.toy2d.BatchSource)
        batches = data.to(device)
        img_shape = tuple(batches.shape)
    generator = build(cfg.model.generator, "model.generator", img_shape=img_shape).to(device)
    discriminator = build(cfg.model.discriminator, "model.discriminator", img_shape=img_shape).to(device)
    loss = build(cfg.loss, "loss")
    if getattr(discriminator, "outputs_probability", False) and not loss.accepts_probabilities:
        raise ConfigError(f"{type(loss).__name__} works on logits, but D ends in a sigmoid "
                          "(model.d_sigmoid=true); use loss=mse or set model.d_sigmoid=false")
    g_train, d_train = generator, discriminator
    if hardware.ddp:
        distributed.check_batch(batches.batch_size, hardware.world_size)
        g_train, d_train = distributed.wrap(generator, device), distributed.wrap(discriminator, device)
    g_opt = build(cfg.optimizer.generator, "optimizer.generator")(params=generator.parameters())
    d_opt = build(cfg.optimizer.discriminator, "optimizer.discriminator")(params=discriminator.parameters())
    latent_args = {"dist": cfg.data.latent_dist, "std": cfg.data.latent_std}
    check_arguments(LatentSampler, latent_args, "data.latent")
    latent = LatentSampler(z_size=generator.z_size, device=device, seed=cfg.seed, **latent_args)
    z_bank = latent(tc.n_grid, torch.Generator(device=device).manual_seed(GRID_SEED))
    steps_from_epochs = tc.epochs * batches.per_epoch // tc.n_critic
    total = min(steps_from_epochs, tc.max_steps) if tc.max_steps else steps_from_epochs
    if total < 1:
        raise ConfigError(f"no training steps: {tc.epochs} epoch(s) of {batches.per_epoch} batches, n_critic={tc.n_critic}")
    return Run(tc, device, batches, generator, discriminator, loss, g_opt, d_opt, latent, z_bank,
               tuple(cfg.data.get("pixel_range") or ()), img_shape, total,  # () for points: no pixels
               hardware, g_train, d_train)


def train(cfg: DictConfig, run_dir: str | Path | None = None,
          stop_requested: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Train a GAN as ``cfg`` says; write samples, checkpoints and metrics under ``run_dir``.

    Returns the final logged metrics (plus ``step`` and ``run_dir``). When ``stop_requested()``
    turns true (a preemption signal), the current step is checkpointed and ``Preempted`` raised.
    """
    ctx = hydra_context(cfg)
    run_dir = Path(run_dir or ctx["output_dir"] or Path.cwd())
    run = build_run(cfg)
    if run.hardware.ddp:  # every rank reads and rank 0 writes the same checkpoints
        run_dir = distributed.main_run_dir(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    start_step, resumed = 0, None
    resume_path = resolve_resume(cfg.get("resume"), ckpt_dir)
    if resume_path is not None:
        resumed = load_checkpoint(resume_path)
        start_step = restore(run, resumed, resume_path)
        log.info("resumed from %s at step %d", resume_path, start_step)
    config_plain = OmegaConf.to_container(cfg, resolve=True)
    config_plain.pop("hydra", None)
    group = cfg.logger.get("group") or ctx["group"]  # an explicit logger.group wins over the sweep dir
    tracker: Tracker = build(cfg.logger, "logger", run_dir=run_dir, name=ctx["name"], group=group,
                             run_config=tracked_config(cfg, ctx["choices"], ctx.get("overrides", []))) \
        if run.hardware.is_main else distributed.SilentTracker()  # only rank 0 logs
    try:
        real_pool = getattr(run.batches, "images", None)  # 2D sources: their first batches, by index
        if real_pool is None:
            real_pool = torch.cat([run.batches.get(i) for i in range(-(-cfg.eval.n_samples // run.batches.batch_size))])
        evaluator = build_evaluator(cfg.eval, cfg.data.dataset, real_pool, run.pixel_range, run.device) \
            if run.hardware.is_main else None  # rank 0 evaluates, like it logs
        if evaluator is not None and resumed is not None:  # best-so-far survives a resume (older checkpoints: none)
            evaluator.load_state_dict(resumed.get("eval") or {})
        final = loop(run, tracker, start_step, ckpt_dir, config_plain, stop_requested, evaluator)
    except BaseException:
        tracker.finish(exit_code=1)
        raise
    tracker.summary(final)
    tracker.finish(exit_code=0)
    distributed.barrier()  # ranks leave together, after rank 0's last checkpoint
    return {**final, "run_dir": str(run_dir)}


def loop(run: Run, tracker: Tracker, start_step: int, ckpt_dir: Path, config: dict,
         stop_requested: Callable[[], bool] | None = None,
         evaluator: Evaluator | None = None) -> dict[str, float]:
    """The step loop: n_critic D updates then one G update; side effects gated at the bottom."""
    tc, D, hw = run.trainer, run.discriminator, run.hardware
    batch_size = run.batches.batch_size
    train_step = build_step(run.g_train, run.d_train, run.loss, run.g_opt, run.d_opt, tc.detach_fake, hw, D)
    shard = (lambda t: distributed.shard(t, hw.rank, hw.world_size)) if hw.ddp else (lambda t: t)
    first_bad_step = torch.full((), -1, dtype=torch.long, device=run.device)  # stays on device: no sync
    metrics: dict[str, float] = {}
    window_start, window_images = time.perf_counter(), 0
    bar = tqdm(total=run.total_steps, initial=start_step, disable=not tc.progress, desc="train", unit="step")
    for step in range(start_step + 1, run.total_steps + 1):
        is_log = step % tc.log_every == 0 or step == run.total_steps
        # z is drawn in the order the D updates then the G update use it (one latent generator)
        reals = [shard(run.batches.get((step - 1) * tc.n_critic + k)) for k in range(tc.n_critic)]
        z_d = [shard(run.latent(batch_size)) for _ in range(tc.n_critic)]
        out = train_step(reals, z_d, shard(run.latent(batch_size)), grad_norms=is_log)
        d_loss, g_loss, real_out, fake_out, d_grad, g_grad = (out.d_loss, out.g_loss, out.real_out,
                                                              out.fake_out, out.d_grad, out.g_grad)
        bad = ~(torch.isfinite(d_loss) & torch.isfinite(g_loss))
        first_bad_step = torch.where(bad & (first_bad_step < 0), step, first_bad_step)
        window_images += batch_size * tc.n_critic
        bar.update(1)

        if is_log:  # the only host syncs of the loop
            check_finite(first_bad_step)
            now = time.perf_counter()
            on_device = {
                "d_loss": d_loss, "g_loss": g_loss,
                "d_real": as_probability(D, real_out).mean(), "d_fake": as_probability(D, fake_out).mean(),
                # D's raw outputs (logit, critic score, or D's probability when it ends in a sigmoid);
                # for WGAN(-GP), d_real_out - d_fake_out is the critic's Wasserstein estimate
                "d_real_out": real_out.mean(), "d_fake_out": fake_out.mean(),
                "g_grad_norm": g_grad, "d_grad_norm": d_grad,
            }
            if out.d_penalty is not None:  # R1 / gradient penalty: the part of d_loss that is not the game
                on_device["d_penalty"] = out.d_penalty
            # one host read for all of them (one sync on a GPU, not one per value)
            metrics = dict(zip(on_device, torch.stack([v.float() for v in on_device.values()]).tolist()))
            metrics["images_per_s"] = window_images / max(now - window_start, 1e-9)
            metrics["epoch"] = (step * tc.n_critic) / run.batches.per_epoch
            window_start, window_images = now, 0
            tracker.log(metrics, step)
            bar.set_postfix(d_loss=f"{metrics['d_loss']:.3f}", g_loss=f"{metrics['g_loss']:.3f}")
        if hw.is_main and (step % tc.sample_every == 0 or step == run.total_steps):
            tracker.log_image("samples", sample_grid(run), step)
        if evaluator is not None and evaluator.due(step, run.total_steps):
            tracker.log_eval(evaluator(run.generator, D, run.latent, step), step)  # own RNG: training stream untouched
        if step % tc.ckpt_every == 0 or step == run.total_steps:
            check_finite(first_bad_step)  # never overwrite a good checkpoint with a diverged model
            if hw.is_main:
                save_checkpoint(step_path(ckpt_dir, step), snapshot(run, step, config, evaluator))
                prune_checkpoints(ckpt_dir, tc.ckpt_keep)
        elif stop_requested is not None and stop_requested():  # preempted: keep this exact step
            check_finite(first_bad_step)
            if hw.is_main:
                save_checkpoint(step_path(ckpt_dir, step), snapshot(run, step, config, evaluator))
                prune_checkpoints(ckpt_dir, tc.ckpt_keep)
            bar.close()
            raise Preempted(step)
    bar.close()
    return {**metrics, **(evaluator.summary() if evaluator else {}), "step": run.total_steps}


def check_finite(first_bad_step: torch.Tensor) -> None:
    """Raise NonFiniteLossError naming the first step whose D or G loss was NaN/inf."""
    bad = int(first_bad_step.item())
    if bad >= 0:
        raise NonFiniteLossError(f"step {bad}: d_loss or g_loss is NaN/inf; training stopped, "
                                 "the last good checkpoint is kept (try a lower optimizer.lr)")


def as_probability(discriminator: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """D's output as a probability: as is when D ends in a sigmoid, else sigmoid of the logit/score."""
    return out.detach() if getattr(discriminator, "outputs_probability", False) else torch.sigmoid(out.detach())


@torch.no_grad()
def sample_grid(run: Run) -> torch.Tensor:
    """A uint8 (C, H, W) grid of G(z_bank) in eval mode (running BatchNorm stats; no training state touched)."""
    if len(run.img_shape) == 1:  # points, not images (ring8, grid25): a scatter plot of real vs generated
        return scatter_samples(run.generator, run.latent, run.batches, run.device)
    from torchvision.utils import make_grid  # lazy: importing torchvision costs ~1-2 s of every job's start

    was_training = run.generator.training
    run.generator.eval()
    images = run.generator(run.z_bank)
    run.generator.train(was_training)
    images = images.float().cpu()
    if images.shape[-1] < MIN_CELL:  # tiny images (8x8 digits): nearest-neighbour upscale to be seen
        images = F.interpolate(images, scale_factor=math.ceil(MIN_CELL / images.shape[-1]), mode="nearest")
    grid = make_grid(images, nrow=8, normalize=True, value_range=run.pixel_range, pad_value=1.0)
    return grid.mul(255).round().clamp(0, 255).to(torch.uint8)


def snapshot(run: Run, step: int, config: dict, evaluator: Evaluator | None = None) -> dict[str, Any]:
    """The checkpoint of ``run`` at ``step``: plain data, loadable with weights_only=True."""
    rng = {"torch": torch.get_rng_state(), "latent": run.latent.generator.get_state()}
    if run.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(run.device)
    return {
        "step": step,
        "generator": run.generator.state_dict(),
        "discriminator": run.discriminator.state_dict(),
        "g_opt": run.g_opt.state_dict(),
        "d_opt": run.d_opt.state_dict(),
        "rng": rng,
        "img_shape": list(run.img_shape),
        "config": config,
        "eval": evaluator.state_dict() if evaluator is not None else {},
    }


def restore(run: Run, state: dict[str, Any], path: Path) -> int:
    """Load a checkpoint into ``run`` and return its step."""
    try:
        run.generator.load_state_dict(state["generator"])
        run.discriminator.load_state_dict(state["discriminator"])
        run.g_opt.load_state_dict(state["g_opt"])
        run.d_opt.load_state_dict(state["d_opt"])
    except (RuntimeError, ValueError, KeyError) as err:
        raise ResumeError(f"{path} does not match this run's model/optimizer config: {err}") from err
    torch.set_rng_state(state["rng"]["torch"])
    run.latent.generator.set_state(state["rng"]["latent"])
    if "cuda" in state["rng"] and run.device.type == "cuda":
        torch.cuda.set_rng_state(state["rng"]["cuda"], run.device)
    return int(state["step"])
