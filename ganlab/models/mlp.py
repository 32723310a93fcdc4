"""The blog's MLP generator and discriminator, with its quirks as switches."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from ganlab.errors import ConfigError
from ganlab.models.conditional import (
    ConditionalBatchNorm,
    Conditioning,
    check_conditioning,
    one_hot,
    pack_samples,
    run_layers,
)


class MLPGenerator(nn.Module):
    """The blog's G: z -> middle (BatchNorm, ReLU) -> prod(img_shape) (Tanh), reshaped to img_shape.

    ``hidden_layers`` > 1 repeats the middle block; ``output="linear"`` drops the Tanh, for data
    that is not bounded like pixels (2D points). ``conditional`` (with ``n_classes``, from the data):
    ``concat`` joins a one-hot of the class to z, ``projection`` makes the BatchNorms class-conditional
    (``ganlab.models.conditional``); then ``forward(z, labels)``.
    """

    z_input = ("net.0.weight", 1)  # where z enters: Linear weight (middle, z_size); a population pads dim 1

    def __init__(self, z_size: int, middle_size: int, img_shape: tuple[int, ...],
                 output: Literal["tanh", "linear"] = "tanh", hidden_layers: int = 1,
                 conditional: Conditioning = "none", n_classes: int | None = None) -> None:
        super().__init__()
        if hidden_layers < 1:
            raise ConfigError(f"model.hidden_layers must be >= 1, got {hidden_layers}")
        check_conditioning(conditional, n_classes)
        self.z_size = z_size
        self.img_shape = tuple(img_shape)
        self.conditional, self.n_classes = conditional, (n_classes if conditional != "none" else None)
        extra_in = n_classes if conditional == "concat" else 0
        layers: list[nn.Module] = []
        for width_in in [z_size + extra_in] + [middle_size] * (hidden_layers - 1):
            norm = ConditionalBatchNorm(middle_size, n_classes, planes=False) if conditional == "projection" \
                else nn.BatchNorm1d(middle_size)
            layers += [nn.Linear(width_in, middle_size), norm, nn.ReLU()]
        layers.append(nn.Linear(middle_size, math.prod(self.img_shape)))
        if output == "tanh":
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional == "none":
            flat = self.net(z)
        elif labels is None:
            raise ValueError(f"a conditional G (model.conditional={self.conditional}) needs labels")
        elif self.conditional == "concat":
            flat = self.net(torch.cat([z, one_hot(labels, self.n_classes, z)], 1))
        else:
            flat = run_layers(self.net, z, labels)
        return flat.view(z.shape[0], *self.img_shape)  # shape from the batch and the constructor


class MLPDiscriminator(nn.Module):
    """The blog's D: prod(img_shape) -> middle (LeakyReLU) -> 1, with its two quirks as switches.

    ``hidden_layers`` > 1 repeats the middle block (as the generator's).

    ``output_batchnorm`` adds BatchNorm1d(1) on the single output; ``sigmoid`` ends D in a Sigmoid,
    so it outputs probabilities instead of logits (``outputs_probability`` tells the loss).

    ``conditional`` (``concat``: a one-hot joined to the flat input; ``projection``: + <embed(y), h> on
    the last hidden features h), ``aux_classifier`` (ACGAN: a (B, 1 + K) output, no labels in) and
    ``pack`` (m samples per score) as ``ganlab.models.conditional`` describes; all off, D is the blog's.
    """

    def __init__(
        self,
        middle_size: int,
        img_shape: tuple[int, ...],
        output_batchnorm: bool = False,
        sigmoid: bool = False,
        leaky_slope: float = 0.2,
        hidden_layers: int = 1,
        conditional: Conditioning = "none",
        n_classes: int | None = None,
        pack: int = 1,
        aux_classifier: bool = False,
    ) -> None:
        super().__init__()
        if hidden_layers < 1:
            raise ConfigError(f"model.hidden_layers must be >= 1, got {hidden_layers}")
        check_conditioning(conditional, n_classes, pack, aux_classifier)
        self.img_shape = tuple(img_shape)
        self.outputs_probability = sigmoid
        self.conditional = "none" if aux_classifier else conditional  # an aux classifier predicts labels
        self.n_classes, self.pack, self.aux_classifier = n_classes, pack, aux_classifier
        self.takes_labels = self.conditional != "none"
        extra_in = n_classes if self.conditional == "concat" else 0
        layers: list[nn.Module] = [nn.Flatten()]
        for width_in in [(math.prod(self.img_shape) + extra_in) * pack] + [middle_size] * (hidden_layers - 1):
            layers += [nn.Linear(width_in, middle_size), nn.LeakyReLU(leaky_slope)]
        self.head = len(layers)  # net[head] is the Linear to the single score
        layers.append(nn.Linear(middle_size, 1))
        if output_batchnorm:
            layers.append(nn.BatchNorm1d(1))
        if sigmoid:
            layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)
        self.plain = self.conditional == "none" and pack == 1 and not aux_classifier  # the blog's forward
        if self.conditional == "projection":
            self.embed = nn.Embedding(n_classes, middle_size)
            nn.init.xavier_uniform_(self.embed.weight)
        if aux_classifier:
            self.aux = nn.Linear(middle_size, n_classes)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.plain:
            return self.net(x).squeeze(1)  # (B,) scores: logits, or probabilities with sigmoid=True
        if self.takes_labels and labels is None:
            raise ValueError(f"a conditional D (model.conditional={self.conditional}) needs labels")
        flat = x.flatten(1)
        if self.conditional == "concat":
            flat = torch.cat([flat, one_hot(labels, self.n_classes, flat)], 1)
        features = self.net[1:self.head](pack_samples(flat, self.pack))
        out = self.net[self.head](features)
        if self.conditional == "projection":
            out = out + (self.embed(labels) * features).sum(1, keepdim=True)
        out = self.net[self.head + 1:](out).squeeze(1)  # (B / pack,)
        return torch.cat([out[:, None], self.aux(features)], 1) if self.aux_classifier else out
