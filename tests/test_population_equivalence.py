"""launcher=population: each member trains like its job run alone, under every loss, z_size, model and thread count.

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

import re
from pathlib import Path

import pytest
import torch

from conftest import FAST, REPO, checkpoint_at, jsonl_rows, run_ganlab, sweep_index
from population_sweeps import TINY, ZOO


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
        a, b = jsonl_rows(basic / name), jsonl_rows(population / name)
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
    a, b = checkpoint_at(basic, steps[-1]), checkpoint_at(population, steps[-1])
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
    basic, population = sweep_index(tmp_path / "basic"), sweep_index(tmp_path / "population")
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
    for job_id, record in sweep_index(tmp_path / "p").items():
        assert record["objective"] == sweep_index(tmp_path / "basic")[job_id]["objective"]
        assert_same_job(tmp_path / "basic" / job_id, tmp_path / "p" / job_id, exact=True)
    assert "trains in a population of 4 members" in (tmp_path / "p" / job_id / "ganlab.log").read_text()


def test_mixed_z_size_and_losses_agree_with_the_jobs_alone_to_float_rounding(tmp_path):
    population = same_sweep(tmp_path, ["-m", "loss=bce,wgan_gp", "model.z_size=8,16", *TINY, *FAST], exact=False)
    assert len(population) == 4


def test_dcgan_members_agree_with_the_jobs_alone_to_float_rounding(tmp_path):
    same_sweep(tmp_path, ["-m", "loss=bce,hinge", "model=dcgan", "model.width=4", "model.z_size=8", *TINY[1:], *FAST],
               exact=False)


@pytest.mark.parametrize("workers", ["plain", "torch_first"])
def test_workers_with_two_threads_are_bit_identical_to_the_jobs_alone_with_two(tmp_path, workers):
    # threads > 1: workers forked from the forkserver, which never ran a torch op, so no OpenMP pool is copied
    # into them half-alive, also where the launching process had used torch first (a notebook)
    population = same_sweep(tmp_path, ["-m", "loss=bce,hinge", "optimizer.lr=1e-4,5e-4", *TINY, *FAST], exact=True,
                            threads=2, workers=workers)
    assert len({record["pid"] for record in population.values()}) == 2
