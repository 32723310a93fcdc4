"""The real entry point (`python -m ganlab`, the `ganlab` script, a wheel install) end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import FAST, REPO, compose_cfg, grid_cells, jsonl_rows, run_ganlab, sweep_index
from wandb_reader import find_runs, read_run


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The sweep's job dirs (job-<hash>) in launch order, from the sweep index."""
    jobs = sweep_index(sweep_dir)
    return [sweep_dir / job_id for job_id, _ in sorted(jobs.items(), key=lambda item: item[1]["num"])]


def test_each_loss_trains_through_the_entry_point_with_one_wandb_run_per_job(tmp_path):
    sweep = tmp_path / "sweep"
    run_ganlab(["-m", "loss=bce,minimax,mse", "trainer.max_steps=3", "trainer.log_every=1", "+note=baseline",
                "trainer.progress=false", "logger.wandb.mode=offline", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    jobs = job_dirs(sweep)
    assert len(jobs) == 3
    groups, names = set(), set()
    for job, loss in zip(jobs, ["bce", "minimax", "mse"]):
        rows = jsonl_rows(job / "metrics.jsonl")
        assert [r["step"] for r in rows] == [1, 2, 3]
        for key in ("d_loss", "g_loss", "d_real", "d_fake", "g_grad_norm", "d_grad_norm", "images_per_s"):
            assert all(np.isfinite(r[key]) for r in rows), key
        assert all(0 <= r["d_real"] <= 1 and 0 <= r["d_fake"] <= 1 for r in rows)
        assert (job / "samples" / "samples_00000003.png").is_file()
        assert (job / "checkpoints" / "step_00000003.pt").is_file()
        [wandb_file] = find_runs(job)  # exactly one W&B run per job
        run = read_run(wandb_file)
        assert run.config["loss_choice"] == loss and run.config["data_choice"] == "digits"
        assert run.config["note"] == "baseline"  # a top-level key added with +: metadata on the dashboard
        assert [h["_step"] for h in run.history if "d_loss" in h] == [1, 2, 3]
        assert run.exit_code == 0
        groups.add(run.group)
        names.add(run.name)
    assert len(groups) == 1 and groups.pop() == sweep.name  # the sweep's name: its directory's
    assert len(names) == 3 and all(f"loss={loss}" in n for loss, n in zip(["bce", "minimax", "mse"], sorted(names)))


def test_wandb_offline_run_reads_back(tmp_path):
    run_dir = tmp_path / "run"
    run_ganlab(["loss=mse", "model.middle_size=32", "trainer.max_steps=6", "trainer.log_every=2",
                "trainer.sample_every=3", "trainer.progress=false", "logger.wandb.mode=offline",
                "logger.wandb.tags=[blog,test]", "logger.wandb.project=ganlab-test", f"hydra.run.dir={run_dir}"],
               cwd=tmp_path)
    [wandb_file] = find_runs(run_dir)
    run = read_run(wandb_file)
    assert run.group == "single" and run.project == "ganlab-test" and run.tags == ["blog", "test"]
    assert run.name == "logger.wandb.mode=offline,logger.wandb.project=ganlab-test,logger.wandb.tags=[blog,test]," \
                       "loss=mse,model.middle_size=32,trainer.log_every=2,trainer.max_steps=6,trainer.progress=false,trainer.sample_every=3"
    for group, choice in {"loss": "mse", "model": "mlp", "data": "digits", "optimizer": "adam",
                          "hardware": "auto", "logger": "wandb", "experiment": "None"}.items():
        assert run.config[f"{group}_choice"] == choice
    assert run.config["model"]["middle_size"] == 32 and run.config["seed"] == 0
    logged = [h for h in run.history if "d_loss" in h]
    assert [h["_step"] for h in logged] == [2, 4, 6]
    local = jsonl_rows(run_dir / "metrics.jsonl")
    assert [h["g_loss"] for h in logged] == pytest.approx([r["g_loss"] for r in local])
    images = [h for h in run.history if "samples/_type" in h]
    assert [h["_step"] for h in images] == [3, 6] and images[0]["samples/_type"] == "image-file"
    assert list(wandb_file.parent.glob("files/media/images/samples_*.png"))
    assert run.summary["step"] == 6 and "d_loss" in run.summary
    assert run.exit_code == 0


def test_an_example_through_the_console_script(tmp_path):
    script = Path(sys.executable).parent / "ganlab"
    assert script.is_file(), "the ganlab console script is not installed"
    run_dir = tmp_path / "run"
    proc = subprocess.run([str(script), "loss=bce", "model.middle_size=256", "trainer.max_steps=2", *FAST,
                           f"hydra.run.dir={run_dir}"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    state = torch.load(run_dir / "checkpoints" / "step_00000002.pt", weights_only=True)
    assert state["generator"]["net.0.weight"].shape == (256, 50)
    assert state["config"]["model"]["middle_size"] == 256


def test_multirun_flag_after_an_override_still_makes_a_sweep(tmp_path, monkeypatch):
    from ganlab.__main__ import main, multirun_flag_first

    assert multirun_flag_first(["loss=bce", "-m", "seed=0,1"]) == ["-m", "loss=bce", "seed=0,1"]
    assert multirun_flag_first(["a=1", "--multirun"]) == ["--multirun", "a=1"]
    assert multirun_flag_first(["--cfg", "job", "a=1"]) == ["--cfg", "job", "a=1"]  # other flags stay put
    # Hydra alone: "unrecognized arguments: seed=0,1" under its usage screen
    sweep = tmp_path / "sweep"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["ganlab", "trainer.max_steps=2", "eval.every=0", *FAST, "-m", "seed=0,1",
                                      f"hydra.sweep.dir={sweep}"])
    main()
    jobs = job_dirs(sweep)
    assert len(jobs) == 2 and all((job / "checkpoints" / "step_00000002.pt").is_file() for job in jobs)


def test_experiments_run_on_idx_mnist(tmp_path, tiny_mnist):
    sweep = tmp_path / "sweep"
    run_ganlab(["-m", "experiment=seed,vanilla", "data=mnist", f"data.root={tiny_mnist}", "data.batch_size=16",
                "trainer.max_steps=3", *FAST, f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    for job in job_dirs(sweep):
        state = torch.load(job / "checkpoints" / "step_00000003.pt", weights_only=True)
        assert state["img_shape"] == [1, 28, 28] and state["step"] == 3


@pytest.mark.parametrize("experiment", ["seed", "vanilla"])
def test_experiments_run_on_debian_fashion_mnist(tmp_path, fashion_root, experiment):
    run_dir = tmp_path / "run"
    run_ganlab([f"experiment={experiment}", "data=fashion_mnist", f"data.root={fashion_root}",
                "trainer.max_steps=2", *FAST, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    state = torch.load(run_dir / "checkpoints" / "step_00000002.pt", weights_only=True)
    assert state["config"]["data"]["dataset"]["name"] == "fashion_mnist"


def test_sample_export(tmp_path):
    run_dir = tmp_path / "run"
    run_ganlab(["trainer.max_steps=2", *FAST, f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    out = tmp_path / "samples.npy"
    proc = run_ganlab([str(run_dir / "checkpoints" / "step_00000002.pt"), "--n", "37", "--out", str(out)],
                      cwd=tmp_path, module="ganlab.sample")
    assert "wrote 37 images" in proc.stdout
    images = np.load(out)
    assert images.dtype == np.uint8 and images.shape == (37, 1, 8, 8)
    assert images.std() > 0  # not a constant image
    missing = run_ganlab([str(tmp_path / "nope.pt"), "--out", str(out)], cwd=tmp_path, module="ganlab.sample",
                         check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_sample_draws_a_png_of_the_same_samples_as_the_npy(tmp_path, capsys):
    from PIL import Image

    from ganlab.sample import main as sample
    from ganlab.train import train

    train(compose_cfg(["trainer.max_steps=2", *FAST], run_dir=tmp_path / "run"))
    assert sample([str(tmp_path / "run"), "--out", str(tmp_path / "g.png")]) == 0
    assert "wrote a picture of 64 samples (274x274 px)" in capsys.readouterr().out
    assert sample([str(tmp_path / "run"), "--n", "64", "--out", str(tmp_path / "g.npy")]) == 0
    grid = np.asarray(Image.open(tmp_path / "g.png"))
    assert grid.shape == (274, 274, 3)  # 8 x 8 digits, upscaled x4 to be seen, 2 px apart (grey as RGB)
    grid = grid[..., 0]
    upscaled = np.load(tmp_path / "g.npy")[:, 0].repeat(4, axis=1).repeat(4, axis=2)
    assert np.array_equal(grid_cells(grid, 8, 8, 32), upscaled.reshape(8, 8, 32, 32))  # the same samples, in order


def test_sample_and_eval_refuse_bad_arguments_in_one_line_and_write_nothing(tmp_path, capsys):
    from ganlab.eval import main as evaluate
    from ganlab.sample import main as sample
    from ganlab.train import train

    train(compose_cfg(["trainer.max_steps=1", *FAST], run_dir=tmp_path / "run"))
    ckpt = str(tmp_path / "run" / "checkpoints" / "step_00000001.pt")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    for argv, error in [
        ([ckpt, "--out", str(tmp_path / "s.jpg")], "--out must name a .npy file (the samples as a NumPy array) or a "
                                                   ".png (a picture), got"),
        ([ckpt, "--out", str(tmp_path / "s.npy"), "--n", "0"], "--n must be >= 1"),
        ([ckpt, "--out", str(tmp_path / "s.npy"), "--batch-size", "0"], "--batch-size must be >= 1"),
        ([ckpt, "--out", str(tmp_path / "s.npy"), "--seed", "-1"], "--seed must be in [0, 2**32), got -1"),
        ([ckpt, "--out", str(tmp_path / "s.npy"), "--seed", str(2**64)], "--seed must be in [0, 2**32), got"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            sample(argv)
        assert exit_info.value.code == 2 and error in capsys.readouterr().err
    cuda = "ganlab.{}: error: --device cuda: no CUDA device is visible; use --device cpu or auto"
    cases = [(sample, "sample", [ckpt, "--out", str(tmp_path / "s.npy"), "--device", "nope"],
              "ganlab.sample: error: --device nope: not a torch device (auto, cpu, cuda, cuda:1, ...)"),
             (sample, "sample", [ckpt, "--out", str(blocker / "s.npy")],
              f"ganlab.sample: error: cannot make the folder {blocker}: File exists"),
             (evaluate, "eval", [ckpt, "--out", str(blocker / "e.json")],
              f"ganlab.eval: error: cannot make the folder {blocker}: File exists"),
             (evaluate, "eval", [ckpt, "--device", "nope:0"],
              "ganlab.eval: error: --device nope:0: not a torch device (auto, cpu, cuda, cuda:1, ...)"),
             (evaluate, "eval", [ckpt, "--data-root", str(tmp_path / "moved")],
              "ganlab.eval: error: --data-root: the run's data set (digits) is not read from a folder"),
             (evaluate, "eval", [ckpt, "--classifier-dir", str(blocker / "clf"), "--out", str(tmp_path / "x.json")],
              f"ganlab.eval: error: cannot make the folder {blocker / 'clf'}: Not a directory")]
    if not torch.cuda.is_available():
        cases += [(command, name, [ckpt, "--out", str(tmp_path / "x.npy" if name == "sample" else tmp_path / "x.json"),
                                   "--device", "cuda"], cuda.format(name))
                  for command, name in ((sample, "sample"), (evaluate, "eval"))]
    for command, _, argv, error in cases:
        assert command(argv) == 2
        assert capsys.readouterr().err == error + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "run"]  # nothing written


def test_eval_finds_moved_idx_data_with_data_root(tmp_path, tiny_mnist, capsys):
    from ganlab.eval import main as evaluate
    from ganlab.train import train

    train(compose_cfg(["data=mnist", f"data.root={tiny_mnist}", "trainer.max_steps=1", "eval.every=0", *FAST],
                      run_dir=tmp_path / "run"))
    ckpt = str(tmp_path / "run" / "checkpoints" / "step_00000001.pt")
    moved = tiny_mnist.rename(tmp_path / "moved")
    out = tmp_path / "e.json"
    assert evaluate([ckpt, "--features", "none", "--out", str(out)]) == 2  # the run's root is gone
    assert str(tiny_mnist) in capsys.readouterr().err
    assert evaluate([ckpt, "--features", "none", "--data-root", str(moved), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["step"] == 1


@pytest.mark.slow
def test_wheel_install_runs_from_anywhere(tmp_path):
    """The YAML ships inside the wheel: a wheel install (no checkout on the path) composes and runs."""
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheel_dir), str(REPO)], check=True, capture_output=True, timeout=600)
    [wheel] = wheel_dir.glob("ganlab-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=600)
    assert (site / "ganlab" / "conf" / "experiment" / "vanilla.yaml").is_file()
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    run_dir = workdir / "run"
    proc = run_ganlab(["loss=minimax", "trainer.max_steps=2", *FAST, f"hydra.run.dir={run_dir}"], cwd=workdir,
                      env={"PYTHONPATH": str(site)})
    assert (run_dir / "checkpoints" / "step_00000002.pt").is_file(), proc.stderr
    hydra_cfg = (run_dir / ".hydra" / "hydra.yaml").read_text()
    assert "path: ganlab.conf\n      schema: pkg\n      provider: main" in hydra_cfg  # not the checkout
    for args in (["--help"], ["--help", "hydra.job.name=ganlab"]):  # the fast path and Hydra's, from the wheel
        out = run_ganlab(args, cwd=workdir, env={"PYTHONPATH": str(site)}).stdout
        assert "debug       profile, smoke" in out and "sweep       loss_study, lr_zsize_loss, optuna, seeds" in out
    # sweeps/ ships too (as the ganlab.conf `sweep` group): a sweep file runs from the wheel
    for name in ("lr_zsize_loss", "seeds", "optuna"):
        assert (site / "ganlab" / "conf" / "sweep" / f"{name}.yaml").is_file(), name
    sweep = workdir / "sweep"
    run_ganlab(["-m", "sweep=seeds", "seed=0,1", "trainer.max_steps=2", *FAST, f"hydra.sweep.dir={sweep}"],
               cwd=workdir, env={"PYTHONPATH": str(site)})
    jobs = sweep_index(sweep)
    assert sorted(j["overrides"][0] for j in jobs.values()) == ["seed=0", "seed=1"]
    assert {j["status"] for j in jobs.values()} == {"finished"}
    # the population launcher ships as a Hydra plugin (hydra_plugins/ganlab_plugins) with its configs
    assert (site / "hydra_plugins" / "ganlab_plugins" / "population_launcher.py").is_file()
    assert (site / "ganlab" / "conf" / "hydra" / "launcher" / "population.yaml").is_file()
    population = workdir / "population"
    proc = run_ganlab(["-m", "seed=0,1", "model.middle_size=8", "trainer.max_steps=2", *FAST, "launcher=population",
                       "hydra.launcher.processes=1", f"hydra.sweep.dir={population}"], cwd=workdir,
                      env={"PYTHONPATH": str(site)})
    assert "population of 2 members" in proc.stdout + proc.stderr
    jobs = sweep_index(population)
    assert len(jobs) == 2 and {j["status"] for j in jobs.values()} == {"finished"}
    shutil.rmtree(site)
