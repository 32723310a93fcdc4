"""PacGAN packing (model.pack=m): D judges m consecutive samples at once, for MLP and DCGAN, every loss."""

from __future__ import annotations

import pytest
import torch

from ganlab.build import build_evaluator
from ganlab.errors import ConfigError
from ganlab.losses import WassersteinGPLoss, input_gradient
from ganlab.models.conditional import pack_samples
from ganlab.models.dcgan import DCGANDiscriminator
from ganlab.models.mlp import MLPDiscriminator
from ganlab.train import build_run, check_pack, train

from conftest import FAST, compose_cfg


def test_pack_samples_joins_consecutive_samples_on_the_feature_axis():
    x = torch.arange(6 * 2 * 3 * 3, dtype=torch.float32).view(6, 2, 3, 3)
    packed = pack_samples(x, 3)
    assert packed.shape == (2, 6, 3, 3)
    assert torch.equal(packed[1, 2:4], x[4]) and torch.equal(packed[0, :2], x[0])
    with pytest.raises(ValueError, match="divisible by 4"):
        pack_samples(x, 4)


@pytest.mark.parametrize("pack", [1, 2, 4])
def test_a_packed_mlp_d_is_the_plain_mlp_on_joined_inputs(pack):
    torch.manual_seed(0)
    D = MLPDiscriminator(16, (1, 8, 8), pack=pack)
    x = torch.randn(8, 1, 8, 8)
    out = D(x)
    assert out.shape == (8 // pack,) and D.net[1].in_features == 64 * pack
    assert torch.allclose(out, D.net(x.reshape(8 // pack, -1)).squeeze(1))


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_a_packed_dcgan_d_reads_m_times_the_channels(shape):
    D = DCGANDiscriminator(4, shape, pack=4)
    assert D.net[0].in_channels == 4 * shape[0]
    assert D(torch.randn(8, *shape)).shape == (2,)


def test_penalty_gradients_are_per_packed_input():
    torch.manual_seed(0)
    D = MLPDiscriminator(16, (1, 8, 8), pack=2)
    x = torch.randn(6, 1, 8, 8)
    grad = input_gradient(D, x)
    assert grad.shape == (3, 128)  # one gradient per score: the pack's 2 x 64 inputs
    per_sample = torch.autograd.grad(D(x.requires_grad_(True)).sum(), x)[0]
    assert torch.allclose(grad, per_sample.reshape(3, -1))
    penalty = WassersteinGPLoss().d_penalty(D, torch.randn(6, 1, 8, 8), torch.randn(6, 1, 8, 8), D(x))
    assert torch.isfinite(penalty) and penalty > 0


@pytest.mark.parametrize("model", [["model.middle_size=32"], ["model=dcgan", "model.width=8"]])
@pytest.mark.parametrize("loss", ["bce", "wgan_gp"])
def test_packed_runs_train_and_score_half_as_many_outputs(tmp_path, model, loss):
    run = build_run(compose_cfg([*FAST, *model, f"loss={loss}", "model.pack=2"]))
    reals = run.batches.get(0)
    assert run.discriminator(reals).shape == (reals.shape[0] // 2,)
    final = train(compose_cfg([*FAST, *model, f"loss={loss}", "model.pack=2", "trainer.max_steps=2",
                               "eval.n_samples=101", "eval.batch_size=33"], run_dir=tmp_path))
    assert 0 <= final["eval/d_real"] <= 1  # evaluation feeds D whole packs (101 -> 100 samples)


def test_an_indivisible_batch_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"model.pack=3: the batch of 64 samples must divide by 3") as err:
        build_run(compose_cfg([*FAST, "model.pack=3"]))
    assert "\n" not in str(err.value)
    check_pack(2, 64, 2)
    with pytest.raises(ConfigError, match="the batch of 6 samples per rank must divide by 4"):
        check_pack(4, 12, 2)


def test_packing_on_2d_points_gives_the_mode_metrics(tmp_path):
    final = train(compose_cfg([*FAST, "data=grid25", "model.pack=4", "model.middle_size=32", "trainer.max_steps=2",
                               "eval.n_samples=200"], run_dir=tmp_path))
    assert "eval/modes_covered" in final and 0 <= final["eval/d_fake"] <= 1


def test_an_evaluator_takes_a_packed_d_on_any_sample_count():
    cfg = compose_cfg([*FAST, "model.pack=4", "eval.n_samples=30", "eval.batch_size=7"])
    run = build_run(cfg)
    evaluator = build_evaluator(cfg, run.data, run.device)
    values = evaluator(run.generator, run.discriminator, run.latent, 1)
    assert 0 <= values["eval/d_real"] <= 1 and 0 <= values["eval/d_fake"] <= 1
