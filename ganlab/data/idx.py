"""MNIST and Fashion-MNIST from their raw IDX files (gzipped or not), with their labels where present."""

from __future__ import annotations

import functools
import gzip
import struct
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ganlab.data.batches import LABELLED_RANGE
from ganlab.data.images import ImageSet, Split, to_pixel_range, torchvision_download
from ganlab.errors import DataNotFoundError

_IMAGE_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
_LABEL_FILES = {"train": "train-labels-idx1-ubyte", "test": "t10k-labels-idx1-ubyte"}
# a data set's torchvision class, which is also the folder it downloads into
_TORCHVISION_DIR = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
_HOW_TO_GET = {
    "mnist": "download them (data.download=true, needs network) or copy the IDX files there",
    "fashion_mnist": "on Debian: apt-get install dataset-fashion-mnist and pass "
    "data.root=/usr/share/datasets/fashion-mnist; or data.download=true (needs network)",
}


def _read(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        return f.read()


def read_idx_images(path: Path) -> torch.Tensor:
    """Read an IDX3 ubyte image file (optionally gzipped) into a uint8 tensor (N, H, W)."""
    raw = _read(path)
    magic, count, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != 0x00000803:
        raise DataNotFoundError(f"{path} is not an IDX image file (magic {magic:#010x}, expected 0x00000803)")
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16)
    if pixels.size != count * rows * cols:
        raise DataNotFoundError(f"{path} is truncated: {pixels.size} bytes for {count}x{rows}x{cols} images")
    return torch.from_numpy(pixels.reshape(count, rows, cols).copy())


def read_idx_labels(path: Path) -> torch.Tensor:
    """Read an IDX1 ubyte label file (optionally gzipped) into an int64 tensor (N,)."""
    raw = _read(path)
    magic, count = struct.unpack(">II", raw[:8])
    if magic != 0x00000801:
        raise DataNotFoundError(f"{path} is not an IDX label file (magic {magic:#010x}, expected 0x00000801)")
    labels = np.frombuffer(raw, dtype=np.uint8, offset=8)
    if labels.size != count:
        raise DataNotFoundError(f"{path} is truncated: {labels.size} labels, header says {count}")
    return torch.from_numpy(labels.astype(np.int64))


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


def _load_unit(name: str, root: Path, splits: list[Split]) -> torch.Tensor:
    paths = [find_idx_file(root, name, _IMAGE_FILES[s]) for s in splits]
    missing = [_IMAGE_FILES[s] for s, p in zip(splits, paths) if p is None]
    if missing:
        looked = ", ".join(str(d) for d in (root, root / "raw", root / _TORCHVISION_DIR[name] / "raw"))
        raise DataNotFoundError(f"{name}: {', '.join(missing)}[.gz] not found (looked in {looked}); "
                                f"{_HOW_TO_GET[name]}")
    return torch.cat([_read_idx_cached(str(p), p.stat().st_mtime_ns) for p in paths]).float().div_(255.0).unsqueeze(1)


def _labels(name: str, root: Path, splits: list[Split], n_images: int) -> torch.Tensor | None:
    """The labels of ``splits`` (None when a label file is missing), checked against the image count."""
    paths = [find_idx_file(root, name, _LABEL_FILES[s]) for s in splits]
    if any(p is None for p in paths):
        return None
    labels = torch.cat([read_idx_labels(p) for p in paths])
    if len(labels) != n_images:
        raise DataNotFoundError(f"{name} {'+'.join(splits)}: {n_images} images but {len(labels)} labels")
    return labels


def idx(
    name: Literal["mnist", "fashion_mnist"],
    root: str,
    download: bool = False,
    split: Literal["train", "test", "all"] = "train",
    pixel_range: tuple[float, float] = (-1.0, 1.0),
    max_train: int | None = None,
) -> ImageSet:
    """MNIST or Fashion-MNIST as (N, 1, 28, 28) with labels when the label files sit beside the images.

    ``max_train``: train on a fixed random subset of that many images (evaluations still use all).
    """
    root_path = Path(root).expanduser()
    splits: list[Split] = ["train", "test"] if split == "all" else [split]
    if download and any(find_idx_file(root_path, name, _IMAGE_FILES[s]) is None for s in splits):
        torchvision_download(name, root_path, _TORCHVISION_DIR[name], (True, False), _HOW_TO_GET[name])
    unit = _load_unit(name, root_path, splits)
    labels = _labels(name, root_path, splits, len(unit))

    def labelled(which: Split) -> tuple[torch.Tensor, torch.Tensor]:
        images = _load_unit(name, root_path, [which])
        found = _labels(name, root_path, [which], len(images))
        if found is None:
            raise DataNotFoundError(f"{name}: {_LABEL_FILES[which]}[.gz] not found under {root_path} "
                                    "(the classifier needs the label files next to the images)")
        return to_pixel_range(images, LABELLED_RANGE), found

    return ImageSet(name, to_pixel_range(unit, pixel_range), tuple(pixel_range), labels,
                    10 if labels is not None else None, labelled).limit(max_train)
