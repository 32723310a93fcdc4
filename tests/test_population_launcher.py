"""launcher=population: a sweep trained as one batched program, each member like the job run alone.

Tolerance: for the MLP family the stack computes each member with the same kernels in the same order
as the member alone (ganlab/launch/population/fold.py), so weights, logged losses and evaluations
are compared bit for bit (torch.equal / ==). Two cases sum in another order and are compared to
float rounding instead: DCGAN (the model's own forward under vmap: batched convolutions) and a
member whose z_size is smaller than the population's (its first matmul runs over zero-padded
inputs, and the BLAS kernel for the wider product groups the same nonzero terms differently).
Per-op differences are ~1e-7 relative; 20 Adam steps leave them below 1e-4 of each tensor's scale
(measured ~1e-6), the bound asserted, and the logged values within 1e-3 relative.
"""

from __future__ import annotations

import json
import re
import signal
import sys
from pathlib import Path

import pytest
import torch

from ganlab.launch.population import plan
from ganlab.launch.population.step import PopulationStep

from conftest import FAST, REPO, run_ganlab, signal_once_logging
from wandb_reader import find_runs, read_run

TINY = ["model.middle_size=16", "trainer.max_steps=20", "trainer.log_every=5", "trainer.ckpt_every=10",
        "eval.every=10", "eval.n_samples=128", "eval.kid_subsets=3"]
ZOO = "loss=bce,minimax,mse,hinge,wgan,wgan_gp,bce_r1"
ONE = "hydra.launcher.processes=1"  # every program in the launching process: what a test of grouping counts


def index(sweep: Path) -> dict:
    return json.loads((sweep / "sweep_index.json").read_text())["jobs"]


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def checkpoint(job: Path, step: int) -> dict:
    return torch.load(job / "checkpoints" / f"step_{step:08d}.pt", weights_only=True)


