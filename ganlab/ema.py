"""An exponential moving average of the generator's weights (``trainer.g_ema``, ``trainer.g_ema_start``).

After the G update of loop step ``step`` (1-based, the loop's counter), ``update(G, step)`` makes
the average follow G exactly while ``step <= start`` (the warm-up), then
``ema = decay * ema + (1 - decay) * G`` from step ``start + 1`` on. With ``start=0`` the first
average is taken against G's initial weights (the copy made at construction).

Why not ``torch.optim.swa_utils.AveragedModel.update_parameters``: it branches in Python on its
``n_averaged`` tensor (``copy_param = bool(self.n_averaged == 0)``, ``if self.n_averaged > 0``),
a device-to-host sync at every step on a GPU that also cannot be captured in a CUDA graph, and it
decides its warm-up by that counter (the first call copies) rather than by the loop's step. Its
state_dict is prefixed ``module.`` and carries ``n_averaged``, so it does not load into a plain G.
So the averaged G is a deep copy of G (its state_dict is a G's state_dict), the average is torch's
own ``get_ema_multi_avg_fn(decay)`` (a foreach lerp, no sync), and the warm-up is decided by the
Python step counter the loop already has.

Buffers (BatchNorm running statistics, num_batches_tracked) are copied from G at every update,
not averaged, as StyleGAN2-ADA does (NVlabs/stylegan2-ada-pytorch, ``training/training_loop.py``,
the "Update G_ema" block: ``p_ema.copy_(p.lerp(p_ema, ema_beta))`` for parameters, then
``b_ema.copy_(b)`` for every buffer) and as ``AveragedModel(use_buffers=False)`` does. With a
BatchNorm G the copied statistics are those of G's current weights, not of the averaged ones
(BigGAN re-estimates them, "standing statistics"; not done here).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import get_ema_multi_avg_fn

from ganlab.errors import ConfigError


def decay_from_half_life(half_life_images: float, batch_size: int) -> float:
    """The per-step decay whose weight on old values halves every ``half_life_images`` images.

    StyleGAN's ``ema_kimg`` form: ``0.5 ** (batch_size / (ema_kimg * 1000))`` (without its ramp-up).
    """
    if not half_life_images > 0 or batch_size < 1:
        raise ConfigError(f"EMA half-life must be > 0 images and batch_size >= 1, got {half_life_images}, {batch_size}")
    return 0.5 ** (batch_size / half_life_images)


class GeneratorEMA:
    """The averaged generator (``.module``, in eval mode, no grads) and its sync-free update."""

    def __init__(self, generator: nn.Module, decay: float, start: int = 0) -> None:
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or math.isnan(decay) \
                or not 0 <= decay < 1:
            raise ConfigError(f"trainer.g_ema must be a decay in [0, 1) (or null for no EMA), got {decay!r}")
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ConfigError(f"trainer.g_ema_start must be an integer >= 0 (steps of warm-up), got {start!r}")
        self.decay, self.start = float(decay), start
        self.module = copy.deepcopy(generator).eval().requires_grad_(False)
        self._average = get_ema_multi_avg_fn(self.decay)
        self._params = list(self.module.parameters())
        self._buffers = list(self.module.buffers())
        # foreach ops take one device and dtype per call: group the parameters once
        groups: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        for i, param in enumerate(self._params):
            groups.setdefault((param.device, param.dtype), []).append(i)
        self._groups = list(groups.values())

    @torch.no_grad()
    def update(self, generator: nn.Module, step: int) -> None:
        """Fold G's weights after loop step ``step`` into the average (a copy while step <= start); no host sync."""
        params = list(generator.parameters())
        buffers = list(generator.buffers())
        if len(params) != len(self._params) or len(buffers) != len(self._buffers):
            raise ValueError("GeneratorEMA.update needs the generator it was built from (the bare G)")
        if step <= self.start:  # a Python int: the branch costs no sync
            for ema_param, param in zip(self._params, params):
                ema_param.copy_(param)
        else:
            for group in self._groups:
                self._average([self._params[i] for i in group], [params[i].detach() for i in group], None)
        for ema_buffer, buffer in zip(self._buffers, buffers):
            ema_buffer.copy_(buffer)

    def state_dict(self) -> dict[str, Any]:
        """The averaged G's state_dict: a G's keys, plain tensors (weights_only-loadable)."""
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what ``state_dict`` gave (in place: the update's tensor lists stay valid)."""
        self.module.load_state_dict(state)
