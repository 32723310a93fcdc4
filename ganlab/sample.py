"""Export samples of a checkpoint: ``python -m ganlab.sample CKPT --out FILE.npy|FILE.png [--n N]``.

``.npy``: N generated images as uint8 (N, C, H, W), mapped from the run's pixel range to 0..255;
for 2D data (ring8, grid25), N points as float32 (N, 2). ``.png``: a picture to look at, as the run
draws them: a grid of N images (8 to a row; a conditional G's one class per row), or N points over
the data's real points and modes. The G is the one the run sampled from (its EMA G when it had one;
``--generator g|g_ema`` picks). A conditional G draws sample i of class i mod K (``--label C``: all of
class C) and a .npy's classes go to ``FILE.labels.npy`` beside the samples. torch is imported after
the arguments are parsed, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from ganlab.ranges import SEED_LIMIT

if TYPE_CHECKING:
    import numpy as np
    import torch

DESCRIPTION = ("Write N samples of a checkpoint's generator to a .npy file (images as uint8 (N, C, H, W) in "
               "0..255, 2D points as float32 (N, 2)) or draw them into a .png (an image grid, a scatter plot).")
PNG_IMAGES = 64  # --n of a .png of images (a conditional G's: 8 per class), of points: grids.N_POINTS
EXAMPLES = """examples:
  python -m ganlab.sample outputs/2026-12-01/10-00-00/checkpoints/step_00008400.pt --out samples.npy
  python -m ganlab.sample CKPT --n 50000 --out fid_samples.npy --device cuda     # e.g. for an external FID tool
  python -m ganlab.sample ring8_run/checkpoints/step_00005120.pt --n 2000 --out points.npy   # 2D: (N, 2) floats
  python -m ganlab.sample CKPT --label 3 --out class3.npy    # a conditional G: every sample of class 3
  python -m ganlab.sample RUN_DIR --out grid.png             # 64 samples as a grid (2D data: a scatter plot)
"""


def sample_labels(state: dict, n: int, label: int | None = None) -> "np.ndarray | None":
    """The classes a conditional checkpoint's G is asked for: i mod K, or all ``label``; None unconditional."""
    import numpy as np

    from ganlab.errors import GanlabError

    n_classes = state.get("n_classes")
    if n_classes is None:
        if label is not None:
            raise GanlabError("--label: this checkpoint's G is not conditional (model.conditional=none)")
        return None
    if label is not None and not 0 <= label < n_classes:
        raise GanlabError(f"--label {label}: the G knows classes 0..{n_classes - 1}")
    return np.full(n, label, np.int64) if label is not None else np.arange(n, dtype=np.int64) % n_classes


def _generate(state: dict, n: int, seed: int, batch_size: int, device: "torch.device",
              generator_choice: str = "auto", label: int | None = None) -> list["torch.Tensor"]:
    """G's raw float outputs for n latents of the run's distribution, in chunks of ``batch_size``."""
    import torch

    from ganlab.from_checkpoint import latent_of, load_models

    generator, _ = load_models(state, device, generator_choice)
    latent = latent_of(state, generator.z_size, device, seed)
    labels = sample_labels(state, n, label)
    with torch.no_grad():
        if labels is None:
            return [generator(latent(min(batch_size, n - start))).float() for start in range(0, n, batch_size)]
        classes = torch.from_numpy(labels).to(device)
        return [generator(latent(min(batch_size, n - start)), classes[start:start + batch_size]).float()
                for start in range(0, n, batch_size)]


def generate_uint8(state: dict, n: int, seed: int = 0, batch_size: int = 1000, device: "torch.device | None" = None,
                   generator_choice: str = "auto", label: int | None = None) -> "np.ndarray":
    """N samples of a checkpoint's G as uint8 (N, C, H, W), mapped from the run's pixel range."""
    import numpy as np
    import torch

    lo, hi = state["config"]["data"]["pixel_range"]
    chunks = [((images - lo) / (hi - lo)).mul(255).round().clamp(0, 255).to(torch.uint8).cpu()
              for images in _generate(state, n, seed, batch_size, device or torch.device("cpu"), generator_choice,
                                      label)]
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, *state["img_shape"]), np.uint8)


def generate_points(state: dict, n: int, seed: int = 0, batch_size: int = 1000, device: "torch.device | None" = None,
                    generator_choice: str = "auto", label: int | None = None) -> "np.ndarray":
    """N samples of a checkpoint of flat data (2D points) as float32 (N, D), in the data's units."""
    import numpy as np
    import torch

    chunks = [points.cpu() for points in _generate(state, n, seed, batch_size, device or torch.device("cpu"),
                                                   generator_choice, label)]
    return torch.cat(chunks).numpy() if chunks else np.zeros((0, *state["img_shape"]), np.float32)


