"""The blog's MLP generator and discriminator, with its quirks as switches."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from ganlab.errors import ConfigError


class MLPGenerator(nn.Module):
    """The blog's G: z -> middle (BatchNorm, ReLU) -> prod(img_shape) (Tanh), reshaped to img_shape.

    ``hidden_layers`` > 1 repeats the middle block; ``output="linear"`` drops the Tanh, for data
    that is not bounded like pixels (2D points).
    """

    z_input = ("net.0.weight", 1)  # where z enters: Linear weight (middle, z_size); a population pads dim 1

    def __init__(self, z_size: int, middle_size: int, img_shape: tuple[int, ...],
                 output: Literal["tanh", "linear"] = "tanh", hidden_layers: int = 1) -> None:
        super().__init__()
        if hidden_layers < 1:
            raise ConfigError(f"model.hidden_layers must be >= 1, got {hidden_layers}")
        self.z_size = z_size
        self.img_shape = tuple(img_shape)
        layers: list[nn.Module] = []
        for width_in in [z_size] + [middle_size] * (hidden_layers - 1):
            layers += [nn.Linear(width_in, middle_size), nn.BatchNorm1d(middle_size), nn.ReLU()]
        layers.append(nn.Linear(middle_size, math.prod(self.img_shape)))
        if output == "tanh":
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        flat = self.net(z)
        return flat.view(z.shape[0], *self.img_shape)  # shape from the batch and the constructor


class MLPDiscriminator(nn.Module):
    """The blog's D: prod(img_shape) -> middle (LeakyReLU) -> 1, with its two quirks as switches.

    ``hidden_layers`` > 1 repeats the middle block (as the generator's).

    ``output_batchnorm`` adds BatchNorm1d(1) on the single output; ``sigmoid`` ends D in a Sigmoid,
    so it outputs probabilities instead of logits (``outputs_probability`` tells the loss).
    """

    def __init__(
        self,
        middle_size: int,
        img_shape: tuple[int, ...],
        output_batchnorm: bool = False,
        sigmoid: bool = False,
        leaky_slope: float = 0.2,
        hidden_layers: int = 1,
    ) -> None:
        super().__init__()
        if hidden_layers < 1:
            raise ConfigError(f"model.hidden_layers must be >= 1, got {hidden_layers}")
        self.img_shape = tuple(img_shape)
        self.outputs_probability = sigmoid
        layers: list[nn.Module] = [nn.Flatten()]
        for width_in in [math.prod(self.img_shape)] + [middle_size] * (hidden_layers - 1):
            layers += [nn.Linear(width_in, middle_size), nn.LeakyReLU(leaky_slope)]
        layers.append(nn.Linear(middle_size, 1))
        if output_batchnorm:
            layers.append(nn.BatchNorm1d(1))
        if sigmoid:
            layers.append(nn.Sigmoid())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)  # (B,) scores: logits, or probabilities with sigmoid=True
