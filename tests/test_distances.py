"""ganlab's batched FID and KID against torchmetrics' on the same features and the same random subsets."""

from __future__ import annotations

import pytest
import torch

from ganlab.metrics.distances import RealFeatures, frechet_distance, mean_cov


def torchmetrics_fid_kid(real: torch.Tensor, fake: torch.Tensor, subsets: int, size: int) -> tuple[float, float]:
    from test_metrics import Precomputed
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    fid = FrechetInceptionDistance(feature=Precomputed(real.shape[1]))
    fid.update(real.double(), real=True)
    fid.update(fake.double(), real=False)
    kid = KernelInceptionDistance(feature=Precomputed(real.shape[1]), subsets=subsets, subset_size=size)
    kid.update(real.float(), real=True)
    kid.update(fake.float(), real=False)
    return float(fid.compute()), float(kid.compute()[0])


def features(n: int, d: int, shift: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.relu(torch.randn(n, d, generator=gen) + shift)  # non-negative, like a ReLU layer's features


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save all extracted features")
@pytest.mark.parametrize("n_real,n_fake,d,subsets,size", [(300, 300, 16, 10, 100), (500, 200, 32, 5, 150),
                                                        (200, 200, 8, 3, 200)])
@pytest.mark.parametrize("kernels", ["full", "per_subset"])
def test_fid_and_kid_equal_torchmetrics(n_real, n_fake, d, subsets, size, kernels, monkeypatch):
    if kernels == "per_subset":  # what a large evaluation takes (ganlab.eval --n-samples 50000: 10 GB matrices)
        monkeypatch.setattr("ganlab.metrics.distances.FULL_KERNEL_LIMIT", 0)
    real = features(n_real, d, 0.2, 0)
    fakes = torch.stack([features(n_fake, d, shift, seed) for seed, shift in ((1, 0.2), (2, 0.6), (3, -0.3))])
    reference = RealFeatures(real)
    torch.manual_seed(7)
    kid = reference.kid(fakes, subsets, size)  # one draw of subsets serves every member
    fid = reference.fid(fakes)
    for k, fake in enumerate(fakes):
        torch.manual_seed(7)  # each member alone, as a single run's evaluation seeds it
        want_fid, want_kid = torchmetrics_fid_kid(real, fake, subsets, size)
        assert float(fid[k]) == pytest.approx(want_fid, rel=1e-9, abs=1e-9)
        assert float(kid[k]) == pytest.approx(want_kid, rel=1e-4, abs=1e-6)
    assert fid[0] < fid[1] and kid[0] < kid[1]  # farther from the real features: larger distances


def test_a_set_against_itself_and_one_set_at_a_time():
    real = features(400, 12, 0.1, 0)
    reference = RealFeatures(real)
    mean, cov = mean_cov(real)
    assert float(frechet_distance(mean, cov, mean, cov)) == pytest.approx(0.0, abs=1e-6)
    assert float(reference.fid(real)) == pytest.approx(0.0, abs=1e-6)
    torch.manual_seed(0)
    single = reference.kid(features(400, 12, 0.5, 1), 4, 100)
    torch.manual_seed(0)
    batched = reference.kid(features(400, 12, 0.5, 1).unsqueeze(0), 4, 100)
    assert single.dim() == 0 and float(single) == pytest.approx(float(batched[0]))


def test_a_large_kid_takes_one_subset_at_a_time_with_the_same_result(monkeypatch):
    real, fake = features(600, 16, 0.2, 0), features(700, 16, 0.4, 1)
    torch.manual_seed(3)
    full = RealFeatures(real).kid(fake, 6, 250)
    monkeypatch.setattr("ganlab.metrics.distances.FULL_KERNEL_LIMIT", 650**2)  # 700 fakes: past it
    reference = RealFeatures(real)
    torch.manual_seed(3)
    per_subset = reference.kid(fake, 6, 250)
    assert float(per_subset) == pytest.approx(float(full), rel=1e-6)
    assert reference._kernel is None  # no 700 x 700 matrix was made
