"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training").

A policy is a comma-separated list of ``color`` (random brightness, saturation, contrast),
``translation`` (shift by up to ``translation_ratio`` of the side, zero fill) and ``cutout`` (one
zeroed square of ``cutout_ratio`` of the side), applied in the order given; ``"none"`` or ``""`` is
the identity. Every parameter is drawn per sample from the ``torch.Generator`` passed in, on the
images' device, and nothing is read back to the host. The magnitudes are the reference code's
(mit-han-lab/data-efficient-gans, ``DiffAugment_pytorch.py``), which works on images in [-1, 1].
In a captured CUDA graph (``CapturedStep``) the generator needs registering with the graph
(``CUDAGraph.register_generator_state``) for replays to draw fresh parameters; not yet tried on a GPU.

Where it applies, as the authors' code does it (for the trainer's wiring):

- Every image D sees in training goes through T: reals and fakes in D's update, and fakes in G's
  update, where G's gradient flows back through T(G(z)) (why T must be differentiable). The
  StyleGAN2 PyTorch port augments inside ``run_D`` (``training/loss.py``), used for every D call.
  Evaluation (FID, D's mean outputs) sees un-augmented images.
- Reals and fakes get independent draws: the StyleGAN2 port calls DiffAugment once per batch on
  torch's global stream, the BigGAN code (``BigGAN.py``, ``G_D.forward``) once on ``cat([fake, real])``.
  Here the trainer passes the same generator to both calls; the second call continues the stream.
- R1: the StyleGAN2 PyTorch port takes the gradient of D(T(x)) with respect to the un-augmented
  real x, through T (``real_img_tmp = real_img.detach().requires_grad_(True)``, then ``run_D``
  augments it; its lazy ``Dreg`` phase draws T afresh, ``Dboth`` reuses the main loss's augmented
  logits). Our ``d_penalty(discriminator, ...)`` hook would get D∘T as its discriminator. The TF code has
  both: ``ns_DiffAugment_r1`` (gradient w.r.t. x, the few-shot script's loss) and ``ns_r1_DiffAugment``
  (gradient w.r.t. T(x), the CIFAR script's loss). The reference has no WGAN-GP; the analogue of the
  port's choice is the gradient of D(T(x_hat)) w.r.t. the interpolate x_hat of un-augmented real and fake.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganlab.errors import ConfigError

POLICIES = ("color", "translation", "cutout")


def _uniform(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One U[0, 1) value per sample, shaped (B, 1, 1, 1) to broadcast over an image."""
    return torch.rand(x.shape[0], 1, 1, 1, generator=generator, device=x.device, dtype=x.dtype)


def color(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Brightness + U[-0.5, 0.5), saturation x U[0, 2), contrast x U[0.5, 1.5), per sample (the reference's)."""
    x = x + (_uniform(x, generator) - 0.5)
    # saturation scales each pixel's distance to its channel mean: on one channel that distance
    # is 0, so grayscale images come out unchanged (the draw is still made: the stream stays aligned)
    channel_mean = x.mean(dim=1, keepdim=True)
    x = (x - channel_mean) * (_uniform(x, generator) * 2) + channel_mean
    image_mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - image_mean) * (_uniform(x, generator) + 0.5) + image_mean


def translate(x: torch.Tensor, shift_h: torch.Tensor, shift_w: torch.Tensor) -> torch.Tensor:
    """Shift each image by (shift_h[b], shift_w[b]) pixels (int64, (B,)), filling with zeros.

    out[b, :, i, j] = x[b, :, i - shift_h[b], j - shift_w[b]], 0 where that falls outside.
    """
    B, _, H, W = x.shape
    # one zero border is enough: every index past the image is clamped onto it (the reference's trick)
    padded = F.pad(x, [1, 1, 1, 1])
    rows = (torch.arange(H, device=x.device) - shift_h[:, None] + 1).clamp(0, H + 1)  # (B, H)
    cols = (torch.arange(W, device=x.device) - shift_w[:, None] + 1).clamp(0, W + 1)  # (B, W)
    batch = torch.arange(B, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def cutout_mask(x: torch.Tensor, size: tuple[int, int], top: torch.Tensor, left: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) mask: 0 on the square [top, top + size_h) x [left, left + size_w) (clipped), 1 elsewhere."""
    H, W = x.shape[2:]
    rows = torch.arange(H, device=x.device)
    cols = torch.arange(W, device=x.device)
    in_rows = (rows >= top[:, None]) & (rows < top[:, None] + size[0])  # (B, H)
    in_cols = (cols >= left[:, None]) & (cols < left[:, None] + size[1])  # (B, W)
    hole = in_rows[:, :, None] & in_cols[:, None, :]
    return (~hole).to(x.dtype)[:, None]


class DiffAugment:
    """The policy's augmentations, applied to an image batch with one generator's draws."""

    def __init__(self, policy: str | None = "color,translation,cutout", translation_ratio: float = 0.125,
                 cutout_ratio: float = 0.5) -> None:
        # None too: a YAML null reads as "no augmentation"
        names = [] if policy is None or policy.strip() in ("", "none") else [n.strip() for n in policy.split(",")]
        for name in names:
            if name not in POLICIES:
                raise ConfigError(f"augment.policy: unknown augmentation {name!r} in {policy!r}; "
                                  f"valid: {', '.join(POLICIES)} (comma-separated) or 'none'")
        for key, ratio in (("translation_ratio", translation_ratio), ("cutout_ratio", cutout_ratio)):
            if not 0 < ratio < 1:
                raise ConfigError(f"augment.{key} must be in (0, 1), got {ratio}")
        self.names, self.translation_ratio, self.cutout_ratio = names, translation_ratio, cutout_ratio

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """T(x) for images (B, C, H, W); the same tensor back, with no draw, for an empty policy."""
        if not self.names:
            return x
        if x.dim() != 4:
            raise ConfigError(f"DiffAugment needs images (B, C, H, W), got a tensor of shape {tuple(x.shape)}; "
                              "set augment.policy=none for point data")
        for name in self.names:
            if name == "color":
                x = color(x, generator)
            elif name == "translation":
                x = self._translation(x, generator)
            else:
                x = self._cutout(x, generator)
        return x

    def _translation(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        # int(side * ratio + 0.5): the StyleGAN2 port's rounding (28 x 28 -> up to 4 pixels, 32 x 32 -> 4)
        max_h, max_w = (int(side * self.translation_ratio + 0.5) for side in x.shape[2:])
        B = x.shape[0]
        shift_h = torch.randint(-max_h, max_h + 1, (B,), generator=generator, device=x.device)
        shift_w = torch.randint(-max_w, max_w + 1, (B,), generator=generator, device=x.device)
        return translate(x, shift_h, shift_w)

    def _cutout(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        H, W = x.shape[2:]
        size = (int(H * self.cutout_ratio + 0.5), int(W * self.cutout_ratio + 0.5))
        B = x.shape[0]
        # the reference's centre range: the square may hang over the border (and is clipped there)
        centre_h = torch.randint(0, H + (1 - size[0] % 2), (B,), generator=generator, device=x.device)
        centre_w = torch.randint(0, W + (1 - size[1] % 2), (B,), generator=generator, device=x.device)
        return x * cutout_mask(x, size, centre_h - size[0] // 2, centre_w - size[1] // 2)
