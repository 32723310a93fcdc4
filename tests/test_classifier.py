"""The evaluation classifier: trained by `python -m ganlab.classifier`, cached as plain data, with its accuracy."""

from __future__ import annotations

import json

import pytest
import torch

from ganlab.data.idx import idx
from ganlab.data.images import digits
from ganlab.errors import ResumeError
from ganlab.metrics.classifier import accuracy, cache_path, load_classifier, train_classifier

from conftest import run_ganlab

DIGITS = digits()


@pytest.mark.slow  # ~30 s on 2 free cores, more on a shared machine
def test_classifier_reaches_recorded_accuracy_on_real_fashion_mnist(fashion_root, tmp_path):
    proc = run_ganlab(["data=fashion_mnist", f"data.root={fashion_root}", f"eval.classifier.dir={tmp_path}",
                       "eval.classifier.steps=200", "eval.classifier.max_train=20000", "hardware=cpu"],
                      cwd=tmp_path, module="ganlab.classifier")
    info = json.loads((tmp_path / "fashion_mnist.json").read_text())
    assert info["test_accuracy"] > 0.80, info  # measured on the 10,000 test images
    assert info["steps"] == 200 and info["max_train"] == 20000 and f"{info['test_accuracy']:.4f}" in proc.stdout
    state = torch.load(tmp_path / "fashion_mnist.pt", weights_only=True)  # plain data
    assert state["test_accuracy"] == info["test_accuracy"] and state["n_classes"] == 10
    clf = load_classifier(tmp_path, "fashion_mnist")
    test_x, test_y = idx("fashion_mnist", str(fashion_root)).labelled("test")
    assert accuracy(clf.model, test_x, test_y) == pytest.approx(info["test_accuracy"])


def test_digits_classifier_through_the_command_with_every_option(tmp_path):
    run_ganlab([f"eval.classifier.dir={tmp_path}", "eval.classifier.steps=80", "eval.classifier.batch_size=64",
                "eval.classifier.lr=3e-3", "eval.classifier.max_train=1000", "eval.classifier.seed=1"],
               cwd=tmp_path, module="ganlab.classifier")
    info = json.loads((tmp_path / "digits.json").read_text())
    assert info["data"] == "digits" and info["test_accuracy"] > 0.6 and info["steps"] == 80
    clf = load_classifier(tmp_path, "digits")
    assert clf.class_hist.sum().item() == pytest.approx(1.0) and len(clf.class_hist) == 10


def test_training_options_take_effect():
    base = dict(steps=20, batch_size=32)
    a, b = train_classifier(DIGITS, seed=0, **base), train_classifier(DIGITS, seed=0, **base)
    c = train_classifier(DIGITS, seed=1, **base)
    frozen = train_classifier(DIGITS, seed=0, lr=0.0, **base)
    w = lambda t: t.model.head.weight  # noqa: E731
    assert torch.equal(w(a), w(b)) and not torch.equal(w(a), w(c))  # seeded, deterministic
    assert not torch.equal(w(a), w(frozen)) and frozen.test_accuracy < a.test_accuracy
    small = train_classifier(DIGITS, max_train=100, **base)
    assert small.class_hist.sum().item() == pytest.approx(1.0)


def test_training_a_classifier_leaves_the_global_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    train_classifier(DIGITS, steps=3)
    assert torch.equal(torch.rand(3), expected)


def test_a_broken_cache_file_is_a_clear_error(tmp_path):
    cache_path(tmp_path, "digits").write_bytes(b"not a checkpoint")
    with pytest.raises(ResumeError, match="python -m ganlab.classifier data=digits"):
        load_classifier(tmp_path, "digits")
    assert load_classifier(tmp_path, "mnist") is None


def test_missing_labels_and_bad_overrides_are_clear_errors(tiny_mnist, tmp_path):
    proc = run_ganlab(["data=mnist", f"data.root={tiny_mnist}", f"eval.classifier.dir={tmp_path}"],
                      cwd=tmp_path, module="ganlab.classifier", check=False)
    assert proc.returncode == 2 and "ganlab.classifier: error:" in proc.stderr and "labels" in proc.stderr
    proc = run_ganlab(["data=nonexistent"], cwd=tmp_path, module="ganlab.classifier", check=False)
    assert proc.returncode == 2 and "ganlab.classifier: error:" in proc.stderr


