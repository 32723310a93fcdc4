"""Bad input through the real entry point: a clear message, a non-zero exit, nothing lost."""

from __future__ import annotations

import sys

import pytest
import torch

from conftest import FAST, run_ganlab

SUBPROCESS = [["loss=nonsense"], ["-m", "launcher=population", "hydra.launcher.processes=-3", "seed=0,1"],
              ["trainer.epochs=ten"], ["data=fashion_mnist", "data.root=/nonexistent/fm"]]


@pytest.mark.parametrize(
    "args,message",
    [
        (["loss=nonsense"], "Could not find 'loss/nonsense' (available options in 'loss': acgan, bce,"),
        (["+sweep=nonsense"], "Could not find 'sweep/nonsense' (available options in 'sweep': loss_study,"),
        (["-m", "loss=bce,nonsense"], "Could not find 'loss/nonsense'"),
        (["trainer.nonsense=1"], "Could not override 'trainer.nonsense': Key 'nonsense' is not in struct"),
        (["trainer.epochs=[1"], "ganlab: error: trainer.epochs=[1: no viable alternative at input '[1'"),
        (["-m", "launcher=population", "hydra.launcher.processes=-3", "seed=0,1"],
         "ganlab: error: hydra.launcher.processes must be auto or an integer >= 1, got -3"),
        (["-m", "launcher=population", "hydra.launcher.threads=x", "seed=0,1"],
         "ganlab: error: hydra.launcher.threads must be auto or an integer >= 1, got 'x'"),
        (["-m", "launcher=population", "hydra.launcher.max_members=-1", "seed=0,1"],
         "ganlab: error: hydra.launcher.max_members must be an integer >= 0, got -1"),
        (["hydra.run.dir=/proc/ganlab_run"], "ganlab: error: /proc/ganlab_run: No such file or directory"),
        (["-m", "seed=0", "hydra.sweep.dir=/proc/ganlab_sweep"],
         "ganlab: error: /proc/ganlab_sweep: No such file or directory"),
        (["-m", "sweep=optuna", "hydra.sweeper.direction=up"],
         "ganlab: error: hydra.sweeper: Please set either 'minimize' or 'maximize' to direction."),
        (["-m", "sweep=optuna", "hydra.sweeper.n_trials=0"],
         "ganlab: error: hydra.sweeper.n_trials=0: must be an integer >= 1"),
        (["-m", "sweep=optuna", "hydra.sweeper.n_jobs=-1"],
         "ganlab: error: hydra.sweeper.n_jobs=-1: must be an integer >= 1"),
        (["-m", "launcher=local_parallel", "hydra.launcher.n_jobs=0", "seed=0,1"],
         "ganlab: error: hydra.launcher.n_jobs=0: must be an integer other than 0"),
        (["-m", "launcher=slurm_population", "hydra.launcher.members_per_task=0", "seed=0,1"],
         "ganlab: error: hydra.launcher.members_per_task=0: must be an integer >= 1"),
        (["-m", "launcher=slurm_population", "hydra.launcher.members_per_task=two", "seed=0,1"],
         "ganlab: error: hydra.launcher.members_per_task='two': must be an integer >= 1"),  # it named max_members
        (["-m", "seed=0,1", "hydra.sweep.subdir=/tmp/ganlab_one_folder"],  # both jobs wrote to /tmp/ganlab_one_folder
         "ganlab: error: hydra.sweep.subdir=/tmp/ganlab_one_folder: every job would write to the same folder; "),
        (["-m", "seed=0,1", "hydra.sweep.subdir=../${hydra.job.num}"],
         "ganlab: error: hydra.sweep.subdir=../${hydra.job.num}: must be a folder inside hydra.sweep.dir"),
        (["hydra.job.chdir=true", "data=fashion_mnist", "data.root=fm"],  # data.root was looked for in the run's folder
         "ganlab: error: hydra.job.chdir=true: ganlab writes every file into the run's folder already"),
        (["-m", "hydra.job.chdir=true", "seed=0,1"], "ganlab: error: hydra.job.chdir=true: "),
        (["-m", "launcher=slurm", "hydra.launcher.timeout_min=-5", "seed=0,1"],  # sbatch ran the jobs
         "ganlab: error: hydra.launcher.timeout_min=-5: must be an integer >= 1"),
        (["objective=fid_clf"], "ganlab: error: objective=fid_clf: an evaluation metric; did you mean objective=eval/"),
        (["objective=eval/fid_clf", "eval.every=0"], "evaluation is off (eval.every=0)"),
        (["objective=eval/fid"], "ganlab: error: objective=eval/fid: no evaluation logs fid (known: class_kl, "),
        (["+optimizer.weight_decay=1e-4"], "ganlab: error: optimizer.weight_decay: nothing reads this key"),
        (["objective=g_los"], "ganlab: error: objective=g_los: not a metric this run logs (did you mean "
                              "objective=g_loss? its step metrics: d_loss, "),
        (["objective=d_penalty"], "objective=d_penalty: not a metric this run logs"),  # bce has no penalty
        (["objective=d_class", "loss=bce_r1"], "objective=d_class: not a metric this run logs"),  # nor a class head
        (["trainer.epochs=ten"], "ganlab: error: trainer"),
        (["model.z_size=1.5"], "ganlab: error: model.z_size=1.5: must be an integer >= 1"),
        (["data=fashion_mnist", "data.root=/nonexistent/fm"],
         "apt-get install dataset-fashion-mnist"),
        (["resume=/nonexistent/ckpt.pt"], "no such checkpoint"),
        (["data=cifar10", "data.root=/nonexistent/c"], "/nonexistent/c/cifar-10-batches-py"),
        (["data=ring8", "model=dcgan"], "model=dcgan needs images (C, H, W), got data of shape (2,)"),
        (["model=dcgan", "loss=bce", "model.width=0"], "ganlab: error: model.width=0: must be an integer >= 1"),
        (["hardware=gpu"] if not torch.cuda.is_available() else ["hardware=nonsense"], "hardware"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, args, message, monkeypatch, capfd):
    dirs = [f"hydra.run.dir={tmp_path / 'run'}", f"hydra.sweep.dir={tmp_path / 'sweep'}"]  # args may override
    flags = [a for a in args if a == "-m"]  # Hydra's flags go before the overrides
    argv = [*flags, *FAST, *dirs, *[a for a in args if a not in flags]]
    if args in SUBPROCESS:  # a few through a real process: its exit status and all it prints
        proc = run_ganlab(argv, cwd=tmp_path, check=False)
        code, stderr = proc.returncode, proc.stderr
    else:  # the rest through the same entry point in this process (a Python start each would cost ~1 min)
        from ganlab.__main__ import main

        monkeypatch.chdir(tmp_path)
        monkeypatch.setattr(sys, "argv", ["ganlab", *argv])
        with pytest.raises(SystemExit) as exit_info:
            main()
        code, stderr = exit_info.value.code, capfd.readouterr().err
    assert code == 2
    assert message in stderr, stderr
    lines = stderr.strip().splitlines()  # one clear line, not a stack trace or Hydra's several-line report
    assert len(lines) == 1 and lines[0].startswith("ganlab: error: "), stderr


def test_a_path_error_inside_the_run_is_one_line(tmp_path, monkeypatch, capfd):
    # a file where the run makes its checkpoints folder: the OSError is raised inside Hydra's job, which
    # logged "Error executing job with overrides: [...]" above ganlab's line
    from ganlab.__main__ import main

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoints").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["ganlab", *FAST, "trainer.max_steps=1", "eval.every=0",
                                      f"hydra.run.dir={tmp_path / 'run'}"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    stderr = capfd.readouterr().err
    assert exit_info.value.code == 2
    assert stderr.strip().splitlines() == [f"ganlab: error: {tmp_path / 'run' / 'checkpoints'}: File exists"], stderr


def test_missing_data_names_where_it_looked(tmp_path):
    proc = run_ganlab(["data=mnist", f"data.root={tmp_path / 'nowhere'}", *FAST,
                       f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in proc.stderr and "train-images-idx3-ubyte" in proc.stderr


def test_nan_loss_stops_naming_the_step_and_keeps_last_good_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    common = [*FAST, "loss=mse", "trainer.log_every=2", "trainer.ckpt_every=4", f"hydra.run.dir={run_dir}"]
    run_ganlab([*common, "trainer.max_steps=4"], cwd=tmp_path)
    good = run_dir / "checkpoints" / "step_00000004.pt"
    before = good.read_bytes()
    # a target of 1e30 overflows every float32 loss to inf from the first resumed step (5) on
    proc = run_ganlab([*common, "trainer.max_steps=12", "resume=auto", "loss.real_target=1e30"],
                      cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "ganlab: error: step 5: d_loss or g_loss is NaN/inf" in proc.stderr, proc.stderr
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_00000004.pt"]
    assert good.read_bytes() == before
    assert (run_dir / "metrics.jsonl").read_text().count("\n") == 2  # the first run's rows are still there
