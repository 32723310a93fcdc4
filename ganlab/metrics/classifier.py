"""The per-data-set evaluation classifier: a small CNN, its training, and its on-disk cache.

It trains on the data set's own labelled training split and is cached as ``<dir>/<data name>.pt``
(plain data, loadable with weights_only) with ``<data name>.json`` beside it holding its test
accuracy. Its penultimate features drive ``fid_clf``/``kid_clf`` and its predictions the
mode-coverage metrics. ``python -m ganlab.classifier`` is the command that trains one.

The cache also holds a fingerprint of the test split it was measured on: other files read under the
same name (KMNIST or Fashion-MNIST through ``data=mnist data.root=...``) are not scored with MNIST's
classifier; theirs is trained in its place, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ganlab.checkpoint import save_checkpoint
from ganlab.data.batches import LABELLED_RANGE, DataSet
from ganlab.errors import DataNotFoundError, FeaturesUnavailableError, ResumeError, make_folder

log = logging.getLogger(__name__)


@dataclass
class ClassifierSettings:
    """``eval.classifier``: where classifiers are cached and how a missing one is trained."""

    dir: str
    steps: int  # optimizer steps (batches), whatever the data set's size
    batch_size: int
    lr: float
    max_train: int | None  # cap on training images (None: the whole training split)
    seed: int


class MaxPool2x2(nn.Module):
    """``nn.MaxPool2d(2)``, the same numbers, without torch's slow CPU kernel where no gradient is wanted.

    torch's max_pool2d on contiguous (N, C, H, W) CPU tensors took 4.2 ms for 500 x 16 x 8 x 8 and 47 ms
    for 500 x 16 x 28 x 28 (one AMD EPYC thread, 2026-12-02): most of an evaluation's classifier pass.
    The maximum of the four strided views of each 2 x 2 window is the same value (a maximum rounds
    nothing; NaN propagates either way; an odd last row or column is dropped as pooling drops it), in
    0.5 and 7.8 ms. With a gradient wanted (the classifier's training) torch's own op runs: its
    backward sends a window's gradient to the first maximum, torch.maximum's would split it on ties.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return F.max_pool2d(x, 2)
        x = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]
        return torch.maximum(torch.maximum(x[..., 0::2, 0::2], x[..., 0::2, 1::2]),
                             torch.maximum(x[..., 1::2, 0::2], x[..., 1::2, 1::2]))


