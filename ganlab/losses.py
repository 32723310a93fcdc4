"""GAN objectives. Each takes D's raw outputs (logits unless D ends in a sigmoid) and returns means.

The trainer only calls ``d_loss(real_out, fake_out)`` and ``g_loss(fake_out)``; which output kind a
loss accepts is declared by ``accepts_probabilities`` and checked once when the run is built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class GANLoss:
    """Base objective: D and G losses from D's outputs on a real and a fake batch."""

    accepts_probabilities = False  # True when the loss is defined on D outputs in [0, 1]

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class NonSaturatingLoss(GANLoss):
    """Standard GAN ("bce"): D maximises log D(x) + log(1 - D(G(z))); G maximises log D(G(z))."""

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        # softplus(-l) = -log(sigmoid(l)), softplus(l) = -log(1 - sigmoid(l)): stable on logits
        return F.softplus(-real_out).mean() + F.softplus(fake_out).mean()

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake_out).mean()


class MinimaxLoss(NonSaturatingLoss):
    """The saturating min-max game: G minimises log(1 - D(G(z))) = -softplus(fake logit)."""

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return -F.softplus(fake_out).mean()


class LeastSquaresLoss(GANLoss):
    """Least squares with targets (the blog's nn.MSELoss): D -> real/fake targets, G -> real target."""

    accepts_probabilities = True

    def __init__(self, real_target: float = 1.0, fake_target: float = 0.0) -> None:
        self.real_target = real_target
        self.fake_target = fake_target

    def d_loss(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        return (real_out - self.real_target).pow(2).mean() + (fake_out - self.fake_target).pow(2).mean()

    def g_loss(self, fake_out: torch.Tensor) -> torch.Tensor:
        return (fake_out - self.real_target).pow(2).mean()
