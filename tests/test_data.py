"""Data: IDX files in every layout torchvision or Debian uses, the embedded digits, batching."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from ganlab.data import images as images_module
from ganlab.data.batches import ShuffledBatches
from ganlab.data.idx import idx as idx_set
from ganlab.data.idx import read_idx_images
from ganlab.data.images import digits as digits_set
from ganlab.errors import DataNotFoundError

from conftest import block_download, write_idx_images


def load_idx(*args, **kwargs):
    return idx_set(*args, **kwargs).images


@pytest.mark.parametrize("layout", ["", "raw", "MNIST/raw"])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_layouts(tmp_path, layout, gz):
    images = np.arange(3 * 28 * 28, dtype=np.uint32).reshape(3, 28, 28) % 256
    folder = tmp_path / layout if layout else tmp_path
    write_idx_images(folder / ("train-images-idx3-ubyte" + (".gz" if gz else "")), images, gz=gz)
    loaded = load_idx("mnist", str(tmp_path), split="train", pixel_range=(0.0, 1.0))
    assert loaded.shape == (3, 1, 28, 28)
    assert torch.allclose(loaded[:, 0] * 255, torch.from_numpy(images.astype(np.float32)))


def test_pixel_ranges_and_splits(tiny_mnist):
    tanh = load_idx("mnist", str(tiny_mnist), pixel_range=(-1.0, 1.0))
    assert tanh.min() == -1 and tanh.max() == 1 and len(tanh) == 64
    assert len(load_idx("mnist", str(tiny_mnist), split="test")) == 16
    assert len(load_idx("mnist", str(tiny_mnist), split="all")) == 80


def test_missing_files_without_download(tmp_path):
    with pytest.raises(DataNotFoundError, match="apt-get install dataset-fashion-mnist") as err:
        load_idx("fashion_mnist", str(tmp_path), download=False)
    assert str(tmp_path / "FashionMNIST" / "raw") in str(err.value)


def test_download_failure_is_clear(tmp_path, monkeypatch):
    block_download(monkeypatch, "MNIST", "Error downloading train-images-idx3-ubyte.gz: no network")
    with pytest.raises(DataNotFoundError, match="download into .* failed .*no network"):
        load_idx("mnist", str(tmp_path), download=True)


def test_not_an_idx_file(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00" * 32)
    with pytest.raises(DataNotFoundError, match="not an IDX image file"):
        read_idx_images(tmp_path / "train-images-idx3-ubyte")


def test_real_fashion_mnist_from_debian(fashion_root):
    train = load_idx("fashion_mnist", str(fashion_root), split="train", pixel_range=(0.0, 1.0))
    assert train.shape == (60000, 1, 28, 28) and train.dtype == torch.float32
    assert train.min() == 0 and train.max() == 1 and 0.2 < train.mean() < 0.4  # FMNIST's mean is ~0.286
    assert len(load_idx("fashion_mnist", str(fashion_root), split="test")) == 10000
    data = idx_set("fashion_mnist", str(fashion_root))
    assert data.labels.shape == (60000,) and data.n_classes == 10 and data.labelled("test")[1].shape == (10000,)


def test_digits_embedded_with_labels():
    data = digits_set(pixel_range=(-1.0, 1.0))
    assert data.images.shape == (1797, 1, 8, 8) and data.images.min() == -1 and data.images.max() == 1
    assert data.labels.shape == (1797,) and set(data.labels.tolist()) == set(range(10)) and data.n_classes == 10
    train_x, train_y = data.labelled("train")
    test_x, test_y = data.labelled("test")
    assert len(train_x) + len(test_x) == 1797 and len(test_x) == int(1797 * 0.2) and train_x.min() == -1


def test_digits_read_without_importing_sklearn_are_load_digits(monkeypatch, tmp_path):
    """The file read directly (no sklearn import, in a fresh process) and load_digits' fallback agree exactly."""
    code = ("import sys, torch; from ganlab.data.images import _sklearn_digits; images, labels = _sklearn_digits(); "
            "torch.save((images, labels, 'sklearn' in sys.modules), sys.argv[1])")
    out = tmp_path / "digits.pt"
    subprocess.run([sys.executable, "-c", code, str(out)], check=True)
    images, labels, imported = torch.load(out, weights_only=True)
    assert not imported  # the point: ~1.8 s of start-up saved
    from sklearn.datasets import load_digits

    bunch = load_digits()
    assert torch.equal(images, torch.from_numpy(bunch.images.astype("float32") / 16).unsqueeze(1))
    assert torch.equal(labels, torch.from_numpy(bunch.target.astype("int64")))
    monkeypatch.setattr(images_module, "_sklearn_digits_table", lambda: None)  # the file moved: load_digits
    fallback_images, fallback_labels = images_module._sklearn_digits()
    assert torch.equal(fallback_images, images) and torch.equal(fallback_labels, labels)


