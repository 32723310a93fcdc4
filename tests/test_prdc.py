"""Precision/recall/density/coverage: against the authors' prdc package, known answers, bad k."""


import prdc
import pytest
import torch

from ganlab.build import build_evaluator
from ganlab.errors import ConfigError
from ganlab.metrics.names import lower_is_better
from ganlab.metrics.prdc import PRDC, compute_prdc
from ganlab.train import build_run, train

from conftest import FAST, compose_cfg, jsonl_rows

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
KEYS = ("precision", "recall", "density", "coverage")


def features(n: int, dim: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale + shift


@pytest.mark.parametrize("n_real,n_fake,dim,k", [(100, 100, 8, 5), (200, 150, 16, 3), (64, 300, 4, 1),
                                                 (300, 64, 32, 10), (500, 400, 2, 5)])
def test_matches_the_prdc_package(n_real, n_fake, dim, k):
    # fakes narrower (recall, coverage < 1), a quarter of them far off (precision < 1)
    real, fake = features(n_real, dim, 0), features(n_fake, dim, 1, scale=0.5)
    fake[: n_fake // 4] += 3.0
    expected = prdc.compute_prdc(real.numpy(), fake.numpy(), nearest_k=k)
    ours = compute_prdc(real, fake, k=k, batch_size=37)  # batches that do not divide N or M
    assert set(ours) == set(KEYS)
    for key in KEYS:
        assert abs(ours[key] - float(expected[key])) <= 1e-6, (key, ours[key], expected[key])
    assert 0 < ours["precision"] < 1 and 0 < ours["recall"] < 1 and ours["coverage"] > 0  # not degenerate


@pytest.mark.parametrize("batch_size", [1, 7, 5000])
def test_batching_changes_nothing(batch_size):
    real, fake = features(120, 6, 2), features(90, 6, 3, shift=0.5)
    assert compute_prdc(real, fake, 4, batch_size) == compute_prdc(real, fake, 4, 1024)


def test_float32_features_give_the_float64_answer():
    real, fake = features(150, 8, 4), features(150, 8, 5, shift=0.2)
    assert compute_prdc(real.float(), fake.float()) == compute_prdc(real.float().double(), fake.float().double())


@pytest.mark.parametrize("device", DEVICES)
def test_identical_sets(device):
    """Every ball holds its centre and k - 1 others (the k-th sits on the border): density is exactly 1."""
    real = features(200, 5, 6).to(device)
    out = compute_prdc(real, real.clone(), k=5)
    assert out["precision"] == out["recall"] == out["coverage"] == 1.0
    assert out["density"] == pytest.approx(1.0, abs=1e-12)


def test_disjoint_far_apart_sets_score_zero():
    out = compute_prdc(features(200, 5, 7), features(200, 5, 8, shift=1000.0))
    assert out == {key: 0.0 for key in KEYS}


def test_collapse_onto_a_few_real_points():
    """G reproduces 5 training points (with tiny noise): realistic but not diverse."""
    real = features(500, 4, 9)
    fake = real[:5].repeat(100, 1) + features(500, 4, 10, scale=1e-4)
    out = compute_prdc(real, fake, k=5)
    assert out["precision"] == 1.0  # every fake sits at a real point, inside its ball
    assert out["recall"] <= 5 / 500  # fake balls are ~1e-4 wide: at most the 5 sources are in them
    assert out["coverage"] < 0.1  # only reals whose ball reaches one of the 5 points
    assert out["density"] > 1  # each fake is in the balls of its source's neighbours too


def test_real_radii_are_reused_across_fake_sets():
    real = features(100, 3, 11)
    metric = PRDC(real, k=3)
    radii = metric.real_radii.clone()
    for seed in (12, 13):
        fake = features(80, 3, seed, shift=0.1)
        assert metric(fake) == compute_prdc(real, fake, k=3)
    assert torch.equal(metric.real_radii, radii)


@pytest.mark.parametrize("k", [0, -1, 50, 60, 2.5, True])
def test_bad_k_is_a_one_line_config_error(k):
    with pytest.raises(ConfigError, match=r"prdc k must be an integer in \[1, 49\] for 50 real") as err:
        PRDC(features(50, 3, 14), k=k)
    assert "\n" not in str(err.value)


def test_k_needs_as_many_fake_features():
    metric = PRDC(features(50, 3, 15), k=10)
    with pytest.raises(ConfigError, match=r"\[1, 9\] for 10 fake features, got 10"):
        metric(features(10, 3, 16))


def test_bad_shapes():
    with pytest.raises(ValueError, match="must be"):
        PRDC(torch.zeros(10, 2, 2))
    with pytest.raises(ValueError, match="3 dims, real ones 4"):
        PRDC(features(20, 4, 17))(features(20, 3, 18))


# --- in the evaluation: eval/precision, eval/recall, eval/density, eval/coverage


def test_the_evaluator_reports_prdc_of_the_classifier_features():
    cfg = compose_cfg([*FAST, "eval.n_samples=200", "eval.prdc_k=3"])
    run = build_run(cfg)
    evaluator = build_evaluator(cfg, run.data, run.device)
    values = evaluator(run.generator, run.discriminator, run.latent, 1)
    assert {f"eval/{k}" for k in KEYS} <= set(values)
    # the same numbers as the reference package on the features fid_clf uses
    distances = evaluator.distances["clf"]
    z = run.latent(200, torch.Generator().manual_seed(evaluator.seed))
    run.generator.eval()
    with torch.no_grad():
        fake = distances.features(evaluator.to_unit(run.generator(z)))
    expected = prdc.compute_prdc(distances.real.features.double().numpy(), fake.numpy(), nearest_k=3)
    for key in KEYS:
        assert values[f"eval/{key}"] == pytest.approx(float(expected[key]), abs=1e-6), key


def test_real_images_score_near_one_and_the_metrics_reach_eval_jsonl(tmp_path):
    cfg = compose_cfg([*FAST, "eval.n_samples=300"])
    run = build_run(cfg)
    evaluator = build_evaluator(cfg, run.data, run.device)
    real = evaluator.distances["clf"].real.features
    values = evaluator.prdc(real[torch.randperm(len(real), generator=torch.Generator().manual_seed(0))])
    assert values["precision"] == values["recall"] == values["coverage"] == 1.0  # a set against itself
    train(compose_cfg([*FAST, "model.middle_size=16", "trainer.max_steps=2", "eval.n_samples=64"], run_dir=tmp_path))
    [row] = jsonl_rows(tmp_path / "eval.jsonl")
    assert all(0 <= row[f"eval/{k}"] for k in KEYS) and row["eval/precision"] <= 1 and row["eval/coverage"] <= 1


def test_which_side_is_better():
    assert all(lower_is_better(f"eval/{k}") is False for k in ("precision", "recall", "coverage", "cond_accuracy"))
    assert lower_is_better("eval/density") is None  # about 1 when matched; above 1 is not better
    assert lower_is_better("eval_g/fid_clf") is True and lower_is_better("eval_g_ema/recall") is False


def test_bad_k_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"eval.prdc_k=0: must be an integer >= 1"):
        build_run(compose_cfg([*FAST, "eval.prdc_k=0"]))