class SmallCNN(nn.Module):
    """conv(16)-pool-conv(32)-pool-fc(feature_size)-fc(n_classes); works on 8x8 digits up to 32x32."""

    def __init__(self, in_shape: tuple[int, ...], n_classes: int, feature_size: int = 128) -> None:
        super().__init__()
        channels, height, width = in_shape
        self.in_shape, self.n_classes, self.num_features = tuple(in_shape), n_classes, feature_size
        self.body = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), MaxPool2x2(),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), MaxPool2x2(),
            nn.Flatten(), nn.Linear(32 * (height // 4) * (width // 4), feature_size), nn.ReLU(),
        )
        self.head = nn.Linear(feature_size, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (B, feature_size): what FID/KID compare."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))  # logits (B, n_classes)


@dataclass
class TrainedClassifier:
    """A classifier with what the metrics need to know about it."""

    model: SmallCNN
    test_accuracy: float
    class_hist: torch.Tensor  # share of each class in the training split (the data's histogram)
    data: str
    fingerprint: str | None = None  # of the test split it was measured on (None: cached before fingerprints)


def fingerprint(test_images: torch.Tensor, test_labels: torch.Tensor) -> str:
    """A short hash of a labelled test split: its shape, 512 images spread over it and every label."""
    h = hashlib.sha1(str(tuple(test_images.shape)).encode())
    h.update(test_images[:: max(1, len(test_images) // 512)].float().contiguous().cpu().numpy().tobytes())
    h.update(test_labels.long().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def cache_path(cache_dir: str | Path, data: str) -> Path:
    """Where the classifier of data set ``data`` is cached."""
    return Path(cache_dir).expanduser() / f"{data}.pt"


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Share of ``images`` whose argmax prediction equals the label."""
    was_training = model.training
    model.eval()
    hits = sum(int((model(images[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]).sum())
               for i in range(0, len(images), batch_size))
    model.train(was_training)
    return hits / max(len(images), 1)


def train_classifier(data: DataSet, steps: int = 500, batch_size: int = 128, lr: float = 2e-3,
                     max_train: int | None = None, seed: int = 0,
                     device: torch.device = torch.device("cpu")) -> TrainedClassifier:
    """Train a SmallCNN for ``steps`` batches on ``data``'s labelled training split; measure it on its test split.

    Counted in steps, not epochs, so the cost is the same for 1,437 digits and 60,000 Fashion-MNIST images.
    Runs inside ``fork_rng``: training a classifier never moves the caller's global RNG.
    """
    train_x, train_y = data.labelled("train")
    test_x, test_y = data.labelled("test")
    gen = torch.Generator().manual_seed(seed)
    if max_train is not None and max_train < len(train_x):
        keep = torch.randperm(len(train_x), generator=gen)[:max_train]
        train_x, train_y = train_x[keep], train_y[keep]
    n_classes = int(max(train_y.max(), test_y.max())) + 1
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = SmallCNN(tuple(train_x.shape[1:]), n_classes).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        train_x, train_y = train_x.to(device), train_y.to(device)
        per_epoch = max(len(train_x) // batch_size, 1)
        for step in range(steps):
            if step % per_epoch == 0:
                perm = torch.randperm(len(train_x), generator=gen).to(device)
            idx = perm[(step % per_epoch) * batch_size:(step % per_epoch + 1) * batch_size]
            loss = F.cross_entropy(model(train_x[idx]), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    model.eval()
    test_acc = accuracy(model, test_x.to(device), test_y.to(device))
    hist = torch.bincount(train_y.cpu(), minlength=n_classes).double()
    return TrainedClassifier(model.cpu(), test_acc, hist / hist.sum(), data.name, fingerprint(test_x, test_y))


def save_classifier(trained: TrainedClassifier, cache_dir: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the classifier (atomically, plain data) and a JSON with its test accuracy beside it."""
    path = cache_path(cache_dir, trained.data)
    model = trained.model
    state = {"state_dict": model.state_dict(), "in_shape": list(model.in_shape), "n_classes": model.n_classes,
             "feature_size": model.num_features, "test_accuracy": trained.test_accuracy,
             "class_hist": trained.class_hist, "data": trained.data, "pixel_range": list(LABELLED_RANGE),
             "test_fingerprint": trained.fingerprint}
    save_checkpoint(path, state)
    info = {"data": trained.data, "test_accuracy": trained.test_accuracy, "n_classes": model.n_classes,
            "feature_size": model.num_features, **(extra or {})}
    path.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return path


def load_classifier(cache_dir: str | Path, data: str) -> TrainedClassifier | None:
    """The cached classifier of ``data`` (weights_only), or None when there is none."""
    path = cache_path(cache_dir, data)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = SmallCNN(tuple(state["in_shape"]), state["n_classes"], state["feature_size"])
        model.load_state_dict(state["state_dict"])
    except Exception as err:  # a half-written or foreign file: say which and how to rebuild it
        raise ResumeError(f"{path} is not a loadable ganlab classifier ({err}); delete it and run "
                          f"python -m ganlab.classifier data={data}") from err
    return TrainedClassifier(model.eval(), float(state["test_accuracy"]), state["class_hist"], state["data"],
                             state.get("test_fingerprint"))


def classifier_for(data: DataSet, settings: ClassifierSettings, policy: Literal["train", "skip", "error"],
                   device: torch.device) -> TrainedClassifier | None:
    """The cached classifier of ``data``; when missing, train (and cache) it, skip, or fail, as ``policy`` says."""
    cached = load_classifier(settings.dir, data.name)
    missing = f"no classifier for {data.name} in {settings.dir}"
    if cached is not None and not measured_on(cached, data):
        missing = (f"the classifier cached for {data.name} in {settings.dir} was measured on another test split "
                   "(other files read under the same name)")
        log.warning("eval: %s%s", missing, "; training one for this data" if policy == "train" else "")
        cached = None
    if cached is not None:
        return cached
    how = f"python -m ganlab.classifier data={data.name} (data.root=... for IDX data sets)"
    if policy == "error":
        raise FeaturesUnavailableError(f"{missing}: train it with {how}, or set eval.if_no_classifier=train|skip")
    if policy == "skip":
        log.warning("eval: %s; fid_clf/kid_clf/coverage skipped (train it: %s)", missing, how)
        return None
    args = {"steps": settings.steps, "batch_size": settings.batch_size, "lr": settings.lr,
            "max_train": settings.max_train, "seed": settings.seed}
    make_folder(Path(settings.dir))  # before the training: an unwritable cache fails at once, in one line
    try:
        log.info("eval: no classifier for %s in %s; training one (%s)", data.name, settings.dir, args)
        trained = train_classifier(data, device=device, **args)
    except DataNotFoundError as err:  # e.g. IDX images without their label files
        log.warning("eval: cannot train a classifier for %s (%s); classifier metrics skipped", data.name, err)
        return None
    path = save_classifier(trained, settings.dir, {"steps": settings.steps, "max_train": settings.max_train})
    log.info("eval: classifier for %s: test accuracy %.4f, cached at %s", data.name, trained.test_accuracy, path)
    return trained


def measured_on(cached: TrainedClassifier, data: DataSet) -> bool:
    """Whether ``cached`` was measured on ``data``'s test split (True when that cannot be told: a cache from
    before fingerprints, a data set whose labels are missing)."""
    if cached.fingerprint is None:
        return True
    try:
        return fingerprint(*data.labelled("test")) == cached.fingerprint
    except DataNotFoundError:
        return True
