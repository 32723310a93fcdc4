"""One training step of a whole population: n_critic D updates then one G update, for every member at once.

It is ``ganlab.step.GANStep`` member by member: the same calls in the same order (G on z, D on the
real batch, D on the fake batch, the penalty pass, D's backward and optimizer step, the clip; then
G's update through a frozen D), on stacked modules, so each member's BatchNorm statistics, grads
and updates are those of the member trained alone. Members may differ in their loss: members with
equal losses (same class, same parameters) are scored together by the loss's own ``d_loss`` and
``g_loss`` with ``per_member=True`` (one value per member; ``torch.func.vmap`` of them for a loss
without that keyword); their sum is what backward sees, and as
members share no weights each member gets exactly its own loss's gradient. Penalties (R1, WGAN-GP)
take every penalised member's input gradient in one extra D pass; a member without a penalty does
not take part (its BatchNorm statistics are restored after the pass, as it never ran it alone).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch.func import vmap

from ganlab.data.batches import LatentSampler
from ganlab.launch.population.optim_base import StackedOptimizer
from ganlab.launch.population.stacked import StackedModule
from ganlab.losses import GANLoss


@dataclass
class PopulationOutput:
    """Per member (K,) values on the device: losses, mean D outputs of the last D update, grad norms."""

    d_loss: torch.Tensor
    g_loss: torch.Tensor
    real_out: torch.Tensor  # (K, B) D's outputs on the last real batch
    fake_out: torch.Tensor
    d_grad: torch.Tensor | None
    g_grad: torch.Tensor | None
    d_penalty: torch.Tensor | None  # (K,), zero for members without a penalty; None when no member has one


def by_member(method: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """A loss method applied to each member's rows (K, B, ...) -> (K,): the loss's own per-member reduction
    (``per_member=True``, ganlab.losses.batch_mean) where it has one, else ``torch.func.vmap`` of it."""
    if "per_member" in inspect.signature(method).parameters:
        return functools.partial(method, per_member=True)
    return vmap(method)


def loss_groups(losses: Sequence[GANLoss]) -> list[tuple[GANLoss, list[int]]]:
    """Members grouped by equal losses (class and parameters): (the loss, member indices)."""
    groups: list[tuple[GANLoss, list[int]]] = []
    for k, loss in enumerate(losses):
        for representative, members in groups:
            if type(representative) is type(loss) and vars(representative) == vars(loss):
                members.append(k)
                break
        else:
            groups.append((loss, [k]))
    return groups


class PopulationStep:
    """The population's step: call it with per-D-update lists of (K, B, ...) real batches and (K, B, z_max)
    latents, and the (K, B, z_max) latents of G's update.

    ``noise_generators[k]``: member k's stand-in for the global RNG, from which its penalty draws its
    noise (WGAN-GP's interpolation weights) exactly where the member alone would draw it.
    """

    def __init__(self, generator: StackedModule, discriminator: StackedModule, losses: Sequence[GANLoss],
                 g_opt: StackedOptimizer, d_opt: StackedOptimizer, noise_generators: Sequence[torch.Generator],
                 detach_fake: bool = True, autocast_dtype: torch.dtype | None = None) -> None:
        self.generator, self.discriminator = generator, discriminator
        self.g_opt, self.d_opt = g_opt, d_opt
        self.detach_fake, self.autocast_dtype = detach_fake, autocast_dtype
        device = discriminator.params[0].device
        groups = loss_groups(losses)
        # each loss's members side by side (Population orders them so): every group's rows come from one
        # split of the (K, ...) outputs, views whose backward is one cat, instead of an index and an
        # index_put per group and output (three losses, 14 members, one CPU thread: the losses' forward
        # and backward 0.77 -> 0.59 ms, ~1% of the step; a dozen fewer kernels on CUDA)
        in_order = [k for _, members in groups for k in members] == list(range(len(losses)))
        self.split_sizes = [len(members) for _, members in groups] if in_order else None
        # otherwise member indices on the device (indexing with a host tensor would copy it every step,
        # which a CUDA graph cannot capture); the host lists serve the loops over members either way
        self.groups = [(loss, None if in_order else torch.tensor(members, device=device), members)
                       for loss, members in groups]
        self.num_members = len(losses)
        self.noise_generators = list(noise_generators)
        self.penalised = [k for k, loss in enumerate(losses) if loss.has_penalty]
        self.has_buffers = bool(list(discriminator.stacked_buffers.buffers()))
        clips = [loss.weight_clip if loss.weight_clip is not None else float("inf") for loss in losses]
        self.clip = torch.tensor(clips, device=device) if any(c != float("inf") for c in clips) else None
        mask = torch.zeros(self.num_members, dtype=torch.bool)
        mask[self.penalised] = True
        self.penalty_mask = mask.to(device)

    def _autocast(self, device_type: str) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type, dtype=self.autocast_dtype, cache_enabled=False)

    def _per_member(self, values: list[torch.Tensor]) -> torch.Tensor:
        """(K,) from each group's (k,) values, in the order of ``self.groups``."""
        if len(values) == 1:  # one loss for all: the values are already in member order
            return values[0]
        if self.split_sizes is not None:  # the groups side by side, in order
            return torch.cat(values)
        out = torch.empty(self.num_members, device=values[0].device, dtype=values[0].dtype)
        for (_, members, _), v in zip(self.groups, values):
            out[members] = v
        return out

    def _split(self, out: torch.Tensor) -> list[torch.Tensor] | tuple[torch.Tensor, ...]:
        """Each group's rows of a (K, ...) tensor, in the order of ``self.groups``."""
        if len(self.groups) == 1:  # one loss for all: every row, in order
            return [out]
        if self.split_sizes is not None:
            return out.split(self.split_sizes)
        return [out[members] for _, members, _ in self.groups]

    def d_losses(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        """(K,) each member's D loss from its own loss on its (B,) outputs."""
        return self._per_member([by_member(loss.d_loss)(real, fake) for (loss, _, _), real, fake
                                 in zip(self.groups, self._split(real_out), self._split(fake_out))])

    def g_losses(self, fake_out: torch.Tensor) -> torch.Tensor:
        """(K,) each member's G loss."""
        return self._per_member([by_member(loss.g_loss)(fake)
                                 for (loss, _, _), fake in zip(self.groups, self._split(fake_out))])

    def penalties(self, real: torch.Tensor, fake: torch.Tensor, real_out: torch.Tensor) -> torch.Tensor:
        """(K,) each penalised member's penalty (0 for the others), from one batched input-gradient pass."""
        points = real.detach().clone()  # members without a penalty: any input (unused, statistics restored)
        for loss, _, members in self.groups:
            if loss.has_penalty:
                for k in members:
                    points[k] = loss.penalty_points(real[k], fake[k], self.noise_generators[k])
        saved = [b.clone() for b in self.discriminator.stacked_buffers.buffers()] if self.has_buffers else []
        x = points.requires_grad_(True)
        out = self.discriminator(x)
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)  # member k's grads: its own D only
        if saved:  # members without a penalty never ran this pass alone: their BatchNorm statistics stay
            keep = ~self.penalty_mask
            for buffer, before in zip(self.discriminator.stacked_buffers.buffers(), saved):
                shaped = keep.view(-1, *[1] * (buffer.dim() - 1))
                buffer.copy_(torch.where(shaped, before, buffer))
        values = []
        for (loss, _, members), grads, outs in zip(self.groups, self._split(grad), self._split(real_out)):
            values.append(vmap(loss.penalty)(grads, outs) if loss.has_penalty else
                          torch.zeros(len(members), device=grad.device, dtype=grad.dtype))
        return self._per_member(values)

    def __call__(self, reals: Sequence[torch.Tensor], z_d: Sequence[torch.Tensor], z_g: torch.Tensor,
                 grad_norms: bool = False) -> PopulationOutput:
        """len(reals) D updates and one G update for every member; grad norms only when asked."""
        G, D = self.generator, self.discriminator
        device_type = z_g.device.type
        d_grad = d_penalty = None
        for k, (real, z) in enumerate(zip(reals, z_d)):
            with self._autocast(device_type):
                with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_fake):  # as GANStep
                    fake = G(z)
                fake_for_d = fake.detach() if self.detach_fake else fake
                real_out, fake_out = D(real).float(), D(fake_for_d).float()
                d_loss = self.d_losses(real_out, fake_out)
                if self.penalised:
                    d_penalty = self.penalties(real, fake.detach(), real_out).float()
                    d_loss = d_loss + d_penalty
            self.d_opt.zero_grad(set_to_none=True)
            d_loss.sum().backward()  # members share no weights: each gets its own loss's gradient
            if grad_norms and k == len(reals) - 1:
                d_grad = D.grad_norms()
            self.d_opt.step()
            if self.clip is not None:
                D.clamp_(self.clip)
        for p in D.params:  # as GANStep: D's weights get no grads in G's update
            p.requires_grad_(False)
        try:
            with self._autocast(device_type):
                g_loss = self.g_losses(D(G(z_g)).float())
            self.g_opt.zero_grad(set_to_none=True)
            g_loss.sum().backward()
        finally:
            for p in D.params:
                p.requires_grad_(True)
        g_grad = G.grad_norms() if grad_norms else None
        self.g_opt.step()
        return PopulationOutput(d_loss.detach(), g_loss.detach(), real_out.detach(), fake_out.detach(), d_grad, g_grad,
                                None if d_penalty is None else d_penalty.detach())


