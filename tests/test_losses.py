"""Loss values against closed forms on fixed logits, and the direction of their gradients."""

from __future__ import annotations

import math

import pytest
import torch

from ganlab.losses import LeastSquaresLoss, MinimaxLoss, NonSaturatingLoss

REAL = torch.tensor([2.0, -1.0, 0.5])
FAKE = torch.tensor([-0.5, 1.5, 0.0])


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def mean(xs) -> float:
    return sum(xs) / len(xs)


def test_bce_closed_form():
    loss = NonSaturatingLoss()
    expect_d = mean([-math.log(sig(r)) for r in REAL.tolist()]) + mean([-math.log(1 - sig(f)) for f in FAKE.tolist()])
    expect_g = mean([-math.log(sig(f)) for f in FAKE.tolist()])
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(expect_d, rel=1e-6)
    assert loss.g_loss(FAKE).item() == pytest.approx(expect_g, rel=1e-6)


def test_minimax_closed_form():
    loss = MinimaxLoss()
    assert loss.g_loss(FAKE).item() == pytest.approx(mean([math.log(1 - sig(f)) for f in FAKE.tolist()]), rel=1e-6)
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(NonSaturatingLoss().d_loss(REAL, FAKE).item())


def test_mse_closed_form_and_targets():
    loss = LeastSquaresLoss(real_target=0.9, fake_target=0.1)
    expect_d = mean([(r - 0.9) ** 2 for r in REAL.tolist()]) + mean([(f - 0.1) ** 2 for f in FAKE.tolist()])
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(expect_d, rel=1e-6)
    assert loss.g_loss(FAKE).item() == pytest.approx(mean([(f - 0.9) ** 2 for f in FAKE.tolist()]), rel=1e-6)


def test_bce_is_stable_on_large_logits():
    big = torch.tensor([100.0, -100.0])
    assert torch.isfinite(NonSaturatingLoss().d_loss(big, -big))
    assert torch.isfinite(NonSaturatingLoss().g_loss(-big))


@pytest.mark.parametrize("loss", [NonSaturatingLoss(), MinimaxLoss(), LeastSquaresLoss()])
def test_gradient_directions(loss):
    # scores between the least-squares targets 0 and 1, so "up" and "down" mean the same for every loss
    real = torch.tensor([0.1, 0.4, 0.8], requires_grad=True)
    fake = torch.tensor([0.2, 0.5, 0.7], requires_grad=True)
    loss.d_loss(real, fake).backward()
    assert (real.grad < 0).all()  # descending D's loss raises D on real ...
    assert (fake.grad > 0).all()  # ... and lowers it on fake
    fake_g = torch.tensor([0.2, 0.5, 0.7], requires_grad=True)
    loss.g_loss(fake_g).backward()
    assert (fake_g.grad < 0).all()  # descending G's loss pushes D(G(z)) up