def run_main(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """The real entry point in this process (so a test can poison the step); its exit code."""
    from ganlab.__main__ import main

    monkeypatch.setattr(sys, "argv", ["ganlab", *argv])
    try:
        main()
    except SystemExit as stop:
        return int(stop.code or 0)
    return 0


def pre_batchnorm_biases(state: dict) -> set[str]:
    """"generator.net.0.bias"-style names of the biases a BatchNorm follows, and of that BatchNorm's running
    mean. The bias's true gradient is 0 (BatchNorm removes any shift), so Adam turns the rounding noise
    of its computed gradient into lr-sized steps either way, and the running mean follows the shift:
    both drift apart without changing any output, and are left to the function comparison."""
    from torch import nn

    from ganlab.from_checkpoint import load_models

    names = set()
    for net, module in zip(("generator", "discriminator"), load_models(state, torch.device("cpu"))):
        layers = list(module.net)
        for i, (layer, after) in enumerate(zip(layers, layers[1:])):
            if isinstance(after, nn.modules.batchnorm._BatchNorm) and getattr(layer, "bias", None) is not None:
                names |= {f"{net}.net.{i}.bias", f"{net}.net.{i + 1}.running_mean"}
    return names


def assert_same_job(basic: Path, population: Path, exact: bool = True) -> None:
    """The member's run equals the job run alone: logged rows, evaluations, checkpoints."""
    for name in ("metrics.jsonl", "eval.jsonl"):
        a, b = rows(basic / name), rows(population / name)
        assert [r["step"] for r in a] == [r["step"] for r in b] and a[0].keys() == b[0].keys(), name
        for ra, rb in zip(a, b):
            for key in ra:
                if key == "images_per_s":
                    continue
                if exact:
                    assert ra[key] == rb[key], (name, ra["step"], key)
                else:
                    assert rb[key] == pytest.approx(ra[key], rel=1e-3, abs=1e-4), (name, ra["step"], key)
    steps = sorted(int(p.stem.split("_")[1]) for p in (basic / "checkpoints").glob("step_*.pt"))
    assert steps == sorted(int(p.stem.split("_")[1]) for p in (population / "checkpoints").glob("step_*.pt"))
    a, b = checkpoint(basic, steps[-1]), checkpoint(population, steps[-1])
    loose = set() if exact else pre_batchnorm_biases(a)
    for net in ("generator", "discriminator"):
        for key, value in a[net].items():
            if exact or not value.is_floating_point():
                assert torch.equal(value, b[net][key]), (net, key)
            elif f"{net}.{key}" not in loose:
                scale = value.abs().max().clamp_min(1e-3)
                assert (value - b[net][key]).abs().max() <= 1e-4 * scale, (net, key)
    if not exact:  # and the nets compute the same functions (biases before BatchNorm included)
        from ganlab.from_checkpoint import load_models

        (g_a, d_a), (g_b, d_b) = load_models(a, torch.device("cpu")), load_models(b, torch.device("cpu"))
        z = torch.randn(64, g_a.z_size, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            assert (g_a(z) - g_b(z)).abs().max() <= 1e-3 and (d_a(g_a(z)) - d_b(g_a(z))).abs().max() <= 1e-3
    for opt in ("g_opt", "d_opt"):
        assert a[opt]["param_groups"] == b[opt]["param_groups"]
        for i, state in a[opt]["state"].items():
            for key, value in state.items():
                if exact:
                    assert torch.equal(value, b[opt]["state"][i][key]), (opt, i, key)
    assert torch.equal(a["rng"]["latent"], b["rng"]["latent"]) and torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert a["config"] == b["config"]
    for metric, (value, step) in a["eval"].get("best", {}).items():
        assert b["eval"]["best"][metric][1] == step or not exact
        assert b["eval"]["best"][metric][0] == (value if exact else pytest.approx(value, rel=1e-3, abs=1e-4))


def same_sweep(tmp_path: Path, args: list[str], exact: bool, threads: int | None = None,
               workers: str | None = None) -> dict:
    """Run ``args`` under launcher=population and under the basic launcher; every job must agree.

    ``threads``: both sides with that many torch threads (the population split across two workers);
    None: the population as it comes (``processes=auto``), the basic jobs with torch's default.
    ``workers``: the entry point, "plain" or "torch_first" (in a process that imported torch first,
    tests/torch_first.py); every worker must have come from the forkserver either way."""
    pinned = [] if threads is None else ["hydra.launcher.processes=2", f"hydra.launcher.threads={threads}"]
    env = None if threads is None else {"OMP_NUM_THREADS": str(threads)}
    entry = {"module": "torch_first", "env": {"PYTHONPATH": str(REPO / "tests")}} if workers == "torch_first" else {}
    proc = run_ganlab([*args, "launcher=population", *pinned, f"hydra.sweep.dir={tmp_path / 'population'}"],
                      cwd=tmp_path, **entry)
    if workers is not None:
        started = re.findall(r"worker \d+ \((\w+)\)", proc.stdout)
        assert started and set(started) == {"forkserver"}, proc.stdout
    run_ganlab([*args, f"hydra.sweep.dir={tmp_path / 'basic'}"], cwd=tmp_path, env=env)
    basic, population = index(tmp_path / "basic"), index(tmp_path / "population")
    assert basic.keys() == population.keys()  # the launcher is not part of a job's identity
    for job_id, record in population.items():
        assert record["status"] == "finished"
        assert record["objective"] == (basic[job_id]["objective"] if exact else
                                       pytest.approx(basic[job_id]["objective"], rel=1e-3, abs=1e-4))
        assert_same_job(tmp_path / "basic" / job_id, tmp_path / "population" / job_id, exact)
    return population


@pytest.mark.slow
def test_every_loss_of_the_zoo_with_mixed_lr_trains_bit_identically_to_the_job_alone(tmp_path):
    # two workers of 7 members, one thread each, against the jobs alone with one thread: bit for bit
    population = same_sweep(tmp_path, ["-m", ZOO, "optimizer.lr=1e-4,5e-4", *TINY, *FAST], exact=True, threads=1)
    assert len(population) == 14
    log = (tmp_path / "population" / next(iter(population)) / "ganlab.log").read_text()
    assert "trains in a population of 7 members" in log


def test_one_program_in_this_process_is_bit_identical_to_the_jobs_alone_at_torchs_default_threads(tmp_path):
    # the losses interleaved in job order (bce, wgan_gp, bce, wgan_gp): the population puts each loss's side by side
    args = ["-m", "optimizer.lr=1e-4,5e-4", "loss=bce,wgan_gp", *TINY, *FAST]
    run_ganlab([*args, "launcher=population", "hydra.launcher.processes=1", f"hydra.sweep.dir={tmp_path / 'p'}"],
               cwd=tmp_path)
    run_ganlab([*args, f"hydra.sweep.dir={tmp_path / 'basic'}"], cwd=tmp_path)
    for job_id, record in index(tmp_path / "p").items():
        assert record["objective"] == index(tmp_path / "basic")[job_id]["objective"]
        assert_same_job(tmp_path / "basic" / job_id, tmp_path / "p" / job_id, exact=True)
    assert "trains in a population of 4 members" in (tmp_path / "p" / job_id / "ganlab.log").read_text()


def test_mixed_z_size_and_losses_agree_with_the_jobs_alone_to_float_rounding(tmp_path):
    population = same_sweep(tmp_path, ["-m", "loss=bce,wgan_gp", "model.z_size=8,16", *TINY, *FAST], exact=False)
    assert len(population) == 4


def test_dcgan_members_agree_with_the_jobs_alone_to_float_rounding(tmp_path):
    same_sweep(tmp_path, ["-m", "loss=bce,hinge", "model=dcgan", "model.width=4", "model.z_size=8", *TINY[1:], *FAST],
               exact=False)


def test_members_leave_what_a_basic_job_leaves(tmp_path):
    args = ["-m", "loss=bce,hinge", *TINY, "trainer.progress=false", "logger.wandb.mode=offline"]
    run_ganlab([*args, "launcher=population", f"hydra.sweep.dir={tmp_path / 'population'}"], cwd=tmp_path)
    run_ganlab([*args, f"hydra.sweep.dir={tmp_path / 'basic'}"], cwd=tmp_path)

    def layout(job: Path) -> set[str]:
        return {str(p.relative_to(job)) for p in job.rglob("*") if p.is_file() and "wandb" not in p.parts}

    basic, population = index(tmp_path / "basic"), index(tmp_path / "population")
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


def test_a_nan_member_fails_at_its_step_keeps_its_last_good_checkpoint_and_the_others_finish(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = PopulationStep.__call__

    def poisoned(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 13:  # member 1's G goes NaN in step 13 (found at the log step 15)
            with torch.no_grad():
                self.generator.params[0][1].fill_(float("nan"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(PopulationStep, "__call__", poisoned)
    sweep = tmp_path / "sweep"
    code = run_main(["-m", "loss=bce,hinge,mse", *TINY, *FAST, "launcher=population", ONE, f"hydra.sweep.dir={sweep}"],
                    monkeypatch)
    assert code == 2  # a failed job: the sweep's summary, exit 2
    jobs = sorted(index(sweep).items(), key=lambda kv: kv[1]["num"])
    statuses = [r["status"] for _, r in jobs]
    assert statuses == ["finished", "failed", "finished"]
    failed_id, failed = jobs[1]
    assert failed["error"].startswith("NonFiniteLossError: step 13: d_loss or g_loss is NaN/inf")
    kept = sorted(p.name for p in (sweep / failed_id / "checkpoints").iterdir())
    assert kept == ["step_00000010.pt"]  # the last good checkpoint
    assert [r["step"] for r in rows(sweep / failed_id / "metrics.jsonl")] == [5, 10]
    for job_id, _ in (jobs[0], jobs[2]):
        assert (sweep / job_id / "checkpoints" / "step_00000020.pt").is_file()


@pytest.mark.parametrize("losses", ["bce,hinge,mse", "hinge"], ids=["in-a-population", "alone"])
def test_a_member_whose_checkpoint_cannot_be_written_fails_in_one_line_and_the_others_finish(
        tmp_path, monkeypatch, capfd, losses):
    # a file where the hinge member makes its checkpoints folder (as a full disk would fail its writes): the
    # error was a traceback that stopped every member of the population; a single run prints one line
    from ganlab.launch.population import run_group

    original = run_group.build_member

    def blocked(cfg, ctx, *args, **kwargs):
        member = original(cfg, ctx, *args, **kwargs)
        if ctx.choices["loss"] == "hinge":
            (ctx.dir / "checkpoints").write_text("")
        return member

    monkeypatch.setattr(run_group, "build_member", blocked)
    sweep = tmp_path / "sweep"
    code = run_main(["-m", f"loss={losses}", *TINY, *FAST, "launcher=population", ONE, f"hydra.sweep.dir={sweep}"],
                    monkeypatch)
    stderr = capfd.readouterr().err
    assert code == 2, stderr  # a failed job: the sweep's summary, exit 2
    assert "Traceback" not in stderr
    records = index(sweep)
    failed = [job_id for job_id, r in records.items() if r["status"] == "failed"]
    assert len(failed) == 1 and "loss=hinge" in records[failed[0]]["overrides"]
    assert records[failed[0]]["error"].startswith("FileExistsError")
    assert f"ganlab: error: {failed[0]}: {sweep / failed[0] / 'checkpoints'}: File exists" in stderr.splitlines()
    others = [job_id for job_id in records if job_id not in failed]
    assert len(others) == len(losses.split(",")) - 1
    for job_id in others:
        assert records[job_id]["status"] == "finished"
        assert (sweep / job_id / "checkpoints" / "step_00000020.pt").is_file()


def test_a_preempted_population_resumes_every_member_where_it_stopped(tmp_path, monkeypatch):
    from ganlab.launch.preemption import StopOnSignal

    args = ["-m", "loss=bce,hinge", "optimizer.lr=1e-4,3e-4", *TINY, *FAST, "launcher=population", ONE]
    straight = tmp_path / "straight"
    assert run_main([*args, f"hydra.sweep.dir={straight}"], monkeypatch) == 0
    steps = {"n": 0}

    def stop_after_seven(self):
        steps["n"] += 1
        return steps["n"] >= 7

    sweep = tmp_path / "sweep"
    with monkeypatch.context() as patch:
        patch.setattr(StopOnSignal, "requested", stop_after_seven)
        assert run_main([*args, f"hydra.sweep.dir={sweep}"], monkeypatch) == 143  # as a preempted job exits
    assert {r["status"] for r in index(sweep).values()} == {"preempted"}
    assert all(r["stopped_at_step"] == 7 for r in index(sweep).values())
    assert run_main([*args, f"hydra.sweep.dir={sweep}"], monkeypatch) == 0  # the same command: resumes
    for job_id, record in index(sweep).items():
        assert record["status"] == "finished" and record["attempts"] == 2
        assert [r["step"] for r in rows(sweep / job_id / "metrics.jsonl")] == [5, 10, 15, 20]
        a, b = checkpoint(straight / job_id, 20), checkpoint(sweep / job_id, 20)
        assert all(torch.equal(v, b["generator"][k]) for k, v in a["generator"].items())
    assert run_main([*args, f"hydra.sweep.dir={sweep}"], monkeypatch) == 0  # finished members are skipped
    assert all(r["attempts"] == 2 for r in index(sweep).values())


def test_groups_that_cannot_share_run_one_after_another(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_ganlab(["-m", "model.middle_size=8,16", "seed=0,1", *TINY[1:], *FAST, "launcher=population", ONE,
                       f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert (proc.stdout + proc.stderr).count("population of 2 members") == 2  # two widths: two programs of 2 seeds
    assert {r["status"] for r in index(sweep).values()} == {"finished"} and len(index(sweep)) == 4


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
    assert {r["status"] for r in index(sweep).values()} == {"finished"} and len(index(sweep)) == 4


def test_optuna_trials_of_a_batch_train_as_one_population(tmp_path):
    sweep = tmp_path / "sweep"
    # n_critic fixed on the command line: trials that differ in it could not share a program
    proc = run_ganlab(["-m", "sweep=optuna", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_jobs=2", "objective=g_loss",
                       "trainer.n_critic=1", *TINY, *FAST, "launcher=population", ONE, f"hydra.sweep.dir={sweep}"],
                      cwd=tmp_path)
    assert (proc.stdout + proc.stderr).count("population of 2 members") == 2  # two batches of two trials
    jobs = index(sweep)
    assert len(jobs) == 4 and {r["status"] for r in jobs.values()} == {"finished"}
    best = json.loads(json.dumps(min(r["objective"] for r in jobs.values())))
    assert (sweep / "optimization_results.yaml").is_file() and str(round(best, 4))[:5] in \
        (sweep / "optimization_results.yaml").read_text()


def signal_once_logging_sweep(args: list[str], sweep: Path, cwd: Path, jobs: int, signum: int = signal.SIGTERM,
                              to_group: bool = False) -> dict:
    """Start the sweep, signal it once each of its ``jobs`` jobs logged two rows (SIGTERM: the launching process
    only, as a scheduler's kill of the job step's leader; Ctrl-C: its process group); the index."""
    proc = signal_once_logging(args, f"{sweep.name}/job-*/metrics.jsonl", cwd, jobs, signum, to_group)
    assert proc.returncode == 128 + signum, proc.stderr
    found = index(sweep)
    assert {r["status"] for r in found.values()} == {"preempted"} and len(found) == jobs
    if signum == signal.SIGINT:
        last = proc.stderr.strip().splitlines()[-1]
        assert last == "ganlab: interrupted (Ctrl-C); the same command resumes the sweep", proc.stderr
    return found


def assert_resumed_to_the_end(sweep: Path, stopped: dict[str, int]) -> None:
    """Every job finished on its second attempt, keeping its preemption checkpoint, every row logged once."""
    for job_id, record in index(sweep).items():
        assert record["status"] == "finished" and record["attempts"] == 2
        saved = sorted(p.name for p in (sweep / job_id / "checkpoints").glob("*.pt"))
        assert saved == [f"step_{stopped[job_id]:08d}.pt", f"step_{LONG_STEPS:08d}.pt"]
        assert [r["step"] for r in rows(sweep / job_id / "metrics.jsonl")] == list(range(50, LONG_STEPS + 1, 50))


LONG_STEPS = 1500  # SIGTERM comes at step 100 + one 0.2 s poll (~30 steps): the rest is margin for a busy CPU
LONG = ["model.middle_size=16", f"trainer.max_steps={LONG_STEPS}", "trainer.log_every=50", "trainer.ckpt_every=100000",
        "eval.every=0", *FAST, "launcher=population"]


@pytest.mark.slow
def test_sigterm_checkpoints_every_member_and_the_same_command_resumes_them(tmp_path):
    sweep = tmp_path / "sweep"
    tracked = [a for a in LONG if a != "logger=none"] + ["logger=wandb", "logger.wandb.mode=offline"]
    args = ["-m", "seed=0,1", *tracked, ONE, f"hydra.sweep.dir={sweep}"]
    jobs = signal_once_logging_sweep(args, sweep, tmp_path, 2)
    assert len({r["stopped_at_step"] for r in jobs.values()}) == 1  # every member checkpointed the same step
    for job_id in jobs:  # each member's W&B run: preempted, not failed
        assert [(r.preempting, r.exit_code) for r in map(read_run, find_runs(sweep / job_id))] == [(True, 1)]
    run_ganlab(args, cwd=tmp_path)
    assert_resumed_to_the_end(sweep, {job_id: r["stopped_at_step"] for job_id, r in jobs.items()})


@pytest.mark.slow
@pytest.mark.parametrize("signum,to_group", [(signal.SIGTERM, False), (signal.SIGINT, True)], ids=["sigterm", "ctrl_c"])
def test_a_signal_reaches_every_worker_and_the_same_command_resumes_each_job(tmp_path, signum, to_group):
    """Four jobs in two workers of two: the launching process passes SIGTERM on, each worker checkpoints its
    members at its own step, and the same command resumes all four to the step the straight sweep ends at.
    Ctrl-C reaches every process of the group (the forkserver ignores it): a traceback in each before."""
    sweep = tmp_path / "sweep"
    args = ["-m", "seed=0,1,2,3", *LONG, "hydra.launcher.processes=2", "hydra.launcher.threads=1",
            f"hydra.sweep.dir={sweep}"]
    jobs = signal_once_logging_sweep(args, sweep, tmp_path, 4, signum, to_group)
    assert len({r["pid"] for r in jobs.values()}) == 2  # two workers trained them
    run_ganlab(args, cwd=tmp_path)
    assert_resumed_to_the_end(sweep, {job_id: r["stopped_at_step"] for job_id, r in jobs.items()})


@pytest.mark.parametrize("workers", ["plain", "torch_first"])
def test_workers_with_two_threads_are_bit_identical_to_the_jobs_alone_with_two(tmp_path, workers):
    # threads > 1: workers forked from the forkserver, which never ran a torch op, so no OpenMP pool is copied
    # into them half-alive, also where the launching process had used torch first (a notebook)
    population = same_sweep(tmp_path, ["-m", "loss=bce,hinge", "optimizer.lr=1e-4,5e-4", *TINY, *FAST], exact=True,
                            threads=2, workers=workers)
    assert len({record["pid"] for record in population.values()}) == 2
