"""StackedModule: K members as one module compute what each member computes alone.

The MLP family's folded path is bit-identical to the members (forward, backward, BatchNorm running
statistics); the generic vmap path (DCGAN, or any model) agrees to float32 rounding, because its
batched GEMMs and convolutions block their sums differently from the single-sample kernels.
The forward/backward test runs twice (two batches) so that state carried between calls (running
statistics, spectral norm's power-iteration vectors) is checked as it is used.
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch
import torch.nn.functional as F

from ganlab.launch.population.stacked import StackedModule, pad_latent
from ganlab.losses import WassersteinLoss, input_gradient
from ganlab.models.dcgan import DCGANDiscriminator, DCGANGenerator
from ganlab.models.mlp import MLPDiscriminator, MLPGenerator

K, B = 3, 32  # B: a whole AVX512 step of 32 floats (a shorter tail goes scalar alone but vectorised in the stack)
RTOL = 2e-5  # vmap path: float32 sums in another order, through up to 5 layers and their backward

CASES = {  # name: (build, input shape per member)
    "mlp_g": (lambda: MLPGenerator(16, 32, (1, 8, 8)), (16,)),
    "mlp_g_points": (lambda: MLPGenerator(2, 32, (2,), output="linear", hidden_layers=3), (2,)),
    "mlp_d": (lambda: MLPDiscriminator(32, (1, 8, 8)), (1, 8, 8)),
    "mlp_d_blog": (lambda: MLPDiscriminator(32, (1, 8, 8), output_batchnorm=True, sigmoid=True), (1, 8, 8)),
    "mlp_d_points": (lambda: MLPDiscriminator(32, (2,), hidden_layers=3), (2,)),
    "dcgan_g_8": (lambda: DCGANGenerator(8, 4, (1, 8, 8)), (8,)),
    "dcgan_g_28": (lambda: DCGANGenerator(8, 4, (1, 28, 28)), (8,)),
    "dcgan_d_8": (lambda: DCGANDiscriminator(4, (1, 8, 8)), (1, 8, 8)),
    "dcgan_d_28": (lambda: DCGANDiscriminator(4, (1, 28, 28)), (1, 28, 28)),
    "dcgan_d_8_nobn": (lambda: DCGANDiscriminator(4, (1, 8, 8), batchnorm=False), (1, 8, 8)),
    "dcgan_d_28_nobn": (lambda: DCGANDiscriminator(4, (1, 28, 28), batchnorm=False), (1, 28, 28)),
    # spectral norm: the stack runs torch's power iteration itself, batched (the parametrization cannot vmap)
    "dcgan_d_8_sn": (lambda: DCGANDiscriminator(4, (1, 8, 8), batchnorm=False, spectral=True), (1, 8, 8)),
    "dcgan_d_28_sn_bn": (lambda: DCGANDiscriminator(4, (1, 28, 28), spectral=True), (1, 28, 28)),
}
RUNS = [(name, "auto") for name in CASES] + [(name, "vmap") for name in CASES if name.startswith("mlp")]


@pytest.fixture(scope="session")
def classifier_cache() -> None:
    """Overrides conftest's autouse fixture for this file: nothing here evaluates, so no classifier
    needs training (13 s of a 14 s run of this file)."""


def members(build, count: int = K) -> list[torch.nn.Module]:
    """Each member built as a single run builds it: under its own seed."""
    out = []
    for k in range(count):
        torch.manual_seed(100 + k)
        out.append(build())
    return out


def assert_same(got: torch.Tensor, want: torch.Tensor, exact: bool, what: str, scale: float | None = None) -> None:
    """Bit-equal, or equal to RTOL of ``scale`` (default: the tensor's largest magnitude)."""
    assert got.shape == want.shape and got.dtype == want.dtype, what
    diff = (got.double() - want.double()).abs().max().item()
    if exact:
        assert torch.equal(got, want), f"{what}: max diff {diff}"
    else:
        scale = want.double().abs().max().item() if scale is None else scale
        assert diff <= RTOL * scale + 1e-7, f"{what}: max diff {diff}, scale {scale}"


def grad_scale(module: torch.nn.Module) -> float:
    """The largest gradient of ``module``: the scale for one of its grads (a bias before BatchNorm has a
    true gradient of 0, so its own magnitude is rounding noise)."""
    return max(p.grad.abs().max().item() for p in module.parameters() if p.grad is not None)


@pytest.mark.parametrize("name,path", RUNS)
def test_forward_backward_and_running_stats_match_members(name, path):
    exact = path == "auto" and name.startswith("mlp")  # the folded path
    check_matches_members(name, path, exact)


def test_one_channel_batchnorm_in_one_call_matches_members(monkeypatch):
    """Off the CPU (CUDA), the blog D's BatchNorm1d(1) runs as one call over (B, K), not one per member:
    the same values to float tolerance (another kernel), the same running statistics."""
    from ganlab.launch.population import fold

    calls = []
    monkeypatch.setattr(fold, "one_channel_per_member", lambda device: calls.append(device) or False)
    check_matches_members("mlp_d_blog", "fold", exact=False)
    assert calls  # the one-call path ran


def check_matches_members(name: str, path: str, exact: bool) -> None:
    build, in_shape = CASES[name]
    alone = members(build)
    stacked = StackedModule(copy.deepcopy(alone), path=path)
    assert (stacked.path == "fold") == (path in ("auto", "fold") and name.startswith("mlp"))
    gen = torch.Generator().manual_seed(0)
    for _ in range(2):
        x = torch.randn(K, B, *in_shape, generator=gen).requires_grad_()
        stacked.zero_grad()
        out = stacked(x)
        weights = torch.randn(out.shape, generator=gen)  # a loss whose grads differ per sample
        (out * weights).sum().backward()
        for k, member in enumerate(alone):
            member.zero_grad()
            xk = x[k].detach().clone().requires_grad_()
            ref = member(xk)
            (ref * weights[k]).sum().backward()
            assert_same(out[k], ref, exact, f"member {k} output")
            assert_same(x.grad[k], xk.grad, exact, f"member {k} input grad")
            for i, (pname, p) in enumerate(member.named_parameters()):
                assert_same(stacked.params[i].grad[k], p.grad, exact, f"member {k} {pname}.grad", grad_scale(member))
            state = stacked.member_state_dict(k)
            for bname, buf in member.named_buffers():  # running statistics, power-iteration vectors
                assert_same(state[bname], buf, exact or buf.dtype == torch.long, f"member {k} {bname}")
    stacked.eval()
    with torch.no_grad():
        out = stacked(x)
        for k, member in enumerate(alone):
            assert_same(out[k], member.eval()(x[k]), exact, f"member {k} eval output (running stats)")


@pytest.mark.parametrize("name", ["mlp_g", "mlp_d_blog", "dcgan_g_8", "dcgan_d_8", "dcgan_d_8_sn"])
def test_member_state_dicts_round_trip(name):
    alone = members(CASES[name][0])
    stacked = StackedModule(copy.deepcopy(alone))
    for k, member in enumerate(alone):
        state = stacked.member_state_dict(k)
        want = member.state_dict()
        assert list(state) == list(want)  # same keys in the same order, num_batches_tracked included
        for key in want:
            assert_same(state[key], want[key], True, key)
            assert state[key].untyped_storage().size() == want[key].untyped_storage().size()  # not a view of the stack
    # member 2's weights into member 0's slot, and out into a fresh module
    stacked.load_member_state_dict(0, alone[2].state_dict())
    fresh = stacked.write_member_into(0, copy.deepcopy(alone[1]))
    for key, value in alone[2].state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)
        assert torch.equal(stacked.member_state_dict(2)[key], value)  # the others untouched
    with pytest.raises(KeyError):
        stacked.load_member_state_dict(1, {"net.1.bias": alone[1].state_dict()["net.1.bias"]})


