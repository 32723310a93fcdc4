"""Run directories and checkpoints written before the 2026-12 package layout still work.

tests/fixtures/pre_layout/ was written by main at 374bd66 (the flat layout): three tiny runs (digits MLP,
ring8 MLP, digits DCGAN) with their .hydra/, metrics, evaluations and checkpoints, the samples that
commit's `ganlab.sample` exported from them (`samples16.npy`; `samples16_<cpu kernels>.npy` where the
same code exports other bits on another CPU's kernels, see conftest.cpu_kernels), the metrics its `ganlab.eval` gave
(`eval_step4.json`), and the digits classifier those metrics used.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from ganlab.checkpoint import load_checkpoint
from ganlab.from_checkpoint import LEGACY_TARGETS, checkpoint_config

from conftest import REPO, logged_steps, oracle, run_ganlab

FIXTURES = REPO / "tests" / "fixtures" / "pre_layout"
RUNS = {"digits_mlp": 4, "ring8_mlp": 4, "digits_dcgan": 2}


def checkpoint(run: str) -> Path:
    return FIXTURES / run / "checkpoints" / f"step_{RUNS[run]:08d}.pt"


def test_the_fixture_really_is_the_old_layout():
    for run in RUNS:
        targets = json.dumps(load_checkpoint(checkpoint(run))["config"])
        assert any(old in targets for old in LEGACY_TARGETS), run


@pytest.mark.parametrize("run", sorted(RUNS))
def test_sample_exports_exactly_what_the_old_code_exported(run, tmp_path):
    out = tmp_path / "samples.npy"
    run_ganlab([str(checkpoint(run)), "--n", "16", "--out", str(out)], cwd=tmp_path, module="ganlab.sample")
    # the old export on this CPU's kernels (samples16_<kernels>.npy, also by 374bd66's code, where they round
    # differently from the machine the fixture was written on: ring8 on an Intel AVX512 CPU)
    assert np.array_equal(np.load(out), np.load(oracle(FIXTURES / run, "samples16", ".npy")))


def old_classifiers(tmp_path: Path) -> Path:
    """A classifier cache holding the digits classifier the fixture runs were evaluated with."""
    classifiers = tmp_path / "classifiers"
    classifiers.mkdir(exist_ok=True)
    shutil.copy(FIXTURES / "digits_classifier.pt", classifiers / "digits.pt")
    return classifiers


def test_eval_of_an_old_checkpoint_gives_the_old_numbers(tmp_path):
    classifiers = old_classifiers(tmp_path)
    out = tmp_path / "eval.json"
    run_ganlab([str(checkpoint("digits_mlp")), "--classifier-dir", str(classifiers), "--out", str(out)],
               cwd=tmp_path, module="ganlab.eval")
    new, old = json.loads(out.read_text()), json.loads((FIXTURES / "digits_mlp" / "eval_step4.json").read_text())
    # issue 12 added precision/recall/density/coverage; every old metric is still there, with its old value
    assert set(new) - set(old) == {"eval/precision", "eval/recall", "eval/density", "eval/coverage"}
    assert set(old) <= set(new)
    for key, value in old.items():
        if key.startswith("eval/"):
            assert new[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key


def test_old_checkpoints_2d_and_dcgan_evaluate(tmp_path):
    for run in ("ring8_mlp", "digits_dcgan"):
        out = tmp_path / f"{run}.json"
        run_ganlab([str(checkpoint(run)), "--out", str(out), "--n-samples", "64",
                    "--classifier-dir", str(old_classifiers(tmp_path))], cwd=tmp_path, module="ganlab.eval")
        metrics = json.loads(out.read_text())
        assert metrics["step"] == RUNS[run] and ("eval/modes_covered" in metrics) == (run == "ring8_mlp")


def test_resume_continues_an_old_run_directory(tmp_path):
    run_dir = tmp_path / "digits_mlp"
    shutil.copytree(FIXTURES / "digits_mlp", run_dir)
    overrides = [str(o) for o in OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")
                 if not str(o).startswith(("hydra.run.dir", "trainer.max_steps", "trainer.progress", "logger"))]
    run_ganlab([*overrides, "trainer.max_steps=6", "trainer.progress=false", "logger=none", "resume=auto",
                f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    steps = logged_steps(run_dir / "metrics.jsonl")
    assert steps == [2, 4, 6]  # continued from the old step-4 checkpoint, each step once
    state = torch.load(run_dir / "checkpoints" / "step_00000006.pt", weights_only=True)
    assert state["step"] == 6 and state["config"]["model"]["generator"]["_target_"] == "ganlab.models.mlp.MLPGenerator"


def test_compare_reads_old_run_directories(tmp_path):
    sweep = tmp_path / "old_sweep"
    for run in RUNS:
        shutil.copytree(FIXTURES / run, sweep / run)
    proc = run_ganlab([str(sweep), "--out", str(tmp_path / "cmp")], cwd=tmp_path, module="ganlab.compare")
    assert "3 runs" in proc.stdout and (tmp_path / "cmp" / "compare.png").is_file()


def test_upgraded_configs_build_and_name_only_existing_classes():
    from ganlab.build import build_data, build_models

    for run in RUNS:
        state = load_checkpoint(checkpoint(run))
        config = checkpoint_config(state)
        generator, discriminator = build_models(config, tuple(state["img_shape"]))
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        assert build_data(config).shape == tuple(state["img_shape"])
