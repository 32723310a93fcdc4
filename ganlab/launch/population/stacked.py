"""K same-shaped modules as one: weights stacked on a leading member dim, forward on (K, B, ...).

Each member is an ordinary module built by the single-run code (its own seed, its own init); the
stack copies their tensors, so member k starts bit-identical to its module. The forward is the
model's own ``forward`` on a meta-device skeleton whose parameter slots receive the stacked
tensors: under ``torch.func.vmap`` per member (any model; BatchNorm updates each member's running
statistics), or, for the MLP family, once on members folded into the batch (fold.py: faster, and
bit-identical to the members). Spectral norm is computed by the stack (spectral.py).

Generators may differ in z_size. The class declares where z enters (``z_input = (param_name, dim)``);
the stack is built at the largest z_size, a smaller member's first-layer weight padded with zeros
along ``dim`` and its z padded with zeros (``pad_latent``). A zero input column gives exact zero
gradients to the padded weights, so they stay zero under any of the population optimizers.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.func import vmap

from ganlab.launch.population.fold import can_fold, fold
from ganlab.launch.population.spectral import (
    find_spectral_norms,
    normalized_weight,
    remove_spectral_norms,
)


def pad_latent(z: torch.Tensor, z_max: int) -> torch.Tensor:
    """z (..., z_size) padded with zeros to (..., z_max): a member's latent in the stacked generator."""
    missing = z_max - z.shape[-1]
    if missing < 0:
        raise ValueError(f"z has {z.shape[-1]} features, more than z_max={z_max}")
    return z if missing == 0 else nn.functional.pad(z, (0, missing))


def _refuse_unsupported(member: nn.Module) -> None:
    for name, module in member.named_modules():
        where = name or type(member).__name__
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.momentum is None:
            raise NotImplementedError(f"StackedModule cannot stack {where}: BatchNorm with momentum=None "
                                      "(a cumulative average, read back to the host per step)")
        if module._forward_pre_hooks or module._forward_hooks:  # e.g. the old torch.nn.utils.spectral_norm
            raise NotImplementedError(f"StackedModule cannot stack {where}: it has forward hooks, which would run "
                                      "once per member under vmap; use torch.nn.utils.parametrizations.spectral_norm")


class _Buffers(nn.Module):
    """Holds the stacked buffers so ``.to()``/``.cuda()`` move them with the parameters."""

    def __init__(self, tensors: Sequence[torch.Tensor]) -> None:
        super().__init__()
        for i, tensor in enumerate(tensors):
            self.register_buffer(str(i), tensor)


