"""Evaluation during training: same weights with and without it, eval.jsonl + summary best values, policies, 2D."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ganlab.build import build_evaluator
from ganlab.data.batches import LatentSampler
from ganlab.data.toy2d import GaussianMixture2D
from ganlab.errors import ConfigError, FeaturesUnavailableError
from ganlab.metrics.evaluator import Evaluator
from ganlab.train import train

from conftest import FAST, compose_cfg, jsonl_rows, logged_steps, run_ganlab
from wandb_reader import find_runs, read_run

BASE = [*FAST, "model.middle_size=32", "trainer.log_every=1", "eval.n_samples=128", "eval.kid_subsets=5"]


def final_weights(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoints" / f"step_{step:08d}.pt", weights_only=True)
    return {**{f"G.{k}": v for k, v in state["generator"].items()},
            **{f"D.{k}": v for k, v in state["discriminator"].items()}}


@pytest.mark.parametrize("extra", [[], ["model.d_output_batchnorm=true", "loss=mse", "trainer.n_critic=2"]])
def test_evaluation_does_not_perturb_training(tmp_path, extra):
    with_eval, without = tmp_path / "with", tmp_path / "without"
    train(compose_cfg([*BASE, *extra, "trainer.max_steps=6", "eval.every=2"], run_dir=with_eval))
    train(compose_cfg([*BASE, *extra, "trainer.max_steps=6", "eval.every=0"], run_dir=without))
    a, b = final_weights(with_eval, 6), final_weights(without, 6)
    for key in a:
        assert torch.equal(a[key], b[key]), key  # bit-identical (BatchNorm running stats included)
    assert jsonl_rows(with_eval / "metrics.jsonl") == [
        {**r, "images_per_s": rw["images_per_s"]}
        for r, rw in zip(jsonl_rows(without / "metrics.jsonl"), jsonl_rows(with_eval / "metrics.jsonl"))]
    assert logged_steps(with_eval / "eval.jsonl") == [2, 4, 6]
    assert not (without / "eval.jsonl").exists()
    assert not any(k.startswith("eval/") for k in json.loads((without / "summary.json").read_text()))


def test_eval_rows_and_summary_hold_final_and_best_with_its_step(tmp_path):
    result = train(compose_cfg([*BASE, "trainer.max_steps=9", "eval.every=3"], run_dir=tmp_path))
    evals = jsonl_rows(tmp_path / "eval.jsonl")
    assert [r["step"] for r in evals] == [3, 6, 9]
    for key in ("eval/fid_clf", "eval/kid_clf", "eval/classes_hit", "eval/class_kl", "eval/max_softmax",
                "eval/d_real", "eval/d_fake"):
        assert all(math.isfinite(r[key]) for r in evals), key
    assert all(0 <= r["eval/d_real"] <= 1 and 1 <= r["eval/classes_hit"] <= 10 for r in evals)
    summary = json.loads((tmp_path / "summary.json").read_text())
    best = min(evals, key=lambda r: r["eval/fid_clf"])
    assert summary["eval/fid_clf"] == evals[-1]["eval/fid_clf"] == result["eval/fid_clf"]  # final
    assert summary["eval/fid_clf_best"] == best["eval/fid_clf"] and summary["eval/fid_clf_best_step"] == best["step"]
    most = max(evals, key=lambda r: r["eval/classes_hit"])
    assert summary["eval/classes_hit_best"] == most["eval/classes_hit"]  # higher is better
    assert "eval/d_real_best" not in summary  # no better side


def test_best_values_survive_a_resume(tmp_path):
    args = [*BASE, "trainer.max_steps=6", "eval.every=2", "trainer.ckpt_every=2"]
    straight = train(compose_cfg(args, run_dir=tmp_path / "straight"))
    evals = jsonl_rows(tmp_path / "straight" / "eval.jsonl")
    ckpt = torch.load(tmp_path / "straight" / "checkpoints" / "step_00000004.pt", weights_only=True)
    first_half = [r for r in evals if r["step"] <= 4]
    best = min(first_half, key=lambda r: r["eval/fid_clf"])
    assert ckpt["eval"]["best"]["fid_clf"] == [best["eval/fid_clf"], best["step"]]  # the checkpoint carries it
    half = tmp_path / "straight/checkpoints/step_00000004.pt"
    resumed = train(compose_cfg([*args, f"resume={half}"], run_dir=tmp_path / "resumed"))
    assert {k: v for k, v in resumed.items() if k.endswith(("_best", "_best_step"))} == \
        {k: v for k, v in straight.items() if k.endswith(("_best", "_best_step"))}
    # a best reached only before the resume (doctored lower than anything the run reaches) is kept
    ckpt["eval"]["best"]["fid_clf"] = [-1.0, 3]
    torch.save(ckpt, tmp_path / "doctored.pt")
    kept = train(compose_cfg([*args, f"resume={tmp_path / 'doctored.pt'}"], run_dir=tmp_path / "kept"))
    assert (kept["eval/fid_clf_best"], kept["eval/fid_clf_best_step"]) == (-1.0, 3)
    assert kept["eval/fid_clf"] == straight["eval/fid_clf"]  # the final value is this run's own


def test_eval_goes_to_wandb_history_and_summary(tmp_path):
    run_dir = tmp_path / "run"
    run_ganlab(["model.middle_size=32", "trainer.max_steps=4", "trainer.log_every=1", "eval.every=2",
                "eval.n_samples=64", "trainer.progress=false", "logger.wandb.mode=offline", f"hydra.run.dir={run_dir}"],
               cwd=tmp_path)
    [wandb_file] = find_runs(run_dir)
    run = read_run(wandb_file)
    assert [h["_step"] for h in run.history if "eval/fid_clf" in h] == [2, 4]
    assert [h["_step"] for h in run.history if "d_loss" in h] == [1, 2, 3, 4]
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("eval/fid_clf", "eval/fid_clf_best", "eval/fid_clf_best_step"):
        assert run.summary[key] == summary[key], key


def test_no_classifier_policies(tmp_path):
    empty = tmp_path / "empty_cache"
    skip = train(compose_cfg([*BASE, "trainer.max_steps=2", "eval.every=2", "eval.if_no_classifier=skip",
                              f"eval.classifier.dir={empty}"], run_dir=tmp_path / "skip"))
    assert "eval/d_real" in skip and "eval/fid_clf" not in skip and not empty.exists()
    with pytest.raises(FeaturesUnavailableError,
                       match="no classifier for digits.*python -m ganlab.classifier data=digits"):
        train(compose_cfg([*BASE, "trainer.max_steps=2", "eval.if_no_classifier=error",
                           f"eval.classifier.dir={empty}"], run_dir=tmp_path / "error"))
    trained = train(compose_cfg([*BASE, "trainer.max_steps=2", "eval.if_no_classifier=train",
                                 "eval.classifier.steps=30", f"eval.classifier.dir={empty}"],
                                run_dir=tmp_path / "train"))
    assert "eval/fid_clf" in trained and (empty / "digits.pt").is_file()
    assert json.loads((empty / "digits.json").read_text())["steps"] == 30


def test_unlabelled_data_skips_classifier_metrics_and_trains(tiny_mnist, tmp_path):
    result = train(compose_cfg([*BASE, "data=mnist", f"data.root={tiny_mnist}", "data.batch_size=16",
                                "trainer.max_steps=2", "eval.n_samples=32", f"eval.classifier.dir={tmp_path / 'c'}"],
                               run_dir=tmp_path / "run"))
    assert "eval/d_fake" in result and "eval/fid_clf" not in result


def test_features_none_and_bad_values(tmp_path):
    result = train(compose_cfg([*BASE, "trainer.max_steps=2", "eval.features=none"], run_dir=tmp_path / "none"))
    assert "eval/d_real" in result and not any(k.startswith("eval/fid") for k in result)
    with pytest.raises(ConfigError, match="eval.features"):
        train(compose_cfg([*BASE, "trainer.max_steps=2", "eval.features=fancy"], run_dir=tmp_path / "bad"))
    with pytest.raises(ConfigError, match="eval.n_samples=1: must be an integer >= 2"):
        train(compose_cfg([*BASE, "trainer.max_steps=2", "eval.n_samples=1"], run_dir=tmp_path / "small"))


def image_evaluator(overrides: list[str]) -> tuple[Evaluator, object]:
    cfg = compose_cfg([*BASE, *overrides])
    from ganlab.train import build_run

    run = build_run(cfg)
    return build_evaluator(cfg, run.data, run.device), run


def test_batch_size_seed_and_kid_subsets_options():
    a, run = image_evaluator(["eval.batch_size=500"])
    b, _ = image_evaluator(["eval.batch_size=7"])
    c, _ = image_evaluator(["eval.seed=3", "eval.kid_subsets=2"])
    G, D = run.generator, run.discriminator
    va, vb = a(G, D, run.latent, 1), b(G, D, run.latent, 1)
    assert va.keys() == vb.keys()
    for key in va:  # batching changes nothing but float summation order
        assert va[key] == pytest.approx(vb[key], rel=1e-4, abs=1e-6), key
    assert c.distances["clf"].kid_subsets == 2 and a.distances["clf"].kid_subsets == 5
    assert not torch.equal(a.real, c.real)  # another seed: another real reference subset and z


def ring8(std: float = 0.02) -> GaussianMixture2D:
    """ring8 on the unit circle."""
    angles = torch.arange(8) * (2 * math.pi / 8)
    modes = torch.stack([angles.cos(), angles.sin()], dim=1)
    return GaussianMixture2D("ring8", modes, std)


class OneModeG(nn.Module):
    """A collapsed G: every z goes to (1, 0), ring8's mode 0."""

    z_size = 2

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tensor([1.0, 0.0]).expand(len(z), 2) + 0.001 * z


