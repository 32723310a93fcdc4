"""DCGAN (Radford et al. 2016): a transposed-conv G and a conv D, sized from the image shape.

A square H x W image is reached from an s0 x s0 base map by n doublings, H = s0 * 2^n, halving H
while it is even and the result stays >= 4: 28 = 7*2^2, 32 = 4*2^3, 8 = 4*2^1, 64 = 4*2^4. Layer k from
the image has width * 2^k channels, as DCGAN's ngf/ndf.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganlab.errors import ConfigError
from ganlab.models.conditional import (
    ConditionalBatchNorm,
    Conditioning,
    check_conditioning,
    one_hot,
    one_hot_planes,
    pack_samples,
    run_layers,
)

MIN_BASE = 4  # halve while the coarsest feature map stays at least 4x4 (DCGAN's 64 -> 4)
MAX_BASE = 7  # 36 -> 9x9 base: G's first kernel would be 9x9, far from DCGAN; refuse rather than guess


def plan_resolution(img_shape: tuple[int, ...]) -> tuple[int, int]:
    """(s0, n): the base feature-map size and the number of 2x up/downsamplings for a (C, H, W) image."""
    if len(img_shape) != 3:
        raise ConfigError(f"model=dcgan needs images (C, H, W), got data of shape {tuple(img_shape)}; "
                          "use model=mlp for flat data such as 2D points")
    _, height, width = img_shape
    base, doublings = height, 0
    while base % 2 == 0 and base // 2 >= MIN_BASE:
        base, doublings = base // 2, doublings + 1
    if height != width or doublings == 0 or base > MAX_BASE:
        raise ConfigError(f"model=dcgan needs square images of side s0 * 2^n with n >= 1 and 4 <= s0 <= 7 "
                          f"(8, 28, 32, 64, ...), got {height}x{width}; use model=mlp for this data")
    return base, doublings


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN's initialisation: conv weights ~ N(0, 0.02), BatchNorm weights ~ N(1, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:  # class-conditional ones init their own
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
    """z -> ConvT to s0 x s0 (width * 2^(n-1) ch) -> n-1 ConvT 2x (BatchNorm, ReLU) -> ConvT 2x to C (Tanh).

    ``conditional`` (with ``n_classes``, from the data): ``concat`` joins a one-hot of the class to z,
    ``projection`` makes the BatchNorms class-conditional; then ``forward(z, labels)``.
    """

    z_input = ("net.0.weight", 0)  # where z enters: ConvTranspose2d weight (z_size, C, k, k); a population pads dim 0

    def __init__(self, z_size: int, width: int, img_shape: tuple[int, ...], conditional: Conditioning = "none",
                 n_classes: int | None = None) -> None:
        super().__init__()
        base, doublings = plan_resolution(img_shape)
        if width < 1 or z_size < 1:
            raise ConfigError(f"model.width and model.z_size must be >= 1, got {width}, {z_size}")
        check_conditioning(conditional, n_classes)
        self.z_size, self.img_shape = z_size, tuple(img_shape)
        self.conditional, self.n_classes = conditional, (n_classes if conditional != "none" else None)

        def norm(c: int) -> nn.Module:
            return ConditionalBatchNorm(c, n_classes, planes=True, init_std=0.02) if conditional == "projection" \
                else nn.BatchNorm2d(c)

        z_in = z_size + (n_classes if conditional == "concat" else 0)
        channels = [width * 2 ** k for k in reversed(range(doublings))]  # coarse to fine
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_in, channels[0], base, 1, 0, bias=False),  # 1x1 -> s0 x s0
            norm(channels[0]),
            nn.ReLU(True),
        ]
        for c_in, c_out in zip(channels, channels[1:]):
            layers += [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), norm(c_out), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(channels[-1], img_shape[0], 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional == "none":
            return self.net(z.view(z.shape[0], self.z_size, 1, 1))
        if labels is None:
            raise ValueError(f"a conditional G (model.conditional={self.conditional}) needs labels")
        if self.conditional == "concat":
            z = torch.cat([z.view(z.shape[0], self.z_size), one_hot(labels, self.n_classes, z)], 1)
            return self.net(z[:, :, None, None])
        return run_layers(self.net, z.view(z.shape[0], self.z_size, 1, 1), labels)


class DCGANDiscriminator(nn.Module):
    """C -> Conv 2x down (width ch, LeakyReLU) -> n-1 Conv 2x (BatchNorm?, LeakyReLU) -> Conv s0 x s0 -> logit.

    ``conditional`` (``concat``: K one-hot planes joined to the image's channels; ``projection``: +
    <embed(y), spatial sum of the last features>), ``aux_classifier`` (ACGAN: a second s0 x s0 conv to K
    class logits, output (B, 1 + K), no labels in) and ``pack`` (m samples' channels joined, one score
    per m) as ``ganlab.models.conditional`` describes; all off, D is DCGAN's.
    """

    outputs_probability = False  # logits, always (the loss applies any sigmoid)

    def __init__(self, width: int, img_shape: tuple[int, ...], batchnorm: bool = True,
                 spectral: bool = False, leaky_slope: float = 0.2, conditional: Conditioning = "none",
                 n_classes: int | None = None, pack: int = 1, aux_classifier: bool = False) -> None:
        super().__init__()
        base, doublings = plan_resolution(img_shape)
        if width < 1:
            raise ConfigError(f"model.width must be >= 1, got {width}")
        check_conditioning(conditional, n_classes, pack, aux_classifier)
        self.img_shape = tuple(img_shape)
        self.conditional = "none" if aux_classifier else conditional  # an aux classifier predicts labels
        self.n_classes, self.pack, self.aux_classifier = n_classes, pack, aux_classifier
        self.takes_labels = self.conditional != "none"
        self.plain = self.conditional == "none" and pack == 1 and not aux_classifier  # DCGAN's forward

        def wrap(conv: nn.Conv2d) -> nn.Module:
            init_dcgan_weights(conv)  # before spectral_norm, which moves the weight to .original
            return spectral_norm(conv) if spectral else conv

        channels = [width * 2 ** k for k in range(doublings)]  # fine to coarse
        in_channels = (img_shape[0] + (n_classes if self.conditional == "concat" else 0)) * pack
        # no BatchNorm on the first layer (DCGAN); bias only where no BatchNorm follows
        layers: list[nn.Module] = [wrap(nn.Conv2d(in_channels, channels[0], 4, 2, 1)), nn.LeakyReLU(leaky_slope)]
        for c_in, c_out in zip(channels, channels[1:]):
            layers.append(wrap(nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not batchnorm)))
            if batchnorm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(leaky_slope))
        layers.append(wrap(nn.Conv2d(channels[-1], 1, base, 1, 0)))  # s0 x s0 -> 1x1: one logit
        self.net = nn.Sequential(*layers)
        for module in self.net:
            if isinstance(module, nn.BatchNorm2d):
                init_dcgan_weights(module)
        if self.conditional == "projection":
            self.embed = nn.Embedding(n_classes, channels[-1])
            nn.init.xavier_uniform_(self.embed.weight)
        if aux_classifier:
            self.aux = wrap(nn.Conv2d(channels[-1], n_classes, base, 1, 0))  # s0 x s0 -> K class logits

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.plain:
            return self.net(x).flatten()  # (B,) logits
        if self.takes_labels and labels is None:
            raise ValueError(f"a conditional D (model.conditional={self.conditional}) needs labels")
        if self.conditional == "concat":
            x = torch.cat([x, one_hot_planes(labels, self.n_classes, x)], 1)
        features = self.net[:-1](pack_samples(x, self.pack))  # (B / pack, C, s0, s0)
        out = self.net[-1](features).flatten()
        if self.conditional == "projection":
            out = out + (self.embed(labels) * features.sum((2, 3))).sum(1)
        return torch.cat([out[:, None], self.aux(features).flatten(1)], 1) if self.aux_classifier else out
