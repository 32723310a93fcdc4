"""One training step (n_critic D updates, then one G update), eager or captured as a CUDA graph.

The eager ``GANStep`` and the captured ``CapturedStep`` run the same code: the captured one records
``GANStep`` once and replays it, so what is tested on CPU is what runs on the GPU.
Nothing here reads a tensor back to the host: the loop decides when to pay for a sync (at log steps).

Issue 12's options enter here and only when they are on: an augmentation T that every image D sees
passes through (DiffAugment, with the run's own generator), class labels (a conditional G and D), and
an auxiliary classifier's class loss (ACGAN). Without them the step runs exactly the ops it ran
before (bit-identical, tested).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch
from torch import nn

from ganlab.losses import GANLoss
from ganlab.models.conditional import adversarial, class_logits

if TYPE_CHECKING:
    from ganlab.augment import DiffAugment
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
    d_class: torch.Tensor | None = None  # an aux classifier's class loss in d_loss / g_loss (ACGAN); else None
    g_class: torch.Tensor | None = None


def grad_norm(module: nn.Module) -> torch.Tensor:
    """The global L2 norm of ``module``'s gradients."""
    norms = [p.grad.detach().norm() for p in module.parameters() if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(norms)) if norms else torch.zeros(())


class PenaltyView(nn.Module):
    """D as a penalty differentiates it: x -> D(T(x), labels), its adversarial score only.

    The gradient of R1 / WGAN-GP is then taken w.r.t. the un-augmented input, through T (fresh
    draws), as the StyleGAN2 port of DiffAugment does; a conditional D gets the real batch's labels
    (WGAN-GP's interpolates too).
    """

    def __init__(self, discriminator: nn.Module, augment: "DiffAugment | None", augment_gen: torch.Generator | None,
                 labels: torch.Tensor | None) -> None:
        super().__init__()
        self.discriminator, self.augment, self.augment_gen, self.labels = discriminator, augment, augment_gen, labels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.augment is not None:
            x = self.augment(x, self.augment_gen)
        return adversarial(self.discriminator(x) if self.labels is None else self.discriminator(x, self.labels))


