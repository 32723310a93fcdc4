"""launcher=slurm against a real Slurm (.ci/slurm/start.sh): a 4-job sweep, and preemption
(`scontrol requeue`, pre-timeout SIGUSR2) resuming at the exact step with bit-identical weights."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import jsonl_rows, logged_steps, run_ganlab
from wandb_reader import find_runs, read_run

# one xdist worker runs them in turn (the cluster's one node has 2 CPUs for them all): pyproject's --dist loadgroup,
# and conftest's tag_xdist_group under pytest 9
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("slurm")]
WANDB_ENV = {"WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}  # one thread: same float sums in and out of Slurm


@pytest.fixture(scope="module")
def slurm() -> None:
    """A running Slurm; skip without one locally, but under CI (CI=true) its absence is a failure."""
    why = None
    if shutil.which("sinfo") is None:
        why = "no sinfo on PATH"
    else:
        states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=30)
        if states.returncode != 0 or not {"idle", "mixed", "allocated"} & set(states.stdout.split()):
            why = f"Slurm is not up (sinfo: {states.stdout.strip() or states.stderr.strip()})"
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"{why}: .ci/run must start Slurm with .ci/slurm/start.sh")
        pytest.skip(f"{why} (as root: bash .ci/slurm/start.sh)")


def index_jobs(sweep: Path) -> dict:
    path = sweep / "sweep_index.json"
    return json.loads(path.read_text())["jobs"] if path.is_file() else {}


def test_four_job_sweep_through_slurm(tmp_path, slurm):
    sweep = tmp_path / "sweep"
    run_ganlab(["-m", "launcher=slurm", "loss=bce,mse", "seed=0,1", "trainer.max_steps=3", "trainer.log_every=1",
                "model.middle_size=16", "trainer.progress=false", "logger.wandb.mode=offline",
                "hydra.launcher.partition=debug", "hydra.launcher.timeout_min=7", "hydra.launcher.cpus_per_task=1",
                "hydra.launcher.mem_gb=1", "hydra.launcher.gpus_per_node=0", "hydra.launcher.array_parallelism=3",
                "hydra.launcher.signal_delay_s=30", "+hydra.launcher.additional_parameters.comment=ganlab-test",
                "hydra.launcher.setup=[\"export GANLAB_SETUP_RAN=yes\"]", f"hydra.sweep.dir={sweep}"],
               cwd=tmp_path, env=WANDB_ENV)
    [sbatch] = list((sweep / ".submitit").glob("*/*_submission.sh"))  # one job array
    script = sbatch.read_text()
    for line in ("#SBATCH --partition=debug", "#SBATCH --time=7", "#SBATCH --cpus-per-task=1", "#SBATCH --mem=1GB",
                 "#SBATCH --gpus-per-node=0", "#SBATCH --array=0-3%3", "#SBATCH --signal=USR2@30",
                 "#SBATCH --comment=ganlab-test", "export GANLAB_SETUP_RAN=yes"):
        assert line in script, line
    jobs = index_jobs(sweep)
    assert len(jobs) == 4
    assert len({j["slurm_job_id"] for j in jobs.values()}) == 4 and all(j["slurm_job_id"] for j in jobs.values())
    for job_id, record in jobs.items():
        job = sweep / job_id
        assert record["status"] == "finished" and record["attempts"] == 1, record
        assert record["objective"] == pytest.approx(abs(record["metrics"]["d_real"] - record["metrics"]["d_fake"]))
        rows = jsonl_rows(job / "metrics.jsonl")
        assert [r["step"] for r in rows] == [1, 2, 3]
        state = torch.load(job / "checkpoints" / "step_00000003.pt", weights_only=True)
        assert state["step"] == 3 and state["generator"]["net.0.weight"].shape == (16, 50)
        assert (job / "samples" / "samples_00000003.png").is_file()
        [wandb_file] = find_runs(job)
        run = read_run(wandb_file)
        assert run.exit_code == 0 and run.group == "sweep"
        assert [h["_step"] for h in run.history if "d_loss" in h] == [1, 2, 3]
        loss = next(o.split("=")[1] for o in record["overrides"] if o.startswith("loss="))
        assert run.config["loss_choice"] == loss and run.config["launcher_choice"] == "slurm"
        assert f"loss={loss}" in run.name


@pytest.mark.parametrize("launcher", ["slurm", "slurm_population"])
def test_a_job_sbatch_refuses_is_one_line_and_leaves_no_job(tmp_path, slurm, launcher):
    proc = run_ganlab(["-m", f"launcher={launcher}", "hydra.launcher.partition=no_such_partition", "seed=0,1",
                       "trainer.max_steps=2", "logger=none", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                      cwd=tmp_path, env=WANDB_ENV, check=False)
    assert proc.returncode == 2, proc.stderr
    ours = [line for line in proc.stderr.splitlines() if not line.startswith("sbatch: ")]  # sbatch speaks too
    assert ours == ["ganlab: error: Slurm refused the jobs: sbatch: error: invalid partition specified: "
                    "no_such_partition"], proc.stderr
    assert index_jobs(tmp_path / "sweep") == {}  # no job started, none is recorded as if it had


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def last_logged_step(job_dir: Path) -> int:
    metrics = job_dir / "metrics.jsonl"
    lines = metrics.read_text().splitlines() if metrics.is_file() else []
    return json.loads(lines[-1])["step"] if lines else 0


PREEMPTED_STEPS = 1500
PREEMPTED_ARGS = [f"trainer.max_steps={PREEMPTED_STEPS}", "trainer.log_every=50", "trainer.ckpt_every=100000",
                  "trainer.ckpt_keep=null", "trainer.sample_every=100000", "model.middle_size=32", "seed=3",
                  "trainer.progress=false", "logger.wandb.mode=offline"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """The last checkpoint of the preempted job's config run straight through (once for both ways of preempting)."""
    reference = tmp_path_factory.mktemp("uninterrupted")
    run_ganlab([*PREEMPTED_ARGS, f"hydra.run.dir={reference / 'run'}"], cwd=reference, env=WANDB_ENV)
    return torch.load(reference / "run" / "checkpoints" / f"step_{PREEMPTED_STEPS:08d}.pt", weights_only=True)


