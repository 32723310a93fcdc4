"""PopulationStep's members grouped by loss: a member's loss, penalty and gradients do not depend on where
the other members of its loss sit. Side by side (as ``Population`` orders them) a loss's rows are one
split of the (K, ...) outputs; interleaved (a step built directly) an index per loss. Both must give
each member exactly what it gets alone: bit for bit, the same ops on the same rows."""

from __future__ import annotations

import copy

import torch

from ganlab.launch.population.members import Population
from ganlab.launch.population.stacked import StackedModule
from ganlab.launch.population.step import PopulationStep, loss_groups
from ganlab.losses import HingeLoss, LeastSquaresLoss, NonSaturatingLoss, WassersteinGPLoss
from ganlab.models.mlp import MLPDiscriminator

from conftest import FAST, compose_cfg

B = 32
# interleaved: bce, hinge, bce+R1, WGAN-GP, hinge, mse, bce (bce+R1 is another loss than bce: other parameters)
LOSSES = [NonSaturatingLoss(), HingeLoss(), NonSaturatingLoss(r1_gamma=1.0), WassersteinGPLoss(10.0), HingeLoss(),
          LeastSquaresLoss(), NonSaturatingLoss()]
SIDE_BY_SIDE = [k for _, members in loss_groups(LOSSES) for k in members]  # [0, 6, 1, 4, 2, 3, 5]


def step_of(order: list[int], discriminators: list[MLPDiscriminator]) -> PopulationStep:
    """A step over the members in ``order`` (D stacked; G and the optimizers are not used here)."""
    stacked = StackedModule([copy.deepcopy(discriminators[k]) for k in order])
    noise = [torch.Generator().manual_seed(100 + k) for k in order]
    return PopulationStep(stacked, stacked, [LOSSES[k] for k in order], None, None, noise)


def test_loss_groups_keep_first_appearance_and_split_by_parameters():
    assert [members for _, members in loss_groups(LOSSES)] == [[0, 6], [1, 4], [2], [3], [5]]
    assert step_of(SIDE_BY_SIDE, [MLPDiscriminator(8, (2,))] * len(LOSSES)).split_sizes == [2, 2, 1, 1, 1]
    assert step_of(list(range(len(LOSSES))), [MLPDiscriminator(8, (2,))] * len(LOSSES)).split_sizes is None


def test_a_members_losses_penalty_and_gradients_do_not_depend_on_where_its_loss_group_sits():
    torch.manual_seed(0)
    discriminators = [MLPDiscriminator(16, (1, 4, 4)) for _ in LOSSES]
    real, fake = torch.randn(len(LOSSES), B, 1, 4, 4), torch.randn(len(LOSSES), B, 1, 4, 4)
    real_out, fake_out = torch.randn(len(LOSSES), B, 1), torch.randn(len(LOSSES), B, 1)
    results = {}
    for name, order in (("interleaved", list(range(len(LOSSES)))), ("side_by_side", SIDE_BY_SIDE)):
        step = step_of(order, discriminators)
        outs = [t[order].clone().requires_grad_(True) for t in (real_out, fake_out)]
        d_loss, g_loss = step.d_losses(*outs), step.g_losses(outs[1])
        penalty = step.penalties(real[order], fake[order], outs[0])
        (d_loss.sum() + g_loss.sum() + penalty.sum()).backward()
        grads = [p.grad for p in step.discriminator.params if p.grad is not None]  # the penalties reach D
        back = torch.tensor(order).argsort()  # each member's row back in the interleaved order
        results[name] = [d_loss[back], g_loss[back], penalty[back], outs[0].grad[back], outs[1].grad[back],
                         *[g[back] for g in grads]]
    assert results["side_by_side"][2][[2, 3]].gt(0).all() and results["side_by_side"][2][[0, 1, 4, 5, 6]].eq(0).all()
    assert len(results["interleaved"]) == len(results["side_by_side"]) > 5
    for a, b in zip(results["interleaved"], results["side_by_side"]):
        assert torch.equal(a, b)


def test_a_population_puts_each_losss_members_side_by_side_in_their_given_order(tmp_path):
    """Population's order is the one every per-member read of the trainer zips with (metrics, evaluation, outcomes)."""
    from ganlab.config import RunContext
    from ganlab.launch.population.members import build_member

    losses = ["bce", "hinge", "bce", "mse", "hinge"]
    members = [build_member(compose_cfg([*FAST, "model.middle_size=16", f"loss={loss}", f"seed={k}"]),
                            RunContext(dir=tmp_path / str(k)), None) for k, loss in enumerate(losses)]
    pop = Population(members)
    assert [m.ctx.dir.name for m in pop.members] == ["0", "2", "1", "4", "3"]
    assert pop.step.step.split_sizes == [2, 2, 1]