class GANStep:
    """One step: for each real batch a D update on (real, G(z_d)), then a G update on G(z_g).

    ``generator``/``discriminator`` are what is called (possibly DistributedDataParallel wrappers);
    ``d_module`` is the bare D handed to the loss hooks: ``loss.d_penalty(discriminator, real, fake,
    real_out)`` (None for no penalty) is added to d_loss before backward, and
    ``loss.after_d_step(discriminator)`` runs after D's optimizer step (e.g. weight clipping).
    ``augment(x, augment_gen)``: applied to every image D sees (reals, fakes, penalties' inputs).
    Labels (``y_real``, ``y_d``, ``y_g`` of ``__call__``): G gets the asked-for classes, D the classes
    of what it judges when it takes labels (``d_module.takes_labels``).
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, loss: GANLoss,
                 g_opt: torch.optim.Optimizer, d_opt: torch.optim.Optimizer, detach_fake: bool = True,
                 autocast_dtype: torch.dtype | None = None, d_module: nn.Module | None = None,
                 augment: "DiffAugment | None" = None, augment_gen: torch.Generator | None = None) -> None:
        self.generator, self.discriminator, self.loss = generator, discriminator, loss
        self.g_opt, self.d_opt = g_opt, d_opt
        self.detach_fake = detach_fake
        self.autocast_dtype = autocast_dtype
        self.d_module = d_module if d_module is not None else discriminator
        self.d_params = [p for p in self.d_module.parameters() if p.requires_grad]
        if augment is not None and augment_gen is None:
            raise ValueError("an augmentation needs its generator (augment_gen)")
        self.augment, self.augment_gen = augment, augment_gen
        self.d_takes_labels = bool(getattr(self.d_module, "takes_labels", False))

    def _judge(self, discriminator: nn.Module, x: torch.Tensor, labels: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(adversarial score, class logits or None) of D on T(x), with labels when D takes them."""
        if self.augment is not None:
            x = self.augment(x, self.augment_gen)
        out = discriminator(x, labels) if self.d_takes_labels else discriminator(x)
        return adversarial(out), class_logits(out)

    def _penalised(self, labels: torch.Tensor | None) -> nn.Module:
        """What the penalty hook differentiates: the bare D, or D seen through T / with the batch's labels."""
        if self.augment is None and not self.d_takes_labels and not getattr(self.d_module, "aux_classifier", False):
            return self.d_module
        return PenaltyView(self.d_module, self.augment, self.augment_gen, labels if self.d_takes_labels else None)

    def _autocast(self, device_type: str) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        # no cast cache: a captured graph must not keep casts of weights from capture time
        return torch.autocast(device_type, dtype=self.autocast_dtype, cache_enabled=False)

    def __call__(self, reals: Sequence[torch.Tensor], z_d: Sequence[torch.Tensor], z_g: torch.Tensor,
                 grad_norms: bool = False, y_real: Sequence[torch.Tensor] | None = None,
                 y_d: Sequence[torch.Tensor] | None = None, y_g: torch.Tensor | None = None) -> StepOutput:
        """Run len(reals) D updates and one G update; grad norms only when asked (a few reductions).

        ``y_real``/``y_d``/``y_g``: the classes of the real batches, of G's fakes for D and for G's
        update (conditional runs; None otherwise).
        """
        G, D, loss = self.generator, self.discriminator, self.loss
        device_type = z_g.device.type
        d_grad = d_penalty = d_class = g_class = None
        for k, (real, z) in enumerate(zip(reals, z_d)):
            labels_real, labels_fake = (None, None) if y_real is None else (y_real[k], y_d[k])
            with self._autocast(device_type):
                # detached, G's forward here feeds no backward: no autograd graph recorded for it
                with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_fake):
                    fake = G(z) if labels_fake is None else G(z, labels_fake)
                fake_for_d = fake.detach() if self.detach_fake else fake
                real_out, real_classes = self._judge(D, real, labels_real)
                fake_out, fake_classes = self._judge(D, fake_for_d, labels_fake)
                # .float(): losses in fp32 under autocast; a no-op (same tensor) in fp32
                real_out, fake_out = real_out.float(), fake_out.float()
                d_loss = loss.d_loss(real_out, fake_out)
                if real_classes is not None:  # ACGAN: D learns the classes of reals and of asked-for fakes
                    d_class = loss.class_loss(real_classes.float(), labels_real) \
                        + loss.class_loss(fake_classes.float(), labels_fake)
                    d_loss = d_loss + d_class
                # penalties never reach G
                d_penalty = loss.d_penalty(self._penalised(labels_real), real, fake.detach(), real_out)
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
                g_out, g_classes = self._judge(self.d_module, G(z_g) if y_g is None else G(z_g, y_g), y_g)
                g_loss = loss.g_loss(g_out.float())
                if g_classes is not None:  # ACGAN: G wants its fakes classified as the class it was asked for
                    g_class = loss.class_loss(g_classes.float(), y_g)
                    g_loss = g_loss + g_class
            self.g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
        finally:
            for p in self.d_params:
                p.requires_grad_(True)
        g_grad = grad_norm(self.generator) if grad_norms else None
        self.g_opt.step()
        return StepOutput(d_loss.detach(), g_loss.detach(), real_out.detach(), fake_out.detach(), d_grad, g_grad,
                          *(None if t is None else t.detach() for t in (d_penalty, d_class, g_class)))


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

    def __call__(self, *inputs: Any, grad_norms: bool = False, **labels: Any) -> Any:
        """One training step (eager during warm-up, then graph replay); ``labels`` (a conditional
        run's y_real/y_d/y_g, or None) are static buffers too."""
        from torch.utils._pytree import tree_flatten, tree_map

        if self.static is None:
            self.static = tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, (inputs, labels))
        for dst, src in zip(tree_flatten(self.static)[0], tree_flatten((inputs, labels))[0]):
            if isinstance(dst, torch.Tensor):
                dst.copy_(src, non_blocking=True)
        static_inputs, static_labels = self.static
        self.calls += 1
        if self.calls <= self.warmup:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                out = self.step(*static_inputs, grad_norms=True, **static_labels)
            torch.cuda.current_stream().wait_stream(side)
            return out
        if self.graph is None:
            self.graph = torch.cuda.CUDAGraph()
            generators = [*getattr(self.step, "noise_generators", []), *getattr(self.step, "latent_generators", []),
                          getattr(self.step, "augment_gen", None)]
            for generator in generators:  # a population's noise and z streams, DiffAugment's: replays draw anew
                if generator is not None and generator.device.type == "cuda":
                    self.graph.register_generator_state(generator)
            # grads set to None now are allocated from the graph's pool during capture
            self.step.d_opt.zero_grad(set_to_none=True)
            self.step.g_opt.zero_grad(set_to_none=True)
            with torch.cuda.graph(self.graph):
                self.out = self.step(*static_inputs, grad_norms=True, **static_labels)
        self.graph.replay()  # capture only records: the replay performs this step
        return self.out


def build_step(generator: nn.Module, discriminator: nn.Module, loss: GANLoss, g_opt: torch.optim.Optimizer,
               d_opt: torch.optim.Optimizer, detach_fake: bool, hardware: "Hardware",
               d_module: nn.Module | None = None, augment: "DiffAugment | None" = None,
               augment_gen: torch.Generator | None = None) -> GANStep | CapturedStep:
    """The step the loop calls: eager, or captured when ``hardware.cuda_graph`` (call after any resume)."""
    for opt in (g_opt, d_opt):
        set_capturable(opt, hardware.cuda_graph, hardware.device)
    step = GANStep(generator, discriminator, loss, g_opt, d_opt, detach_fake, hardware.autocast_dtype, d_module,
                   augment, augment_gen)
    return CapturedStep(step) if hardware.cuda_graph else step
