"""launcher=population: a sweep's jobs grouped into batched programs, each member leaving what a basic job
leaves, every sweeper (the grid, Optuna) working through it. How a member trains compared with its job alone:
test_population_equivalence.py; failures and preemption: test_population_failures.py."""

from __future__ import annotations

import json
from pathlib import Path

from ganlab.launch.population import plan

from conftest import FAST, run_ganlab, sweep_index
from population_sweeps import ONE, TINY
from wandb_reader import find_runs, read_run


def test_members_leave_what_a_basic_job_leaves(tmp_path):
    args = ["-m", "loss=bce,hinge", *TINY, "trainer.progress=false", "logger.wandb.mode=offline"]
    run_ganlab([*args, "launcher=population", f"hydra.sweep.dir={tmp_path / 'population'}"], cwd=tmp_path)
    run_ganlab([*args, f"hydra.sweep.dir={tmp_path / 'basic'}"], cwd=tmp_path)

    def layout(job: Path) -> set[str]:
        return {str(p.relative_to(job)) for p in job.rglob("*") if p.is_file() and "wandb" not in p.parts}

    basic, population = sweep_index(tmp_path / "basic"), sweep_index(tmp_path / "population")
    for job_id in basic:
        a, b = tmp_path / "basic" / job_id, tmp_path / "population" / job_id
        assert layout(a) == layout(b)
        assert set(basic[job_id]) == set(population[job_id])  # the same index record fields
        [run_a], [run_b] = find_runs(a), find_runs(b)  # one W&B run per member, in the sweep's group
        ra, rb = read_run(run_a), read_run(run_b)
        assert (ra.name, ra.exit_code, rb.exit_code) == (rb.name, 0, 0) and rb.group == "population"
        assert [h["_step"] for h in ra.history if "d_loss" in h] == [h["_step"] for h in rb.history if "d_loss" in h]
        assert rb.summary["eval/fid_clf"] == ra.summary["eval/fid_clf"]
    member = tmp_path / "population" / next(iter(population))
    ckpt = member / "checkpoints" / "step_00000020.pt"
    out = tmp_path / "samples.npy"
    run_ganlab([str(ckpt), "--n", "8", "--out", str(out)], cwd=tmp_path, module="ganlab.sample")
    run_ganlab([str(ckpt), "--out", str(tmp_path / "eval.json")], cwd=tmp_path, module="ganlab.eval")
    proc = run_ganlab([str(tmp_path / "population")], cwd=tmp_path, module="ganlab.compare")
    assert "2 runs" in proc.stdout


def test_groups_that_cannot_share_run_one_after_another(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_ganlab(["-m", "model.middle_size=8,16", "seed=0,1", *TINY[1:], *FAST, "launcher=population", ONE,
                       f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert (proc.stdout + proc.stderr).count("population of 2 members") == 2  # two widths: two programs of 2 seeds
    assert {r["status"] for r in sweep_index(sweep).values()} == {"finished"} and len(sweep_index(sweep)) == 4


def test_group_keys_separate_what_members_cannot_differ_in():
    from ganlab.config import plain_config

    from conftest import compose_cfg

    def key(*overrides: str) -> str:
        return plan.group_key(plain_config(compose_cfg(list(overrides))))

    base = key()
    for free in ("seed=3", "loss=hinge", "optimizer.lr=1e-3", "optimizer.betas=[0.0,0.9]", "model.z_size=10",
                 "data.latent_std=0.5", "objective=g_loss", "loss=wgan_gp", "optimizer.generator.lr=1e-3"):
        assert key(free) == base, free
    for bound in ("model.middle_size=32", "data.batch_size=32", "trainer.n_critic=2", "optimizer=rmsprop",
                  "trainer.max_steps=10", "eval.n_samples=64", "model=dcgan", "data=ring8"):
        assert key(bound) != base, bound
    assert plan.split(list(range(5)), 2) == [[0, 1], [2, 3], [4]] and plan.split([1, 2], 0) == [[1, 2]]


def test_options_a_population_does_not_batch_make_a_job_run_alone(tmp_path):
    """EMA, DiffAugment, conditioning, packing and ACGAN are not in the batched step: such a job runs as an
    ordinary run (alone_reason says why), and it still finishes beside a population."""
    from ganlab.config import plain_config
    from ganlab.train import build_run

    from conftest import compose_cfg

    def reason(*overrides: str) -> str | None:
        cfg = compose_cfg(list(overrides))
        return plan.alone_reason(plain_config(cfg), build_run(cfg))

    assert reason() is None and reason("augment=none") is None
    for overrides, name in ((["trainer.g_ema=0.99"], "trainer.g_ema"), (["augment=diffaugment"], "augment"),
                            (["model.conditional=concat"], "model.conditional"), (["model.pack=2"], "model.pack"),
                            (["model.conditional=concat", "loss=acgan"], "loss=acgan")):
        assert name in reason(*overrides), overrides
    sweep = tmp_path / "sweep"
    proc = run_ganlab(["-m", "trainer.g_ema=null,0.9", "seed=0,1", *TINY[1:], *FAST, "launcher=population", ONE,
                       f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert "population of 2 members" in out and out.count("trainer.g_ema not batched in a population yet") == 2, out
    assert {r["status"] for r in sweep_index(sweep).values()} == {"finished"} and len(sweep_index(sweep)) == 4


def test_optuna_trials_of_a_batch_train_as_one_population(tmp_path):
    sweep = tmp_path / "sweep"
    # n_critic fixed on the command line: trials that differ in it could not share a program
    proc = run_ganlab(["-m", "sweep=optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", "objective=g_loss",
                       "trainer.n_critic=1", *TINY, *FAST, "launcher=population", ONE, f"hydra.sweep.dir={sweep}"],
                      cwd=tmp_path)
    assert (proc.stdout + proc.stderr).count("population of 2 members") == 2  # two batches of two trials
    jobs = sweep_index(sweep)
    assert len(jobs) == 4 and {r["status"] for r in jobs.values()} == {"finished"}
    best = json.loads(json.dumps(min(r["objective"] for r in jobs.values())))
    assert (sweep / "optimization_results.yaml").is_file() and str(round(best, 4))[:5] in \
        (sweep / "optimization_results.yaml").read_text()
