"""The population's step loop: ``ganlab.loop.run_loop`` for K members at once.

Every step draws each member's real batches and z from the member's own streams (as its run alone
would, in the same order), runs the stacked step, and keeps each member's first non-finite step on
the device. The side effects are gated at the bottom of the loop as in a single run, per member:
its metrics rows, its sample grid, its evaluation (all members scored together), its checkpoint.
A member whose loss turns NaN/inf is stopped at the next log or checkpoint step and recorded as
failed at its first bad step (its last good checkpoint is kept); the others go on in a population
rebuilt without it. So does a member whose checkpoint cannot be written (its folder blocked, its disk
full). A preemption signal checkpoints every member at the current step.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ganlab.checkpoint import prune_checkpoints, save_checkpoint, step_path
from ganlab.errors import NonFiniteLossError, Preempted, user_error_line
from ganlab.launch.population.members import Member, Population
from ganlab.launch.population.step import stack_latents
from ganlab.loop import as_probability, draw_samples
from ganlab.metrics.evaluator import Evaluator
from ganlab.progress import Progress, worker_bar
from ganlab.run import snapshot

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """How a member's training ended: its final metrics, or the error that stopped it."""

    final: dict[str, Any] = field(default_factory=dict)
    error: Exception | None = None


def train_population(members: list[Member], evaluator: Evaluator | None,
                     stop_requested: Callable[[], bool] | None = None, worker: int | None = None) -> dict[str, Outcome]:
    """Train ``members`` (same start step, same trainer settings) as one program; outcomes by member name.
    ``worker``: the worker slot training them (its progress bar's row and label), None in the launching process."""
    outcomes: dict[str, Outcome] = {}
    first = members[0].run
    tc, total, start = first.trainer, first.total_steps, members[0].start_step
    pop = Population(members)
    first_bad = torch.full((len(members),), -1, dtype=torch.long, device=first.device)
    metrics: list[dict[str, float]] = [{} for _ in members]
    window_start, window_steps = time.perf_counter(), 0
    label, row = worker_bar(f"population of {len(members)}", worker)
    progress = Progress(total, start, enabled=tc.progress, label=label, position=row)

    def drop_failed() -> None:
        """Stop the members whose loss went NaN/inf (one host read)."""
        drop({k: NonFiniteLossError(f"step {s}: d_loss or g_loss is NaN/inf; training stopped, the last good "
                                    "checkpoint is kept (try a lower optimizer.lr)")
              for k, s in enumerate(first_bad.tolist()) if s >= 0})

    def drop(failed: dict[int, Exception]) -> None:
        """Record ``failed`` (member index: its error) and rebuild the population without them."""
        nonlocal pop, first_bad, metrics
        if not failed:
            return
        for k, err in failed.items():
            member = pop.members[k]
            log.warning("member %s: %s", member.name, err)
            outcomes[member.name] = Outcome(error=err)
        kept = [k for k in range(len(pop.members)) if k not in failed]
        if not kept:
            pop.members = []
            return
        pop.write_back(kept)
        pop = Population([pop.members[k] for k in kept])
        first_bad = first_bad[kept]
        metrics = [metrics[k] for k in kept]

    def checkpoint(step: int) -> None:
        drop_failed()  # never overwrite a good checkpoint with a diverged model
        pop.write_back()
        unwritable: dict[int, Exception] = {}
        for k, member in enumerate(pop.members):
            state = snapshot(member.run, step, member.config, member.record.state_dict(), noise_rng=member.noise)
            try:
                save_checkpoint(step_path(member.ckpt_dir, step), state)
                prune_checkpoints(member.ckpt_dir, tc.ckpt_keep)
            except OSError as err:  # its folder blocked, its disk full: that member fails, as its run alone would
                if user_error_line(err) is None:
                    raise
                unwritable[k] = err
        drop(unwritable)

    for step in range(start + 1, total + 1):
        if not pop.members:
            break
        runs = [m.run for m in pop.members]
        is_log = step % tc.log_every == 0 or step == total
        out = pop.step(step_reals(runs, step, tc.n_critic), grad_norms=is_log)
        bad = ~(torch.isfinite(out.d_loss) & torch.isfinite(out.g_loss))
        first_bad = torch.where(bad & (first_bad < 0), step, first_bad)
        window_steps += 1

        if is_log:  # the only host syncs of the loop
            drop_failed()
            if not pop.members:
                break
            now = time.perf_counter()
            metrics = log_rows(pop, out, first_bad, step, now - window_start, window_steps, tc.n_critic)
            window_start, window_steps = now, 0
        progress.update(step, mean_losses(metrics))
        if step % tc.sample_every == 0 or step == total:
            pop.write_generators_back()
            for member in pop.members:
                member.tracker.log_image("samples", draw_samples(member.run), step)
        if evaluator is not None and evaluator.due(step, total):
            for member, values in zip(pop.members, evaluate_members(pop, evaluator)):
                member.tracker.log_eval(member.record.remember(values, step), step)
        if step % tc.ckpt_every == 0 or step == total:
            checkpoint(step)
        elif stop_requested is not None and stop_requested():  # preempted: every member keeps this exact step
            checkpoint(step)
            progress.close()
            for member in pop.members:
                outcomes[member.name] = Outcome(error=Preempted(step))
            return outcomes
    progress.close()
    for k, member in enumerate(pop.members):
        outcomes[member.name] = Outcome(final={**metrics[k], **member.record.summary(), "step": total})
    return outcomes


