"""Export samples of a checkpoint: ``python -m ganlab.sample CKPT --n N --out FILE.npy``.

Writes N generated images as uint8 (N, C, H, W), mapped from the run's pixel range to 0..255;
for 2D data (ring8, grid25), N points as float32 (N, 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from ganlab.checkpoint import load_checkpoint
from ganlab.errors import GanlabError
from ganlab.from_checkpoint import latent_of, load_models


@torch.no_grad()
def _generate(state: dict, n: int, seed: int, batch_size: int, device: torch.device) -> list[torch.Tensor]:
    """G's raw float outputs for n latents of the run's distribution, in chunks of ``batch_size``."""
    generator, _ = load_models(state, device)
    latent = latent_of(state, generator.z_size, device, seed)
    return [generator(latent(min(batch_size, n - start))).float() for start in range(0, n, batch_size)]


def generate_uint8(state: dict, n: int, seed: int = 0, batch_size: int = 1000,
                   device: torch.device = torch.device("cpu")) -> np.ndarray:
    """N samples of a checkpoint's G as uint8 (N, C, H, W), mapped from the run's pixel range."""
    lo, hi = state["config"]["data"]["pixel_range"]
    chunks = [((images - lo) / (hi - lo)).mul(255).round().clamp(0, 255).to(torch.uint8).cpu()
              for images in _generate(state, n, seed, batch_size, device)]
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, *state["img_shape"]), np.uint8)


def generate_points(state: dict, n: int, seed: int = 0, batch_size: int = 1000,
                    device: torch.device = torch.device("cpu")) -> np.ndarray:
    """N samples of a checkpoint of flat data (2D points) as float32 (N, D), in the data's units."""
    chunks = [points.cpu() for points in _generate(state, n, seed, batch_size, device)]
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, *state["img_shape"]), np.float32)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, write the .npy, print where it went."""
    parser = argparse.ArgumentParser(prog="python -m ganlab.sample", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--n", type=int, default=10_000, help="number of images (default 10000)")
    parser.add_argument("--out", type=Path, required=True, help="output .npy file")
    parser.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.n < 0:
        parser.error("--n must be >= 0")
    try:
        state = load_checkpoint(args.checkpoint)
        points = len(state["img_shape"]) == 1  # 2D benchmarks: raw coordinates, not pixels
        export = generate_points if points else generate_uint8
        images = export(state, args.n, args.seed, args.batch_size, torch.device(args.device))
    except GanlabError as err:
        print(f"ganlab.sample: error: {err}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, images)
    kind = "points" if points else "images"
    print(f"wrote {images.shape[0]} {kind} {tuple(images.shape[1:])} {images.dtype} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
