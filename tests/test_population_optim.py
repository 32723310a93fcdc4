"""The population optimizers against torch.optim, member by member: bit-identical, torch's state format.

Tolerance: none. Each update is torch's single-tensor op sequence with its float32-cast scalars
replaced by float32 per-member tensors of the same value, so every member's parameters and state
equal torch.optim's on that member alone, bit for bit, at every step.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ganlab.launch.population.optim import StackedAdam, from_torch
from ganlab.launch.population.stacked import StackedModule, pad_latent
from ganlab.losses import NonSaturatingLoss
from ganlab.models.mlp import MLPDiscriminator, MLPGenerator
from ganlab.step import GANStep

K = 4


@pytest.fixture(scope="session")
def classifier_cache() -> None:
    """Overrides conftest's autouse fixture for this file: nothing here evaluates a model."""


class Net(nn.Module):
    """Odd sizes (vector tails), a padded z input, a tensor of 40k elements (two threads' chunks)."""

    z_input = ("first.weight", 1)

    def __init__(self, z_size: int) -> None:
        super().__init__()
        self.first = nn.Linear(z_size, 37)
        self.second = nn.Linear(37, 3)
        self.big = nn.Parameter(torch.randn(40_000))


CASES = {  # name: (torch class, hyperparameters of member k)
    "adam": (torch.optim.Adam, lambda k: dict(lr=10.0 ** -(1 + k % 3), betas=(0.5 + 0.1 * k, 0.999 - 0.003 * k),
                                              eps=1e-8 * (1 + k), weight_decay=[0, 0.01][k % 2])),
    "adam_config": (torch.optim.Adam, lambda k: dict(lr=2e-4, betas=[0.5, 0.999])),  # as conf/optimizer/adam.yaml
    "adamw": (torch.optim.AdamW, lambda k: dict(lr=1e-3 * (1 + k), weight_decay=0.1 * k)),
    "rmsprop": (torch.optim.RMSprop, lambda k: dict(lr=10.0 ** -(2 + k % 2), alpha=0.9 + 0.02 * k, eps=1e-6 * (1 + k),
                                                    momentum=[0, 0.9][k % 2], centered=k % 3 == 0,
                                                    weight_decay=[0, 0.01][k // 2])),
    "rmsprop_momentum": (torch.optim.RMSprop, lambda k: dict(lr=5e-5, momentum=0.5 + 0.1 * k)),
    "sgd": (torch.optim.SGD, lambda k: dict(lr=10.0 ** -(1 + k % 3), momentum=[0, 0.9, 0.5, 0.8][k],
                                            nesterov=k == 1, dampening=[0, 0, 0.3, 0][k],
                                            weight_decay=[0, 0.01][k % 2])),
    "sgd_plain": (torch.optim.SGD, lambda k: dict(lr=0.01 * (1 + k))),
}


def population(case: str, steps_before: list[int] | None = None):
    """Members (z sizes 5, 8, 3, 8), torch optimizers for each, and the stack built from their copies."""
    cls, hyper = CASES[case]
    torch.manual_seed(0)
    alone = [Net(z) for z in (5, 8, 3, 8)]
    opts = [cls(m.parameters(), **hyper(k)) for k, m in enumerate(alone)]
    gen = torch.Generator().manual_seed(1)
    for k, n in enumerate(steps_before or [0] * K):  # members resumed from different points
        for _ in range(n):
            for p in alone[k].parameters():
                p.grad = torch.randn(p.shape, generator=gen)
            opts[k].step()
    stacked = StackedModule(copy.deepcopy(alone))
    copies = [cls(m.parameters(), **hyper(k)) for k, m in enumerate(alone)]
    for copy_, opt in zip(copies, opts):
        copy_.load_state_dict(opt.state_dict())
    return alone, opts, stacked, from_torch(copies, stacked), gen


def random_grads(stacked: StackedModule, alone: list[nn.Module], gen: torch.Generator) -> None:
    """The same grads on the stack and on each member; zero where a member's weight is padding."""
    for _i, (name, p) in enumerate(zip(stacked.param_names, stacked.params)):
        p.grad = torch.zeros_like(p)
        for k, member in enumerate(alone):
            own = dict(member.named_parameters())[name]
            own.grad = torch.randn(own.shape, generator=gen)
            p.grad[stacked.member_index(k, name)] = own.grad


def assert_member_equals(stacked, vector_opt, alone, opts) -> None:
    for k, (member, opt) in enumerate(zip(alone, opts)):
        state = stacked.member_state_dict(k)
        for key, value in member.state_dict().items():
            assert torch.equal(state[key], value), (k, key)
        got, want = vector_opt.member_state_dict(k), opt.state_dict()
        assert got["param_groups"] == want["param_groups"], k
        assert list(got["state"]) == list(want["state"]), k
        for i, entry in want["state"].items():
            assert list(got["state"][i]) == list(entry), (k, i)  # same keys, in torch's order
            for key, value in entry.items():
                mine = got["state"][i][key]
                assert mine.dtype == value.dtype and mine.device == value.device and mine.shape == value.shape
                assert torch.equal(mine, value), (k, i, key)


# two threads split the 40k-element ops at other offsets in the stack than alone: a few steps suffice
@pytest.mark.parametrize("case,threads,steps", [(case, 1, 12) for case in CASES] + [("adam", 2, 3), ("sgd", 2, 3)])
def test_matches_torch_bit_for_bit(case, threads, steps):
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        alone, opts, stacked, vector_opt, gen = population(case)
        for _ in range(steps):
            random_grads(stacked, alone, gen)
            for opt in opts:
                opt.step()
            vector_opt.step()
        assert_member_equals(stacked, vector_opt, alone, opts)
    finally:
        torch.set_num_threads(saved)


@pytest.mark.parametrize("case", list(CASES))
def test_padding_stays_zero(case):
    """The padding of narrower members' z columns: masked exactly, and left at 0 (weights and state) by every step,
    though the updates read it as 1 under sqrt (StackedOptimizer.sqrt)."""
    alone, opts, stacked, vector_opt, gen = population(case)
    i = stacked.param_names.index("first.weight")
    mask = stacked.padding_mask("first.weight")
    assert mask.shape == stacked.params[i].shape
    assert [int(mask[k].sum()) for k in range(K)] == [37 * (8 - z) for z in (5, 8, 3, 8)]
    assert [n for n in stacked.param_names if stacked.padding_mask(n) is not None] == ["first.weight"]
    for _ in range(4):
        random_grads(stacked, alone, gen)
        vector_opt.step()
    assert torch.count_nonzero(stacked.params[i][mask]) == 0
    for tensors in vector_opt.state.values():
        assert torch.count_nonzero(tensors[i][mask]) == 0


@pytest.mark.parametrize("case", ["adam", "rmsprop", "sgd"])
def test_members_resume_from_their_own_steps(case):
    alone, opts, stacked, vector_opt, gen = population(case, steps_before=[0, 3, 1, 6])
    assert_member_equals(stacked, vector_opt, alone, opts)  # member 0: no state yet, as torch
    for _ in range(5):
        random_grads(stacked, alone, gen)
        for opt in opts:
            opt.step()
        vector_opt.step()
    assert_member_equals(stacked, vector_opt, alone, opts)


@pytest.mark.parametrize("case", ["adam", "rmsprop", "sgd"])
def test_checkpoint_round_trip_continues_identically(case):
    alone, opts, stacked, vector_opt, gen = population(case, steps_before=[2, 0, 1, 4])
    for _ in range(3):
        random_grads(stacked, alone, gen)
        vector_opt.step()
    cls, hyper = CASES[case]
    for k in range(K):  # a member's checkpoint: ordinary state dicts, loadable with weights_only
        buffer = io.BytesIO()
        torch.save({"model": stacked.member_state_dict(k), "opt": vector_opt.member_state_dict(k)}, buffer)
        buffer.seek(0)
        ckpt = torch.load(buffer, weights_only=True)
        alone[k].load_state_dict(ckpt["model"])
        opts[k] = cls(alone[k].parameters(), **hyper(k))
        opts[k].load_state_dict(ckpt["opt"])
    random_grads(stacked, alone, gen)
    for opt in opts:
        opt.step()
    vector_opt.step()
    assert_member_equals(stacked, vector_opt, alone, opts)

    # and back: a torch state (with another lr, as a resumed run's checkpoint brings) into member 1
    opts[1].param_groups[0]["lr"] *= 3
    vector_opt.load_member_state_dict(1, copy.deepcopy(opts[1].state_dict()))
    random_grads(stacked, alone, gen)
    for opt in opts:
        opt.step()
    vector_opt.step()
    assert_member_equals(stacked, vector_opt, alone, opts)


@pytest.mark.parametrize("case", ["adam", "rmsprop", "sgd"])
def test_step_reads_nothing_back_to_the_host(case, monkeypatch):
    alone, opts, stacked, vector_opt, gen = population(case, steps_before=[1, 0, 2, 0])
    random_grads(stacked, alone, gen)

    def host_sync(*args, **kwargs):
        raise AssertionError("step() read a tensor back to the host (a sync, and no CUDA graph)")

    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, host_sync)
    vector_opt.step()
    vector_opt.step()
    monkeypatch.undo()
    for opt in opts:
        opt.step()
        opt.step()
    assert_member_equals(stacked, vector_opt, alone, opts)


def test_refuses_what_it_does_not_mirror():
    stacked = StackedModule([Net(4), Net(4)])
    def make(cls, **kw):
        return [cls(Net(4).parameters(), **kw) for _ in range(2)]
    with pytest.raises(NotImplementedError, match="amsgrad"):
        from_torch(make(torch.optim.Adam, amsgrad=True), stacked)
    with pytest.raises(NotImplementedError, match="maximize"):
        from_torch(make(torch.optim.SGD, lr=0.1, maximize=True), stacked)
    with pytest.raises(TypeError, match="one optimizer class"):
        from_torch([torch.optim.Adam(Net(4).parameters()), torch.optim.SGD(Net(4).parameters(), lr=0.1)], stacked)
    with pytest.raises(ValueError, match="param groups"):
        net = Net(4)
        from_torch([torch.optim.Adam([{"params": [net.big]}, {"params": list(net.first.parameters())}])] * 2, stacked)
    with pytest.raises(ValueError, match="not the member's"):
        from_torch([torch.optim.Adam(Net(6).parameters()) for _ in range(2)], stacked)


def test_population_bce_steps_equal_single_runs():
    """The core's promise for the MLP family: K members trained as one program (folded G and D,
    StackedAdam) end each step bit-identical to GANStep on each member alone."""
    z_sizes, lrs = [50, 20, 35], [2e-4, 1e-3, 5e-4]
    gens, discs = [], []
    for k, z in enumerate(z_sizes):
        torch.manual_seed(k)
        gens.append(MLPGenerator(z, 32, (1, 8, 8)))
        discs.append(MLPDiscriminator(32, (1, 8, 8)))
    G, D = StackedModule(copy.deepcopy(gens)), StackedModule(copy.deepcopy(discs))
    def adam(module, k):
        return torch.optim.Adam(module.parameters(), lr=lrs[k], betas=(0.5, 0.999))
    singles = [GANStep(g, d, NonSaturatingLoss(), adam(g, k), adam(d, k)) for k, (g, d) in enumerate(zip(gens, discs))]
    g_opt = from_torch([adam(g, k) for k, g in enumerate(gens)], G)
    d_opt = from_torch([adam(d, k) for k, d in enumerate(discs)], D)
    assert isinstance(g_opt, StackedAdam) and G.path == D.path == "fold"
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        real = torch.rand(len(z_sizes), 64, 1, 8, 8, generator=gen) * 2 - 1
        z_d = [torch.randn(64, z, generator=gen) for z in z_sizes]
        z_g = [torch.randn(64, z, generator=gen) for z in z_sizes]
        outs = [single([real[k]], [z_d[k]], z_g[k], grad_norms=True) for k, single in enumerate(singles)]
        fake = G(torch.stack([pad_latent(z, G.z_max) for z in z_d]))
        d_loss_k = F.softplus(-D(real)).mean(1) + F.softplus(D(fake.detach())).mean(1)  # (K,): each member's loss
        d_opt.zero_grad()
        d_loss_k.sum().backward()  # the sum: each member's grads are those of its own loss
        d_grad = D.grad_norms()
        d_opt.step()
        g_loss_k = F.softplus(-D(G(torch.stack([pad_latent(z, G.z_max) for z in z_g])))).mean(1)
        g_opt.zero_grad()
        g_loss_k.sum().backward()  # D's grads from this are discarded by its next zero_grad, as in GANStep
        g_grad = G.grad_norms()
        g_opt.step()
        for k, out in enumerate(outs):  # what a single run logs: its losses and grad norms
            assert torch.equal(d_loss_k[k], out.d_loss) and torch.equal(g_loss_k[k], out.g_loss)
            assert torch.equal(d_grad[k], out.d_grad) and torch.equal(g_grad[k], out.g_grad), k
        assert_member_equals(G, g_opt, gens, [s.g_opt for s in singles])
        assert_member_equals(D, d_opt, discs, [s.d_opt for s in singles])
