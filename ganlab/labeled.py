"""Images *with* class labels, split into train/test, for training the evaluation classifier.

Training a GAN only needs images (``ganlab.data``); the classifier behind ``fid_clf`` and the
mode-coverage metrics also needs labels and a held-out split to report its accuracy. Images come
out in [-1, 1] whatever the run's pixel range: the classifier always sees that range.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganlab.data import find_idx_file, load_digits, load_idx
from ganlab.errors import DataNotFoundError

CLASSIFIER_RANGE = (-1.0, 1.0)
_IDX_LABELS = {"train": "train-labels-idx1-ubyte", "test": "t10k-labels-idx1-ubyte"}
DIGITS_TEST_SHARE = 0.2  # digits has no official split: a fixed, seeded 80/20 split
_DIGITS_SPLIT_SEED = 20261126


def data_key(dataset: dict[str, Any]) -> str:
    """The name a data set's classifier is cached under: ``name`` if the node has one, else from its loader."""
    if dataset.get("name"):
        return str(dataset["name"])
    target = str(dataset.get("_target_", "unknown")).rsplit(".", 1)[-1]
    return target.removeprefix("load_")


def read_idx_labels(path: Path) -> torch.Tensor:
    """Read an IDX1 ubyte label file (optionally gzipped) into an int64 tensor (N,)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic, count = struct.unpack(">II", raw[:8])
    if magic != 0x00000801:
        raise DataNotFoundError(f"{path} is not an IDX label file (magic {magic:#010x}, expected 0x00000801)")
    labels = np.frombuffer(raw, dtype=np.uint8, offset=8)
    if labels.size != count:
        raise DataNotFoundError(f"{path} is truncated: {labels.size} labels, header says {count}")
    return torch.from_numpy(labels.astype(np.int64))


def load_labeled(dataset: dict[str, Any], split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images in [-1, 1] (N, C, H, W), labels (N,)) of ``split`` (train/test) of a data-set config node."""
    key = data_key(dataset)
    if key == "digits":
        from sklearn.datasets import load_digits as sk_load_digits

        images, labels = load_digits(CLASSIFIER_RANGE), torch.from_numpy(sk_load_digits().target.astype(np.int64))
        perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(_DIGITS_SPLIT_SEED))
        n_test = int(len(labels) * DIGITS_TEST_SHARE)
        idx = perm[:n_test] if split == "test" else perm[n_test:]
        return images[idx], labels[idx]
    if key in ("mnist", "fashion_mnist"):
        root = Path(str(dataset["root"])).expanduser()
        label_file = find_idx_file(root, key, _IDX_LABELS[split])
        if label_file is None:
            raise DataNotFoundError(f"{key}: {_IDX_LABELS[split]}[.gz] not found under {root} "
                                    "(the classifier needs the label files next to the images)")
        images = load_idx(key, str(root), download=False, split=split, pixel_range=CLASSIFIER_RANGE)
        labels = read_idx_labels(label_file)
        if len(labels) != len(images):
            raise DataNotFoundError(f"{key} {split}: {len(images)} images but {len(labels)} labels")
        return images, labels
    raise DataNotFoundError(f"no labelled version of data set {key!r}: the classifier metrics support "
                            "digits, mnist and fashion_mnist")
