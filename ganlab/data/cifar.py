"""CIFAR-10 from its python-pickle batches (torchvision's download format) as (N, 3, 32, 32), with labels."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ganlab.data.batches import LABELLED_RANGE
from ganlab.data.images import ImageSet, Split, to_pixel_range, torchvision_download
from ganlab.errors import DataNotFoundError

BATCH_DIR = "cifar-10-batches-py"  # what torchvision's CIFAR10(download=True) and the tarball unpack to
FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def find_cifar_dir(root: Path, names: list[str]) -> Path | None:
    """The first of root/, root/cifar-10-batches-py/ holding every file in ``names``."""
    for folder in (root, root / BATCH_DIR):
        if all((folder / name).is_file() for name in names):
            return folder
    return None


def read_cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One pickled CIFAR batch ({b'data': (N, 3072) uint8, b'labels': [...]}): uint8 (N, 3, 32, 32), labels (N,)."""
    try:
        with open(path, "rb") as f:
            # CIFAR's own format is a pickle; only load batches from a root you trust (as torchvision does)
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"] if b"data" in batch else batch["data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"] if b"labels" in batch else batch["labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as err:
        raise DataNotFoundError(f"{path} is not a CIFAR-10 python batch ({err})") from err
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataNotFoundError(f"{path}: expected (N, 3072) pixels and N labels, got {data.shape} and {labels.shape}")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)


def _read(root: Path, download: bool, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    folder = find_cifar_dir(root, names)
    if folder is None and download:
        torchvision_download("cifar10", root, "CIFAR10", (True,))  # one archive: every batch
        folder = find_cifar_dir(root, names)
    if folder is None:
        raise DataNotFoundError(
            f"cifar10: {', '.join(names)} not found (looked in {root} and {root / BATCH_DIR}); "
            "set data.root to the folder holding cifar-10-batches-py, or data.download=true (needs network)"
        )
    images, labels = zip(*(read_cifar_batch(folder / name) for name in names))
    return torch.cat(images).float().div_(255.0), torch.cat(labels)


def cifar10(
    root: str,
    download: bool = False,
    split: Literal["train", "test", "all"] = "train",
    pixel_range: tuple[float, float] = (-1.0, 1.0),
    max_train: int | None = None,
) -> ImageSet:
    """CIFAR-10 images from ``root`` or ``root``/cifar-10-batches-py; torchvision downloads if asked.

    ``max_train``: train on a fixed random subset of that many images (evaluations still use all).
    """
    root_path = Path(root).expanduser()
    unit, labels = _read(root_path, download, FILES["train"] + FILES["test"] if split == "all" else FILES[split])

    def labelled(which: Split) -> tuple[torch.Tensor, torch.Tensor]:
        images, found = _read(root_path, False, FILES[which])
        return to_pixel_range(images, LABELLED_RANGE), found

    return ImageSet("cifar10", to_pixel_range(unit, pixel_range), tuple(pixel_range), labels, 10,
                    labelled).limit(max_train)