@pytest.mark.parametrize("family", ["mlp", "dcgan"])
def test_mixed_z_size_pads_with_zeros_that_stay_zero(family):
    z_sizes = [3, 8, 5]
    def build(z: int) -> torch.nn.Module:
        return MLPGenerator(z, 32, (1, 8, 8)) if family == "mlp" else DCGANGenerator(z, 4, (1, 8, 8))
    alone = []
    for k, z in enumerate(z_sizes):  # each built alone at its own z_size, under its own seed
        torch.manual_seed(k)
        alone.append(build(z))
    stacked = StackedModule(copy.deepcopy(alone))
    name, dim = type(alone[0]).z_input
    weight = stacked.params[stacked.param_names.index(name)]
    assert stacked.z_max == 8 and weight.shape[1 + dim] == 8
    for k, member in enumerate(alone):
        for key, value in member.state_dict().items():  # the member's own init, unpadded
            assert torch.equal(stacked.member_state_dict(k)[key], value)
    padding = torch.ones_like(weight, dtype=torch.bool)
    for k in range(K):
        padding[stacked.member_index(k, name)] = False
    assert padding.sum() > 0 and weight[padding].eq(0).all()

    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(stacked.parameters(), lr=1e-2, weight_decay=0)
    for _ in range(3):
        z = [torch.randn(B, zk, generator=gen) for zk in z_sizes]
        out = stacked(torch.stack([pad_latent(zk, stacked.z_max) for zk in z]))
        exact = stacked.path == "fold"
        for k, member in enumerate(alone):  # the padded member computes what it computes alone
            assert_same(out[k], member(z[k]), exact, f"member {k} output")
        opt.zero_grad()
        out.square().mean((1, 2, 3, 4)).sum().backward()
        assert weight.grad[padding].eq(0).all()  # zero inputs: exactly zero gradients
        opt.step()
        with torch.no_grad():
            for k, member in enumerate(alone):
                stacked.write_member_into(k, member)  # keep the references at the stack's weights
    assert weight[padding].eq(0).all() and not weight[~padding].eq(0).all()
    assert stacked.member_state_dict(0)[name].shape == alone[0].state_dict()[name].shape