def test_shuffled_batches_depend_only_on_seed_and_index():
    images = torch.arange(10.0).view(10, 1, 1, 1)
    a, b = ShuffledBatches(images, 3, seed=1), ShuffledBatches(images, 3, seed=1)
    assert a.per_epoch == 3  # the incomplete last batch is dropped
    epoch0 = torch.cat([a.get(i) for i in range(3)]).flatten()
    assert len(set(epoch0.tolist())) == 9  # no repeats within an epoch
    assert torch.equal(a.get(4), b.get(4)) and torch.equal(b.get(1), a.get(1))  # order of access is irrelevant
    assert not torch.equal(torch.cat([a.get(i) for i in range(3, 6)]).flatten(), epoch0)  # reshuffled per epoch
    assert not torch.equal(ShuffledBatches(images, 3, seed=2).get(0), a.get(0))
    assert ShuffledBatches(images, 50, seed=0).batch_size == 10  # capped at the data set size


def test_max_train_is_a_fixed_subset_with_its_labels_and_evaluation_sees_the_whole_split(tiny_labelled_mnist,
                                                                                           caplog):
    from ganlab.train import build_run

    from conftest import FAST, compose_cfg

    full = idx_set("mnist", str(tiny_labelled_mnist))
    small = idx_set("mnist", str(tiny_labelled_mnist), max_train=10)
    assert len(small.images) == 10 and len(small.labels) == 10 and small.full_images.shape == full.images.shape
    for image, label in zip(small.images, small.labels):  # each kept image keeps its own label
        same = [k for k in range(len(full.images)) if torch.equal(full.images[k], image)]
        assert same and all(full.labels[k] == label for k in same)
    again = idx_set("mnist", str(tiny_labelled_mnist), max_train=10)
    assert torch.equal(again.images, small.images)  # the same subset every time, whatever the run's seed
    assert torch.equal(small.reference(64, 0), full.reference(64, 0))  # evaluation: the whole training split
    assert torch.equal(small.reference_labels(64, 0), full.reference_labels(64, 0))
    with caplog.at_level("WARNING"):
        assert idx_set("mnist", str(tiny_labelled_mnist), max_train=64).full_images is None  # N: all, quietly
        assert not caplog.text
        assert idx_set("mnist", str(tiny_labelled_mnist), max_train=1000).full_images is None  # > N: all, said
    assert "data.max_train=1000, but mnist has 64 training images: training on all of them" in caplog.text
    run = build_run(compose_cfg([*FAST, "data=mnist", f"data.root={tiny_labelled_mnist}", "data.max_train=20",
                                 "data.batch_size=8"]))
    assert run.batches.per_epoch == 20 // 8
    assert len(digits_set(max_train=100).images) == 100


@pytest.mark.parametrize("std", [1.0, 1, 0.1])
def test_latents_are_the_seeds_standard_normals_times_std_bit_for_bit(std):
    """N(0, std²) z: the generator's standard normals scaled by std (at std 1 the product is skipped: x * 1.0 is x)."""
    from ganlab.data.batches import LatentSampler

    latent = LatentSampler(5, "normal", std, torch.device("cpu"), seed=3)
    stream = torch.Generator().manual_seed(3)
    for _ in range(2):  # draw after draw from the sampler's own stream
        assert torch.equal(latent(7), torch.randn(7, 5, generator=stream) * float(std))
    uniform = LatentSampler(5, "uniform", std, torch.device("cpu"), seed=3)(1000)
    assert uniform.abs().max() <= std * 3**0.5 and abs(float(uniform.std()) - std) < 0.05 * std
