"""Image data sets held in memory as one tensor (N, C, H, W) in the requested pixel range.

Every image set ganlab ships fits in memory, so it is decoded once, kept on the training device and
sliced by a shuffled index per step: no per-item Python work in the training loop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch

from ganlab.data.batches import LABELLED_RANGE, ShuffledBatches
from ganlab.errors import DataNotFoundError

log = logging.getLogger(__name__)

Split = Literal["train", "test"]
DIGITS_TEST_SHARE = 0.2  # digits has no official split: a fixed, seeded 80/20 split
_DIGITS_SPLIT_SEED = 20261126
SUBSET_SEED = 20261212  # ``max_train``: the same subset in every run, whatever the run's seed


def to_pixel_range(unit: torch.Tensor, pixel_range: tuple[float, float]) -> torch.Tensor:
    """Map images in [0, 1] to [lo, hi]."""
    lo, hi = pixel_range
    return unit * (hi - lo) + lo


@dataclass
class ImageSet:
    """An image data set in memory (the ``DataSet`` contract of ``ganlab.data.batches``).

    ``labels`` are the training images' classes where the set has them; ``splits`` loads the
    labelled train/test splits (images in [-1, 1]) its evaluation classifier trains and is scored on.
    ``full_images``: after ``limit``, the whole training split, which evaluations still compare against.
    """

    name: str
    images: torch.Tensor  # (N, C, H, W) in pixel_range
    pixel_range: tuple[float, float]
    labels: torch.Tensor | None = None
    n_classes: int | None = None
    splits: Callable[[Split], tuple[torch.Tensor, torch.Tensor]] | None = None
    full_images: torch.Tensor | None = None
    full_labels: torch.Tensor | None = None

    modes = None  # mixtures only
    mode_std = None

    @property
    def shape(self) -> tuple[int, ...]:
        """One image's (C, H, W)."""
        return tuple(self.images.shape[1:])

    def to(self, device: torch.device) -> ImageSet:
        """Keep the images (and labels) on ``device`` from now on; returns self."""
        self.images = self.images.to(device)
        self.labels = None if self.labels is None else self.labels.to(device)
        self.full_images = None if self.full_images is None else self.full_images.to(device)
        self.full_labels = None if self.full_labels is None else self.full_labels.to(device)
        return self

    def batches(self, batch_size: int, seed: int) -> ShuffledBatches:
        """The training batches of a run with ``seed`` (and their labels, where the set has them)."""
        return ShuffledBatches(self.images, batch_size, seed, self.labels)

    def reference(self, n: int, seed: int) -> torch.Tensor:
        """A fixed subset of ``n`` images chosen by ``seed`` alone (all of them when n >= N).

        Drawn from the whole training split also after ``limit``: a run on a subset is measured
        against the distribution, not against the images it memorised.
        """
        images = self.images if self.full_images is None else self.full_images
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:n]
        return images[pick.to(images.device)]

    def reference_labels(self, n: int, seed: int) -> torch.Tensor | None:
        """The classes of ``reference(n, seed)``'s images (what a conditional D is shown them with); None unlabelled."""
        labels = self.labels if self.full_images is None else self.full_labels
        if labels is None:
            return None
        pick = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:n]
        return labels[pick.to(labels.device)]

    def limit(self, max_train: int | None) -> ImageSet:
        """Train on a fixed random ``max_train`` of the images (``data.max_train``; None or >= N: all); self."""
        if max_train is not None and max_train > len(self.images):  # a typo or the wrong set: say so
            log.warning("data.max_train=%d, but %s has %d training images: training on all of them", max_train,
                        self.name, len(self.images))
        if max_train is None or max_train >= len(self.images):
            return self
        keep = torch.randperm(len(self.images), generator=torch.Generator().manual_seed(SUBSET_SEED))[:max_train]
        self.full_images, self.full_labels = self.images, self.labels
        self.images = self.images[keep]
        self.labels = None if self.labels is None else self.labels[keep]
        return self

    def labelled(self, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        """(images in [-1, 1], labels) of ``split``; DataNotFoundError when the set has no labels."""
        if self.splits is None:
            raise DataNotFoundError(f"data set {self.name!r} has no class labels (the classifier metrics need them)")
        return self.splits(split)


def digits(pixel_range: tuple[float, float] = (-1.0, 1.0), max_train: int | None = None) -> ImageSet:
    """scikit-learn's embedded 8x8 digits (1,797 images, values 0..16) as (N, 1, 8, 8), with labels."""
    images, labels = _sklearn_digits()
    return ImageSet("digits", to_pixel_range(images, pixel_range), tuple(pixel_range), labels, 10,
                    _digits_split).limit(max_train)


def _sklearn_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits: (N, 1, 8, 8) in [0, 1] and the labels, read from the file its ``load_digits`` reads.

    The file is found without importing scikit-learn (~1.8 s, most of a digits run's start-up in a
    fresh process or a population worker); where it is not where this looks, ``load_digits`` itself.
    """
    table = _sklearn_digits_table()
    if table is None:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        table = np.concatenate([bunch.data, bunch.target[:, None]], axis=1)
    unit = torch.from_numpy(table[:, :-1].reshape(-1, 1, 8, 8).astype(np.float32) / 16.0)
    return unit, torch.from_numpy(table[:, -1].astype(np.int64))


def _sklearn_digits_table() -> np.ndarray | None:
    """The (1797, 65) table of sklearn/datasets/data/digits.csv.gz (pixels 0..16, then the label), or None."""
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if not path.is_file():
        return None
    with gzip.open(path, "rt") as f:
        return np.loadtxt(f, delimiter=",")  # as load_digits parses it


def _digits_split(split: Split) -> tuple[torch.Tensor, torch.Tensor]:
    unit, labels = _sklearn_digits()
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(_DIGITS_SPLIT_SEED))
    n_test = int(len(labels) * DIGITS_TEST_SHARE)
    idx = perm[:n_test] if split == "test" else perm[n_test:]
    return to_pixel_range(unit[idx], LABELLED_RANGE), labels[idx]


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