@pytest.mark.parametrize("how", ["scontrol_requeue", "usr2_pre_timeout"])
def test_preempted_job_resumes_at_the_exact_step(tmp_path, slurm, uninterrupted, how):
    steps, train_args = PREEMPTED_STEPS, PREEMPTED_ARGS
    launcher = ["hydra.launcher.timeout_min=5", "hydra.launcher.max_num_timeout=1"] if how == "usr2_pre_timeout" else []
    sweep = tmp_path / "sweep"
    env = {**os.environ, **WANDB_ENV}
    env.pop("WANDB_API_KEY", None)
    proc = subprocess.Popen([sys.executable, "-m", "ganlab", "-m", "launcher=slurm", *train_args, *launcher,
                             f"hydra.sweep.dir={sweep}"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        job_id, record = wait_for(lambda: next(iter(index_jobs(sweep).items()), None), 120, "the job to start")
        wait_for(lambda: last_logged_step(sweep / job_id) >= 100, 120, "the job to train 100 steps")
        signal_cmd = (["scontrol", "requeue"] if how == "scontrol_requeue" else ["scancel", "--signal=USR2"])
        subprocess.run([*signal_cmd, record["slurm_job_id"]], check=True, timeout=30)
        out, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    record = index_jobs(sweep)[job_id]
    assert record["status"] == "finished" and record["attempts"] == 2, record
    stopped = record["stopped_at_step"]
    assert 100 <= stopped < steps, "the signal arrived too late to test a resume"
    job = sweep / job_id
    # ckpt_every is past the end: the only other checkpoint is the one written on the signal
    saved = sorted(p.name for p in (job / "checkpoints").glob("*.pt"))
    assert saved == [f"step_{stopped:08d}.pt", f"step_{steps:08d}.pt"]
    logged = logged_steps(job / "metrics.jsonl")
    assert logged == list(range(50, steps + 1, 50)), "steps repeated or lost across the resume"
    # one offline run dir per attempt, both of the same W&B run id (offline-run-<time>-<id>); the first
    # attempt's W&B service is signalled with the job, so its file may hold nothing readable
    wandb_files = find_runs(job)
    assert len(wandb_files) == 2
    run_id = (job / "wandb_run_id").read_text().strip()
    assert [f.parent.name.rsplit("-", 1)[1] for f in wandb_files] == [run_id, run_id]
    resumed_run = read_run(wandb_files[-1])
    assert resumed_run.run_id == run_id and resumed_run.exit_code == 0
    assert [h["_step"] for h in resumed_run.history if "d_loss" in h][-1] == steps

    resumed = torch.load(job / "checkpoints" / f"step_{steps:08d}.pt", weights_only=True)
    for net in ("generator", "discriminator"):
        for name, tensor in uninterrupted[net].items():
            assert torch.equal(resumed[net][name], tensor), f"{net}.{name} differs from an uninterrupted run"


def population_slurm_args(sweep: Path) -> list[str]:
    return ["-m", "launcher=slurm_population", "hydra.launcher.members_per_task=2", "hydra.launcher.partition=debug",
            "hydra.launcher.timeout_min=7", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
            "hydra.launcher.signal_delay_s=30", f"hydra.sweep.dir={sweep}"]


def test_slurm_population_packs_members_per_task(tmp_path, slurm):
    sweep = tmp_path / "sweep"
    train_args = ["loss=bce,hinge", "optimizer.lr=1e-4,3e-4", "trainer.max_steps=6", "trainer.log_every=2",
                  "model.middle_size=16", "eval.every=3", "eval.n_samples=64", "eval.kid_subsets=2",
                  "trainer.progress=false", "logger.wandb.mode=offline"]
    run_ganlab([*population_slurm_args(sweep), *train_args], cwd=tmp_path, env=WANDB_ENV)
    jobs = index_jobs(sweep)
    assert len(jobs) == 4 and {j["status"] for j in jobs.values()} == {"finished"}
    tasks = {j["slurm_job_id"] for j in jobs.values()}
    assert len(tasks) == 2 and all(tasks)  # 4 members, 2 per Slurm task
    reference = tmp_path / "reference"  # the same sweep under the basic launcher, here: the same runs
    run_ganlab(["-m", *train_args, f"hydra.sweep.dir={reference}"], cwd=tmp_path, env=WANDB_ENV)
    for job_id, record in jobs.items():
        job = sweep / job_id
        assert record["objective"] == index_jobs(reference)[job_id]["objective"]
        assert logged_steps(job / "metrics.jsonl") == [2, 4, 6]
        a = torch.load(job / "checkpoints" / "step_00000006.pt", weights_only=True)
        b = torch.load(reference / job_id / "checkpoints" / "step_00000006.pt", weights_only=True)
        assert all(torch.equal(v, b["generator"][k]) for k, v in a["generator"].items())
        [wandb_file] = find_runs(job)
        run = read_run(wandb_file)
        assert run.exit_code == 0 and run.group == "sweep" and run.config["launcher_choice"] == "slurm_population"


def test_a_requeued_slurm_population_resumes_every_member(tmp_path, slurm):
    steps = 1500
    sweep = tmp_path / "sweep"
    train_args = ["seed=0,1", f"trainer.max_steps={steps}", "trainer.log_every=50", "trainer.ckpt_every=100000",
                  "trainer.ckpt_keep=null", "trainer.sample_every=100000", "model.middle_size=32", "eval.every=0",
                  "trainer.progress=false", "logger=none"]
    env = {**os.environ, **WANDB_ENV}
    proc = subprocess.Popen([sys.executable, "-m", "ganlab", *population_slurm_args(sweep), *train_args],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        jobs = wait_for(lambda: len(index_jobs(sweep)) == 2 and index_jobs(sweep), 120, "the members to start")
        first = sweep / next(iter(jobs))
        wait_for(lambda: last_logged_step(first) >= 100, 120, "the population to train 100 steps")
        task = next(iter(index_jobs(sweep).values()))["slurm_job_id"]
        subprocess.run(["scontrol", "requeue", task], check=True, timeout=30)
        out, _ = proc.communicate(timeout=400)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    jobs = index_jobs(sweep)
    stops = {j["stopped_at_step"] for j in jobs.values()}
    assert len(stops) == 1 and 100 <= stops.pop() < steps  # every member checkpointed the same step
    reference = tmp_path / "reference"
    run_ganlab(["-m", *train_args, f"hydra.sweep.dir={reference}"], cwd=tmp_path, env=WANDB_ENV)
    for job_id, record in jobs.items():
        assert record["status"] == "finished" and record["attempts"] == 2, record
        logged = logged_steps(sweep / job_id / "metrics.jsonl")
        assert logged == list(range(50, steps + 1, 50))
        a = torch.load(sweep / job_id / "checkpoints" / f"step_{steps:08d}.pt", weights_only=True)
        b = torch.load(reference / job_id / "checkpoints" / f"step_{steps:08d}.pt", weights_only=True)
        assert all(torch.equal(v, b["generator"][k]) for k, v in a["generator"].items())


@pytest.mark.parametrize("launcher", ["slurm", "slurm_population"])
def test_a_rerun_submits_neither_the_finished_jobs_nor_those_still_running_in_slurm(tmp_path, slurm, launcher):
    """Ctrl-C of a Slurm sweep's command leaves its Slurm jobs going; the same command run again submits none of
    them again: the finished one's result is taken from the index, the running one is waited for here (a second
    task would hold an allocation waiting on the job's lock). Each trained once, every step logged once."""
    import signal

    # job 0 short, job 1 long (~40 s alone): array tasks start in order, so the long one still runs at the rerun
    # also when a CPU of the node is taken (by another test's job) and the two run one after the other
    long = 12000
    sweep = tmp_path / "sweep"
    keys = ["hydra.launcher.array_parallelism=2"] if launcher == "slurm" else ["hydra.launcher.members_per_task=2"]
    args = [sys.executable, "-m", "ganlab", "-m", f"launcher={launcher}", f"trainer.max_steps=50,{long}",
            "trainer.epochs=1000", "eval.every=0", "trainer.log_every=500", "trainer.progress=false", "logger=none",
            "hydra.launcher.partition=debug", "hydra.launcher.timeout_min=7", "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.mem_gb=1", *keys, f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, **WANDB_ENV}
    first = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def job_of(steps: int) -> str | None:
        return next((j for j, r in index_jobs(sweep).items() if f"trainer.max_steps={steps}" in r["overrides"]), None)

    try:
        short = wait_for(lambda: job_of(50) if index_jobs(sweep).get(job_of(50), {}).get("status") == "finished"
                         else None, 180, "the short job to finish")
        running = wait_for(lambda: (j := job_of(long)) and last_logged_step(sweep / j) >= 500 and j, 180,
                           "the long job to train")
        first.send_signal(signal.SIGINT)  # a terminal's Ctrl-C reaches the command; the Slurm jobs are elsewhere
        out, _ = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 130 and "the sweep's Slurm jobs go on" in out, out
    assert index_jobs(sweep)[running]["status"] == "running", index_jobs(sweep)
    again = subprocess.run(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=300)
    said = again.stdout  # Hydra's log lines and ganlab's summary
    assert again.returncode == 0, said[-3000:]
    where = "Slurm job" if launcher == "slurm" else "Slurm task"
    assert f"job {running} still runs in {'Slurm job' if launcher == 'slurm' else 'an earlier Slurm task'}" in said \
        and f"job {running} ended in its earlier {where}: its result taken" in said, said[-3000:]
    assert f"job {short} already finished (sweep index)" in said, said[-3000:]
    assert "2 jobs, 2 finished" in said
    assert len(list((sweep / ".submitit").glob("*/*_submission.sh"))) == 1  # the first command's array alone
    for job_id, record in index_jobs(sweep).items():
        assert record["status"] == "finished" and record["attempts"] == 1, record
        steps = 50 if job_id == short else long
        logged = logged_steps(sweep / job_id / "metrics.jsonl")
        assert logged == [*range(500, steps, 500), steps]
