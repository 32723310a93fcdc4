"""CIFAR-10 from its python-pickle batches (torchvision's download format) as (N, 3, 32, 32)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ganlab.data import to_pixel_range, torchvision_download
from ganlab.errors import DataNotFoundError

BATCH_DIR = "cifar-10-batches-py"  # what torchvision's CIFAR10(download=True) and the tarball unpack to
FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def find_cifar_dir(root: Path, names: list[str]) -> Path | None:
    """The first of root/, root/cifar-10-batches-py/ holding every file in ``names``."""
    for folder in (root, root / BATCH_DIR):
        if all((folder / name).is_file() for name in names):
            return folder
    return None


def read_cifar_batch(path: Path) -> torch.Tensor:
    """One pickled CIFAR batch ({b'data': (N, 3072) uint8, ...}) as uint8 (N, 3, 32, 32)."""
    try:
        with open(path, "rb") as f:
            # CIFAR's own format is a pickle; only load batches from a root you trust (as torchvision does)
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"] if b"data" in batch else batch["data"], dtype=np.uint8)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as err:
        raise DataNotFoundError(f"{path} is not a CIFAR-10 python batch ({err})") from err
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataNotFoundError(f"{path}: expected (N, 3072) pixels, got {data.shape}")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())


def load_cifar10(
    root: str,
    download: bool = False,
    split: Literal["train", "test", "all"] = "train",
    pixel_range: tuple[float, float] = (-1.0, 1.0),
) -> torch.Tensor:
    """CIFAR-10 images from ``root`` or ``root``/cifar-10-batches-py as (N, 3, 32, 32); torchvision downloads if asked."""
    root_path = Path(root).expanduser()
    names = FILES["train"] + FILES["test"] if split == "all" else FILES[split]
    folder = find_cifar_dir(root_path, names)
    if folder is None and download:
        torchvision_download("cifar10", root_path, "CIFAR10", (True,))  # one archive: every batch
        folder = find_cifar_dir(root_path, names)
    if folder is None:
        raise DataNotFoundError(
            f"cifar10: {', '.join(names)} not found (looked in {root_path} and {root_path / BATCH_DIR}); "
            "set data.root to the folder holding cifar-10-batches-py, or data.download=true (needs network)"
        )
    unit = torch.cat([read_cifar_batch(folder / name) for name in names]).float().div_(255.0)
    return to_pixel_range(unit, pixel_range)