class DrawingStep:
    """A ``PopulationStep`` that draws every member's z itself: called with the real batches alone.

    Each member's z come from its own sampler, in the order its run alone draws them (the D updates'
    z, then G's). Under ``CapturedStep`` the draws are part of the CUDA graph, each sampler's
    generator registered with it so that every replay draws the next z of each stream: the host
    launches one replay a step instead of two ops per member and z (~160 for 27 members; at the
    ~10-20 us a launch costs from Python, a few ms of a step that the H200 ran in 13 ms in all).
    """

    def __init__(self, step: PopulationStep, latents: Sequence[LatentSampler], batch_size: int, z_max: int) -> None:
        self.step, self.latents, self.batch_size, self.z_max = step, list(latents), batch_size, z_max
        self.d_opt, self.g_opt = step.d_opt, step.g_opt  # CapturedStep sets their grads to None before capture
        self.noise_generators = step.noise_generators
        self.latent_generators = [latent.generator for latent in self.latents]  # registered with a graph

    def draw(self) -> torch.Tensor:
        """(K, B, z_max): each member's next z (narrower ones zero-padded)."""
        return stack_latents([latent(self.batch_size) for latent in self.latents], self.z_max)

    def __call__(self, reals: Sequence[torch.Tensor], grad_norms: bool = False) -> PopulationOutput:
        z_d = [self.draw() for _ in reals]
        return self.step(reals, z_d, self.draw(), grad_norms=grad_norms)


def stack_latents(z: list[torch.Tensor], z_max: int) -> torch.Tensor:
    """Members' (B, z_k) latents as one (K, B, z_max) tensor, narrower ones zero-padded."""
    if all(zk.shape[-1] == z_max for zk in z):
        return torch.stack(z)
    out = z[0].new_zeros(len(z), *z[0].shape[:-1], z_max)  # one copy per member, not a pad and a stack
    for k, zk in enumerate(z):
        out[k, ..., :zk.shape[-1]] = zk
    return out