@pytest.mark.parametrize("name", ["mlp_d", "mlp_d_points", "dcgan_d_8_nobn", "dcgan_d_8_sn"])
def test_gradient_penalty_double_backward_matches_members(name):
    build, in_shape = CASES[name]
    alone = members(build)
    stacked = StackedModule(copy.deepcopy(alone))
    real = torch.randn(K, B, *in_shape, generator=torch.Generator().manual_seed(1))
    grad = input_gradient(stacked, real)  # ganlab's own helper, run on the stack: (K, B, ...) grads
    r1 = grad.pow(2).flatten(2).sum(2).mean(1)  # per member: E ||dD/dx||^2
    r1.sum().backward()
    exact = stacked.path == "fold"
    for k, member in enumerate(alone):
        grad_k = input_gradient(member, real[k])
        assert_same(grad[k], grad_k, exact, f"member {k} input gradient")
        grad_k.pow(2).flatten(1).sum(1).mean().backward()
        for i, (pname, p) in enumerate(member.named_parameters()):
            if p.grad is None:  # D's last bias: dD/dx does not depend on it
                assert stacked.params[i].grad is None, pname
                continue
            assert_same(stacked.params[i].grad[k], p.grad, exact, f"member {k} {pname}.grad of the penalty",
                        grad_scale(member))


def test_clamp_clips_each_member_to_its_own_bound():
    alone = members(CASES["mlp_d_blog"][0])
    for member in alone:  # make some weights exceed every bound
        torch.nn.init.normal_(member.net[1].weight, 0, 1)
    stacked = StackedModule(copy.deepcopy(alone))
    bounds = [0.01, 0.5, float("inf")]  # inf: a member whose loss does not clip
    stacked.clamp_(torch.tensor(bounds))
    for k, (member, bound) in enumerate(zip(alone, bounds)):
        if bound != float("inf"):
            WassersteinLoss(clip=bound).after_d_step(member)
        for key, value in member.state_dict().items():
            assert torch.equal(stacked.member_state_dict(k)[key], value), (k, key)
    assert stacked.member_state_dict(2)["net.1.weight"].abs().max() > 1


def test_parameters_are_leaves_one_backward_fills_every_member():
    stacked = StackedModule(members(CASES["mlp_g"][0]))
    assert all(p.is_leaf and p.requires_grad and p.shape[0] == K for p in stacked.parameters())
    assert len(list(stacked.parameters())) == len(list(MLPGenerator(16, 32, (1, 8, 8)).parameters()))
    stacked(torch.randn(K, B, 16)).sum().backward()
    weight = stacked.params[0]
    assert all(weight.grad[k].abs().sum() > 0 for k in range(K))
    before = weight.detach().clone()
    torch.optim.SGD(stacked.parameters(), lr=0.1).step()  # in place: the same leaf, new values
    assert stacked.params[0] is weight and not torch.equal(weight, before)


def test_refuses_what_it_cannot_stack():
    old_style = [torch.nn.utils.spectral_norm(torch.nn.Linear(3, 3)) for _ in range(2)]  # forward pre-hooks
    with pytest.raises(NotImplementedError, match="forward hooks"):
        StackedModule(old_style)
    with pytest.raises(NotImplementedError, match="momentum=None"):
        StackedModule([torch.nn.BatchNorm1d(3, momentum=None) for _ in range(2)])
    with pytest.raises(TypeError, match="one class"):
        StackedModule([MLPDiscriminator(8, (1, 8, 8)), DCGANDiscriminator(4, (1, 8, 8))])
    with pytest.raises(ValueError, match="shape"):
        StackedModule([MLPDiscriminator(8, (1, 8, 8)), MLPDiscriminator(9, (1, 8, 8))])
    with pytest.raises(ValueError, match="fold"):
        StackedModule([DCGANDiscriminator(4, (1, 8, 8))], path="fold")
    with pytest.raises(ValueError, match="K=2"):
        StackedModule([MLPDiscriminator(8, (1, 8, 8)) for _ in range(2)])(torch.randn(3, 4, 1, 8, 8))
    with pytest.raises(ValueError, match="z_max"):
        pad_latent(torch.randn(4, 9), 8)


