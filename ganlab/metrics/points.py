"""Metrics of GANs on 2D mixtures of Gaussians (ring8, grid25), as defined in VEEGAN and PacGAN.

A generated point is *high quality* when it lies within ``n_std`` (3) standard deviations of its
nearest mode; a mode is *covered* when at least one high-quality point has it as nearest mode;
the *reverse KL* compares the histogram of high-quality points over modes with the data's
(uniform) mode distribution: 0 when every mode gets its share, log(K) when one mode gets all.
All functions are pure: (points (N, 2), modes (K, 2), std) in, numbers out.
"""

from __future__ import annotations

import math

import torch


def nearest_mode(points: torch.Tensor, modes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance to the nearest mode (N,), its index (N,)) for each point."""
    dist = torch.cdist(points.double(), modes.double().to(points.device))
    return dist.min(dim=1)


def high_quality(points: torch.Tensor, modes: torch.Tensor, std: float, n_std: float = 3.0) -> torch.Tensor:
    """Boolean (N,): the point lies within ``n_std`` standard deviations of its nearest mode."""
    dist, _ = nearest_mode(points, modes)
    return dist <= n_std * std


def mode_histogram(points: torch.Tensor, modes: torch.Tensor, std: float, n_std: float = 3.0) -> torch.Tensor:
    """Number of high-quality points per mode (K,)."""
    dist, idx = nearest_mode(points, modes)
    return torch.bincount(idx[dist <= n_std * std].cpu(), minlength=len(modes))


def modes_covered(points: torch.Tensor, modes: torch.Tensor, std: float, n_std: float = 3.0) -> int:
    """Modes with at least one high-quality point."""
    return int((mode_histogram(points, modes, std, n_std) > 0).sum())


def high_quality_percent(points: torch.Tensor, modes: torch.Tensor, std: float, n_std: float = 3.0) -> float:
    """Percentage of points within ``n_std`` standard deviations of their nearest mode."""
    return 100.0 * float(high_quality(points, modes, std, n_std).double().mean()) if len(points) else 0.0


def mode_reverse_kl(points: torch.Tensor, modes: torch.Tensor, std: float, n_std: float = 3.0) -> float:
    """KL(high-quality points' mode histogram || uniform over modes); NaN when no point is high quality."""
    counts = mode_histogram(points, modes, std, n_std).double()
    if counts.sum() == 0:
        return math.nan
    share = counts / counts.sum()
    seen = share > 0
    return float((share[seen] * (share[seen] * len(modes)).log()).sum())


def histogram_jsd(real: torch.Tensor, fake: torch.Tensor, bins: int = 50) -> float:
    """Jensen-Shannon divergence (nats, in [0, log 2]) between 2D histograms of two point sets on a shared grid."""
    both = torch.cat([real, fake]).double().cpu()
    lo, hi = both.min(0).values, both.max(0).values
    edges = [torch.linspace(float(lo[d]), float(hi[d]) + 1e-9, bins + 1, dtype=torch.float64) for d in range(2)]
    p = torch.histogramdd(real.double().cpu(), bins=edges).hist.flatten()
    q = torch.histogramdd(fake.double().cpu(), bins=edges).hist.flatten()
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2
    return float(0.5 * _kl(p, m) + 0.5 * _kl(q, m))


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    seen = p > 0
    return (p[seen] * (p[seen] / q[seen]).log()).sum()


def metrics_2d(points: torch.Tensor, modes: torch.Tensor, std: float) -> dict[str, float]:
    """The PacGAN/VEEGAN set: modes covered, % high-quality points, reverse KL of the mode histogram."""
    return {"modes_covered": modes_covered(points, modes, std), "hq_percent": high_quality_percent(points, modes, std),
            "mode_reverse_kl": mode_reverse_kl(points, modes, std)}
