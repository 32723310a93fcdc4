"""Sweeps from sweeps/: composing them, the sweep index, skipping finished and resuming unfinished
jobs, failures, the parallel local launcher, the Optuna search and the objective a run returns.
Jobs that meet another process (job locks, a Slurm rerun, one sweep run twice at once):
test_sweep_locks.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from ganlab.build import build
from ganlab.errors import ConfigError
from ganlab.launch.job import objective_value
from ganlab.launch.sweep import overrides_hash, sweep_summary

from conftest import FAST, REPO, compose_cfg, run_ganlab, sweep_index
from wandb_reader import find_runs, read_run

TINY = ["trainer.max_steps=2", "model.middle_size=16", "trainer.progress=false"]


def index(sweep: Path) -> dict:
    """The whole index file (the sweep's overrides, its jobs); its jobs alone: conftest's sweep_index."""
    return json.loads((sweep / "sweep_index.json").read_text())


def the_sweep_dir(cwd: Path) -> Path:
    [sweep] = (cwd / "multirun").iterdir()
    return sweep


def test_sweep_files_compose_with_their_grids():
    sweeps = sorted(p.stem for p in (REPO / "sweeps").glob("*.yaml"))
    assert sweeps == ["loss_study", "lr_zsize_loss", "optuna", "seeds"]
    grid = compose_cfg(["sweep=lr_zsize_loss"], hydra_config=True).hydra.sweeper.params
    assert dict(grid) == {"optimizer.lr": "1e-4,2e-4,5e-4", "model.z_size": "32,50,100",
                          "loss": ",".join(loss for loss in ("bce", "minimax", "mse", "hinge", "wgan_gp")
                                           if (REPO / "conf" / "loss" / f"{loss}.yaml").is_file())}
    assert compose_cfg(["sweep=seeds"], hydra_config=True).hydra.sweeper.params.seed == "range(0,5)"
    optuna = compose_cfg(["sweep=optuna"], hydra_config=True).hydra
    assert optuna.sweeper._target_.endswith("OptunaSweeper") and optuna.sweeper.direction == "minimize"
    assert set(optuna.sweeper.params) == {"optimizer.lr", "optimizer.betas.0", "model.z_size", "trainer.n_critic"}


def test_launchers_compose_with_every_hardware_option():
    parallel = compose_cfg(["launcher=local_parallel"], hydra_config=True)
    # joblib's launcher with its keys, stopping cleanly on Ctrl-C (test_preemption)
    assert parallel.hydra.launcher._target_.endswith("LocalParallelLauncher") and parallel.hydra.launcher.n_jobs == 2
    slurm = compose_cfg(["launcher=slurm"], hydra_config=True)
    assert slurm.hydra.launcher._target_.endswith("SlurmLauncher") and slurm.hydra.launcher.max_num_timeout == 3
    basic = compose_cfg([], hydra_config=True)
    assert basic.hydra.launcher._target_ == "hydra_plugins.ganlab_plugins.basic_launcher.BasicLauncher"
    assert basic.hardware.device == "auto"
    # a Hydra launcher chosen directly replaces the basic one whole (no ganlab key left in its config)
    local = compose_cfg(["hydra/launcher=submitit_local"], hydra_config=True).hydra.launcher
    assert local._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher", local
    for launcher in ("basic", "local_parallel", "slurm"):
        for hardware, device in (("auto", "auto"), ("cpu", "cpu"), ("gpu", "cuda"), ("ddp", "auto")):
            cfg = compose_cfg([f"launcher={launcher}", f"hardware={hardware}"], hydra_config=True)
            assert cfg.hardware.device == device and cfg.hydra.launcher._target_.split(".")[-1] in (
                "BasicLauncher", "LocalParallelLauncher", "SlurmLauncher")
            assert cfg.hardware.get("ddp", False) == (hardware == "ddp")
    # the speed switches work under either launcher ("many runs per GPU" with CUDA graphs, bf16, TF32)
    for choice in ("local_parallel", "slurm"):
        hardware = build(compose_cfg([f"launcher={choice}", "hardware.precision=bf16", "hardware.tf32=false"]).hardware,
                         "hardware")
        assert hardware.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
        assert hardware.autocast_dtype is torch.bfloat16
        if not torch.cuda.is_available():
            with pytest.raises(ConfigError, match="cuda_graph=true needs CUDA"):
                build(compose_cfg([f"launcher={choice}", "hardware.cuda_graph=true"]).hardware, "hardware")


def test_sweep_and_job_names_come_from_overrides_not_the_clock():
    assert overrides_hash(["b=1", "a=2"]) == overrides_hash(["a=2", "b=1"])  # order does not matter
    assert overrides_hash(["a=2", "resume=auto"]) == overrides_hash(["a=2"])  # resume is not identity
    assert overrides_hash(["a=2"]) != overrides_hash(["a=3"])


def test_grid_sweep_composes_with_overrides_skips_finished_and_resumes_unfinished(tmp_path, tiny_mnist):
    # the grid narrowed on the command line (3 of its 5 losses), data swapped: 3 jobs (one per loss)
    args = ["-m", "sweep=lr_zsize_loss", "optimizer.lr=5e-4", "model.z_size=32", "loss=bce,minimax,mse", "data=mnist",
            f"data.root={tiny_mnist}", "data.batch_size=16", "trainer.epochs=5", *TINY, "trainer.ckpt_every=1",
            "trainer.ckpt_keep=null", "trainer.log_every=1", "logger.wandb.mode=offline"]
    run_ganlab(args, cwd=tmp_path)
    sweep = the_sweep_dir(tmp_path)
    assert sweep.name == f"lr_zsize_loss-{overrides_hash(args[1:])}"
    jobs = sweep_index(sweep)
    assert len(jobs) == 3 and {j["status"] for j in jobs.values()} == {"finished"}
    assert index(sweep)["overrides"] == args[1:]
    for job_id, record in jobs.items():
        assert (sweep / job_id / "checkpoints" / "step_00000002.pt").is_file()
        [wandb_file] = find_runs(sweep / job_id)
        run = read_run(wandb_file)
        assert run.group == sweep.name  # all jobs: one W&B group named after the sweep
        assert run.config["optimizer_lr"] == 5e-4 and run.config["model_z_size"] == 32
        assert run.config["loss_choice"] in record["overrides"][2] and run.config["sweep_choice"] == "lr_zsize_loss"
        assert record["metrics"]["step"] == 2 and record["objective"] == pytest.approx(
            abs(record["metrics"]["d_real"] - record["metrics"]["d_fake"]))

    # the same command again: every job is finished, nothing runs
    stamps = {j: (sweep / j / "metrics.jsonl").stat().st_mtime_ns for j in jobs}
    proc = run_ganlab(args, cwd=tmp_path)
    assert (proc.stdout + proc.stderr).count("already finished (sweep index): skipped") == 3
    assert {j: (sweep / j / "metrics.jsonl").stat().st_mtime_ns for j in jobs} == stamps

    # a job interrupted after step 1 (its index says running, its last checkpoint is step 1) resumes there
    unfinished = sorted(jobs)[0]
    (sweep / unfinished / "checkpoints" / "step_00000002.pt").unlink()
    data = index(sweep)
    data["jobs"][unfinished]["status"] = "running"
    (sweep / "sweep_index.json").write_text(json.dumps(data))
    proc = run_ganlab(args, cwd=tmp_path)
    assert (proc.stdout + proc.stderr).count("already finished (sweep index): skipped") == 2
    assert "step_00000001.pt at step 1" in proc.stdout + proc.stderr
    record = sweep_index(sweep)[unfinished]
    assert record["status"] == "finished" and record["attempts"] == 2
    assert (sweep / unfinished / "checkpoints" / "step_00000002.pt").is_file()
    runs = [read_run(f) for f in find_runs(sweep / unfinished)]
    assert len(runs) == 2 and len({r.run_id for r in runs}) == 1  # the W&B run continues
    assert [h["_step"] for h in runs[-1].history if "d_loss" in h] == [2]


def test_two_sweeps_started_together_never_share_a_dir(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-m", "ganlab", "-m", "seed=0", *extra, *TINY, *FAST], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for extra in ([], ["loss=mse"])]  # both in the same second
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    sweeps = sorted((tmp_path / "multirun").iterdir())
    assert len(sweeps) == 2 and all(s.name.startswith("multirun-") for s in sweeps)
    assert all(len(sweep_index(s)) == 1 for s in sweeps)


def test_a_crashed_job_is_marked_failed_and_the_others_run(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_ganlab(["-m", "trainer.n_critic=0,1", *TINY, *FAST, f"hydra.sweep.dir={sweep}"], cwd=tmp_path,
                      check=False)
    assert proc.returncode == 2 and "ganlab: error: trainer.n_critic=0: must be an integer >= 1" in proc.stderr
    assert "Traceback" not in proc.stderr and "Error executing job" not in proc.stderr  # one line, as a single run
    by_critic = {r["overrides"][0]: r for r in sweep_index(sweep).values()}
    assert by_critic["trainer.n_critic=0"]["status"] == "failed"
    assert by_critic["trainer.n_critic=0"]["error"] == "ConfigError: trainer.n_critic=0: must be an integer >= 1"
    assert by_critic["trainer.n_critic=1"]["status"] == "finished"
    # the multirun ends with the sweep's summary: counts, the failure, where to look next
    assert f"ganlab: sweep {sweep.name}: 2 jobs, 1 failed, 1 finished ({sweep})" in proc.stdout
    assert "failed: job-" in proc.stdout and "trainer.n_critic=0: must be an integer >= 1" in proc.stdout
    assert "lowest d_gap: " in proc.stdout and f"compare: python -m ganlab.compare {sweep}" in proc.stdout


def test_local_parallel_runs_jobs_in_capped_worker_processes(tmp_path):
    sweep = tmp_path / "sweep"
    run_ganlab(["-m", "launcher=local_parallel", "hydra.launcher.n_jobs=2", "seed=0,1,2,3", *TINY, *FAST,
                f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    jobs = list(sweep_index(sweep).values())
    assert len(jobs) == 4 and {j["status"] for j in jobs} == {"finished"}
    assert len({j["pid"] for j in jobs}) == 2  # two worker processes, reused
    for job in jobs:  # never more than n_jobs at once
        running = [o for o in jobs if o["started"] <= job["started"] < o["finished"]]
        assert len(running) <= 2


def test_optuna_search_minimises_the_objective(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "sweep=optuna", "hydra.sweeper.n_trials=3", "objective=g_loss", *TINY, *FAST,
            f"hydra.sweep.dir={sweep}"]
    run_ganlab(args, cwd=tmp_path)
    proc = run_ganlab(args, cwd=tmp_path)  # seeded: the same trials again, all answered from the index
    assert (proc.stdout + proc.stderr).count("already finished (sweep index): skipped") == 3
    jobs = list(sweep_index(sweep).values())
    assert len(jobs) == 3 and {j["objective_name"] for j in jobs} == {"g_loss"}
    assert all(j["objective"] == j["metrics"]["g_loss"] for j in jobs)
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == pytest.approx(min(j["objective"] for j in jobs))
    for override in ("optimizer.lr=", "optimizer.betas.0=", "model.z_size=", "trainer.n_critic="):
        assert all(any(o.startswith(override) for o in j["overrides"]) for j in jobs), override


def test_optuna_search_goes_on_after_a_failed_trial(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_ganlab(["-m", "sweep=optuna", "hydra.sweeper.n_trials=2", "objective=nope", *TINY, *FAST,
                       f"hydra.sweep.dir={sweep}"], cwd=tmp_path, check=False)
    jobs = list(sweep_index(sweep).values())
    assert len(jobs) == 2 and {j["status"] for j in jobs} == {"failed"}  # the 2nd trial ran after the 1st failed
    assert all("objective=nope: not a metric this run logs" in j["error"] for j in jobs)
    assert not any((Path(j["dir"]) / "metrics.jsonl").exists() for j in jobs)  # found before training
    # no trial finished: no best trial, and the sweep ends as any sweep with failures (summary, exit 2), no traceback
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "No trials are completed" not in proc.stderr
    assert f"ganlab: sweep {sweep.name}: 2 jobs, 2 failed" in proc.stdout
    assert "setup plugin alembic" not in proc.stdout + proc.stderr  # Optuna's alembic kept quiet


def test_objective_value():
    final = {"d_real": 0.75, "d_fake": 0.25, "g_loss": 1.5, "step": 4}
    assert objective_value(final, "d_gap") == 0.5 and objective_value(final, "g_loss") == 1.5
    with pytest.raises(ConfigError, match="objective='fid' is not a final metric"):
        objective_value(final, "fid")


def test_single_run_with_an_unknown_objective_is_a_clear_error(tmp_path):
    proc = run_ganlab(["objective=nope", *TINY, *FAST, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "ganlab: error: objective=nope: not a metric this run logs" in proc.stderr


def test_job_dirs_are_readable_and_old_job_dirs_resume(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "loss=bce,mse", "optimizer.lr=0.0007750644796341915", *TINY, *FAST, "trainer.ckpt_every=1",
            "trainer.ckpt_keep=null", f"hydra.sweep.dir={sweep}"]
    run_ganlab(args, cwd=tmp_path)
    jobs = sweep_index(sweep)
    by_num = {record["num"]: job_id for job_id, record in jobs.items()}
    for num, loss in enumerate(["bce", "mse"]):  # `ls` says which job is which; the hash keeps it resumable
        assert by_num[num] == f"job-00{num}-loss={loss}-{overrides_hash(jobs[by_num[num]]['overrides'])}"
    assert sorted(p.name for p in sweep.glob("job-*")) == [by_num[0], by_num[1]]

    # the same sweep as an older ganlab left it: job-<hash> dirs, job 1 cut short after step 1
    for job_id, record in jobs.items():
        (sweep / job_id).rename(sweep / f"job-{overrides_hash(record['overrides'])}")
    old = {f"job-{overrides_hash(r['overrides'])}": {**r, "dir": str(sweep / f"job-{overrides_hash(r['overrides'])}")}
           for r in jobs.values()}
    cut = f"job-{overrides_hash(jobs[by_num[1]]['overrides'])}"
    old[cut]["status"] = "running"
    (sweep / cut / "checkpoints" / "step_00000002.pt").unlink()
    (sweep / "sweep_index.json").write_text(json.dumps({**index(sweep), "jobs": old}))
    proc = run_ganlab(args, cwd=tmp_path)
    assert (proc.stdout + proc.stderr).count("already finished (sweep index): skipped") == 1
    assert sorted(p.name for p in sweep.glob("job-*")) == sorted(old)  # no new directories
    assert sweep_index(sweep)[cut]["status"] == "finished" and sweep_index(sweep)[cut]["attempts"] == 2
    assert (sweep / cut / "checkpoints" / "step_00000002.pt").is_file()


def test_a_sweep_of_no_jobs_says_so(tmp_path):
    # e.g. `-m 'seed=range(0)'`: Hydra launches nothing; the summary says why there is nothing to compare
    first = sweep_summary(tmp_path / "empty").splitlines()[0]
    assert first == f"ganlab: sweep empty: no jobs: its values gave none, e.g. an empty range ({tmp_path / 'empty'})"


def test_a_sweep_subdir_gives_each_job_its_own_folder_in_the_sweeps():
    from ganlab.launch.sweep import check_subdir

    for good in ("${ganlab_job_id:}", "${hydra.job.num}", "run_${hydra.job.num}", "${hydra.job.override_dirname}",
                 "${hydra.job.num}/x", "a/${hydra.job.num}", "a..b/${hydra.job.num}"):
        check_subdir(good)
    for bad, reason in (("x", "every job would write to the same folder"), ("/abs", "the same folder"),
                        ("/abs/${hydra.job.num}", "must be a folder inside hydra.sweep.dir"),
                        ("../${hydra.job.num}", "inside hydra.sweep.dir"), ("a/../../${hydra.job.num}", "inside")):
        with pytest.raises(ConfigError, match=reason):
            check_subdir(bad)


@pytest.mark.parametrize("launcher", ["basic", "population"])
def test_a_subdir_a_resolver_puts_outside_the_sweep_fails_each_job_in_one_line(tmp_path, launcher):
    # check_subdir sees only the unresolved value; before, each job trained outside the sweep's folder, keyed in
    # its index by an absolute path that ganlab.compare <sweep> never found
    sweep, outside = tmp_path / "sweep", tmp_path / "elsewhere"
    args = ["-m", "seed=0,1", *TINY, *FAST, f"launcher={launcher}", f"hydra.sweep.dir={sweep}",
            "hydra.sweep.subdir=${oc.env:RUNS}/${hydra.job.num}"]
    proc = run_ganlab(args, cwd=tmp_path, env={"RUNS": str(outside)}, check=False)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ganlab: error:")]
    assert len(errors) == 2 and all(f"hydra.sweep.subdir put this job in {outside}/" in e for e in errors), errors
    assert "2 jobs, 2 failed" in proc.stdout
    assert {r["status"] for r in sweep_index(sweep).values()} == {"failed"}
    assert not list(outside.rglob("*.pt")) and not list(outside.rglob("metrics.jsonl"))  # nothing trained there


@pytest.mark.parametrize("launcher", ["basic", "population"])
def test_hydras_override_dirname_subdir_with_a_path_value_keeps_one_index(tmp_path, launcher):
    # Hydra's documented `hydra.sweep.subdir=${hydra.job.override_dirname}`: the pinned launcher overrides were
    # resolved (the jobs' own overrides, then "mismatched input '='"); a value with a '/' nests the job's folder,
    # and its index record went into a sweep_index.json of its own there ("no jobs" in the sweep's)
    sweep = tmp_path / "sweep"
    args = ["-m", "+note=a/b,c/d", *TINY, *FAST, f"launcher={launcher}", f"hydra.sweep.dir={sweep}",
            "hydra.sweep.subdir=${hydra.job.override_dirname}"]
    proc = run_ganlab(args, cwd=tmp_path)
    assert "2 jobs, 2 finished" in proc.stdout
    jobs = sweep_index(sweep)
    assert sorted(jobs) == [f"+note={v},logger=none,model.middle_size=16,trainer.max_steps=2,trainer.progress=False"
                            for v in ("a/b", "c/d")]
    assert sorted(sweep.rglob("sweep_index.json")) == [sweep / "sweep_index.json"]
    for job_id, record in jobs.items():
        assert record["status"] == "finished" and record["dir"] == str(sweep / job_id)
        assert (sweep / job_id / "checkpoints" / "step_00000002.pt").is_file()
    again = run_ganlab(args, cwd=tmp_path)
    assert (again.stdout + again.stderr).count("already finished (sweep index): skipped") == 2
