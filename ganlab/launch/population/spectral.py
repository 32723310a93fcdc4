"""Spectral normalisation of stacked members: torch's parametrization, its power iteration batched.

torch's ``spectral_norm`` parametrization cannot run under vmap: its training forward updates the
power-iteration vectors with ``F.normalize(..., out=self._u)``, and ``out=`` has no batching rule.
So the stack takes the parametrization out of the skeleton and computes each member's normalised
weight itself, before the forward, with the same math on (K, ...) tensors: in train mode one
power iteration per forward (per access, as torch) updating each member's ``_u``/``_v`` in place,
then ``weight = original / (u . W v)`` with the gradient flowing through sigma as in torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm


@dataclass(frozen=True)
class SpectralNorm:
    """One spectrally normalised tensor: its names in the member and in the plain skeleton."""

    weight: str  # the skeleton's plain parameter, e.g. "net.0.weight"
    original: str  # the member's parameter, "net.0.parametrizations.weight.original"
    u: str  # the member's buffers "..._u" and "..._v"
    v: str
    dim: int
    n_power_iterations: int
    eps: float


def find_spectral_norms(member: nn.Module) -> list[SpectralNorm]:
    """The spectral-norm parametrizations of ``member``; any other parametrization is refused."""
    norms = []
    for name, module in member.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for tensor_name, chain in module.parametrizations.items():
            where = f"{name}.{tensor_name}" if name else tensor_name
            if len(chain) != 1 or not isinstance(chain[0], _SpectralNorm) or chain.original.dim() < 2:
                raise NotImplementedError(f"StackedModule supports only torch's spectral_norm on weights of 2+ dims, "
                                          f"not the parametrization of {where}")
            prefix = f"{name}.parametrizations.{tensor_name}" if name else f"parametrizations.{tensor_name}"
            sn = chain[0]
            norms.append(SpectralNorm(where, f"{prefix}.original", f"{prefix}.0._u", f"{prefix}.0._v",
                                      sn.dim, sn.n_power_iterations, sn.eps))
    return norms


def remove_spectral_norms(skeleton: nn.Module, norms: list[SpectralNorm]) -> None:
    """Turn each normalised weight of ``skeleton`` (a deep copy of a member) back into a plain parameter.

    Not parametrize.remove_parametrizations: it deletes the property from the module's parametrized
    class, and a deep copy shares that class with the member it was copied from.
    """
    owners = {norm.weight.rpartition(".")[0] for norm in norms}
    for owner_name in owners:
        owner = skeleton.get_submodule(owner_name)
        chains = owner._modules.pop("parametrizations")
        owner.__class__ = owner.__class__.__bases__[0]  # the plain class under the parametrized one
        for tensor_name, chain in chains.items():
            owner.register_parameter(tensor_name, nn.Parameter(torch.empty_like(chain.original)))


def normalized_weight(norm: SpectralNorm, original: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                      training: bool) -> torch.Tensor:
    """Each member's original / sigma (K, ...), as torch's _SpectralNorm.forward; updates u, v in training."""
    matrix = original.movedim(norm.dim + 1, 1).flatten(2)  # (K, h, w): torch's _reshape_weight_to_matrix per member
    if training:
        with torch.no_grad():
            for _ in range(norm.n_power_iterations):
                u.copy_(F.normalize(torch.bmm(matrix, v.unsqueeze(2)).squeeze(2), dim=1, eps=norm.eps))
                v.copy_(F.normalize(torch.bmm(matrix.transpose(1, 2), u.unsqueeze(2)).squeeze(2), dim=1, eps=norm.eps))
    # clones, as torch: the next forward's power iteration must not change what this backward needs
    u, v = u.clone(), v.clone()
    sigma = (u * torch.bmm(matrix, v.unsqueeze(2)).squeeze(2)).sum(1)  # vdot(u, W v) per member
    return original / sigma.view(-1, *[1] * (original.dim() - 1))
