"""Data sets as one in-memory image tensor (N, C, H, W) in the requested pixel range, and batching.

Every data set ganlab ships fits in memory, so it is decoded once, kept on the training device and
sliced by a shuffled index per step: no per-item Python work in the training loop.
"""

from __future__ import annotations

import functools
import gzip
import struct
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ganlab.errors import DataNotFoundError

_IDX_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
_TORCHVISION_DIR = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}  # its torchvision class = the folder it downloads into
_HOW_TO_GET = {
    "mnist": "download them (data.download=true, needs network) or copy the IDX files there",
    "fashion_mnist": "on Debian: apt-get install dataset-fashion-mnist and pass "
    "data.root=/usr/share/datasets/fashion-mnist; or data.download=true (needs network)",
}


def to_pixel_range(unit: torch.Tensor, pixel_range: tuple[float, float]) -> torch.Tensor:
    """Map images in [0, 1] to [lo, hi]."""
    lo, hi = pixel_range
    return unit * (hi - lo) + lo


def load_digits(pixel_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """scikit-learn's embedded 8x8 digits (1,797 images, values 0..16) as (N, 1, 8, 8)."""
    from sklearn.datasets import load_digits as sk_load_digits

    unit = torch.from_numpy(sk_load_digits().images.astype(np.float32) / 16.0)
    return to_pixel_range(unit.unsqueeze(1), pixel_range)


def read_idx_images(path: Path) -> torch.Tensor:
    """Read an IDX3 ubyte image file (optionally gzipped) into a uint8 tensor (N, H, W)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic, count, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != 0x00000803:
        raise DataNotFoundError(f"{path} is not an IDX image file (magic {magic:#010x}, expected 0x00000803)")
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16)
    if pixels.size != count * rows * cols:
        raise DataNotFoundError(f"{path} is truncated: {pixels.size} bytes for {count}x{rows}x{cols} images")
    return torch.from_numpy(pixels.reshape(count, rows, cols).copy())


@functools.lru_cache(maxsize=4)
def _read_idx_cached(path: str, mtime_ns: int) -> torch.Tensor:
    # the jobs of a multirun share one process: decode each file once (~0.5 s each time saved)
    return read_idx_images(Path(path))


def find_idx_file(root: Path, name: str, stem: str) -> Path | None:
    """The first of root/, root/raw/, root/<TorchvisionName>/raw/ holding ``stem`` or ``stem``.gz."""
    for folder in (root, root / "raw", root / _TORCHVISION_DIR[name] / "raw"):
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                return candidate
    return None


def load_idx(
    name: Literal["mnist", "fashion_mnist"],
    root: str,
    download: bool = False,
    split: Literal["train", "test", "all"] = "train",
    pixel_range: tuple[float, float] = (-1.0, 1.0),
) -> torch.Tensor:
    """MNIST or Fashion-MNIST from raw IDX files as (N, 1, 28, 28); torchvision downloads if asked."""
    root_path = Path(root).expanduser()
    splits = ["train", "test"] if split == "all" else [split]
    paths = [find_idx_file(root_path, name, _IDX_FILES[s]) for s in splits]
    if any(p is None for p in paths) and download:
        torchvision_download(name, root_path, _TORCHVISION_DIR[name], (True, False), _HOW_TO_GET[name])
        paths = [find_idx_file(root_path, name, _IDX_FILES[s]) for s in splits]
    missing = [_IDX_FILES[s] for s, p in zip(splits, paths) if p is None]
    if missing:
        looked = ", ".join(str(d) for d in (root_path, root_path / "raw", root_path / _TORCHVISION_DIR[name] / "raw"))
        raise DataNotFoundError(
            f"{name}: {', '.join(missing)}[.gz] not found (looked in {looked}); {_HOW_TO_GET[name]}"
        )
    unit = torch.cat([_read_idx_cached(str(p), p.stat().st_mtime_ns) for p in paths]).float().div_(255.0)
    return to_pixel_range(unit.unsqueeze(1), pixel_range)


def torchvision_download(name: str, root: Path, dataset: str, train_flags: tuple[bool, ...], hint: str = "") -> None:
    """Fetch data set ``name`` into ``root`` with ``torchvision.datasets.<dataset>`` (once per train flag).

    Any failure (no network, a mirror down) becomes a DataNotFoundError saying where the files were expected.
    """
    import torchvision  # lazy: only a download needs it

    cls = getattr(torchvision.datasets, dataset)
    try:
        for train in train_flags:
            cls(str(root), train=train, download=True)
    except Exception as err:  # no network, a mirror down: say where the files were expected
        raise DataNotFoundError(f"{name}: download into {root} failed ({err})" + (f"; {hint}" if hint else "")) from err


class ShuffledBatches:
    """Batches of an in-memory tensor by global batch index; epoch e uses a permutation seeded by (seed, e).

    The batch for index b depends only on (seed, b), so a resumed run sees exactly the batches an
    uninterrupted one would, with no loader state to save. The last incomplete batch is dropped
    (BatchNorm needs more than one sample, and every step sees the same batch size).
    """

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int) -> None:
        if images.shape[0] < 2:
            raise DataNotFoundError(f"the data set has {images.shape[0]} image(s); GAN training needs at least 2")
        self.images = images
        self.batch_size = min(batch_size, images.shape[0])
        self.seed = seed
        self.per_epoch = images.shape[0] // self.batch_size
        self._epoch = -1
        self._perm = torch.empty(0, dtype=torch.long)

    def get(self, index: int) -> torch.Tensor:
        """The batch with global index ``index`` (epoch = index // per_epoch)."""
        epoch, pos = divmod(index, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(self.images.shape[0], generator=gen).to(self.images.device)
            self._epoch = epoch
        return self.images[self._perm[pos * self.batch_size : (pos + 1) * self.batch_size]]


class LatentSampler:
    """z for G: N(0, std²) or a uniform with the same std, from its own generator (state is checkpointed)."""

    def __init__(self, z_size: int, dist: Literal["normal", "uniform"], std: float, device: torch.device, seed: int):
        self.z_size, self.dist, self.std = z_size, dist, std
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.device = device

    def __call__(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        gen = generator or self.generator
        if self.dist == "normal":
            return torch.randn(n, self.z_size, device=self.device, generator=gen) * self.std
        half_width = self.std * 3**0.5  # U(-a, a) has std a / sqrt(3)
        return (torch.rand(n, self.z_size, device=self.device, generator=gen) * 2 - 1) * half_width
