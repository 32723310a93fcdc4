"""Sample-quality metrics of image GANs: FID/KID through torchmetrics, and class coverage.

FID/KID are computed by torchmetrics on features extracted once per image set; the metric names
carry the feature extractor (``fid_clf`` = ganlab's own classifier, ``fid_inception`` = the usual
Inception FID), so a classifier FID is never mistaken for a paper's Inception FID.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn


class _Precomputed(nn.Module):
    """Identity 'extractor': features are computed once by the caller and handed to torchmetrics."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


@torch.no_grad()
def extract(extractor: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Features of ``images`` in batches, as float64 on the CPU."""
    return torch.cat([extractor(images[i:i + batch_size]).double().cpu() for i in range(0, len(images), batch_size)])


class FeatureDistances:
    """FID and KID (torchmetrics) of generated sets against one fixed real set, on one feature extractor."""

    def __init__(self, extractor: nn.Module, real: torch.Tensor, batch_size: int = 500,
                 kid_subsets: int = 50, kid_subset_size: int = 1000) -> None:
        self.extractor, self.batch_size = extractor, batch_size
        self.kid_subsets, self.kid_subset_size = kid_subsets, kid_subset_size
        self.real = extract(extractor, real, batch_size)
        self.real_kid = self.real.float()  # KID's kernels in float32 (see __call__), cast once
        # lazy: importing torchmetrics pulls in torchvision and scipy.signal (~2-3 s of a fresh process),
        # which a run without image evaluation (eval.every=0, 2D data) never needs
        from torchmetrics.image.fid import FrechetInceptionDistance

        # sync_on_compute=False: only rank 0 evaluates in a DDP run; a gather would wait for the others
        self.fid = FrechetInceptionDistance(feature=_Precomputed(self.real.shape[1]), reset_real_features=False,
                                            sync_on_compute=False)
        self.fid.update(self.real, real=True)

    def __call__(self, fake: torch.Tensor) -> dict[str, float]:
        """{'fid': ..., 'kid': ...} of ``fake`` images against the real set (KID subsets use the global RNG)."""
        fake_features = extract(self.extractor, fake, self.batch_size)
        self.fid.reset()  # keeps the real statistics (reset_real_features=False)
        self.fid.update(fake_features, real=False)
        size = min(self.kid_subset_size, len(self.real), len(fake_features))
        from torchmetrics.image.kid import KernelInceptionDistance  # imported with FID's module already: free

        with warnings.catch_warnings():  # "saves all features in buffer": n_samples is small by design
            warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
            kid = KernelInceptionDistance(feature=_Precomputed(self.real.shape[1]), subsets=self.kid_subsets,
                                          subset_size=size, sync_on_compute=False)
        # KID in float32: its 3 kernel matmuls per subset were most of an evaluation's time in float64,
        # and the value agrees with float64 to ~1e-6 (measured; 1e-4 tested); FID keeps float64 for its square root
        kid.update(self.real_kid, real=True)
        kid.update(fake_features.float(), real=False)
        kid_mean, _ = kid.compute()
        return {"fid": float(self.fid.compute()), "kid": float(kid_mean)}


def class_coverage(probs: torch.Tensor, data_hist: torch.Tensor) -> dict[str, float]:
    """Mode coverage from a classifier's softmax on generated images.

    ``classes_hit``: classes predicted for at least one sample; ``class_kl``: KL(predicted-class
    histogram || the data's class histogram), 0 when G draws classes in the data's proportions,
    log(K) for a uniform data set collapsed onto one class; ``max_softmax``: mean confidence.
    """
    n_classes = len(data_hist)
    counts = torch.bincount(probs.argmax(1).cpu(), minlength=n_classes).double()
    share, data = counts / counts.sum(), data_hist.double().cpu()
    seen = share > 0  # 0 * log 0 = 0
    kl = float((share[seen] * (share[seen] / data[seen]).log()).sum())
    return {"classes_hit": int(seen.sum()), "class_kl": kl, "max_softmax": float(probs.max(1).values.mean())}
