"""The one data contract: a data config builds a ``DataSet``; training reads it through ``Batches``.

Every data set ganlab ships (image sets in memory, 2D mixtures generated on the fly) answers the
same questions, so the trainer, the evaluator and the population launcher never branch on its kind:

- ``shape``: one sample's shape, (C, H, W) for images, (2,) for points;
- ``batches(batch_size, seed)``: the training batches of a run with that seed; batch ``index``
  depends only on (seed, index), so a resumed run sees exactly the batches of an uninterrupted one;
  labelled image sets' batches also answer ``labels(index)``, the classes of batch ``index``;
- ``reference(n, seed)``: the real samples an evaluation compares against, a function of the data
  set and the evaluation's own seed only (never the run's seed or batch size);
- ``pixel_range`` (images; None for points), ``modes``/``mode_std`` (mixtures; None for images),
  ``n_classes`` and ``labelled(split)`` (labelled image sets: the evaluation classifier's data).
"""

from __future__ import annotations

from typing import Literal, Protocol

import torch

from ganlab.errors import DataNotFoundError

LABELLED_RANGE = (-1.0, 1.0)  # ``labelled()`` images are in [-1, 1] whatever a run's pixel range
LABEL_SEED_OFFSET = 7_919  # G's class labels: a stream seeded apart from z's (the bare seed)


class Batches(Protocol):
    """Training batches by global batch index."""

    batch_size: int
    per_epoch: int

    def get(self, index: int) -> torch.Tensor:
        """The batch with global index ``index``."""
        ...


class DataSet(Protocol):
    """What every ``data.dataset`` config builds (see the module docstring)."""

    name: str
    shape: tuple[int, ...]
    pixel_range: tuple[float, float] | None
    modes: torch.Tensor | None
    mode_std: float | None
    n_classes: int | None

    def to(self, device: torch.device) -> "DataSet": ...

    def batches(self, batch_size: int, seed: int) -> Batches: ...

    def reference(self, n: int, seed: int) -> torch.Tensor: ...

    def labelled(self, split: Literal["train", "test"]) -> tuple[torch.Tensor, torch.Tensor]: ...


class ShuffledBatches:
    """Batches of an in-memory tensor by global batch index; epoch e uses a permutation seeded by (seed, e).

    The batch for index b depends only on (seed, b), so a resumed run sees exactly the batches an
    uninterrupted one would, with no loader state to save. The last incomplete batch is dropped
    (BatchNorm needs more than one sample, and every step sees the same batch size).
    """

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int, labels: torch.Tensor | None = None) -> None:
        if images.shape[0] < 2:
            raise DataNotFoundError(f"the data set has {images.shape[0]} image(s); GAN training needs at least 2")
        self.images, self.labels_all = images, labels
        self.batch_size = min(batch_size, images.shape[0])
        self.seed = seed
        self.per_epoch = images.shape[0] // self.batch_size
        self._epoch = -1
        self._perm = torch.empty(0, dtype=torch.long)

    def indices(self, index: int) -> torch.Tensor:
        """Positions in ``images`` of the batch with global index ``index`` (epoch = index // per_epoch)."""
        epoch, pos = divmod(index, self.per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(self.images.shape[0], generator=gen).to(self.images.device)
            self._epoch = epoch
        return self._perm[pos * self.batch_size : (pos + 1) * self.batch_size]

    def get(self, index: int) -> torch.Tensor:
        """The batch with global index ``index``."""
        return self.images[self.indices(index)]

    def labels(self, index: int) -> torch.Tensor:
        """The classes of the batch with global index ``index`` (the same permutation as ``get``)."""
        if self.labels_all is None:
            raise DataNotFoundError("this data set has no training labels (conditional models need them)")
        return self.labels_all[self.indices(index)]


class LatentSampler:
    """z for G: N(0, std²) or a uniform with the same std, from its own generator (state is checkpointed)."""

    def __init__(self, z_size: int, dist: Literal["normal", "uniform"], std: float, device: torch.device, seed: int):
        self.z_size, self.dist, self.std = z_size, dist, std
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.device = device

    def __call__(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        gen = generator or self.generator
        if self.dist == "normal":
            z = torch.randn(n, self.z_size, device=self.device, generator=gen)
            # x * 1.0 is x exactly: the default std skips a pass (a population draws 2 z per member and step)
            return z if self.std == 1.0 else z * self.std
        half_width = self.std * 3**0.5  # U(-a, a) has std a / sqrt(3)
        return (torch.rand(n, self.z_size, device=self.device, generator=gen) * 2 - 1) * half_width


class LabelSampler:
    """Class labels for a conditional G: uniform over ``n_classes``, from its own generator (checkpointed).

    Its own stream, so a conditional run draws exactly the z of an unconditional one with the same seed.
    """

    def __init__(self, n_classes: int, device: torch.device, seed: int) -> None:
        self.n_classes, self.device = n_classes, device
        self.generator = torch.Generator(device=device).manual_seed(seed + LABEL_SEED_OFFSET)

    def __call__(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(self.n_classes, (n,), device=self.device, generator=generator or self.generator)
