"""The MLP family's fast path: members folded into the batch, (K*B, ...), through K-aware layers.

vmap runs a model's forward per member but pays for it on every op: its rule for ``linear`` with
batched weights is bmm + a separate bias add + a mul, each a pass over the activations, plus
per-op dispatch (a K=1 MLP D forward costs 3x the plain module's). Here the model's own forward
runs once on a (K*B, ...) batch, its Linear and BatchNorm1d replaced by twins that read the
stacked (K, ...) tensors: a Linear is one ``baddbmm`` (bias fused, as the prototype), a BatchNorm1d
is ``F.batch_norm`` over K*C channels (each member's channels normalised by its own batch, its
running statistics updated in place through a view).

Each member then computes bit for bit what it computes alone (forward, backward, running
statistics; asserted by the tests with MKL on AMD AVX2 and AVX512 and Intel AVX512 CPUs): MKL's
batched GEMM runs the single GEMM's kernel per member, and the (B, K*C) layout gives each channel the
reduction it has in (B, C). The exceptions where torch or MKL takes another kernel are handled: a
one-output Linear (its weight's gradient formed per member: a matrix-vector product alone on Intel's
MKL), and a one-channel BatchNorm1d (called per member). Two are not: on an Intel AVX512 CPU, MKL's
single GEMM takes a small-matrix kernel for a 784-input layer's forward below a batch of 128 and for
a 784-output layer's input gradient below 192 (Fashion-MNIST's MLPs at small batches: 1 ulp, so those
members agree with their jobs to float tolerance; the blog's 512 is exact); and an elementwise op's
vectorised loop takes 2 x (vector width) floats a step (32 with AVX512) and finishes a shorter tail with scalar code, so
a member whose tensor is not a whole number of steps rounds its tail differently alone than inside
the stack (a (B, 1) sigmoid with B = 16 on an AVX512 CPU: 1 ulp); batches of 32s are exact. On CUDA the
members agree with their jobs to float tolerance (other kernels, no bit-equality claimed), and the one-channel
BatchNorm1d is one call like the others.

Folding is only right for a forward that treats samples independently outside these layers, so it
is used for the classes listed in ``FOLDABLE`` (the blog's MLPs); anything else takes vmap.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganlab.models.mlp import MLPDiscriminator, MLPGenerator

FOLDABLE = (MLPGenerator, MLPDiscriminator)  # forwards known to be per-sample outside their layers
PASS_THROUGH = (nn.Sequential, nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.Flatten, nn.Identity)


class FoldedLinear(nn.Linear):
    """nn.Linear over stacked (K, out, in) weights on a (K*B, in) batch: one baddbmm."""

    members = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        per_member = x.reshape(self.members, -1, self.in_features)
        if self.out_features == 1:
            # a single output (D's logit): MKL's batched kernel rounds x @ w^T differently from the
            # one F.linear uses; w @ x^T, transposed, is the product F.linear computes, bit for bit
            bias = self.bias.unsqueeze(2) if self.bias is not None else None
            x_t = per_member.transpose(1, 2)
            out = (_matmul(bias, self.weight, x_t) if torch.is_autocast_enabled()
                   else _OneOutput.apply(bias, self.weight, x_t)).transpose(1, 2)
        else:
            bias = self.bias.unsqueeze(1) if self.bias is not None else None
            out = (_matmul(bias, per_member, self.weight.transpose(1, 2)) if torch.is_autocast_enabled()
                   else _ManyOutputs.apply(bias, per_member, self.weight))
        return out.reshape(*x.shape[:-1], self.out_features)


def _matmul(bias: torch.Tensor | None, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.bmm(a, b) if bias is None else torch.baddbmm(bias, a, b)  # bias fused into the product


class _OneOutput(torch.autograd.Function):
    """``baddbmm(bias, weight, x_t)`` for a one-output layer ((K, 1, in) @ (K, in, B)), whose backward forms
    the input's gradient as a broadcast product instead of a batched GEMM over an inner dimension of 1.

    Each entry of that outer product is one product w_i * g_b, which the GEMM computes exactly too
    (alpha 1, beta 0), so the gradients are autograd's bit for bit (tested); the GEMM form took ~0.4 ms
    a call for 14 members (three calls a step: 5% of the step). The other gradients are autograd's own
    formulas for baddbmm: grad @ x_t^T for the weight, grad summed over the batch for the bias.
    """

    @staticmethod
    def forward(ctx, bias: torch.Tensor | None, weight: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(weight, x_t)
        return _matmul(bias, weight, x_t)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        weight, x_t = ctx.saved_tensors
        need_bias, need_weight, need_x = ctx.needs_input_grad
        w_t = weight.transpose(1, 2)
        # differentiated again (a gradient penalty, create_graph): autograd's GEMM, whose own derivative
        # the second-order gradients then follow (a product's would round them differently); else the
        # product, formed in the input's layout before its transpose, (K, B, in): contiguous there, so the
        # reshape back to (K*B, in) in autograd's next node is a view, not a copy
        grad_x = (w_t.bmm(grad) if torch.is_grad_enabled() else (grad.transpose(1, 2) * weight).transpose(1, 2)) \
            if need_x else None
        return (grad.sum(2, keepdim=True) if need_bias else None,  # autograd's sum_to the (K, 1, 1) bias
                _one_output_weight_grad(grad, x_t) if need_weight else None,
                grad_x)


def _one_output_weight_grad(grad: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
    """(K, 1, B) @ (K, B, in): the one-output weight's gradient, per member on the CPU.

    A member alone forms it as ``grad^T @ x`` with one row, which MKL on an Intel AVX512 CPU computes as a
    matrix-vector product, summing in another order than its batched GEMM does (1 ulp; an AMD CPU's MKL
    takes the same kernel both ways). K calls of that same ``mm`` are bit for bit the member's own on any
    BLAS, for a few microseconds each. On CUDA the batched product (no bit-equality claimed there).
    """
    if grad.device.type != "cpu":
        return grad.bmm(x_t.transpose(1, 2))
    return torch.stack([g.mm(x.t()) for g, x in zip(grad.unbind(), x_t.unbind())])


class _ManyOutputs(torch.autograd.Function):
    """``baddbmm(bias, x, weight^T)`` for a layer of several outputs ((K, B, in) @ (K, in, out)), whose
    backward forms the weight's gradient as ``grad^T @ x``: (K, out, in), the weight's own layout.

    Autograd's baddbmm forms it as ``x^T @ grad`` (K, in, out), transposed, which AccumulateGrad then
    copies into the weight's layout (three (K, 200, 64)-sized copies a step, ~1 ms for 14 members).
    ``grad^T @ x`` is what torch's own ``mm`` backward computes for F.linear's transposed weight
    (``mm_mat2_backward``), the product a member alone takes: bit for bit the same (tested at the
    models' sizes; tiny GEMMs, e.g. 7 -> 5, round batched and alone differently however it is formed).
    """

    @staticmethod
    def forward(ctx, bias: torch.Tensor | None, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return _matmul(bias, x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        need_bias, need_x, need_weight = ctx.needs_input_grad
        grad_weight = None
        if need_weight:
            # differentiated again (create_graph): autograd's own formula, whose derivative the
            # second-order gradients then follow as they did before this function existed
            grad_weight = (x.transpose(1, 2).bmm(grad).transpose(1, 2) if torch.is_grad_enabled()
                           else grad.transpose(1, 2).bmm(x))
        return (grad.sum(1, keepdim=True) if need_bias else None,  # autograd's sum_to the (K, 1, out) bias
                grad.bmm(weight) if need_x else None,
                grad_weight)


class FoldedBatchNorm1d(nn.BatchNorm1d):
    """nn.BatchNorm1d over stacked (K, C) tensors on a (K*B, C) batch: F.batch_norm on (B, K*C)."""

    members = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(f"the folded BatchNorm1d takes (K*B, C) inputs, got {tuple(x.shape)}")
        K, C = self.members, self.num_features
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)  # (K,): every member saw one more batch
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        stats = [self.running_mean if track else None, self.running_var if track else None]
        if C == 1 and one_channel_per_member(x.device):
            # one channel (D's output_batchnorm): torch's CPU kernel takes another path for (B, 1) than
            # for (B, K); a call per member keeps each bit-identical to the member alone (K small ops).
            # Not on CUDA, where no bit-equality is claimed: there the K calls, their backward and the
            # per-member grads of weight and bias were ~1,300 tiny kernels a step for 27 members
            per_member = x.view(K, -1, 1)
            return torch.cat([F.batch_norm(per_member[k], *[_row(t, k) for t in (*stats, self.weight, self.bias)],
                                           use_batch_stats, self.momentum, self.eps) for k in range(K)])
        # channels of all members side by side (member k's channel c is column k*C + c): one call
        wide = x.view(K, -1, C).transpose(0, 1).reshape(-1, K * C)
        out = F.batch_norm(wide, *[_flat(t) for t in (*stats, self.weight, self.bias)],
                           use_batch_stats, self.momentum, self.eps)
        return out.view(-1, K, C).transpose(0, 1).reshape(-1, C)


def one_channel_per_member(device: torch.device) -> bool:
    """Whether a one-channel BatchNorm1d runs per member: on the CPU, for bit-identity with the member alone."""
    return device.type == "cpu"


def _flat(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.view(-1)  # a view: batch_norm's running-stat update lands in the stack


def _row(t: torch.Tensor | None, k: int) -> torch.Tensor | None:
    return None if t is None else t[k]


def can_fold(module: nn.Module) -> bool:
    """Whether ``module`` is of a foldable class and built only of layers this path knows."""
    if not isinstance(module, FOLDABLE) or module._parameters or module._buffers:
        return False
    known = (nn.Linear, nn.BatchNorm1d, *PASS_THROUGH)
    return all(isinstance(m, known) for m in module.modules() if m is not module)


def fold(skeleton: nn.Module, members: int) -> nn.Module:
    """Replace ``skeleton``'s Linear/BatchNorm1d layers (in place) by their folded twins for K members."""
    for name, child in list(skeleton.named_children()):
        if type(child) is nn.Linear:
            twin = FoldedLinear(child.in_features, child.out_features, child.bias is not None, device="meta")
        elif type(child) is nn.BatchNorm1d:
            twin = FoldedBatchNorm1d(child.num_features, child.eps, child.momentum, child.affine,
                                     child.track_running_stats, device="meta")
        else:
            fold(child, members)
            continue
        twin.members = members
        twin.train(child.training)
        setattr(skeleton, name, twin)
    return skeleton
