"""GAN objectives. Each takes D's raw outputs (logits unless D ends in a sigmoid) and returns means.

The trainer calls, for every loss alike, ``d_loss(real_out, fake_out)`` plus
``d_penalty(discriminator, real, fake, real_out)`` (None when the loss has none) for D's step,
``after_d_step(discriminator)`` after D's optimizer step, and ``g_loss(fake_out)`` for G's step.
A penalty is ``penalty(dD/dx at penalty_points(real, fake), real_out)``; clipping is ``weight_clip``:
declared as data, so a population of runs (ganlab/launch/population) applies them to all its members.
Which output kind a loss accepts is declared by ``accepts_probabilities`` and checked once when the
run is built.

``loss=acgan`` adds an auxiliary classifier's cross-entropy (``class_loss``), which the step asks for
when D has the classifier head (``aux_classifier``, declared by the loss and read when D is built).

Penalties that differentiate D with respect to its input (R1, WGAN-GP) run D once more on their own
inputs (a packed D, ``model.pack``: the gradient norm is per packed input, one per score). A D with
BatchNorm then sees an extra batch of reals/interpolates in train mode (its running statistics move,
and the per-sample gradient couples samples through the batch statistics); the penalties still train,
but the papers use D without BatchNorm (``model.d_batchnorm=false``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganlab.errors import ConfigError


class GANLoss:
    """Base objective: D and G losses from D's outputs on a real and a fake batch, plus D's hooks.

    A penalty on D's input gradient (R1, WGAN-GP) is declared in two parts, so a population of runs
    can take every member's input gradient in one batched pass: ``penalty_points`` (where to take
    dD/dx, None for no penalty) and ``penalty`` (the term from that gradient). Weight clipping is
    the ``weight_clip`` bound, applied by ``after_d_step``.
    """

    accepts_probabilities = False  # True when the loss is defined on D outputs in [0, 1]
    has_penalty = False  # True when D's loss gets a penalty on its input gradient
    weight_clip: float | None = None  # clip every D parameter to [-weight_clip, weight_clip] after its step
    aux_classifier = False  # True: D gets a class head, and the step adds ``class_loss`` (ACGAN)

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        """D's loss (minimised) from its outputs on a real and a fake batch.

        ``per_member``: the outputs are a population's (K, B, ...), one loss per member (K,) comes back;
        each member's value is the one its batch alone gives (``batch_mean`` reduces each member's row)."""
        raise NotImplementedError

    def g_loss(self, fake_out: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        """G's loss (minimised) from D's outputs on a fake batch (``per_member`` as for ``d_loss``)."""
        raise NotImplementedError

    def penalty_points(self, real: torch.Tensor, fake: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """Where D's input gradient is penalised (a batch like ``real``; only called when ``has_penalty``).

        ``generator``: the stream of any noise it draws (None: the global RNG, as a single run uses).
        """
        raise NotImplementedError(f"{type(self).__name__} has no penalty")

    def penalty(self, grad: torch.Tensor, real_out: torch.Tensor) -> torch.Tensor:
        """The penalty term from dD/dx at the penalty points (one run's batch) and D's outputs on reals."""
        raise NotImplementedError(f"{type(self).__name__} declares penalty points but no penalty")

    def d_penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                  real_out: torch.Tensor) -> torch.Tensor | None:
        """A term added to D's loss, given D and the batches (``fake`` detached); None for no penalty."""
        if not self.has_penalty:
            return None
        return self.penalty(input_gradient(discriminator, self.penalty_points(real, fake)), real_out)

    @torch.no_grad()
    def after_d_step(self, discriminator: nn.Module) -> None:
        """Called after each D optimizer step: clips D's weights when ``weight_clip`` is set."""
        if self.weight_clip is not None:
            for param in discriminator.parameters():
                param.clamp_(-self.weight_clip, self.weight_clip)


def batch_mean(x: torch.Tensor, per_member: bool = False) -> torch.Tensor:
    """The mean of a batch's terms: over all of ``x``, or over each member's (K, B, ...) row for a population.

    Per member it is the reduction torch.func.vmap makes of ``x.mean()`` (a member's mean over its own
    row), so a member's loss is bit for bit its run's; written out, it skips vmap's ~0.25 ms a call.
    """
    return x.flatten(1).mean(1) if per_member else x.mean()


def input_gradient(discriminator: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """dD(x)/dx per D output, kept in the graph so a penalty on it trains D (double backward).

    (n_outputs, ...): per sample, or for a packed D (m samples per score) per pack of m, flattened.
    """
    x = x.detach().requires_grad_(True)
    out = discriminator(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)  # sum: per-sample grads (no BatchNorm)
    return grad if out.shape[0] == x.shape[0] else grad.reshape(out.shape[0], -1)


class NonSaturatingLoss(GANLoss):
    """Standard GAN ("bce"): D maximises log D(x) + log(1 - D(G(z))); G maximises log D(G(z)).

    ``r1_gamma`` > 0 adds the R1 penalty (Mescheder et al. 2018) to D's loss:
    gamma/2 * E_real[ ||dD(x)/dx||^2 ], the gradient norm over all non-batch dims.
    """

    def __init__(self, r1_gamma: float = 0.0) -> None:
        if r1_gamma < 0:
            raise ConfigError(f"loss.r1_gamma must be >= 0, got {r1_gamma}")
        self.r1_gamma = r1_gamma

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        # softplus(-l) = -log(sigmoid(l)), softplus(l) = -log(1 - sigmoid(l)): stable on logits
        return batch_mean(F.softplus(-real_out), per_member) + batch_mean(F.softplus(fake_out), per_member)

    def g_loss(self, fake_out: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        return batch_mean(F.softplus(-fake_out), per_member)

    @property
    def has_penalty(self) -> bool:
        return self.r1_gamma > 0

    def penalty_points(self, real: torch.Tensor, fake: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        return real

    def penalty(self, grad: torch.Tensor, real_out: torch.Tensor) -> torch.Tensor:
        return self.r1_gamma / 2 * grad.pow(2).flatten(1).sum(1).mean()


class ACGANLoss(NonSaturatingLoss):
    """AC-GAN (Odena et al. 2017): ``bce`` plus ``aux_weight`` * cross-entropy of D's class head.

    D takes no labels but predicts them; its class loss is on reals (their labels) and fakes (the
    labels G was asked for), and G's loss adds the class loss on its fakes: both maximise the
    log-likelihood of the right class, as the paper's L_C. Needs a conditional G (model.conditional).
    """

    aux_classifier = True

    def __init__(self, aux_weight: float = 1.0, r1_gamma: float = 0.0) -> None:
        super().__init__(r1_gamma)
        if aux_weight < 0:
            raise ConfigError(f"loss.aux_weight must be >= 0, got {aux_weight}")
        self.aux_weight = aux_weight

    def class_loss(self, class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """aux_weight * mean cross-entropy of the class logits (B, K) against ``labels`` (B,)."""
        return self.aux_weight * F.cross_entropy(class_logits, labels)


class MinimaxLoss(NonSaturatingLoss):
    """The saturating min-max game: G minimises log(1 - D(G(z))) = -softplus(fake logit)."""

    def g_loss(self, fake_out: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        return -batch_mean(F.softplus(fake_out), per_member)


class LeastSquaresLoss(GANLoss):
    """Least squares with targets (the blog's nn.MSELoss): D -> real/fake targets, G -> real target."""

    accepts_probabilities = True

    def __init__(self, real_target: float = 1.0, fake_target: float = 0.0) -> None:
        self.real_target = real_target
        self.fake_target = fake_target

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        return batch_mean((real_out - self.real_target).pow(2), per_member) \
            + batch_mean((fake_out - self.fake_target).pow(2), per_member)

    def g_loss(self, fake_out: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        return batch_mean((fake_out - self.real_target).pow(2), per_member)


class HingeLoss(GANLoss):
    """Hinge (Lim & Ye 2017; SAGAN, BigGAN): D minimises relu(1 - D(x)) + relu(1 + D(G(z))); G minimises -D(G(z))."""

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        return batch_mean(F.relu(1 - real_out), per_member) + batch_mean(F.relu(1 + fake_out), per_member)

    def g_loss(self, fake_out: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        return -batch_mean(fake_out, per_member)


class CriticLoss(GANLoss):
    """The Wasserstein critic's objective: D maximises D(x) - D(G(z)); G maximises D(G(z)). No Lipschitz control."""

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        return batch_mean(fake_out, per_member) - batch_mean(real_out, per_member)

    def g_loss(self, fake_out: torch.Tensor, per_member: bool = False) -> torch.Tensor:
        return -batch_mean(fake_out, per_member)


class WassersteinLoss(CriticLoss):
    """WGAN (Arjovsky et al. 2017): the critic loss, with D's weights clipped to [-clip, clip] after each step."""

    def __init__(self, clip: float = 0.01) -> None:
        if clip <= 0:
            raise ConfigError(f"loss.clip must be > 0, got {clip}")
        self.clip = clip
        self.weight_clip = clip  # the paper clips every parameter of the critic (BatchNorm's affine ones included)


class WassersteinGPLoss(CriticLoss):
    """WGAN-GP (Gulrajani et al. 2017): the critic loss plus gp_weight * E[(||dD(x̂)/dx̂|| - 1)^2].

    x̂ = e*real + (1-e)*fake with e ~ U(0, 1) per sample; the norm is over all non-batch dims.
    ``drift`` > 0 adds drift * E[D(x)^2] on reals (ProGAN's epsilon-drift, keeps scores near 0).
    No clipping.
    """

    def __init__(self, gp_weight: float = 10.0, drift: float = 0.0) -> None:
        if gp_weight < 0 or drift < 0:
            raise ConfigError(f"loss.gp_weight and loss.drift must be >= 0, got {gp_weight}, {drift}")
        self.gp_weight, self.drift = gp_weight, drift

    has_penalty = True

    def penalty_points(self, real: torch.Tensor, fake: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        mix = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype,
                         generator=generator)
        return mix * real.detach() + (1 - mix) * fake.detach()

    def penalty(self, grad: torch.Tensor, real_out: torch.Tensor) -> torch.Tensor:
        grad_norm = grad.flatten(1).norm(dim=1)
        penalty = self.gp_weight * (grad_norm - 1).pow(2).mean()
        if self.drift > 0:
            penalty = penalty + self.drift * real_out.pow(2).mean()
        return penalty