def picture(state: dict, n: int, seed: int = 0, batch_size: int = 1000, device: "torch.device | None" = None,
            generator_choice: str = "auto", label: int | None = None) -> "torch.Tensor":
    """N samples of a checkpoint's G drawn as the run draws them, uint8 (C, H, W): a grid of images, 8 to a
    row (a conditional G's, without ``label``: one class per row), or the points over the data's."""
    import torch

    from ganlab.grids import GRID_ROW, N_POINTS, image_grid, scatter_image, scatter_limit

    outputs = _generate(state, n, seed, batch_size, device or torch.device("cpu"), generator_choice, label)
    samples = torch.cat(outputs).cpu()
    if len(state["img_shape"]) == 1:  # 2D points, over the real ones (drawn on the fly: no files needed)
        from ganlab.build import build_data
        from ganlab.from_checkpoint import checkpoint_config

        data = build_data(checkpoint_config(state))
        return scatter_image(data.reference(N_POINTS, seed), samples, data.modes, scatter_limit(data))
    labels = sample_labels(state, n, label)
    per_row = GRID_ROW
    if labels is not None and label is None:  # sample i is of class i mod K: rows of one class each
        order = torch.from_numpy(labels).argsort(stable=True)
        samples, per_row = samples[order], -(-n // state["n_classes"])
    return image_grid(samples, state["config"]["data"]["pixel_range"], per_row)


def parser() -> argparse.ArgumentParser:
    """The command's arguments (also read by the README test)."""
    p = argparse.ArgumentParser(
        prog="python -m ganlab.sample", description=textwrap.fill(DESCRIPTION, 100), epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a run's checkpoint (<run dir>/checkpoints/step_XXXXXXXX.pt) or "
                                                 "its run dir (the newest)")
    p.add_argument("--out", type=Path, required=True, help="output .npy file (the samples) or .png (a picture)")
    p.add_argument("--n", type=int, default=None,
                   help=f"number of samples (default 10000; a .png: {PNG_IMAGES} images, 8 per class of a "
                        "conditional G, or 1000 points)")
    p.add_argument("--seed", type=int, default=0, help="latent seed (default 0)")
    p.add_argument("--batch-size", type=int, default=1000, help="samples per forward pass (default 1000)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1, ... (default auto)")
    p.add_argument("--generator", choices=["auto", "g", "g_ema"], default="auto",
                   help="auto: the G the run sampled from (its EMA G when trainer.g_ema was set)")
    p.add_argument("--label", type=int, default=None, help="a conditional G: every sample of this class")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, write the .npy (and a conditional G's classes) or the .png, print what was written."""
    p = parser()
    args = p.parse_args(argv)
    if args.n is not None and args.n < 1:
        p.error("--n must be >= 1")
    if args.batch_size < 1:
        p.error("--batch-size must be >= 1")
    if not 0 <= args.seed < SEED_LIMIT:  # a run's seed range (ganlab/ranges.py); torch overflows past 2**63
        p.error(f"--seed must be in [0, 2**32), got {args.seed}")
    if args.out.suffix not in (".npy", ".png"):  # np.save would append .npy: the file elsewhere than asked
        p.error(f"--out must name a .npy file (the samples as a NumPy array) or a .png (a picture), got {args.out}")
    from ganlab.checkpoint import checkpoint_file, load_checkpoint
    from ganlab.errors import GanlabError, make_folder
    from ganlab.hardware.device import command_device

    try:
        device = command_device(args.device)
        state = load_checkpoint(checkpoint_file(args.checkpoint))
        make_folder(args.out.parent)  # before the sampling: fail at once, not after it
        done = (write_picture if args.out.suffix == ".png" else write_samples)(state, args, device)
    except GanlabError as err:
        print(f"ganlab.sample: error: {err}", file=sys.stderr)
        return 2
    print(done)
    return 0


def write_samples(state: dict, args: argparse.Namespace, device: "torch.device") -> str:
    """``--out FILE.npy``: the samples (and a conditional G's classes beside them); what was written."""
    import numpy as np

    points = len(state["img_shape"]) == 1  # 2D benchmarks: raw coordinates, not pixels
    export = generate_points if points else generate_uint8
    n = args.n or 10_000
    images = export(state, n, args.seed, args.batch_size, device, args.generator, args.label)
    labels = sample_labels(state, n, args.label)
    np.save(args.out, images)
    if labels is not None:
        np.save(args.out.with_suffix(".labels.npy"), labels)
    kind = "points" if points else "images"
    return f"wrote {images.shape[0]} {kind} {tuple(images.shape[1:])} {images.dtype} to {args.out}"


def png_count(state: dict, label: int | None) -> int:
    """A picture's samples when --n is not given: 1000 points, 8 per class of a conditional G, else 64 images."""
    from ganlab.grids import N_POINTS

    if len(state["img_shape"]) == 1:
        return N_POINTS
    return 8 * state["n_classes"] if state.get("n_classes") is not None and label is None else PNG_IMAGES


def write_picture(state: dict, args: argparse.Namespace, device: "torch.device") -> str:
    """``--out FILE.png``: the samples drawn (``picture``); what was written."""
    from PIL import Image

    n = args.n or png_count(state, args.label)
    image = picture(state, n, args.seed, args.batch_size, device, args.generator, args.label)
    Image.fromarray(image.permute(1, 2, 0).squeeze(-1).numpy()).save(args.out)
    return f"wrote a picture of {n} samples ({image.shape[2]}x{image.shape[1]} px) to {args.out}"


if __name__ == "__main__":
    from ganlab.errors import interruptible
    from ganlab.quick_exit import run_and_leave

    run_and_leave(lambda: interruptible("ganlab.sample", main))
