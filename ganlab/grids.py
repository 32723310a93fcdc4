"""What a run draws: the sample grid of G on a fixed z bank (images), or a scatter plot (2D points).

Both come out as uint8 (C, H, W) images for the tracker, and both use a z bank and real points that
are the same in every run on a data set, so pictures compare across steps and runs.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from ganlab.data.batches import DataSet

GRID_SEED = 1234  # the z bank of image grids and scatter plots: the same in every run
GRID_ROW = 8  # images per row of a sample grid
MIN_CELL = 28  # sample-grid cells narrower than this are upscaled
N_POINTS = 1000  # points of each kind per scatter plot
FIGURE_PX = 480


@torch.no_grad()
def sample_grid(generator: torch.nn.Module, z_bank: torch.Tensor, pixel_range: tuple[float, float]) -> torch.Tensor:
    """A uint8 (C, H, W) grid of G(z_bank), 8 per row, in eval mode (running BatchNorm stats; G's mode restored).

    A conditional G (``n_classes`` set) draws one class per row, K rows of the bank's first 8 z: the
    same z down each column, so a column shows one style across the classes.
    """
    was_training = generator.training
    generator.eval()
    n_classes = getattr(generator, "n_classes", None)
    per_row = GRID_ROW
    if n_classes is None:
        images = generator(z_bank)
    else:
        per_row = min(GRID_ROW, len(z_bank))
        labels = torch.arange(n_classes, device=z_bank.device).repeat_interleave(per_row)
        images = generator(z_bank[:per_row].repeat(n_classes, 1), labels)
    generator.train(was_training)
    return image_grid(images, pixel_range, per_row)


def image_grid(images: torch.Tensor, pixel_range: tuple[float, float], per_row: int = GRID_ROW) -> torch.Tensor:
    """G's images (N, C, H, W) in ``pixel_range`` as one uint8 (C, H, W) grid, ``per_row`` to a row."""
    from torchvision.utils import make_grid  # lazy: importing torchvision costs ~1-2 s of every job's start

    images = images.float().cpu()
    if images.shape[-1] < MIN_CELL:  # tiny images (8x8 digits): nearest-neighbour upscale to be seen
        images = F.interpolate(images, scale_factor=math.ceil(MIN_CELL / images.shape[-1]), mode="nearest")
    grid = make_grid(images, nrow=per_row, normalize=True, value_range=tuple(pixel_range), pad_value=1.0)
    return grid.mul(255).round().clamp(0, 255).to(torch.uint8)


def scatter_image(real: torch.Tensor, fake: torch.Tensor, modes: torch.Tensor | None = None,
                  limit: float | None = None) -> torch.Tensor:
    """Real (blue) and generated (red) 2D points over the mode centres (circles), as uint8 (3, H, W).

    ``limit``: half-width of the square axes, fixed so plots of one run compare across steps.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # no display: rendered straight to pixels
    from matplotlib.figure import Figure

    real, fake = real.detach().float().cpu(), fake.detach().float().cpu()
    fig = Figure(figsize=(FIGURE_PX / 100, FIGURE_PX / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if modes is not None:  # under the points, so they stay visible
        centres = modes.detach().float().cpu()
        ax.scatter(centres[:, 0], centres[:, 1], s=120, facecolors="none", edgecolors="0.4", marker="o",
                   label="modes", linewidths=0.8)
    ax.scatter(real[:, 0], real[:, 1], s=5, c="tab:blue", alpha=0.5, label="real", linewidths=0)
    ax.scatter(fake[:, 0], fake[:, 1], s=5, c="tab:red", alpha=0.6, label="generated", linewidths=0)
    if limit is None:
        limit = 1.25 * float(real.abs().max())
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=2)
    fig.tight_layout()
    canvas.draw()
    rgba = torch.frombuffer(bytearray(canvas.buffer_rgba()), dtype=torch.uint8)
    width, height = canvas.get_width_height()
    return rgba.view(height, width, 4)[..., :3].permute(2, 0, 1).contiguous()


@torch.no_grad()
def scatter_samples(generator: torch.nn.Module, latent: Callable[..., torch.Tensor], data: DataSet,
                    device: torch.device) -> torch.Tensor:
    """G on a fixed z bank (eval mode) against fixed real points of ``data``, as a scatter image.

    The z bank and the real points (``data.reference``) are the same at every call and in every run,
    and the axes are fixed by the data's modes, so plots compare across steps and runs.
    """
    z_bank = latent(N_POINTS, torch.Generator(device=device).manual_seed(GRID_SEED))
    real = data.reference(N_POINTS, GRID_SEED)
    was_training = generator.training
    generator.eval()
    fake = generator(z_bank)
    generator.train(was_training)
    return scatter_image(real, fake, data.modes, scatter_limit(data))


def scatter_limit(data: DataSet) -> float | None:
    """Half-width of a data set's scatter axes: its modes and 4 std around them (None: from the real points)."""
    modes = data.modes
    return 1.2 * float(modes.abs().max()) + 4 * (data.mode_std or 0.0) if modes is not None else None
