"""Tiny CIFAR-10 python-pickle batches, written the way the official tarball stores them."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ganlab.data.cifar import FILES


def write_cifar_batches(folder: Path, per_batch: int = 4, seed: int = 0) -> np.ndarray:
    """Write data_batch_1..5 and test_batch with ``per_batch`` random images each; return all as (N, 3, 32, 32)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in FILES["train"] + FILES["test"]:
        data = rng.integers(0, 256, size=(per_batch, 3 * 32 * 32), dtype=np.uint8)
        batch = {b"batch_label": name.encode(), b"labels": [0] * per_batch, b"data": data,
                 b"filenames": [b"x.png"] * per_batch}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
        written.append(data.reshape(-1, 3, 32, 32))
    return np.concatenate(written)