def test_data_without_labels_fails_before_the_banner(tmp_path, capsys):
    from ganlab.classifier import main

    assert main(["data=ring8", f"eval.classifier.dir={tmp_path}"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "ganlab.classifier: error: ring8 is 2D point data: no labelled images (2D runs use the " \
                           "mode metrics)\n"
    assert captured.out == ""  # no "training the ring8 classifier" line above the error


def test_an_unwritable_cache_fails_before_any_training(tmp_path, capsys):
    from ganlab.classifier import main

    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main([f"eval.classifier.dir={blocker / 'clf'}"]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"ganlab.classifier: error: cannot make the folder {blocker / 'clf'}: Not a directory\n"
    assert "training" not in captured.out


def test_classifiers_are_cached_under_the_data_sets_name(tiny_mnist):
    assert DIGITS.name == "digits" and idx("mnist", str(tiny_mnist)).name == "mnist"


@pytest.mark.parametrize("shape", [(7, 16, 8, 8), (3, 4, 7, 9), (2, 32, 14, 14), (1, 1, 2, 3)])
def test_the_classifiers_pooling_is_max_pool2d_with_and_without_gradients(shape):
    """Forward values equal torch's max_pool2d (NaN and odd sides included); with a gradient wanted it is
    torch's op itself (a window's gradient to its first maximum, ties from ReLU zeros included)."""
    from ganlab.metrics.classifier import MaxPool2x2

    x = torch.relu(torch.randn(shape, generator=torch.Generator().manual_seed(0)))  # zeros: ties
    x[0, 0, 0, 0] = float("nan")
    with torch.no_grad():
        assert torch.equal(MaxPool2x2()(x).isnan(), torch.nn.functional.max_pool2d(x, 2).isnan())
        same = ~torch.nn.functional.max_pool2d(x, 2).isnan()
        assert torch.equal(MaxPool2x2()(x)[same], torch.nn.functional.max_pool2d(x, 2)[same])
    x = x.nan_to_num().requires_grad_()
    grad = torch.randn(torch.nn.functional.max_pool2d(x, 2).shape)
    (ours,) = torch.autograd.grad(MaxPool2x2()(x), x, grad)
    (torchs,) = torch.autograd.grad(torch.nn.functional.max_pool2d(x, 2), x, grad)
    assert torch.equal(ours, torchs)


def test_a_cache_measured_on_other_files_under_the_same_name_is_not_used(tiny_labelled_mnist, tmp_path, caplog):
    # KMNIST or Fashion-MNIST read as data=mnist from another folder were scored with MNIST's cached classifier
    import shutil

    from ganlab.data.idx import read_idx_images
    from ganlab.errors import FeaturesUnavailableError
    from ganlab.metrics.classifier import ClassifierSettings, classifier_for

    from conftest import write_idx_images

    other = tmp_path / "other"
    shutil.copytree(tiny_labelled_mnist, other)
    test_images = read_idx_images(other / "t10k-images-idx3-ubyte").numpy()
    write_idx_images(other / "t10k-images-idx3-ubyte", 255 - test_images, gz=False)  # the same labels, other images
    settings = ClassifierSettings(dir=str(tmp_path / "clf"), steps=2, batch_size=16, lr=1e-3, max_train=None, seed=0)
    cpu = torch.device("cpu")
    first = classifier_for(idx("mnist", str(tiny_labelled_mnist)), settings, "train", cpu)
    assert first.fingerprint is not None and load_classifier(settings.dir, "mnist").fingerprint == first.fingerprint
    again = classifier_for(idx("mnist", str(tiny_labelled_mnist)), settings, "error", cpu)  # the same files: cached
    assert again.fingerprint == first.fingerprint
    with pytest.raises(FeaturesUnavailableError, match="the classifier cached for mnist in .* was measured on "
                                                       "another test split"):
        classifier_for(idx("mnist", str(other)), settings, "error", cpu)
    assert classifier_for(idx("mnist", str(other)), settings, "skip", cpu) is None
    with caplog.at_level("WARNING"):
        second = classifier_for(idx("mnist", str(other)), settings, "train", cpu)
    assert "measured on another test split (other files read under the same name); training one" in caplog.text
    assert second.fingerprint not in (None, first.fingerprint)
    assert load_classifier(settings.dir, "mnist").fingerprint == second.fingerprint  # the cache now fits these files
