"""Every sensible loss x model x data combination trains through the real entry point.

One Hydra multirun per data set sweeps every model and loss (python -m ganlab -m model=... loss=...),
so a new option in conf/ must either join this grid or be excluded below with a reason.

Issue 12's options join in grids of their own: on every labelled image set, conditional G and D
(concat, projection) x both models x the losses (every one, acgan included, on digits; see
CONDITIONAL_GRID), with the EMA G and DiffAugment on
(so the options are also tried together); packing x both models x every loss on digits and the MLP on
grid25 (its benchmark; DCGAN takes no points); and the EMA on the 2D sets.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from test_entry import job_dirs

from ganlab.metrics.names import objective_problem, step_names

from conftest import CONF_DIR, FAST, jsonl_rows, run_ganlab
from tiny_cifar import write_cifar_batches

LOSSES = ["bce", "bce_r1", "hinge", "minimax", "mse", "wgan", "wgan_gp"]
PENALISED = ("bce_r1", "wgan_gp")  # their penalty term is logged on its own (d_penalty)
CONDITIONAL_LOSSES = ["acgan"]  # needs a conditional G: in the conditional grid only
AUGMENTS = ["diffaugment", "none"]
LABELLED = ["digits", "mnist", "fashion_mnist", "cifar10"]
# the conditional grid's losses per data set: all of them on digits (1x8x8); on cifar10 (3x32x32) the two
# penalties (input gradients through a conditional D of 3 channels), a game loss and acgan; MNIST and
# Fashion-MNIST share one shape and code path (1x28x28 IDX), so there a game loss and acgan suffice
CONDITIONAL_GRID = {"digits": LOSSES + CONDITIONAL_LOSSES, "cifar10": ["hinge", "bce_r1", "wgan_gp", "acgan"],
                    "mnist": ["bce", "acgan"], "fashion_mnist": ["hinge", "acgan"]}
MODELS = ["dcgan", "mlp"]
DATA = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32),
        "ring8": (2,), "grid25": (2,)}
EXCLUDED = {
    ("dcgan", "ring8"): "2D points have no height and width to convolve (a ConfigError, tested in test_data_zoo)",
    ("dcgan", "grid25"): "2D points have no height and width to convolve (a ConfigError, tested in test_data_zoo)",
}


# two steps and a small evaluation after them (its size is not what these tests are about)
TWO_STEPS = ["data.batch_size=8", "trainer.max_steps=2", "trainer.log_every=1", "trainer.n_grid=4",
             "eval.n_samples=64", "eval.kid_subsets=2"]


def test_the_grid_covers_every_option_in_conf():
    for group, listed in (("loss", LOSSES + CONDITIONAL_LOSSES), ("model", MODELS), ("data", DATA),
                          ("augment", AUGMENTS)):
        assert sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml")) == sorted(listed), group


def data_root(data: str, tmp_path: Path, tiny_mnist: Path) -> list[str]:
    """The overrides pointing a data set at tiny files the test wrote (none for generated data)."""
    if data in ("mnist", "fashion_mnist"):
        return [f"data.root={tiny_mnist}"]  # the same IDX layout serves both
    if data == "cifar10":
        write_cifar_batches(tmp_path / "cifar" / "cifar-10-batches-py", per_batch=4)
        return [f"data.root={tmp_path / 'cifar'}"]
    return []


@pytest.mark.parametrize("data", list(DATA))
def test_every_loss_and_model_trains_on(data, tmp_path, tiny_mnist):
    models = [m for m in MODELS if (m, data) not in EXCLUDED]
    sweep = tmp_path / "sweep"
    run_ganlab(["-m", f"model={','.join(models)}", f"loss={','.join(LOSSES)}", f"data={data}",
                *data_root(data, tmp_path, tiny_mnist), *TWO_STEPS, *FAST, f"hydra.sweep.dir={sweep}"], cwd=tmp_path,
               env={"OMP_NUM_THREADS": "1"})  # tiny models: threads only add overhead on shared cores
    trained = set()
    for job in job_dirs(sweep):
        choices = dict(o.split("=", 1) for o in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
                       if o.split("=", 1)[0] in ("model", "loss"))
        rows = jsonl_rows(job / "metrics.jsonl")
        assert [r["step"] for r in rows] == [1, 2], job
        assert all(torch.isfinite(torch.tensor([r["d_loss"], r["g_loss"], r["d_grad_norm"]])).all() for r in rows)
        penalised = choices["loss"] in PENALISED
        # exactly the step metrics an objective is checked against before a run trains (d_gap: at its end)
        assert all({*r, "d_gap"} == set(step_names(penalised, classes=False)) for r in rows), job
        assert all(r["d_penalty"] >= 0 and torch.isfinite(torch.tensor(r["d_penalty"])) for r in rows if penalised)
        assert (job / "samples" / "samples_00000002.png").is_file()
        state = torch.load(job / "checkpoints" / "step_00000002.pt", weights_only=True)
        assert tuple(state["img_shape"]) == DATA[data]
        trained.add((choices["model"], choices["loss"]))
    assert trained == {(m, loss) for m in models for loss in LOSSES}


def job_results(sweep: Path, keys: tuple[str, ...]) -> list[tuple[dict[str, str], list[dict], Path]]:
    """(the job's choices of ``keys``, its metrics rows, its dir) for every job of a sweep."""
    out = []
    for job in job_dirs(sweep):
        overrides = dict(o.split("=", 1) for o in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()))
        rows = jsonl_rows(job / "metrics.jsonl")
        assert [r["step"] for r in rows] == [1, 2], job
        assert all(torch.isfinite(torch.tensor([r["d_loss"], r["g_loss"], r["d_grad_norm"]])).all() for r in rows)
        out.append(({k: overrides[k] for k in keys}, rows, job))
    return out