@pytest.mark.parametrize("members,batch,width", [(14, 64, 200), (3, 37, 7), (1, 1, 1)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_the_one_output_layers_gradients_are_each_members_own_bit_for_bit(members, batch, width, with_bias):
    """fold._OneOutput (forward, and a backward that forms the input's gradient as a broadcast product and
    the weight's per member) against each member's own F.linear under autograd, with the non-contiguous
    gradient the layer's transpose sends back: what a member alone computes, on any CPU's BLAS."""
    from ganlab.launch.population.fold import _OneOutput

    gen = torch.Generator().manual_seed(0)
    bias = torch.randn(members, 1, 1, generator=gen) if with_bias else None
    weight = torch.randn(members, 1, width, generator=gen)
    x = torch.randn(members, batch, width, generator=gen)
    grad = torch.randn(members, batch, 1, generator=gen)

    leaves = [t.clone().requires_grad_() if t is not None else None for t in (bias, weight, x)]
    out = _OneOutput.apply(leaves[0], leaves[1], leaves[2].transpose(1, 2))
    ours = torch.autograd.grad(out, [t for t in leaves if t is not None], grad.transpose(1, 2))
    for k in range(members):
        b, w, xk = [t[k].clone().requires_grad_() if t is not None else None for t in (bias, weight, x)]
        alone = F.linear(xk, w, b.view(1) if b is not None else None)
        if width * batch >= 400:  # the models' sizes; a tinier product takes torch's naive batched loop
            assert torch.equal(out[k].t(), alone), k
        else:
            torch.testing.assert_close(out[k].t(), alone)
        alone_grads = torch.autograd.grad(alone, [t for t in (b, w, xk) if t is not None], grad[k])
        for name, a, b_ in zip(["bias", "weight", "x"][0 if with_bias else 1:], ours, alone_grads):
            assert torch.equal(a[k].reshape(b_.shape), b_), f"member {k}: {name}"


@pytest.mark.parametrize("members,batch,n_in,n_out,exact", [(14, 64, 64, 200, True), (3, 37, 50, 200, True),
                                                             (2, 64, 200, 64, True), (3, 37, 7, 5, False)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_the_many_output_layers_gradients_are_autograds_in_the_weights_layout(members, batch, n_in, n_out, exact,
                                                                              with_bias):
    """fold._ManyOutputs (weight gradient as grad^T @ x) against each member's F.linear alone: the same
    gradients bit for bit (torch's mm backward forms grad^T @ x for F.linear's transposed weight; autograd
    of baddbmm, the transposed x^T @ grad, may round a batch of 37 differently), the weight's gradient
    contiguous (no copy into the weight's layout), and under create_graph (a penalty) autograd's own
    second-order gradients of baddbmm. ``exact``: the models' sizes; a 7 -> 5 layer's tiny GEMMs round the
    weight's gradient differently batched and alone, whichever way it is formed (float rounding only)."""
    from ganlab.launch.population.fold import _ManyOutputs

    gen = torch.Generator().manual_seed(1)
    bias = torch.randn(members, 1, n_out, generator=gen).requires_grad_() if with_bias else None
    weight = torch.randn(members, n_out, n_in, generator=gen).requires_grad_()
    x = torch.randn(members, batch, n_in, generator=gen).requires_grad_()
    grad = torch.randn(members, batch, n_out, generator=gen)
    inputs = [t for t in (bias, weight, x) if t is not None]

    def reference(b, x, w):
        return torch.bmm(x, w.transpose(1, 2)) if b is None else torch.baddbmm(b, x, w.transpose(1, 2))

    def alone(b, x, w):
        return torch.stack([F.linear(x[k], w[k], None if b is None else b[k, 0]) for k in range(members)])

    expected = torch.autograd.grad(alone(bias, x, weight), inputs, grad)
    ours = torch.autograd.grad(_ManyOutputs.apply(bias, x, weight), inputs, grad)
    same = torch.equal if exact else functools.partial(torch.allclose, rtol=1e-6, atol=1e-6)
    assert all(same(a, b) for a, b in zip(ours, expected))
    assert ours[-2].is_contiguous()  # the weight's gradient, in the weight's layout

    def second_order(fn):
        (grad_x,) = torch.autograd.grad(fn(bias, x, weight).tanh().sum(), x, create_graph=True)
        return torch.autograd.grad(grad_x.square().sum(), [weight, *([bias] if with_bias else [])])

    assert all(same(a, b) for a, b in zip(second_order(_ManyOutputs.apply), second_order(reference)))
