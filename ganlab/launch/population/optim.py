"""Adam, RMSprop and SGD over stacked (K, ...) parameters, each member with its own hyperparameters.

torch.optim takes one lr per param group ("Tensor lr must be 1-element"), so a population needs its
own. Each update here is torch's single-tensor path (the CPU default) op for op, with every Python
scalar torch uses replaced by a (K, 1, ...) float32 tensor holding the same value: torch casts its
scalars to float32 inside the kernel, so the results are bit-identical (see the tests). Where torch
passes a scalar as ``alpha=``/``value=`` (no tensor overload), the scalar is folded into a product
computed the way torch's kernel computes it (``value * t1`` first, then the fused op with value 1).

``step()`` reads nothing back to the host: step counts and per-member scalars live on the device,
so it can be captured in a CUDA graph (not tested here: no GPU). Bit-identity is shown on the CPU;
on CUDA torch defaults to its foreach kernels (same formulas, other kernels, which may contract
multiply-adds differently) and, with ``capturable=True``, rearranges Adam's last update (it divides
by step_size): expect agreement to an ulp or so there, not bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ganlab.launch.population.optim_base import StackedOptimizer
from ganlab.launch.population.stacked import StackedModule


class StackedAdam(StackedOptimizer):
    """torch.optim.Adam/AdamW (not amsgrad, not maximize) per member: lr, betas, eps, weight_decay, decoupled."""

    torch_class = torch.optim.Adam
    buffers = ("exp_avg", "exp_avg_sq")
    hyper_names = ("lr", "beta1", "beta2", "eps", "weight_decay", "decoupled")

    @staticmethod
    def _hyper(group: dict[str, Any], name: str) -> Any:
        if name in ("beta1", "beta2"):
            return group["betas"][name == "beta2"]
        if name == "decoupled":
            return group.get("decoupled_weight_decay", False)
        return group[name]

    def setup(self) -> dict[str, torch.Tensor]:
        h = self.hyper
        decoupled = h["decoupled"].bool()
        self.any_l2 = any(g["weight_decay"] != 0 and not g.get("decoupled_weight_decay") for g in self.groups)
        self.any_decoupled = any(g["weight_decay"] != 0 and g.get("decoupled_weight_decay") for g in self.groups)
        return {"l2": torch.where(decoupled, 0.0, h["weight_decay"]),
                "decay": torch.where(decoupled, 1 - h["lr"] * h["weight_decay"], 1.0),  # AdamW: param *= 1 - lr * wd
                "one_minus_beta1": 1 - h["beta1"], "beta2": h["beta2"], "one_minus_beta2": 1 - h["beta2"],
                "eps": h["eps"]}

    def step_constants(self) -> dict[str, torch.Tensor]:
        # torch: bias corrections and step size as Python floats (float64), cast to float32 in the kernels
        steps = self.steps.double()
        bias_correction1 = 1 - self.hyper["beta1"] ** steps
        bias_correction2 = 1 - self.hyper["beta2"] ** steps
        return {"neg_step_size": (-(self.hyper["lr"] / bias_correction1)).float(),
                "bias_correction2_sqrt": bias_correction2.sqrt().float()}

    def update(self, i: int, param: torch.Tensor, grad: torch.Tensor, shared: dict[str, torch.Tensor]) -> None:
        c = {name: views[i] for name, views in self.constants.items()}  # each (K, 1, ...)
        exp_avg, exp_avg_sq = self.state["exp_avg"][i], self.state["exp_avg_sq"][i]
        grad = self.add_l2(i, param, grad)
        if self.any_decoupled:
            param.mul_(c["decay"])
        exp_avg.lerp_(grad, c["one_minus_beta1"])
        exp_avg_sq.mul_(c["beta2"]).addcmul_(grad * c["one_minus_beta2"], grad)  # torch: value=1-beta2
        denom = (self.sqrt(i, exp_avg_sq) / self.per_member(shared["bias_correction2_sqrt"][i], param)).add_(c["eps"])
        param.addcdiv_(exp_avg * self.per_member(shared["neg_step_size"][i], param), denom)  # torch: value=-step_size


class StackedRMSprop(StackedOptimizer):
    """torch.optim.RMSprop (not maximize) per member: lr, alpha, eps, weight_decay, momentum, centered."""

    torch_class = torch.optim.RMSprop
    buffers = ("square_avg", "momentum_buffer", "grad_avg")
    hyper_names = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")

    def setup(self) -> dict[str, torch.Tensor]:
        h = self.hyper
        self.any_l2 = any(g["weight_decay"] != 0 for g in self.groups)
        self.with_momentum = [g["momentum"] > 0 for g in self.groups]
        self.centered = [bool(g["centered"]) for g in self.groups]
        return {"l2": h["weight_decay"], "alpha": h["alpha"], "one_minus_alpha": 1 - h["alpha"], "eps": h["eps"],
                "momentum": h["momentum"], "neg_lr": -h["lr"],
                "momentum_mask": h["momentum"] > 0, "centered_mask": h["centered"].bool()}

    def has_buffer(self, k: int, name: str) -> bool:
        return {"momentum_buffer": self.with_momentum[k], "grad_avg": self.centered[k]}.get(name, True)

    def update(self, i: int, param: torch.Tensor, grad: torch.Tensor, shared: dict[str, torch.Tensor]) -> None:
        c = {name: views[i] for name, views in self.constants.items()}
        square_avg = self.state["square_avg"][i]
        grad = self.add_l2(i, param, grad)
        square_avg.mul_(c["alpha"]).addcmul_(grad * c["one_minus_alpha"], grad)
        if any(self.centered):
            grad_avg = self.state["grad_avg"][i]
            grad_avg.lerp_(grad, c["one_minus_alpha"])
            avg = self.sqrt(i, square_avg.addcmul(grad_avg, grad_avg, value=-1))
            if not all(self.centered):
                avg = torch.where(c["centered_mask"], avg, self.sqrt(i, square_avg))
        else:
            avg = self.sqrt(i, square_avg)
        avg = avg.add_(c["eps"])
        if any(self.with_momentum):
            buf = self.state["momentum_buffer"][i]
            buf.mul_(c["momentum"]).addcdiv_(grad, avg)
            if all(self.with_momentum):
                param.addcmul_(buf, c["neg_lr"])  # torch: param.add_(buf, alpha=-lr)
                return
            # mixed: members without momentum take torch's other branch; compute both and select
            plain = torch.addcdiv(param, grad * c["neg_lr"], avg)
            param.copy_(torch.where(c["momentum_mask"], torch.addcmul(param, buf, c["neg_lr"]), plain))
        else:
            param.addcdiv_(grad * c["neg_lr"], avg)  # torch: value=-lr


class StackedSGD(StackedOptimizer):
    """torch.optim.SGD (not maximize) per member: lr, momentum, dampening, weight_decay, nesterov."""

    torch_class = torch.optim.SGD
    buffers = ("momentum_buffer",)
    hyper_names = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
    stepped = False

    def setup(self) -> dict[str, torch.Tensor]:
        h = self.hyper
        self.any_l2 = any(g["weight_decay"] != 0 for g in self.groups)
        self.with_momentum = [g["momentum"] != 0 for g in self.groups]
        self.nesterov = [bool(g["nesterov"]) for g in self.groups]
        self.momentum_mask = h["momentum"] != 0
        return {"l2": h["weight_decay"], "momentum": h["momentum"], "one_minus_dampening": 1 - h["dampening"],
                "neg_lr": -h["lr"], "nesterov_mask": h["nesterov"].bool()}

    def init_state(self) -> None:
        # torch starts a momentum buffer as a copy of the first grad: track which exist, per (param, member)
        self.has_momentum_buffer = torch.zeros_like(self.steps, dtype=torch.bool)

    def _reset_member(self, k: int) -> None:
        super()._reset_member(k)
        self.has_momentum_buffer[:, k] = False

    def has_buffer(self, k: int, name: str) -> bool:
        return self.with_momentum[k]

    def has_state(self, k: int, i: int, step: float) -> bool:
        return self.with_momentum[k] and bool(self.has_momentum_buffer[i, k])

    def mark_loaded(self, k: int, i: int, entry: dict[str, Any]) -> None:
        if "momentum_buffer" in entry and entry["momentum_buffer"] is not None:
            self.has_momentum_buffer[i, k] = True

    def update(self, i: int, param: torch.Tensor, grad: torch.Tensor, shared: dict[str, torch.Tensor]) -> None:
        c = {name: views[i] for name, views in self.constants.items()}
        grad = self.add_l2(i, param, grad)
        if any(self.with_momentum):
            buf = self.state["momentum_buffer"][i]
            buf.mul_(c["momentum"]).addcmul_(grad, c["one_minus_dampening"])
            # a member's first step (or a member without momentum): the buffer is the grad itself
            torch.where(self.per_member(self.has_momentum_buffer[i], param), buf, grad, out=buf)
            self.has_momentum_buffer[i] |= self.momentum_mask
            if any(self.nesterov):
                ahead = torch.addcmul(grad, buf, c["momentum"])  # torch: grad.add(buf, alpha=momentum)
                grad = ahead if all(self.nesterov) else torch.where(c["nesterov_mask"], ahead, buf)
            else:
                grad = buf
        param.addcmul_(grad, c["neg_lr"])  # torch: param.add_(grad, alpha=-lr)


_BY_CLASS: dict[type, type[StackedOptimizer]] = {
    torch.optim.Adam: StackedAdam, torch.optim.AdamW: StackedAdam,
    torch.optim.RMSprop: StackedRMSprop, torch.optim.SGD: StackedSGD}


def from_torch(optimizers: Sequence[torch.optim.Optimizer], stacked: StackedModule) -> StackedOptimizer:
    """The stacked optimizer equivalent to member k running ``optimizers[k]`` (hyperparameters and state).

    Each optimizer must have one param group over its member's ``module.parameters()``, in order.
    """
    classes = {type(opt) for opt in optimizers}
    if len(classes) != 1 or next(iter(classes)) not in _BY_CLASS:
        raise TypeError(f"one optimizer class of {sorted(c.__name__ for c in _BY_CLASS)} for all members, "
                        f"got {sorted(c.__name__ for c in classes)}")
    groups, states = [], []
    for k, opt in enumerate(optimizers):
        if len(opt.param_groups) != 1:
            raise ValueError(f"member {k}: the optimizer has {len(opt.param_groups)} param groups, expected 1")
        shapes = [tuple(p.shape) for p in opt.param_groups[0]["params"]]
        expected = [tuple(stacked.member_shape(k, name, p.shape[1:]))
                    for name, p in zip(stacked.param_names, stacked.params)]
        if shapes != expected:
            raise ValueError(f"member {k}: the optimizer's parameters {shapes} are not the member's {expected}")
        state_dict = opt.state_dict()
        groups.append(state_dict["param_groups"][0])
        states.append(state_dict["state"])
    return _BY_CLASS[next(iter(classes))](stacked, groups, states)
