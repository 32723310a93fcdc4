"""The step loop: n_critic D updates then one G update per step; logging, sampling, evaluation and
checkpointing gated at the bottom of the loop."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ganlab.checkpoint import prune_checkpoints, save_checkpoint, step_path
from ganlab.errors import NonFiniteLossError, Preempted
from ganlab.grids import sample_grid, scatter_samples
from ganlab.hardware import ddp
from ganlab.metrics.evaluator import Evaluator
from ganlab.progress import Progress
from ganlab.run import Run, snapshot
from ganlab.step import build_step
from ganlab.tracking import Tracker


def run_loop(run: Run, tracker: Tracker, start_step: int, ckpt_dir: Path, config: dict,
             stop_requested: Callable[[], bool] | None = None,
             evaluator: Evaluator | None = None, progress_label: str = "train",
             progress_position: int = 0) -> dict[str, float]:
    """Train from ``start_step`` to ``run.total_steps``; return the final metrics (and eval summary)."""
    tc, D, hw = run.trainer, run.discriminator, run.hardware
    batch_size = run.batches.batch_size
    train_step = build_step(run.g_train, run.d_train, run.loss, run.g_opt, run.d_opt, tc.detach_fake, hw, D,
                            run.augment, run.augment_gen)
    shard = (lambda t: ddp.shard(t, hw.rank, hw.world_size)) if hw.ddp else (lambda t: t)
    if hw.ddp and stop_requested is not None:  # every rank stops at the same step
        stop_requested = ddp.agreed_stop(stop_requested, run.device)
    first_bad_step = torch.full((), -1, dtype=torch.long, device=run.device)  # stays on device: no sync
    metrics: dict[str, float] = {}
    window_start, window_images = time.perf_counter(), 0
    progress = Progress(run.total_steps, start_step, enabled=tc.progress and hw.is_main, label=progress_label,
                        position=progress_position)

    def checkpoint(step: int) -> None:
        check_finite(first_bad_step)  # never overwrite a good checkpoint with a diverged model
        if hw.is_main:
            eval_state = evaluator.state_dict() if evaluator is not None else {}
            save_checkpoint(step_path(ckpt_dir, step), snapshot(run, step, config, eval_state))
            prune_checkpoints(ckpt_dir, tc.ckpt_keep)

    for step in range(start_step + 1, run.total_steps + 1):
        is_log = step % tc.log_every == 0 or step == run.total_steps
        # z is drawn in the order the D updates then the G update use it (one latent generator)
        reals = [shard(run.batches.get((step - 1) * tc.n_critic + k)) for k in range(tc.n_critic)]
        z_d = [shard(run.latent(batch_size)) for _ in range(tc.n_critic)]
        z_g = shard(run.latent(batch_size))
        if run.classes is None:
            out = train_step(reals, z_d, z_g, grad_norms=is_log)
        else:  # conditional: the reals' classes, and G's asked-for ones from the run's own label stream
            y_real = [shard(run.batches.labels((step - 1) * tc.n_critic + k)) for k in range(tc.n_critic)]
            y_d = [shard(run.classes(batch_size)) for _ in range(tc.n_critic)]
            out = train_step(reals, z_d, z_g, grad_norms=is_log, y_real=y_real, y_d=y_d,
                             y_g=shard(run.classes(batch_size)))
        if run.g_ema is not None:  # eagerly, after the (possibly captured) step: its weights are G's after it
            run.g_ema.update(run.generator, step)
        bad = ~(torch.isfinite(out.d_loss) & torch.isfinite(out.g_loss))
        first_bad_step = torch.where(bad & (first_bad_step < 0), step, first_bad_step)
        window_images += batch_size * tc.n_critic

        if is_log:  # the only host syncs of the loop
            check_finite(first_bad_step)
            now = time.perf_counter()
            on_device = {
                "d_loss": out.d_loss, "g_loss": out.g_loss,
                "d_real": as_probability(D, out.real_out).mean(), "d_fake": as_probability(D, out.fake_out).mean(),
                # D's raw outputs (logit, critic score, or D's probability when it ends in a sigmoid);
                # for WGAN(-GP), d_real_out - d_fake_out is the critic's Wasserstein estimate
                "d_real_out": out.real_out.mean(), "d_fake_out": out.fake_out.mean(),
                "g_grad_norm": out.g_grad, "d_grad_norm": out.d_grad,
            }
            if out.d_penalty is not None:  # R1 / gradient penalty: the part of d_loss that is not the game
                on_device["d_penalty"] = out.d_penalty
            if out.d_class is not None:  # ACGAN: the class losses inside d_loss and g_loss
                on_device["d_class"], on_device["g_class"] = out.d_class, out.g_class
            # one host read for all of them (one sync on a GPU, not one per value)
            metrics = dict(zip(on_device, torch.stack([v.float() for v in on_device.values()]).tolist()))
            metrics["images_per_s"] = window_images / max(now - window_start, 1e-9)
            metrics["epoch"] = (step * tc.n_critic) / run.batches.per_epoch
            window_start, window_images = now, 0
            tracker.log(metrics, step)
        progress.update(step, metrics)
        if hw.is_main and (step % tc.sample_every == 0 or step == run.total_steps):
            tracker.log_image("samples", draw_samples(run, run.sampler), step)
            if run.other_sampler is not None:  # with an EMA, the other G's grid too: samples_g or samples_g_ema
                name, other = run.other_sampler
                tracker.log_image(f"samples_{name}", draw_samples(run, other), step)
        if evaluator is not None and evaluator.due(step, run.total_steps):
            # own RNG: training stream untouched; with an EMA the other G is logged as eval_<g|g_ema>/...
            values = evaluator(run.sampler, D, run.latent, step)
            if run.other_sampler is not None:
                name, other = run.other_sampler
                values.update(evaluator(other, D, run.latent, step, prefix=f"eval_{name}/"))
            tracker.log_eval(values, step)
        if step % tc.ckpt_every == 0 or step == run.total_steps:
            checkpoint(step)
        elif stop_requested is not None and stop_requested():  # preempted: keep this exact step
            checkpoint(step)
            progress.close()
            raise Preempted(step)
    progress.close()
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


def draw_samples(run: Run, generator: nn.Module | None = None) -> torch.Tensor:
    """The run's picture now: a grid of G (the sampler by default) on the fixed z bank (images; one
    class per row for a conditional G) or a scatter plot (2D points)."""
    generator = run.sampler if generator is None else generator
    if run.data.pixel_range is None:
        return scatter_samples(generator, run.latent, run.data, run.device)
    return sample_grid(generator, run.z_bank, run.data.pixel_range)
