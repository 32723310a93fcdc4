"""The 2D mode-collapse benchmarks: mixtures of isotropic Gaussians, generated on the fly, no files.

``ring8`` (8 modes on a circle; Metz et al. 2017) and ``grid25`` (a 5x5 grid; Srivastava et al.
2017). Both are infinite: batch b of a run is drawn from a generator seeded by (seed, b), so the data
a run sees depends only on (seed, index), a resumed run sees exactly the batches of an uninterrupted
one, and an "epoch" is ``samples_per_epoch`` samples by definition. ``modes`` (K, 2) and
``mode_std`` are what the 2D metrics measure against.
"""

from __future__ import annotations

import math

import torch

from ganlab.errors import ConfigError, DataNotFoundError


class MixtureBatches:
    """A run's batches of a mixture: batch ``index`` is a function of (seed, index) only."""

    def __init__(self, mixture: GaussianMixture2D, batch_size: int, seed: int) -> None:
        if batch_size < 2 or mixture.samples_per_epoch < batch_size:
            raise ConfigError(f"2D data: need batch_size >= 2 and samples_per_epoch >= batch_size; got "
                              f"batch_size={batch_size}, samples_per_epoch={mixture.samples_per_epoch}")
        self.mixture, self.batch_size, self.seed = mixture, batch_size, seed
        self.per_epoch = mixture.samples_per_epoch // batch_size

    def get(self, index: int) -> torch.Tensor:
        """The batch with global index ``index``."""
        gen = torch.Generator(device=self.mixture.device).manual_seed(self.seed * 1_000_003 + index)
        return self.mixture.sample(self.batch_size, gen)


class GaussianMixture2D:
    """Equal-weight mixture of N(mode, std^2 I) in 2D (the ``DataSet`` contract of ``ganlab.data.batches``)."""

    pixel_range = None  # points, not pixels
    n_classes = None

    def __init__(self, name: str, modes: torch.Tensor, std: float, samples_per_epoch: int = 65536) -> None:
        if std <= 0 or samples_per_epoch < 2:
            raise ConfigError(f"2D data: need std > 0 and samples_per_epoch >= 2; got std={std}, "
                              f"samples_per_epoch={samples_per_epoch}")
        self.name = name
        self.modes = modes.float()
        self.mode_std = float(std)
        self.samples_per_epoch = samples_per_epoch
        self.shape = (2,)
        self.device = torch.device("cpu")

    def to(self, device: torch.device) -> GaussianMixture2D:
        """Generate samples on ``device`` from now on; returns self (like nn.Module.to)."""
        self.device = torch.device(device)
        self.modes = self.modes.to(self.device)
        return self

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n points (n, 2) from ``generator`` (on this mixture's device)."""
        which = torch.randint(len(self.modes), (n,), device=self.device, generator=generator)
        noise = torch.randn(n, 2, device=self.device, generator=generator)
        return self.modes[which] + self.mode_std * noise

    def batches(self, batch_size: int, seed: int) -> MixtureBatches:
        """The training batches of a run with ``seed``."""
        return MixtureBatches(self, batch_size, seed)

    def reference(self, n: int, seed: int) -> torch.Tensor:
        """``n`` points drawn by ``seed`` alone, on the CPU (the same on every device), then moved here."""
        cpu = torch.Generator().manual_seed(seed)
        which = torch.randint(len(self.modes), (n,), generator=cpu)
        points = self.modes.cpu()[which] + self.mode_std * torch.randn(n, 2, generator=cpu)
        return points.to(self.device)

    def labelled(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixtures have no labelled images for a classifier."""
        raise DataNotFoundError(f"{self.name} is 2D point data: no labelled images (2D runs use the mode metrics)")


def ring8(radius: float = 2.0, std: float = 0.02, samples_per_epoch: int = 65536,
          n_modes: int = 8) -> GaussianMixture2D:
    """``n_modes`` (8) Gaussians evenly spaced on a circle of ``radius``, each with ``std``."""
    if n_modes < 1 or radius <= 0:
        raise ConfigError(f"ring8: need n_modes >= 1 and radius > 0, got {n_modes}, {radius}")
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    modes = torch.stack([radius * angles.cos(), radius * angles.sin()], dim=1)
    return GaussianMixture2D("ring8", modes, std, samples_per_epoch)


def grid25(spacing: float = 2.0, std: float = 0.05, samples_per_epoch: int = 65536, side: int = 5) -> GaussianMixture2D:
    """A ``side`` x ``side`` (5x5) grid of Gaussians ``spacing`` apart, centred on 0, each with ``std``."""
    if side < 1 or spacing <= 0:
        raise ConfigError(f"grid25: need side >= 1 and spacing > 0, got {side}, {spacing}")
    ticks = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    modes = torch.cartesian_prod(ticks, ticks)
    return GaussianMixture2D("grid25", modes, std, samples_per_epoch)
