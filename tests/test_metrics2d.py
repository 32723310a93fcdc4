"""2D benchmark metrics (PacGAN/VEEGAN definitions) on hand-made point sets with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from ganlab.metrics.points import (
    high_quality_percent,
    histogram_jsd,
    metrics_2d,
    mode_histogram,
    mode_reverse_kl,
    modes_covered,
)

STD = 0.05
RING8 = torch.stack([torch.tensor([2 * math.cos(2 * math.pi * k / 8), 2 * math.sin(2 * math.pi * k / 8)])
                     for k in range(8)])


def around(mode: torch.Tensor, n: int, spread: float, seed: int = 0) -> torch.Tensor:
    """n points within ``spread`` standard deviations of ``mode`` (uniform in a disc)."""
    gen = torch.Generator().manual_seed(seed)
    angle = torch.rand(n, generator=gen) * 2 * math.pi
    radius = torch.rand(n, generator=gen) * spread * STD
    return mode + torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)


def test_all_modes_equally():
    points = torch.cat([around(m, 50, 2.5, seed=i) for i, m in enumerate(RING8)])
    assert metrics_2d(points, RING8, STD) == {"modes_covered": 8, "hq_percent": 100.0, "mode_reverse_kl": 0.0}


def test_one_mode_only():
    points = around(RING8[3], 400, 1.0)
    out = metrics_2d(points, RING8, STD)
    assert out["modes_covered"] == 1 and out["hq_percent"] == 100.0
    assert out["mode_reverse_kl"] == pytest.approx(math.log(8))  # KL(delta || uniform over 8) = log 8
    assert mode_histogram(points, RING8, STD).tolist() == [0, 0, 0, 400, 0, 0, 0, 0]


def test_off_mode_points_are_not_high_quality_and_cover_nothing():
    off = torch.zeros(100, 2)  # the ring's centre: 2 (= 40 std) from every mode
    assert modes_covered(off, RING8, STD) == 0 and high_quality_percent(off, RING8, STD) == 0.0
    assert math.isnan(mode_reverse_kl(off, RING8, STD))  # no high-quality point: no mode histogram


def test_mixed_set_counts_only_high_quality_points():
    on = torch.cat([around(RING8[0], 30, 2.0), around(RING8[1], 10, 2.0, seed=1)])
    off = RING8[2] + torch.tensor([3.5 * STD, 0.0])  # beyond 3 std of mode 2: a miss, does not cover it
    points = torch.cat([on, off.expand(40, 2)])
    out = metrics_2d(points, RING8, STD)
    assert out["modes_covered"] == 2 and out["hq_percent"] == pytest.approx(50.0)
    share = torch.tensor([0.75, 0.25])
    assert out["mode_reverse_kl"] == pytest.approx(float((share * (share * 8).log()).sum()))


def test_three_std_boundary():
    inside = RING8[0] + torch.tensor([2.99 * STD, 0.0])
    outside = RING8[0] + torch.tensor([3.01 * STD, 0.0])
    assert high_quality_percent(torch.stack([inside, outside]), RING8, STD) == 50.0


def test_histogram_jsd_bounds():
    a = torch.cat([around(m, 200, 2.0, seed=i) for i, m in enumerate(RING8)])
    b = torch.cat([around(m, 200, 2.0, seed=100 + i) for i, m in enumerate(RING8)])
    assert histogram_jsd(a, a) == pytest.approx(0.0, abs=1e-12)
    assert histogram_jsd(a, b) < 0.2  # two samples of the same mixture
    assert histogram_jsd(a, torch.zeros(100, 2) + 5.0) == pytest.approx(math.log(2))  # disjoint supports
    # collapsed onto one of 8 equal modes: m = 9/16 there, 1/16 on each other mode
    collapsed = 0.5 * (math.log(2 / 9) / 8 + 7 / 8 * math.log(2)) + 0.5 * math.log(16 / 9)
    assert histogram_jsd(a, around(RING8[0], 1600, 2.0)) == pytest.approx(collapsed, abs=0.03)
