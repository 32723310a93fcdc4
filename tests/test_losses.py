"""Loss values against closed forms on fixed logits, and the direction of their gradients."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ganlab.errors import ConfigError
from ganlab.losses import (
    HingeLoss,
    LeastSquaresLoss,
    MinimaxLoss,
    NonSaturatingLoss,
    WassersteinGPLoss,
    WassersteinLoss,
)
from ganlab.train import train

from conftest import compose_cfg

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


@pytest.mark.parametrize("loss", [NonSaturatingLoss(), MinimaxLoss(), LeastSquaresLoss(), HingeLoss(),
                                  WassersteinLoss(), WassersteinGPLoss()])
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


def test_hinge_closed_form():
    loss = HingeLoss()
    expect_d = mean([max(0.0, 1 - r) for r in REAL.tolist()]) + mean([max(0.0, 1 + f) for f in FAKE.tolist()])
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(expect_d, rel=1e-6)  # 1/3*(0+2+.5) + 1/3*(.5+2.5+1)
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(2.5 / 3 + 4.0 / 3, rel=1e-6)
    assert loss.g_loss(FAKE).item() == pytest.approx(-1.0 / 3, rel=1e-6)


@pytest.mark.parametrize("loss", [WassersteinLoss(clip=0.05), WassersteinGPLoss()])
def test_wasserstein_closed_form(loss):
    assert loss.d_loss(REAL, FAKE).item() == pytest.approx(1.0 / 3 - 1.5 / 3, rel=1e-6)  # E D(G(z)) - E D(x)
    assert loss.g_loss(FAKE).item() == pytest.approx(-1.0 / 3, rel=1e-6)


def linear_critic(weight: torch.Tensor) -> nn.Module:
    """D(x) = <w, flatten(x)> + 1: its input gradient is w everywhere."""
    critic = nn.Sequential(nn.Flatten(), nn.Linear(weight.numel(), 1))
    with torch.no_grad():
        critic[1].weight.copy_(weight.view(1, -1))
        critic[1].bias.fill_(1.0)
    return critic


def test_gradient_penalty_is_zero_for_unit_gradient_norm_and_positive_otherwise():
    torch.manual_seed(0)
    real, fake = torch.randn(16, 3, 4, 4), torch.randn(16, 3, 4, 4)
    unit = torch.randn(3 * 4 * 4)
    unit = unit / unit.norm()
    loss = WassersteinGPLoss(gp_weight=10.0)
    # the norm is over all non-batch dims (C, H, W): a per-channel or per-pixel norm would not be 1 here
    assert loss.d_penalty(linear_critic(unit), real, fake, torch.zeros(16)).item() == pytest.approx(0.0, abs=1e-8)
    # ||w|| = 2 everywhere: 10 * (2 - 1)^2 = 10; ||w|| = 0.5: 10 * 0.25
    assert loss.d_penalty(linear_critic(2 * unit), real, fake, torch.zeros(16)).item() == pytest.approx(10.0, rel=1e-5)
    assert loss.d_penalty(linear_critic(unit / 2), real, fake, torch.zeros(16)).item() == pytest.approx(2.5, rel=1e-5)
    # a non-linear D: gradient norms vary over the interpolates, so the penalty is positive
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(48, 8), nn.Tanh(), nn.Linear(8, 1))
    assert loss.d_penalty(mlp, real, fake, torch.zeros(16)).item() > 0


def test_gradient_penalty_trains_d_not_g_and_drift_uses_real_scores():
    critic = linear_critic(torch.ones(4))  # ||w|| = 2
    real = torch.randn(8, 4)
    fake = torch.randn(8, 4, requires_grad=True)  # as if from G: the penalty must not reach it
    penalty = WassersteinGPLoss(gp_weight=1.0).d_penalty(critic, real, fake.detach(), torch.zeros(8))
    penalty.backward()
    w = critic[1].weight
    assert torch.allclose(w.grad, 2 * (w.norm() - 1) * w / w.norm())  # d/dw (||w|| - 1)^2
    assert fake.grad is None
    real_out = torch.tensor([2.0, -2.0])
    with_drift = WassersteinGPLoss(gp_weight=0.0, drift=0.001).d_penalty(critic, real[:2], real[:2], real_out)
    assert with_drift.item() == pytest.approx(0.001 * 4.0)


def test_r1_closed_form_and_off_by_default():
    real = torch.randn(5, 2, 3)
    w = torch.arange(6.0)  # ||w||^2 = 55
    assert NonSaturatingLoss().d_penalty(linear_critic(w), real, real, torch.zeros(5)) is None
    r1 = NonSaturatingLoss(r1_gamma=10.0).d_penalty(linear_critic(w), real, real, torch.zeros(5))
    assert r1.item() == pytest.approx(10.0 / 2 * 55.0)
    minimax_r1 = MinimaxLoss(r1_gamma=2.0).d_penalty(linear_critic(w), real, real, torch.zeros(5))
    assert minimax_r1.item() == pytest.approx(55.0)


def test_only_wgan_clips_and_it_clips_every_parameter():
    critic = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1))
    for loss in (NonSaturatingLoss(), HingeLoss(), WassersteinGPLoss()):
        loss.after_d_step(critic)
    assert max(p.abs().max().item() for p in critic.parameters()) == 1.0  # BatchNorm's weight, untouched
    WassersteinLoss(clip=0.02).after_d_step(critic)
    assert all(p.abs().max().item() <= 0.02 for p in critic.parameters())


@pytest.mark.parametrize("model", [["model=mlp"], ["model=dcgan", "model.width=4", "model.d_spectral_norm=true"]])
def test_wgan_weights_stay_clipped_through_training(tmp_path, model):
    train(compose_cfg(["loss=wgan", "loss.clip=0.03", *model, "trainer.max_steps=3", "trainer.n_critic=2",
                       "trainer.progress=false", "logger=none", "optimizer=rmsprop", "optimizer.discriminator.lr=0.05"],
                      run_dir=tmp_path))
    state = torch.load(tmp_path / "checkpoints" / "step_00000003.pt", weights_only=True)
    params = {k: v for k, v in state["discriminator"].items() if "running" not in k and "num_batches" not in k
              and not k.endswith("_u") and not k.endswith("_v")}
    assert params and max(v.abs().max().item() for v in params.values()) == pytest.approx(0.03)


@pytest.mark.parametrize("override,match", [("loss=wgan loss.clip=0", "loss.clip must be > 0"),
                                            ("loss=bce loss.r1_gamma=-1", "r1_gamma must be >= 0"),
                                            ("loss=wgan_gp loss.gp_weight=-1", "gp_weight and loss.drift")])
def test_bad_loss_values(override, match):
    from ganlab.build import build

    with pytest.raises(ConfigError, match=match):
        build(compose_cfg(override.split()).loss, "loss")


ZOO = [NonSaturatingLoss(), MinimaxLoss(), LeastSquaresLoss(0.9, 0.1), HingeLoss(), WassersteinLoss(0.02),
       WassersteinGPLoss(), NonSaturatingLoss(r1_gamma=1.0)]


@pytest.mark.parametrize("loss", ZOO, ids=lambda loss: type(loss).__name__)
@pytest.mark.parametrize("shape", [(5, 64), (3, 37, 1)])  # D's outputs as (B,) or (B, 1) per member
def test_per_member_losses_are_each_members_own_bit_for_bit(loss, shape):
    """A population's (K, B, ...) outputs: per_member=True gives each member what its batch alone gives, and what
    torch.func.vmap gives (what the population did before); a loss without the keyword takes vmap."""
    from torch.func import vmap

    from ganlab.launch.population.step import by_member

    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(shape, generator=gen) * 3, torch.randn(shape, generator=gen) * 3
    d, g = loss.d_loss(real, fake, per_member=True), loss.g_loss(fake, per_member=True)
    assert d.shape == g.shape == (shape[0],)
    assert torch.equal(d, torch.stack([loss.d_loss(r, f) for r, f in zip(real, fake)]))
    assert torch.equal(g, torch.stack([loss.g_loss(f) for f in fake]))
    assert torch.equal(d, vmap(loss.d_loss)(real, fake)) and torch.equal(g, vmap(loss.g_loss)(fake))

    class Legacy(type(loss)):  # a user's loss written before the keyword existed
        def g_loss(self, fake_out):
            return super().g_loss(fake_out) * 2

    legacy = Legacy.__new__(Legacy)
    legacy.__dict__.update(vars(loss))
    assert torch.equal(by_member(legacy.g_loss)(fake), g * 2)
