"""The 2D runs' "sample grid": a scatter plot of real vs generated points, as a uint8 (3, H, W) image."""

from __future__ import annotations

from typing import Any, Callable

import torch

BANK_SEED = 1234  # the z bank is the same in every run (as train.GRID_SEED for image grids)
N_POINTS = 1000  # points of each kind per plot
FIGURE_PX = 480


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
def scatter_samples(generator: torch.nn.Module, latent: Callable[..., torch.Tensor], batches: Any,
                    device: torch.device) -> torch.Tensor:
    """G on a fixed z bank (eval mode) against fixed real points from ``batches``, as a scatter image.

    The z bank is the same at every call and in every run (its own seed), the real points are the
    data's first batches, and the axes are fixed by the data's modes, so plots compare across steps and runs.
    """
    z_bank = latent(N_POINTS, torch.Generator(device=device).manual_seed(BANK_SEED))
    real = torch.cat([batches.get(i) for i in range(-(-N_POINTS // batches.batch_size))])[:N_POINTS]
    was_training = generator.training
    generator.eval()
    fake = generator(z_bank)
    generator.train(was_training)
    modes = getattr(batches, "modes", None)
    limit = 1.2 * float(modes.abs().max()) + 4 * getattr(batches, "std", 0.0) if modes is not None else None
    return scatter_image(real, fake, modes, limit)
