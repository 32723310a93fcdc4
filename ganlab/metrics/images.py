"""Sample-quality metrics of image GANs: FID/KID on a feature extractor, and class coverage.

FID/KID (torchmetrics' definitions, ``ganlab.metrics.distances``) are computed on features extracted
once per image set; the metric names
carry the feature extractor (``fid_clf`` = ganlab's own classifier, ``fid_inception`` = the usual
Inception FID), so a classifier FID is never mistaken for a paper's Inception FID.
"""

from __future__ import annotations

import torch
from torch import nn

from ganlab.metrics.distances import RealFeatures


@torch.no_grad()
def extract(extractor: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Features of ``images`` in batches, as float64 on the CPU."""
    return torch.cat([extractor(images[i:i + batch_size]).double().cpu() for i in range(0, len(images), batch_size)])


class FeatureDistances:
    """FID and KID of generated sets against one fixed real set, on one feature extractor.

    The real set's features, statistics and KID kernel are computed once (``ganlab.metrics.distances``);
    ``of_features`` scores many generated sets at once (the members of a population).
    """

    def __init__(self, extractor: nn.Module, real: torch.Tensor, batch_size: int = 500,
                 kid_subsets: int = 50, kid_subset_size: int = 1000) -> None:
        self.extractor, self.batch_size = extractor, batch_size
        self.kid_subsets, self.kid_subset_size = kid_subsets, kid_subset_size
        self.real = RealFeatures(extract(extractor, real, batch_size))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The extractor's features of ``images`` (float64, CPU)."""
        return extract(self.extractor, images, self.batch_size)

    def of_features(self, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """{'fid', 'kid'} of one feature set (n, d) or of each of several (members, n, d).

        KID's random subsets come from the global RNG (seed it first for repeatable values); all
        sets of one call share them, as separate calls after the same seed would.
        """
        return {"fid": self.real.fid(fake), "kid": self.real.kid(fake, self.kid_subsets, self.kid_subset_size)}

    def __call__(self, fake: torch.Tensor) -> dict[str, float]:
        """{'fid': ..., 'kid': ...} of ``fake`` images against the real set."""
        return {k: float(v) for k, v in self.of_features(self.features(fake)).items()}


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
