"""FID/KID on classifier features, class coverage, and the Inception path (offline error, wiring)."""

from __future__ import annotations

import math

import pytest
import torch

from ganlab.data.images import digits
from ganlab.errors import FeaturesUnavailableError
from ganlab.metrics.classifier import load_classifier
from ganlab.metrics.features import INCEPTION_URL, ClassifierFeatures, InceptionFeatures
from ganlab.metrics.images import FeatureDistances, class_coverage, extract

from conftest import FAST, run_ganlab

DIGITS = digits()


class Precomputed(torch.nn.Module):
    """Identity 'extractor' for torchmetrics: features are computed by the caller."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


@pytest.fixture(scope="module")
def digits_features(classifier_cache):
    return ClassifierFeatures(load_classifier(classifier_cache, "digits").model)


def test_fid_of_a_set_against_itself_is_zero_and_against_noise_large(digits_features):
    torch.manual_seed(0)  # KID draws random subsets
    images, _ = DIGITS.labelled("train")
    distances = FeatureDistances(digits_features, images, kid_subsets=10, kid_subset_size=500)
    itself = distances(images)
    noise = torch.rand(len(images), *images.shape[1:], generator=torch.Generator().manual_seed(0)) * 2 - 1
    against_noise = distances(noise)
    assert abs(itself["fid"]) < 1e-3
    assert abs(itself["kid"]) < 1e-2 * against_noise["kid"]  # unbiased on random subsets: ~0, not exactly
    held_out = distances(DIGITS.labelled("test")[0])  # other real digits: close, not equal
    assert against_noise["fid"] > 100 * max(held_out["fid"], 1e-3) and against_noise["fid"] > 10
    assert against_noise["kid"] > 10 * max(held_out["kid"], 1e-3)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save all extracted features")
def test_fid_and_kid_on_classifier_features_equal_torchmetrics_in_float64(digits_features):
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    images, _ = DIGITS.labelled("train")
    held_out = DIGITS.labelled("test")[0]
    distances = FeatureDistances(digits_features, images, kid_subsets=10, kid_subset_size=300)
    torch.manual_seed(0)
    ours = distances(held_out)
    real, fake = extract(digits_features, images), extract(digits_features, held_out)
    fid = FrechetInceptionDistance(feature=Precomputed(digits_features.num_features))
    fid.update(real, real=True)
    fid.update(fake, real=False)
    kid = KernelInceptionDistance(feature=Precomputed(digits_features.num_features), subsets=10, subset_size=300)
    kid.update(real, real=True)  # float64 features: torchmetrics' kernels in float64
    kid.update(fake, real=False)
    torch.manual_seed(0)  # the same random subsets
    assert ours["kid"] == pytest.approx(float(kid.compute()[0]), rel=1e-4)
    assert ours["fid"] == pytest.approx(float(fid.compute()), rel=1e-9)


def test_class_coverage_known_answers():
    uniform = torch.full((10,), 0.1)
    one_hot_all = torch.eye(10).repeat(20, 1)  # every class equally often, fully confident
    assert class_coverage(one_hot_all, uniform) == {"classes_hit": 10, "class_kl": pytest.approx(0.0, abs=1e-6),
                                                    "max_softmax": 1.0}
    collapsed = torch.zeros(50, 10)
    collapsed[:, 3] = 0.6
    collapsed[:, 4] = 0.4
    out = class_coverage(collapsed, uniform)
    assert out["classes_hit"] == 1 and out["class_kl"] == pytest.approx(math.log(10))
    assert out["max_softmax"] == pytest.approx(0.6)


def test_inception_without_weights_says_how_to_provide_them(tmp_path):
    missing = tmp_path / "weights-inception.pth"
    with pytest.raises(FeaturesUnavailableError) as err:
        InceptionFeatures(str(missing))
    message = str(err.value)
    assert "eval.features=inception needs" in message and "eval.features=classifier" in message
    # one of the two things it needs is named with how to get it (here at least the weights file)
    assert str(missing) in message and INCEPTION_URL in message and "eval.inception_weights=" in message


def test_inception_without_weights_stops_a_run_clearly(tmp_path):
    proc = run_ganlab([*FAST, "trainer.max_steps=2", "eval.features=inception",
                       f"eval.inception_weights={tmp_path / 'none.pth'}", f"hydra.run.dir={tmp_path / 'run'}"],
                      cwd=tmp_path, check=False)
    assert proc.returncode != 0
    assert "ganlab: error:" in proc.stderr and "inception" in proc.stderr and "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def random_inception_weights(tmp_path_factory) -> str:
    """A weights file in torch-fidelity's Inception format, randomly initialised (the real one needs network).

    It checks the wiring (file loading, uint8 RGB input, 2048-d features, fid/kid_inception), not the
    published numbers, which only the real weights give.
    """
    fidelity = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    with pytest.MonkeyPatch.context() as patch:  # build the network without its download
        patch.setattr(fidelity, "load_state_dict_from_url", lambda *args, **kwargs: None)
        patch.setattr(fidelity.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state, *a, **k: None)
        torch.manual_seed(0)
        network = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path_factory.mktemp("inception") / "weights-inception.pth"
    torch.save(network.state_dict(), path)
    return str(path)


def test_inception_features_with_a_weights_file(random_inception_weights):
    features = InceptionFeatures(random_inception_weights)
    gray = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = features(gray)  # 8x8 grayscale digits: repeated to RGB, resized to 299 inside
    assert out.shape == (6, 2048) and torch.isfinite(out).all()
    assert torch.allclose(out, features(gray.expand(-1, 3, -1, -1)))  # grayscale = the same plane in R, G, B
    assert not torch.allclose(out[0], out[1])


def test_inception_fid_and_kid_in_a_run(random_inception_weights, tmp_path):
    from ganlab.train import train

    from conftest import compose_cfg

    result = train(compose_cfg([*FAST, "model.middle_size=16", "trainer.max_steps=2", "eval.every=2",
                                "eval.features=inception", f"eval.inception_weights={random_inception_weights}",
                                "eval.n_samples=24", "eval.batch_size=12", "eval.kid_subsets=3"], run_dir=tmp_path))
    assert math.isfinite(result["eval/fid_inception"]) and result["eval/fid_inception"] > 0
    assert math.isfinite(result["eval/kid_inception"])
    assert "eval/fid_clf" not in result and "eval/classes_hit" not in result  # inception replaces the classifier