def step_reals(runs: list[Any], step: int, n_critic: int) -> list[torch.Tensor]:
    """The population step's real batches at ``step``: per D update each member's own batch, (K, B, ...)
    (the step draws the z itself: DrawingStep)."""
    return [stack_batches(runs, (step - 1) * n_critic + c) for c in range(n_critic)]


def stack_batches(runs: list[Any], index: int) -> torch.Tensor:
    """Each member's training batch ``index`` (its own shuffle) as one (K, B, ...) tensor.

    Members share the data set's tensor (run_group builds it once): one gather of every member's rows,
    instead of a gather per member and a stack (~0.5 ms of a 14-member step)."""
    first = runs[0].batches
    if all(r.batches.images is first.images for r in runs):
        return first.images[torch.stack([r.batches.indices(index) for r in runs])]
    return torch.stack([r.batches.get(index) for r in runs])


def log_rows(pop: Population, out: Any, first_bad: torch.Tensor, step: int, seconds: float, steps: int,
             n_critic: int) -> list[dict[str, float]]:
    """Each member's logged row (the keys a single run logs), read from the device in one go, and logged."""
    discriminator = pop.members[0].run.discriminator  # D's output kind (logits or probabilities): one class
    on_device = {
        "d_loss": out.d_loss, "g_loss": out.g_loss,
        "d_real": as_probability(discriminator, out.real_out).mean(1),
        "d_fake": as_probability(discriminator, out.fake_out).mean(1),
        "d_real_out": out.real_out.mean(1), "d_fake_out": out.fake_out.mean(1),
        "g_grad_norm": out.g_grad, "d_grad_norm": out.d_grad,
    }
    if out.d_penalty is not None:
        on_device["d_penalty"] = out.d_penalty
    table = torch.stack([v.float() for v in on_device.values()], dim=1).tolist()  # (K, metrics): one read
    rows = []
    for member, values in zip(pop.members, table):
        row = dict(zip(on_device, values))
        if not member.run.loss.has_penalty:
            row.pop("d_penalty", None)  # as a single run of this loss logs it: no penalty key
        batches = member.run.batches
        row["images_per_s"] = steps * batches.batch_size * n_critic / max(seconds, 1e-9)
        row["epoch"] = (step * n_critic) / batches.per_epoch
        member.tracker.log(row, step)
        rows.append(row)
    return rows


def mean_losses(metrics: list[dict[str, float]]) -> dict[str, float]:
    """The population's mean d_loss and g_loss, for the progress line."""
    rows = [m for m in metrics if "d_loss" in m]
    if not rows:
        return {}
    return {key: sum(r[key] for r in rows) / len(rows) for key in ("d_loss", "g_loss")}


@torch.no_grad()
def evaluate_members(pop: Population, evaluator: Evaluator) -> list[dict[str, float]]:
    """Each member's evaluation, all scored together (``Evaluator.score``), as each run alone would score."""
    G, D = pop.generator, pop.discriminator
    was = G.training, D.training
    G.eval()
    D.eval()
    try:
        chunk = evaluator.batch_size
        z = stack_latents([m.run.latent(evaluator.n_samples, evaluator.z_generator()) for m in pop.members], pop.z_max)
        fakes = torch.cat([G(z[:, i:i + chunk]).float() for i in range(0, z.shape[1], chunk)], dim=1)
        real = evaluator.real.unsqueeze(0).expand(len(pop.members), *evaluator.real.shape)
        discriminator = pop.members[0].run.discriminator
        d_real = mean_probability(D, discriminator, real, chunk)
        d_fake = mean_probability(D, discriminator, fakes, chunk)
    finally:
        G.train(was[0])
        D.train(was[1])
    return evaluator.score(fakes, d_real, d_fake)


def mean_probability(stacked: Any, discriminator: Any, x: torch.Tensor, chunk: int) -> list[float]:
    """Each member's mean D(x) as a probability, D applied in chunks of ``chunk`` (as Evaluator.mean_d)."""
    out = torch.cat([stacked(x[:, i:i + chunk]).float() for i in range(0, x.shape[1], chunk)], dim=1)
    return as_probability(discriminator, out).mean(1).tolist()
