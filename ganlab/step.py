"""One training step (n_critic D updates, then one G update), eager or captured as a CUDA graph.

The eager ``GANStep`` and the captured ``CapturedStep`` run the same code: the captured one records
``GANStep`` once and replays it, so what is tested on CPU is what runs on the GPU.
Nothing here reads a tensor back to the host: the loop decides when to pay for a sync (at log steps).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
from torch import nn

from ganlab.losses import GANLoss

if TYPE_CHECKING:
    from ganlab.hardware.device import Hardware


@dataclass
class StepOutput:
    """What one step leaves on the device: losses, D's outputs of the last D update, grad norms."""

    d_loss: torch.Tensor
    g_loss: torch.Tensor
    real_out: torch.Tensor
    fake_out: torch.Tensor
    d_grad: torch.Tensor | None
    g_grad: torch.Tensor | None
    d_penalty: torch.Tensor | None = None  # the loss's penalty term (already inside d_loss); None without one


def grad_norm(module: nn.Module) -> torch.Tensor:
    """The global L2 norm of ``module``'s gradients."""
    norms = [p.grad.detach().norm() for p in module.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())


class GANStep:
    """One step: for each real batch a D update on (real, G(z_d)), then a G update on G(z_g).

    ``generator``/``discriminator`` are what is called (possibly DistributedDataParallel wrappers);
    ``d_module`` is the bare D handed to the loss hooks: ``loss.d_penalty(discriminator, real, fake,
    real_out)`` (None for no penalty) is added to d_loss before backward, and
    ``loss.after_d_step(discriminator)`` runs after D's optimizer step (e.g. weight clipping).
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: GANLoss,
                 g_opt: torch.optim.Optimizer, d_opt: torch.optim.Optimizer, detach_fake: bool = True,
                 autocast_dtype: torch.dtype | None = None, d_module: nn.Module | None = None) -> None:
        self.generator, self.discriminator, self.loss = generator, discriminator, loss
        self.g_opt, self.d_opt = g_opt, d_opt
        self.detach_fake = detach_fake
        self.autocast_dtype = autocast_dtype
        self.d_module = d_module if d_module is not None else discriminator
        self.d_params = [p for p in self.d_module.parameters() if p.requires_grad]

    def _autocast(self, device_type: str) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        # no cast cache: a captured graph must not keep casts of weights from capture time
        return torch.autocast(device_type, dtype=self.autocast_dtype, cache_enabled=False)

    def __call__(self, reals: Sequence[torch.Tensor], z_d: Sequence[torch.Tensor], z_g: torch.Tensor,
                 grad_norms: bool = False) -> StepOutput:
        """Run len(reals) D updates and one G update; grad norms only when asked (a few reductions)."""
        G, D, loss = self.generator, self.discriminator, self.loss
        device_type = z_g.device.type
        d_grad = d_penalty = None
        for k, (real, z) in enumerate(zip(reals, z_d)):
            with self._autocast(device_type):
                fake = G(z)
                fake_for_d = fake.detach() if self.detach_fake else fake
                # .float(): losses in fp32 under autocast; a no-op (same tensor) in fp32
                real_out, fake_out = D(real).float(), D(fake_for_d).float()
                d_loss = loss.d_loss(real_out, fake_out)
                d_penalty = loss.d_penalty(self.d_module, real, fake.detach(), real_out)  # penalties never reach G
                if d_penalty is not None:
                    d_penalty = d_penalty.float()
                    d_loss = d_loss + d_penalty
            self.d_opt.zero_grad(set_to_none=True)
            d_loss.backward()  # with detach_fake=false this also fills G's grads (the blog's waste)
            if grad_norms and k == len(reals) - 1:
                d_grad = grad_norm(self.d_module)
            self.d_opt.step()
            loss.after_d_step(self.d_module)
        # D's weights get no grads in G's update: they would be discarded by D's next zero_grad
        # anyway, so skipping them changes no result and saves D's weight-gradient matmuls
        # (the bare D is called: under DDP its wrapper would wait for those grads to all-reduce)
        for p in self.d_params:
            p.requires_grad_(False)
        try:
            with self._autocast(device_type):
                g_loss = loss.g_loss(self.d_module(G(z_g)).float())
            self.g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
        finally:
            for p in self.d_params:
                p.requires_grad_(True)
        g_grad = grad_norm(self.generator) if grad_norms else None
        self.g_opt.step()
        return StepOutput(d_loss.detach(), g_loss.detach(), real_out.detach(), fake_out.detach(), d_grad, g_grad,
                          None if d_penalty is None else d_penalty.detach())


def set_capturable(optimizer: torch.optim.Optimizer, capturable: bool, device: torch.device) -> None:
    """Make ``optimizer`` graph-capturable (its step counters on ``device``) or plain again.

    Call after any load_state_dict: a checkpoint brings back the flag and CPU step counters.
    Optimizers without the flag (SGD) have no step counters and capture as they are.
    """
    for group in optimizer.param_groups:
        if "capturable" in group:
            group["capturable"] = capturable
    for state in optimizer.state.values():
        step = state.get("step")
        if isinstance(step, torch.Tensor):
            state["step"] = step.to(device if capturable else "cpu", torch.float32)


class CapturedStep:
    """A step (a GANStep, or a population's step) recorded once as a CUDA graph and replayed every step.

    Inputs (any nesting of lists/tuples of tensors: real batches, z, noise) are copied into static
    buffers, outputs are static tensors (overwritten by the next step: read them before calling
    again). The first ``warmup`` calls run eagerly on a side stream (lazily created optimizer
    state, cuBLAS workspaces), the next one captures and replays. Grad norms are always computed
    inside the graph (a few reductions) so logging needs no eager step.
    """

    def __init__(self, step: Callable[..., Any], warmup: int = 3) -> None:
        self.step, self.warmup = step, warmup
        self.calls = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static: Any = None
        self.out: Any = None

    def __call__(self, *inputs: Any, grad_norms: bool = False) -> Any:
        """One training step (eager during warm-up, then graph replay)."""
        from torch.utils._pytree import tree_flatten, tree_map

        if self.static is None:
            self.static = tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, inputs)
        for dst, src in zip(tree_flatten(self.static)[0], tree_flatten(inputs)[0]):
            if isinstance(dst, torch.Tensor):
                dst.copy_(src, non_blocking=True)
        self.calls += 1
        if self.calls <= self.warmup:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.step(*self.static, grad_norms=True)
            torch.cuda.current_stream().wait_stream(side)
            return out
        if self.graph is None:
            self.graph = torch.cuda.CUDAGraph()
            for generator in getattr(self.step, "noise_generators", []):  # a population's own noise streams
                if generator.device.type == "cuda":
                    self.graph.register_generator_state(generator)
            # grads set to None now are allocated from the graph's pool during capture
            self.step.d_opt.zero_grad(set_to_none=True)
            self.step.g_opt.zero_grad(set_to_none=True)
            with torch.cuda.graph(self.graph):
                self.out = self.step(*self.static, grad_norms=True)
        self.graph.replay()  # capture only records: the replay performs this step
        return self.out


def build_step(generator: nn.Module, discriminator: nn.Module, loss: GANLoss, g_opt: torch.optim.Optimizer,
               d_opt: torch.optim.Optimizer, detach_fake: bool, hardware: "Hardware",
               d_module: nn.Module | None = None) -> GANStep | CapturedStep:
    """The step the loop calls: eager, or captured when ``hardware.cuda_graph`` (call after any resume)."""
    for opt in (g_opt, d_opt):
        set_capturable(opt, hardware.cuda_graph, hardware.device)
    step = GANStep(generator, discriminator, loss, g_opt, d_opt, detach_fake, hardware.autocast_dtype, d_module)
    return CapturedStep(step) if hardware.cuda_graph else step