class StackedModule(nn.Module):
    """K members of one class and shape as one module: ``forward`` maps (K, B, ...) to (K, B, ...).

    ``params`` holds one leaf Parameter (K, *shape) per member parameter, in ``module.parameters()``
    order: one backward fills every member's grads, an optimizer updates them in place.
    ``path``: "vmap" (any model), "fold" (the MLP family, faster; see fold.py), or "auto" (fold when
    the model allows it).
    """

    def __init__(self, members: Sequence[nn.Module], path: Literal["auto", "vmap", "fold"] = "auto") -> None:
        super().__init__()
        if not members:
            raise ValueError("StackedModule needs at least one member")
        cls = type(members[0])
        if any(type(m) is not cls for m in members):
            raise TypeError(f"members must share one class, got {sorted({type(m).__name__ for m in members})}")
        for member in members:
            _refuse_unsupported(member)
        self.num_members = len(members)
        self.z_input: tuple[str, int] | None = getattr(cls, "z_input", None)
        z_sizes = [self._z_width(m) for m in members] if self.z_input else None
        widest = members[max(range(len(members)), key=lambda k: z_sizes[k])] if z_sizes else members[0]
        self.z_sizes, self.z_max = z_sizes, (max(z_sizes) if z_sizes else None)
        # the widest member's skeleton: its attributes (z_size, which DCGAN's forward views z to) fit the stack
        skeleton = copy.deepcopy(widest).to("meta")
        self.norms = find_spectral_norms(widest)  # computed by the stack, batched (spectral.py)
        remove_spectral_norms(skeleton, self.norms)
        if path == "auto":
            path = "fold" if can_fold(widest) else "vmap"
        if path == "fold":
            if not can_fold(widest):
                raise ValueError(f"path='fold' needs an MLP of the foldable family, got {cls.__name__}")
            fold(skeleton, len(members))
        self.path = path
        # the members' names, in module.parameters() order (spectral norm: ...parametrizations.weight.original)
        self.param_names = [name for name, _ in widest.named_parameters()]
        self.buffer_names = [name for name, _ in widest.named_buffers()]
        self.state_keys = list(widest.state_dict().keys())
        shapes = {n: t.shape for n, t in [*widest.named_parameters(), *widest.named_buffers()]}
        for k, member in enumerate(members):
            self._check_shapes(k, member, shapes)
        self.params = nn.ParameterList(
            nn.Parameter(self._stack(name, [dict(m.named_parameters())[name] for m in members], shapes[name]))
            for name in self.param_names)
        self.stacked_buffers = _Buffers(
            [self._stack(name, [dict(m.named_buffers())[name] for m in members], shapes[name])
             for name in self.buffer_names])
        object.__setattr__(self, "_skeleton", skeleton)  # not a submodule: its meta tensors stay out of .parameters()
        self._skeleton.train(widest.training)
        self.training = widest.training
        # where each tensor lives in the skeleton: (the owning module's _parameters/_buffers dict, attribute)
        self._slot_names = ([name for name, _ in skeleton.named_parameters()]
                            + [name for name, _ in skeleton.named_buffers()])
        self._slots = [self._slot(skeleton, name, "_parameters") for name, _ in skeleton.named_parameters()] + \
                      [self._slot(skeleton, name, "_buffers") for name, _ in skeleton.named_buffers()]
        self._meta = [table[attr] for table, attr in self._slots]
        # built once: vmap over members of the model's own forward with flat tensor arguments
        self._vmapped = vmap(self._member_forward)

    @staticmethod
    def _slot(skeleton: nn.Module, name: str, kind: str) -> tuple[dict, str]:
        owner, _, attr = name.rpartition(".")
        return getattr(skeleton.get_submodule(owner), kind), attr

    def _z_width(self, member: nn.Module) -> int:
        name, dim = self.z_input
        return dict(member.named_parameters())[name].shape[dim]

    def _check_shapes(self, k: int, member: nn.Module, shapes: dict[str, torch.Size]) -> None:
        own = {n: t.shape for n, t in [*member.named_parameters(), *member.named_buffers()]}
        if own.keys() != shapes.keys():
            raise ValueError(f"member {k} has other tensors than the widest member: "
                             f"{sorted(own.keys() ^ shapes.keys())}")
        for name, shape in own.items():
            if shape != self.member_shape(k, name, shapes[name]):
                raise ValueError(f"member {k}: {name} has shape {tuple(shape)}, the stack expects "
                                 f"{tuple(self.member_shape(k, name, shapes[name]))}")

    def member_shape(self, k: int, name: str, full: torch.Size) -> torch.Size:
        """Member k's own shape of tensor ``name`` whose stacked (per-member) shape is ``full``."""
        if self.z_input is None or name != self.z_input[0]:
            return full
        dim = self.z_input[1]
        return torch.Size([*full[:dim], self.z_sizes[k], *full[dim + 1:]])

    def member_index(self, k: int, name: str) -> tuple:
        """Index into a stacked tensor that selects member k's own (unpadded) part of ``name``."""
        if self.z_input is None or name != self.z_input[0]:
            return (k,)
        return (k, *[slice(None)] * self.z_input[1], slice(0, self.z_sizes[k]))

    def padding_mask(self, name: str) -> torch.Tensor | None:
        """True where stacked tensor ``name`` is zero padding of a narrower member (None: no padding)."""
        if self.z_input is None or name != self.z_input[0] or min(self.z_sizes) == self.z_max:
            return None
        tensor = self.named_stacked()[name]
        mask = torch.ones(tensor.shape, dtype=torch.bool, device=tensor.device)
        for k in range(self.num_members):
            mask[self.member_index(k, name)] = False
        return mask

    def _stack(self, name: str, tensors: list[torch.Tensor], full: torch.Size) -> torch.Tensor:
        stacked = tensors[0].new_zeros((len(tensors), *full))  # zeros: the padding of narrower members
        with torch.no_grad():
            for k, tensor in enumerate(tensors):
                stacked[self.member_index(k, name)] = tensor.detach()
        return stacked

    def _call_skeleton(self, tensors: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        # functional_call's job, done directly: it costs ~0.5 ms per call in generic bookkeeping
        # (pytree, tied-weight checks, module walks), as much as a small MLP's whole forward
        for (table, attr), tensor in zip(self._slots, tensors):
            table[attr] = tensor
        try:
            return self._skeleton(x)
        finally:  # back to meta tensors: the skeleton must not keep this call's graph alive
            for (table, attr), meta in zip(self._slots, self._meta):
                table[attr] = meta

    def _member_forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self._call_skeleton(tensors[:-1], tensors[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(K, B, ...) inputs (z padded to z_max for generators) -> (K, B, ...) member outputs."""
        if x.shape[0] != self.num_members:
            raise ValueError(f"expected inputs of shape (K={self.num_members}, B, ...), got {tuple(x.shape)}")
        tensors = [*self.params, *self.stacked_buffers.buffers()]
        if self.norms:  # normalised weights in their skeleton slots, the power iteration run on the stack
            stacked = self.named_stacked()
            normalized = {n.weight: normalized_weight(n, stacked[n.original], stacked[n.u], stacked[n.v], self.training)
                          for n in self.norms}
            tensors = [normalized[name] if name in normalized else stacked[name] for name in self._slot_names]
        if self.path == "vmap":
            return self._vmapped(*tensors, x)
        members, batch = x.shape[:2]
        out = self._call_skeleton(tensors, x.reshape(members * batch, *x.shape[2:]))
        return out.view(members, batch, *out.shape[1:])

    def train(self, mode: bool = True) -> StackedModule:
        """Train/eval mode for every member (BatchNorm: batch statistics vs running statistics)."""
        super().train(mode)
        self._skeleton.train(mode)
        return self

    def named_stacked(self) -> dict[str, torch.Tensor]:
        """Every stacked tensor (parameters and buffers) by the member's own name."""
        return {**dict(zip(self.param_names, self.params)),
                **dict(zip(self.buffer_names, self.stacked_buffers.buffers()))}

    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Exactly the state_dict member k's own module would have (keys, order, shapes, dtypes)."""
        stacked = self.named_stacked()
        # clone: a view would pin (and torch.save would write) the whole stacked storage
        return {key: stacked[key][self.member_index(k, key)].detach().clone() for key in self.state_keys}

    @torch.no_grad()
    def load_member_state_dict(self, k: int, state_dict: dict[str, torch.Tensor]) -> None:
        """Overwrite member k with an ordinary state_dict of its module (strict: same keys and shapes)."""
        if set(state_dict) != set(self.state_keys):
            raise KeyError(f"state_dict keys differ from the member's: "
                           f"{sorted(set(state_dict) ^ set(self.state_keys))}")
        stacked = self.named_stacked()
        for key, value in state_dict.items():
            target = stacked[key][self.member_index(k, key)]
            if target.shape != value.shape:
                raise ValueError(f"{key}: expected shape {tuple(target.shape)}, got {tuple(value.shape)}")
            target.copy_(value)

    def write_member_into(self, k: int, module: nn.Module) -> nn.Module:
        """Copy member k's weights and buffers into an ordinary module of its class; returns the module."""
        module.load_state_dict(self.member_state_dict(k))
        return module

    def grad_norms(self) -> torch.Tensor:
        """(K,) each member's global L2 grad norm, as ganlab.step.grad_norm computes it on the member alone."""
        norms = []
        for name, p in zip(self.param_names, self.params):
            if p.grad is None:
                continue
            if self.z_input and name == self.z_input[0] and min(self.z_sizes) < self.z_max:
                # a padded member's own (unpadded, contiguous) grad: the norm's sum in the member's order
                norms.append(torch.stack([p.grad[self.member_index(k, name)].contiguous().norm()
                                          for k in range(self.num_members)]))
            else:
                norms.append(p.grad.detach().flatten(1).norm(dim=1))
        if not norms:
            return torch.zeros(self.num_members, device=self.params[0].device)
        # (K, n) rows: reducing a contiguous row sums in the order grad_norm's 1-D reduction does (a column does not)
        return torch.linalg.vector_norm(torch.stack(norms, dim=1), dim=1)

    @torch.no_grad()
    def clamp_(self, bound: torch.Tensor) -> None:
        """Clip every parameter of member k to [-bound[k], bound[k]] (WGAN); inf leaves a member unclipped.

        One clamp per stacked tensor; ``bound`` is a (K,) tensor on the parameters' device, so no sync.
        """
        for param in self.params:
            per_member = bound.view(-1, *[1] * (param.dim() - 1)).to(param.dtype)
            param.clamp_(min=-per_member, max=per_member)
