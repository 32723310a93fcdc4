"""The 2D mode-collapse benchmarks: mixtures of isotropic Gaussians, generated on the fly, no files.

``ring8`` (8 modes on a circle; Metz et al. 2017) and ``grid25`` (a 5x5 grid; Srivastava et al.
2017). Both are infinite: batch b is drawn from a generator seeded by (seed, b), so the data a run
sees depends only on (seed, index), a resumed run sees exactly the batches of an uninterrupted one,
and an "epoch" is ``samples_per_epoch`` samples by definition.

Contract (2D metrics rely on it): ``.modes`` is a (K, 2) float tensor of mode centres, ``.std`` the
per-coordinate standard deviation, plus the batching interface of ``ShuffledBatches``
(``get(index)``, ``batch_size``, ``per_epoch``) and ``shape`` = (2,).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch

from ganlab.errors import ConfigError


class BatchSource(Protocol):
    """What the training loop needs from data that makes its own batches."""

    batch_size: int
    per_epoch: int
    shape: tuple[int, ...]

    def get(self, index: int) -> torch.Tensor: ...

    def to(self, device: torch.device) -> "BatchSource": ...


class GaussianMixture2D:
    """Equal-weight mixture of N(mode, std^2 I) in 2D; batches indexed like ShuffledBatches."""

    def __init__(self, modes: torch.Tensor, std: float, batch_size: int, seed: int,
                 samples_per_epoch: int = 65536) -> None:
        if std <= 0 or batch_size < 2 or samples_per_epoch < batch_size:
            raise ConfigError(f"2D data: need std > 0, batch_size >= 2 and samples_per_epoch >= batch_size; got "
                              f"std={std}, batch_size={batch_size}, samples_per_epoch={samples_per_epoch}")
        self.modes = modes.float()
        self.std = float(std)
        self.batch_size = batch_size
        self.seed = seed
        self.per_epoch = samples_per_epoch // batch_size
        self.shape = (2,)
        self.device = torch.device("cpu")

    def to(self, device: torch.device) -> GaussianMixture2D:
        """Generate batches on ``device`` from now on; returns self (like nn.Module.to)."""
        self.device = torch.device(device)
        self.modes = self.modes.to(self.device)
        return self

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n points (n, 2) from ``generator`` (on this source's device)."""
        which = torch.randint(len(self.modes), (n,), device=self.device, generator=generator)
        noise = torch.randn(n, 2, device=self.device, generator=generator)
        return self.modes[which] + self.std * noise

    def get(self, index: int) -> torch.Tensor:
        """The batch with global index ``index``: a function of (seed, index) only."""
        gen = torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + index)
        return self.sample(self.batch_size, gen)


def ring8(radius: float = 2.0, std: float = 0.02, batch_size: int = 256, seed: int = 0,
          samples_per_epoch: int = 65536, n_modes: int = 8) -> GaussianMixture2D:
    """``n_modes`` (8) Gaussians evenly spaced on a circle of ``radius``, each with ``std``."""
    if n_modes < 1 or radius <= 0:
        raise ConfigError(f"ring8: need n_modes >= 1 and radius > 0, got {n_modes}, {radius}")
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    modes = torch.stack([radius * angles.cos(), radius * angles.sin()], dim=1)
    return GaussianMixture2D(modes, std, batch_size, seed, samples_per_epoch)


def grid25(spacing: float = 2.0, std: float = 0.05, batch_size: int = 256, seed: int = 0,
           samples_per_epoch: int = 65536, side: int = 5) -> GaussianMixture2D:
    """A ``side`` x ``side`` (5x5) grid of Gaussians ``spacing`` apart, centred on 0, each with ``std``."""
    if side < 1 or spacing <= 0:
        raise ConfigError(f"grid25: need side >= 1 and spacing > 0, got {side}, {spacing}")
    ticks = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    modes = torch.cartesian_prod(ticks, ticks)
    return GaussianMixture2D(modes, std, batch_size, seed, samples_per_epoch)
