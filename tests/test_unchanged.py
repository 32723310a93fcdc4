"""With EMA, DiffAugment, conditioning and packing off (their defaults), a run is bit for bit what main
trained before them.

The oracle, tests/fixtures/pre_issue12/runs.pt (runs_<cpu kernels>.pt where recorded), was written by main
at 8c4d90a (before the merge) with tests/fixtures/pre_issue12/make.py: the final G and D weights, every
logged loss row and every evaluation row of five short runs (MLP and DCGAN, bce, hinge with n_critic 2,
WGAN-GP, R1, the blog).
An EMA changes nothing in training either: the trained G and D are the same, and the raw G's
evaluation, logged as eval_g/*, is the old eval/*.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from ganlab.train import train

from conftest import REPO, assert_same_weights, compose_cfg, jsonl_rows, oracle


def oracle_file() -> Path:
    """This CPU's oracle (conftest.cpu_kernels: bit-equality holds only between runs on the same kernels).
    runs.pt was recorded on an AMD AVX2 machine, runs_AVX512_AuthenticAMD.pt on an AMD AVX512 one and
    runs_AVX512_GenuineIntel.pt on an Intel AVX512 one (2026-12-02), all by make.py from 8c4d90a's code."""
    return oracle(REPO / "tests" / "fixtures" / "pre_issue12", "runs", ".pt")


FIXTURE = oracle_file()
ORACLE = torch.load(FIXTURE, weights_only=True)
# the options, spelled out at their defaults: what "off" means
OFF = ["augment=none", "trainer.g_ema=null", "model.conditional=none", "model.pack=1", "data.max_train=null"]
NEW_EVAL_KEYS = {"eval/precision", "eval/recall", "eval/density", "eval/coverage"}


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("classifiers")
    shutil.copy(REPO / "tests" / "fixtures" / "pre_layout" / "digits_classifier.pt", folder / "digits.pt")
    return folder


def train_like_the_oracle(name: str, extra: list[str], run_dir: Path, classifiers: Path) -> tuple[dict, list, list]:
    old = ORACLE["runs"][name]
    train(compose_cfg([*ORACLE["common"], *old["overrides"], *extra, f"eval.classifier.dir={classifiers}"],
                      run_dir=run_dir))
    state = torch.load(run_dir / "checkpoints" / "step_00000004.pt", weights_only=True)
    rows = [{k: v for k, v in json.loads(line).items() if k != "images_per_s"}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = jsonl_rows(run_dir / "eval.jsonl")
    return state, rows, evals


@pytest.mark.parametrize("name", sorted(ORACLE["runs"]))
def test_options_off_train_exactly_what_main_trained(name, tmp_path, classifiers):
    old = ORACLE["runs"][name]
    state, rows, evals = train_like_the_oracle(name, OFF, tmp_path, classifiers)
    assert_same_weights(state, old)
    assert rows == json.loads(old["metrics"])  # every loss, D output and grad norm, bit for bit
    assert "generator_ema" not in state and "n_classes" not in state and set(state["rng"]) == {"torch", "latent"}
    for new, was in zip(evals, json.loads(old["evals"]), strict=True):
        assert set(new) - set(was) == NEW_EVAL_KEYS  # only the PRDC metrics are new
        assert {k: new[k] for k in was} == was  # FID, KID, coverage, D's outputs: the same numbers


@pytest.mark.parametrize("name", ["mlp_bce", "dcgan_hinge_ncritic2"])
def test_an_ema_changes_nothing_in_training_and_logs_the_old_g_as_eval_g(name, tmp_path, classifiers):
    old = ORACLE["runs"][name]
    state, rows, evals = train_like_the_oracle(name, ["trainer.g_ema=0.9"], tmp_path, classifiers)
    assert_same_weights(state, old)
    assert rows == json.loads(old["metrics"])
    for new, was in zip(evals, json.loads(old["evals"]), strict=True):
        raw_g = {k.replace("eval_g/", "eval/"): v for k, v in new.items() if k.startswith("eval_g/")}
        assert {k: raw_g[k] for k in was if k != "step"} == {k: v for k, v in was.items() if k != "step"}
        assert new["eval/fid_clf"] != was["eval/fid_clf"]  # eval/* is the EMA G's now
    assert not torch.equal(state["generator_ema"]["net.0.weight"], state["generator"]["net.0.weight"])
