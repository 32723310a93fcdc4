"""The study of losses: its search space per loss, the budget curve's numbers, a tiny study end to end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ganlab.build import build_loss, build_models
from ganlab.report.budget import budget_curve, min_distribution
from ganlab.study import LOSSES

from conftest import compose_cfg, run_ganlab, signal_once_logging, sweep_index


def spaces() -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(compose_cfg(["sweep=loss_study"]).study.spaces)


def test_the_search_space_is_the_papers():
    """What Optuna samples from (its range() is inclusive, unlike Python's): lr log 1e-5..1e-2, beta1 in
    [0, 1], n_disc in 1..5, the penalty weights log 0.1..100."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override

    cfg = compose_cfg(["sweep=loss_study"], hydra_config=True)
    searched = {**cfg.hydra.sweeper.params, **{k: v for own in spaces().values() for k, v in own.items()}}
    parsed = OverridesParser.create().parse_overrides([f"{k}={v}" for k, v in searched.items()])
    dists = {o.key_or_group: create_optuna_distribution_from_override(o) for o in parsed}
    bounds = {key: (d.low, d.high, type(d).__name__.startswith("Log")) for key, d in dists.items()}
    assert bounds == {"optimizer.lr": (1e-5, 1e-2, True), "optimizer.betas.0": (0.0, 1.0, False),
                      "trainer.n_critic": (1, 5, False), "loss.gp_weight": (0.1, 100.0, True),
                      "loss.r1_gamma": (0.1, 100.0, True), "loss.clip": (0.001, 0.1, True)}


@pytest.mark.parametrize("loss", LOSSES)
def test_the_search_space_composes_for_every_loss(loss):
    own = spaces().get(loss, {})
    assert set(spaces()) <= set(LOSSES)  # no space for a loss the study does not run
    fixed = [f"{key}=0.5" for key in own]  # each key set to a value inside its range: the loss must have it
    cfg = compose_cfg(["sweep=loss_study", f"loss={loss}", *fixed], hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert set(params) == {"optimizer.lr", "optimizer.betas.0", "trainer.n_critic"}
    for key in [*params, *own]:  # every searched key exists in the composed config
        node, *rest = key.split(".")
        value = cfg[node]
        for part in rest:
            value = value[int(part)] if part.isdigit() else value[part]
        assert value is not None, key
    _, discriminator = build_models(cfg, (1, 8, 8))
    built = build_loss(cfg, discriminator)  # the loss takes every key its space sets
    for key in own:
        assert getattr(built, key.split(".", 1)[1]) == 0.5
    assert cfg.hydra.sweeper.sampler._target_.endswith("RandomSampler") and cfg.hydra.sweeper.sampler.seed == 0
    assert cfg.data.batch_size == 64 and cfg.objective == "eval/fid_clf" and cfg.eval.every == cfg.trainer.max_steps


def test_every_trial_trains_the_same_g_steps():
    """n_critic 5 on digits (28 batches of 64 an epoch) must not run out of the data set's epochs first."""
    from ganlab.train import build_run

    for n_critic in (1, 5):
        run = build_run(compose_cfg(["experiment=loss_study", f"trainer.n_critic={n_critic}"]))
        assert run.total_steps == 2000


def test_budget_curve_equals_a_hand_computation():
    values = [3.0, 1.0, 2.0]
    # k=1: each trial alone; k=2: the subsets {3,1}, {3,2}, {1,2} reach 1, 2, 1; k=3: all reach 1
    assert min_distribution(values, 1) == [(1.0, pytest.approx(1 / 3)), (2.0, pytest.approx(1 / 3)),
                                           (3.0, pytest.approx(1 / 3))]
    assert min_distribution(values, 2) == [(1.0, pytest.approx(2 / 3)), (2.0, pytest.approx(1 / 3))]
    curve = budget_curve(values)
    assert [p.k for p in curve] == [1, 2, 3]
    assert [p.mean for p in curve] == pytest.approx([2.0, 4 / 3, 1.0])
    assert [p.median for p in curve] == [2.0, 1.0, 1.0] and [p.high for p in curve] == [3.0, 2.0, 1.0]
    assert [p.low for p in curve] == [1.0, 1.0, 1.0]


def test_a_failed_trial_spends_budget_and_reaches_nothing():
    curve = budget_curve([None, 5.0, float("nan"), 4.0])  # two failed of four
    assert math.isinf(curve[0].mean) and math.isinf(curve[0].high) and curve[0].median == 5.0
    # k=3: the one subset of failures alone is impossible (only 2 failed): the min is always finite
    assert curve[2].mean == pytest.approx((3 / 4) * 4.0 + (1 / 4) * 5.0) and curve[3].mean == 4.0


@pytest.mark.slow
def test_a_tiny_study_runs_end_to_end_and_draws_both_figures(tmp_path):
    out = tmp_path / "study"
    proc = run_ganlab(["--losses", "bce,wgan_gp", "--trials", "4", "--seeds", "2", "--out", str(out),
                       "trainer.max_steps=10", "model.middle_size=8", "eval.n_samples=64", "eval.kid_subsets=2",
                       "trainer.n_critic=1",  # fixed: the trials of a loss then share one population (fast)
                       "logger=none", "trainer.progress=false"], cwd=tmp_path, module="ganlab.study")
    for loss in ("bce", "wgan_gp"):
        jobs = sweep_index(out / "search" / loss)
        assert len(jobs) == 4 and {j["status"] for j in jobs.values()} == {"finished"}
        if loss == "wgan_gp":  # the loss's own key was searched, only for it
            assert all(any(o.startswith("loss.gp_weight=") for o in j["overrides"]) for j in jobs.values())
        else:
            assert not any(o.startswith("loss.") for j in jobs.values() for o in j["overrides"])
        reruns = sweep_index(out / "rerun" / loss)
        seeds = sorted(o for j in reruns.values() for o in j["overrides"] if o.startswith("seed="))
        assert seeds == ["seed=0", "seed=1"]
    figures = out / "search" / "compare"
    for name in ("budget.png", "distribution.png", "budget.csv", "best_per_loss.csv"):
        assert (figures / name).is_file() and (figures / name).stat().st_size > 0, name
    budget = (figures / "budget.csv").read_text().splitlines()
    assert len(budget) == 1 + 2 * 4  # a row per loss and budget k = 1..4
    table = (out / "study.md").read_text()
    assert "| bce |" in table and "| wgan_gp |" in table and "±" in table
    assert "study:" in proc.stdout
    assert Path(figures / "budget.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_ctrl_c_lets_the_search_checkpoint_and_the_same_command_resumes_the_study(tmp_path):
    # the study's subprocess.run killed its search 0.25 s after the KeyboardInterrupt, mid-checkpoint, and the
    # study went on to the next loss's search
    import signal

    out = tmp_path / "study"
    args = ["--losses", "bce,hinge", "--trials", "2", "--seeds", "0", "--out", str(out), "trainer.n_critic=1",
            "model.middle_size=16", "trainer.max_steps=500", "trainer.log_every=25", "eval.every=0",
            "objective=d_gap", "logger=none", "trainer.progress=false"]
    proc = signal_once_logging(args, "study/search/bce/job-*/metrics.jsonl", tmp_path, 2, signal.SIGINT,
                               to_group=True, module="ganlab.study")
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "ganlab.study: interrupted (Ctrl-C); the same command resumes " \
                                                   "the study"
    jobs = sweep_index(out / "search" / "bce")
    assert {j["status"] for j in jobs.values()} == {"preempted"} and len(jobs) == 2
    assert not (out / "search" / "hinge").exists()  # the study stopped there
    run_ganlab(args, cwd=tmp_path, module="ganlab.study")
    for loss, attempts in (("bce", 2), ("hinge", 1)):
        jobs = sweep_index(out / "search" / loss)
        assert [(j["status"], j["attempts"]) for j in jobs.values()] == [("finished", attempts)] * 2


@pytest.mark.parametrize("args,message", [
    (["--losses", "bce,nonsense"], "ganlab.study: error: --losses: unknown loss nonsense (available: acgan, bce,"),
    (["trainer.nonsense=1"], "ganlab.study: error: Could not override 'trainer.nonsense': Key 'nonsense' is not in"),
    (["--launcher", "nope"], "ganlab.study: error: Could not find 'launcher/nope' (available options in 'launcher': "),
    (["--losses", "bce,hinge,bce"], "ganlab.study: error: --losses: bce given more than once"),
])
def test_a_bad_loss_or_override_is_one_line_before_any_search(tmp_path, args, message):
    proc = run_ganlab([*args, "--out", str(tmp_path / "study")], cwd=tmp_path, module="ganlab.study", check=False)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert proc.stderr.startswith(message), proc.stderr
    assert not (tmp_path / "study").exists()


def test_a_study_folder_that_cannot_be_made_is_one_line(tmp_path, capsys):
    from ganlab.study import main

    (tmp_path / "file").write_text("")
    assert main(["--losses", "bce", "--trials", "1", "--out", str(tmp_path / "file" / "study")]) == 2
    assert capsys.readouterr().err == f"ganlab.study: error: cannot make the folder {tmp_path / 'file' / 'study'}: " \
                                      "Not a directory\n"


def test_an_override_a_loss_does_not_take_is_one_line_before_any_search(tmp_path):
    proc = run_ganlab(["--losses", "wgan_gp,bce", "loss.gp_weight=1", "--out", str(tmp_path / "study")],
                      cwd=tmp_path, module="ganlab.study", check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("ganlab.study: error: loss=bce: Could not override 'loss.gp_weight': "
                                   "Key 'gp_weight' is not in struct (to append to your config use +loss.gp_weight=1)")
    assert not (tmp_path / "study").exists()


def test_a_loss_whose_search_finished_no_trial_fails_the_study(tmp_path):
    # a target of 1e30 makes every float32 loss inf at step 1: the one trial fails, so the search has no best
    proc = run_ganlab(["--losses", "mse", "--trials", "1", "--seeds", "2", "--out", str(tmp_path / "study"),
                       "loss.real_target=1e30", "trainer.max_steps=2", "logger=none", "trainer.progress=false"],
                      cwd=tmp_path, module="ganlab.study", check=False)
    assert proc.returncode == 1, proc.stderr
    assert "| mse | no finished trial |" in (tmp_path / "study" / "study.md").read_text()
    assert not (tmp_path / "study" / "rerun").exists()  # nothing to rerun over seeds
