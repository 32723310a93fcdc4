"""The blog's theory section, checked numerically on known 1D densities with ganlab's own bce loss.

For a fixed G, the D maximising V(D, G) = E_data log D(x) + E_g log(1 - D(x)) is
D* = p_data / (p_data + p_g), and V(D*, G) = -log 4 + 2 JSD(p_data || p_g): -log 4 exactly when
p_g = p_data, where D* = 1/2. ``NonSaturatingLoss.d_loss`` is -V on logits, so minimising it with a
flexible D over samples must recover D* and the value.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ganlab.losses import NonSaturatingLoss


@pytest.fixture(autouse=True)
def one_thread():
    """These problems are tiny: one thread is fastest, and spares the cores other tests share."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


GRID = torch.linspace(-2.0, 2.5, 181).unsqueeze(1)  # where both densities below carry mass (> 0.05)


def normal_pdf(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    return torch.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


def p_data(x: torch.Tensor) -> torch.Tensor:
    """A bimodal data density: 0.5 N(-1, 0.5^2) + 0.5 N(1.5, 0.7^2)."""
    return 0.5 * normal_pdf(x, -1.0, 0.5) + 0.5 * normal_pdf(x, 1.5, 0.7)


def sample_data(n: int, gen: torch.Generator) -> torch.Tensor:
    first = torch.rand(n, 1, generator=gen) < 0.5
    left, right = -1.0 + 0.5 * torch.randn(n, 1, generator=gen), 1.5 + 0.7 * torch.randn(n, 1, generator=gen)
    return torch.where(first, left, right)


def p_g(x: torch.Tensor) -> torch.Tensor:
    """A generator's density: N(0.3, 1.2^2)."""
    return normal_pdf(x, 0.3, 1.2)


def sample_g(n: int, gen: torch.Generator) -> torch.Tensor:
    return 0.3 + 1.2 * torch.randn(n, 1, generator=gen)


class FeatureD(nn.Module):
    """A flexible D that trains fast: logits linear in (x, x^2, Gaussian bumps). Convex in its weights,
    so full-batch L-BFGS reaches the optimum of the bce objective within the family."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("centres", torch.linspace(-3.5, 4.0, 16))
        self.head = nn.Linear(2 + 16, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        bumps = torch.exp(-0.5 * ((x - self.centres) / 0.5) ** 2)
        return torch.cat([x, x**2 / 4, bumps], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_d(real: torch.Tensor, fake: torch.Tensor) -> nn.Module:
    """D trained to convergence on fixed samples with ganlab's bce D loss (full batch, L-BFGS)."""
    torch.manual_seed(0)
    D = FeatureD()
    opt = torch.optim.LBFGS(D.parameters(), lr=1.0, max_iter=100,
                            line_search_fn="strong_wolfe")
    loss = NonSaturatingLoss()
    real_features, fake_features = D.features(real), D.features(fake)  # fixed: only the head trains

    def closure() -> torch.Tensor:
        opt.zero_grad()
        d_loss = loss.d_loss(D.head(real_features).squeeze(1), D.head(fake_features).squeeze(1))
        d_loss.backward()
        return d_loss

    opt.step(closure)
    return D


def value(D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> float:
    """V(D, G) estimated on samples: minus ganlab's bce D loss."""
    with torch.no_grad():
        return -NonSaturatingLoss().d_loss(D(real).squeeze(1), D(fake).squeeze(1)).item()


def quadrature_value(p: torch.Tensor, q: torch.Tensor, dx: float) -> float:
    """V(D*, G) = ∫ p log(p/(p+q)) + q log(q/(p+q)) dx on a fine grid."""
    total = p + q
    return float(((torch.xlogy(p, p / total) + torch.xlogy(q, q / total)) * dx).sum())  # 0 log 0 = 0 in the tails


def test_bce_trained_d_matches_the_optimal_discriminator():
    gen = torch.Generator().manual_seed(1)
    D = train_d(sample_data(50000, gen), sample_g(50000, gen))
    with torch.no_grad():
        learned = torch.sigmoid(D(GRID))
    optimal = p_data(GRID) / (p_data(GRID) + p_g(GRID))
    assert (learned - optimal).abs().max().item() < 0.05
    assert (learned - optimal).abs().mean().item() < 0.02
    # the value at the optimum: -log 4 + 2 JSD > -log 4 when the densities differ
    fine = torch.linspace(-12, 12, 48001, dtype=torch.float64)
    v_star = quadrature_value(p_data(fine), p_g(fine), float(fine[1] - fine[0]))
    held_out = value(D, sample_data(200000, gen), sample_g(200000, gen))
    assert v_star > -math.log(4) + 0.1
    assert held_out == pytest.approx(v_star, abs=0.01)


def test_equal_densities_give_one_half_and_minus_log_4():
    gen = torch.Generator().manual_seed(2)
    D = train_d(sample_data(50000, gen), sample_data(50000, gen))  # p_g = p_data
    with torch.no_grad():
        learned = torch.sigmoid(D(GRID))
    assert (learned - 0.5).abs().max().item() < 0.05
    held_out = value(D, sample_data(200000, gen), sample_data(200000, gen))
    assert held_out == pytest.approx(-math.log(4), abs=0.005)
    fine = torch.linspace(-12, 12, 48001, dtype=torch.float64)
    same = quadrature_value(p_data(fine), p_data(fine), float(fine[1] - fine[0]))
    assert same == pytest.approx(-math.log(4), abs=1e-6)
