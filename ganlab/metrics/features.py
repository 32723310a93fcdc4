"""Feature extractors for FID/KID: ganlab's per-data-set classifier, or Inception-v3 when it is available.

Both take images in [-1, 1] (N, C, H, W) and return (N, num_features) float features.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ganlab.errors import FeaturesUnavailableError
from ganlab.metrics.classifier import SmallCNN

INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"


class ClassifierFeatures(nn.Module):
    """The penultimate layer of a SmallCNN: the features behind ``fid_clf`` / ``kid_clf``."""

    def __init__(self, classifier: SmallCNN) -> None:
        super().__init__()
        self.classifier = classifier.eval()
        self.num_features = classifier.num_features

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(images.float())


class InceptionFeatures(nn.Module):
    """torchmetrics' Inception-v3 (torch-fidelity's FID network), 2048-d pool features of RGB uint8 images."""

    def __init__(self, weights: str | None = None) -> None:
        super().__init__()
        path = Path(weights).expanduser() if weights else default_inception_path()
        check_inception_available(path)
        from torchmetrics.image.fid import NoTrainInceptionV3

        self.net = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                      feature_extractor_weights_path=str(path))
        self.num_features = 2048

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        uint8 = ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        if uint8.shape[1] == 1:  # grayscale data sets: the same plane in R, G and B
            uint8 = uint8.expand(-1, 3, -1, -1)
        return self.net(uint8).reshape(len(images), -1)


def default_inception_path() -> Path:
    """Where torch-fidelity would download its Inception weights (torch hub's checkpoint folder)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_URL.rsplit("/", 1)[-1]


def check_inception_available(path: Path) -> None:
    """Raise FeaturesUnavailableError saying what to install/download when Inception FID cannot run offline."""
    from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

    missing = []
    if not _TORCH_FIDELITY_AVAILABLE:
        missing.append("the torch-fidelity package (pip install torch-fidelity)")
    if not path.is_file():
        missing.append(f"its weights at {path} (download {INCEPTION_URL} on a machine with network and copy it "
                       "there, or pass eval.inception_weights=/path/to/that/file)")
    if missing:
        raise FeaturesUnavailableError("eval.features=inception needs " + " and ".join(missing)
                                       + "; without them use eval.features=classifier (fid_clf, kid_clf)")