@pytest.mark.parametrize("data", LABELLED)
def test_conditional_models_with_every_loss_ema_and_diffaugment_train_on(data, tmp_path, tiny_labelled_mnist):
    sweep = tmp_path / "sweep"
    # the tiny labelled MNIST gets a classifier of its own (the session's cache has none named mnist: keep it so)
    own_classifier = [f"eval.classifier.dir={tmp_path / 'clf'}", "eval.classifier.steps=20"] if data == "mnist" else []
    run_ganlab(["-m", f"model={','.join(MODELS)}", "model.conditional=concat,projection",
                f"loss={','.join(CONDITIONAL_GRID[data])}", f"data={data}", *own_classifier,
                *data_root(data, tmp_path, tiny_labelled_mnist), *TWO_STEPS, "trainer.g_ema=0.9",
                "augment=diffaugment", *FAST, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
    trained = set()
    for choices, rows, job in job_results(sweep, ("model", "model.conditional", "loss")):
        state = torch.load(job / "checkpoints" / "step_00000002.pt", weights_only=True)
        assert state["n_classes"] == 10 and "generator_ema" in state and "augment" in state["rng"]
        assert {*rows[-1], "d_gap"} == set(step_names(choices["loss"] in PENALISED, choices["loss"] == "acgan")), job
        evals = jsonl_rows(job / "eval.jsonl")
        assert "eval_g/d_real" in evals[-1] and 0 <= evals[-1]["eval/cond_accuracy"] <= 1
        steps = step_names(choices["loss"] in PENALISED, choices["loss"] == "acgan")
        assert all(objective_problem(key, True, steps) is None for key in evals[-1] if key != "step")
        trained.add(tuple(choices.values()))
    assert trained == {(m, c, loss) for m in MODELS for c in ("concat", "projection")
                       for loss in CONDITIONAL_GRID[data]}


def test_packing_with_every_loss_and_model_trains(tmp_path):
    sweep = tmp_path / "sweep"
    run_ganlab(["-m", f"model={','.join(MODELS)}", f"loss={','.join(LOSSES)}", "model.pack=2", "data=digits",
                *TWO_STEPS, *FAST, f"hydra.sweep.dir={sweep}"], cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
    results = job_results(sweep, ("model", "loss"))
    assert {tuple(c.values()) for c, _, _ in results} == {(m, loss) for m in MODELS for loss in LOSSES}


@pytest.mark.parametrize("data", ["ring8", "grid25"])
def test_packing_and_the_ema_on_2d_points_with_every_loss(data, tmp_path):
    sweep = tmp_path / "sweep"
    run_ganlab(["-m", "model=mlp", f"loss={','.join(LOSSES)}", "model.pack=1,4", f"data={data}",
                "trainer.g_ema=0.9", *TWO_STEPS, *FAST, f"hydra.sweep.dir={sweep}"], cwd=tmp_path,
               env={"OMP_NUM_THREADS": "1"})
    results = job_results(sweep, ("loss", "model.pack"))
    assert {tuple(c.values()) for c, _, _ in results} == {(loss, p) for loss in LOSSES for p in ("1", "4")}
    for choices, _, job in results:
        evals = jsonl_rows(job / "eval.jsonl")
        assert "eval/modes_covered" in evals[-1] and "eval_g/modes_covered" in evals[-1]
        # every metric an evaluation logs is one an objective may name (checked before a run trains)
        summary = json.loads((job / "summary.json").read_text())
        steps = step_names(choices["loss"] in PENALISED, classes=False)
        assert all(objective_problem(key, True, steps) is None for key in summary)