class ConstantD(nn.Module):
    """D(x) = ½ everywhere: the blog's optimum when p_g = p_data."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(x))


def test_2d_data_gets_the_benchmark_metrics_and_the_theory():
    evaluator = build_evaluator(compose_cfg(["eval.n_samples=400"]), ring8(), torch.device("cpu"))
    latent = LatentSampler(2, "normal", 1.0, torch.device("cpu"), 0)
    out = evaluator(OneModeG(), ConstantD(), latent, 10)
    assert out["eval/modes_covered"] == 1 and out["eval/hq_percent"] == 100.0
    assert out["eval/mode_reverse_kl"] == pytest.approx(math.log(8))
    assert out["eval/d_real"] == out["eval/d_fake"] == 0.5
    assert out["eval/jsd_hist"] > 0.4 and "eval/fid_clf" not in out
    assert evaluator.summary()["eval/modes_covered_best_step"] == 10


class PlainPoints(GaussianMixture2D):
    """2D points with no modes: nothing to measure coverage against."""

    def __init__(self) -> None:
        super().__init__("plain", torch.zeros(1, 2), 1.0)
        self.modes = None


def test_2d_data_without_modes_is_a_clear_error():
    with pytest.raises(FeaturesUnavailableError, match=r"exposes no modes"):
        build_evaluator(compose_cfg([]), PlainPoints(), torch.device("cpu"))


@pytest.mark.parametrize("data", ["digits", "ring8"])
def test_the_reference_set_depends_on_the_data_and_eval_seed_alone(data, tmp_path):
    """Two runs with another seed and batch size are scored against the same real samples (issue 14)."""
    from ganlab.train import build_run

    def evaluator_of(*overrides: str) -> tuple[Evaluator, object]:
        cfg = compose_cfg([f"data={data}", *BASE, "eval.n_samples=300", *overrides])
        run = build_run(cfg)  # the real training path: validate, seed, build data on its device, batches
        return build_evaluator(cfg, run.data, run.device), run

    first, run = evaluator_of("seed=0", "data.batch_size=32")
    second, _ = evaluator_of("seed=7", "data.batch_size=100")
    assert first.real.shape[0] == 300 and torch.equal(first.real, second.real)
    generator, discriminator = run.generator, run.discriminator  # one fixed G, scored by both runs' evaluators
    assert first(generator, discriminator, run.latent, 1) == second(generator, discriminator, run.latent, 1)
    other, _ = evaluator_of("seed=0", "data.batch_size=32", "eval.seed=1")
    assert not torch.equal(first.real, other.real)  # eval.seed picks it
