"""What the MLP and DCGAN networks share for class conditioning, packing and an auxiliary classifier.

- ``model.conditional=concat`` (Mirza & Osindero 2014): a one-hot of the class joined to z (G) and to
  D's input (a flat one-hot for the MLP, K constant planes for DCGAN).
- ``model.conditional=projection`` (Miyato & Koyama 2018): D adds <embed(y), h> to its logit, h its
  last features; G gets class-conditional BatchNorm (per-class scale and shift), the paper's G.
- ``loss=acgan`` (Odena et al. 2017): D takes no labels but predicts them, from an extra head on the
  same features; D's output is then (B, 1 + K): the adversarial score, then K class logits.
- ``model.pack=m`` (PacGAN, Lin et al. 2018): D judges m consecutive samples at once, their inputs
  concatenated (flat features for the MLP, channels for DCGAN): B inputs give B / m scores.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ganlab.errors import ConfigError

Conditioning = Literal["none", "concat", "projection"]


def check_conditioning(conditional: str, n_classes: int | None, pack: int = 1, aux_classifier: bool = False) -> None:
    """One-line ConfigErrors for conditioning, packing and aux-classifier settings that cannot work."""
    if conditional not in ("none", "concat", "projection"):
        raise ConfigError(f"model.conditional={conditional!r}: must be none, concat or projection")
    if (conditional != "none" or aux_classifier) and (n_classes is None or n_classes < 2):
        raise ConfigError(f"model.conditional={conditional}: needs a data set with class labels "
                          f"(got n_classes={n_classes})")
    if isinstance(pack, bool) or not isinstance(pack, int) or pack < 1:
        raise ConfigError(f"model.pack={pack!r}: must be an integer >= 1")
    if pack > 1 and (conditional == "projection" or aux_classifier):
        raise ConfigError(f"model.pack={pack} works with model.conditional=none or concat, not with "
                          f"{'loss=acgan' if aux_classifier else 'model.conditional=projection'}")


def one_hot(labels: torch.Tensor, n_classes: int, like: torch.Tensor) -> torch.Tensor:
    """(B, K) one-hot of ``labels`` in ``like``'s dtype and device."""
    return F.one_hot(labels, n_classes).to(like.dtype)


def one_hot_planes(labels: torch.Tensor, n_classes: int, like: torch.Tensor) -> torch.Tensor:
    """(B, K, H, W): plane k is 1 for samples of class k, the spatial size of image batch ``like``."""
    return one_hot(labels, n_classes, like)[:, :, None, None].expand(-1, -1, *like.shape[2:])


def pack_samples(x: torch.Tensor, pack: int) -> torch.Tensor:
    """(B, C, ...) -> (B / pack, pack * C, ...): each group of ``pack`` consecutive samples joined on dim 1."""
    if x.shape[0] % pack:
        raise ValueError(f"a packed D (model.pack={pack}) needs a batch divisible by {pack}, got {x.shape[0]}")
    return x.reshape(x.shape[0] // pack, pack * x.shape[1], *x.shape[2:])


def adversarial(out: torch.Tensor) -> torch.Tensor:
    """D's adversarial score (B,) from its output: as is, or column 0 of an aux classifier's (B, 1 + K)."""
    return out if out.dim() == 1 else out[:, 0]


def class_logits(out: torch.Tensor) -> torch.Tensor | None:
    """The aux classifier's (B, K) class logits from D's output; None for a D without one."""
    return None if out.dim() == 1 else out[:, 1:]


class ConditionalBatchNorm(nn.Module):
    """BatchNorm (no affine of its own) with a per-class scale and shift from two embeddings (de Vries
    et al. 2017), for (B, C) or (B, C, H, W). The scale starts at 1 (+ N(0, ``init_std``)), the shift at 0."""

    def __init__(self, num_features: int, n_classes: int, planes: bool, init_std: float = 0.0) -> None:
        super().__init__()
        self.bn = (nn.BatchNorm2d if planes else nn.BatchNorm1d)(num_features, affine=False)
        self.scale = nn.Embedding(n_classes, num_features)
        self.shift = nn.Embedding(n_classes, num_features)
        nn.init.normal_(self.scale.weight, 1.0, init_std) if init_std > 0 else nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = self.bn(x)
        shape = (x.shape[0], -1) + (1,) * (x.dim() - 2)
        return out * self.scale(labels).view(shape) + self.shift(labels).view(shape)


def run_layers(layers: nn.Sequential, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """``layers`` in order, handing the labels to the ConditionalBatchNorm ones."""
    for layer in layers:
        x = layer(x, labels) if isinstance(layer, ConditionalBatchNorm) else layer(x)
    return x
