"""How settings are written for people: one formatting of numbers for W&B run names, job directories and
compare's tables."""

from __future__ import annotations

import pytest

from ganlab.config import run_context
from ganlab.launch.sweep import job_dir_for, overrides_hash
from ganlab.naming import dir_label, short_number, short_overrides, short_value, split_items
from ganlab.report.runs import ConfigRow, RunRecord
from ganlab.report.tables import markdown_table

from conftest import compose_cfg

OPTUNA_LR = "optimizer.lr=0.0007750644796341915"


@pytest.mark.parametrize("value,text", [
    (0.0007750644796341915, "7.75e-04"),  # an Optuna sample: 3 significant digits
    (0.12345678, "0.123"), (123456.789, "1.23e+05"), (-0.000123456, "-1.23e-04"),
    (2e-4, "0.0002"), (1e-5, "1e-05"), (0.999, "0.999"), (0.9999, "0.9999"),  # typed values stay exact
    (10.0, "10"), (0.0, "0"), (32, "32"), (True, "True"), (float("inf"), "inf"),
])
def test_short_number(value, text):
    assert short_number(value) == text


def test_short_values_and_overrides():
    assert short_value("0.0007750644796341915") == "7.75e-04"
    assert short_value("[0.0,0.9]") == "[0,0.9]" and short_value("bce") == "bce" and short_value("100") == "100"
    assert split_items("a=1,b=[2,3],c='x,y'") == ["a=1", "b=[2,3]", "c='x,y'"]
    assert short_overrides(f"loss=bce,{OPTUNA_LR},logger.wandb.tags=[a,b]") == \
        "loss=bce,optimizer.lr=7.75e-04,logger.wandb.tags=[a,b]"


def test_wandb_run_name_shortens_numbers():
    cfg = compose_cfg([], run_dir="/tmp/x")
    cfg.run.name = f"loss=hinge,{OPTUNA_LR},model.z_size=64"
    assert run_context(cfg).name == "loss=hinge,optimizer.lr=7.75e-04,model.z_size=64"


def test_compare_table_shortens_numbers(tmp_path):
    runs = [RunRecord(tmp_path / str(i), [o, "loss=bce"], {"seed": 0}, {}, {"g_loss": 1.0}) for i, o in
            enumerate([OPTUNA_LR, "optimizer.lr=0.0002"])]
    rows = [ConfigRow(r.config_key, [r], {"g_loss": (1.0, 0.0)}) for r in runs]
    table = markdown_table(rows, ["g_loss"])
    assert "`optimizer.lr=7.75e-04`" in table and "`optimizer.lr=0.0002`" in table and "0.000775064" not in table
    assert "All runs: `loss=bce`" in table


def test_job_dir_names_are_readable_short_and_safe(tmp_path):
    overrides = ["sweep=lr_zsize_loss", "data=mnist", OPTUNA_LR, "model.z_size=32", "loss=bce"]
    name = job_dir_for(tmp_path, 3, overrides, common=["sweep=lr_zsize_loss", "data=mnist"])
    assert name == f"job-003-lr=7.75e-04,z_size=32,loss=bce-{overrides_hash(overrides)}"
    # nothing swept: number and hash; a swept list value and colliding key tails stay readable and safe
    assert job_dir_for(tmp_path, 0, ["a=1"], common=["a=1"]) == f"job-000-{overrides_hash(['a=1'])}"
    assert dir_label(["optimizer.betas=[0.0,0.9]", "optimizer.generator.lr=1e-3", "optimizer.discriminator.lr=2e-3",
                      "optimizer.betas.0=0.5"]) == \
        "betas=_0_0.9_,optimizer.generator.lr=0.001"
    long = job_dir_for(tmp_path, 7, [f"model.k{i}=/a b/{i}" for i in range(20)])
    assert len(long) <= 4 + 4 + 48 + 1 + 10 and " " not in long and "/" not in long
    # the command's swept keys stay, its fixed ones go (Hydra writes false as False in a job's overrides)
    assert job_dir_for(tmp_path, 1, ["loss=mse", "trainer.progress=False"],
                       common=["loss=bce,mse", "trainer.progress=false"]).startswith("job-001-loss=mse-")


def test_an_existing_dir_of_the_same_hash_wins(tmp_path):
    overrides = ["loss=mse", "seed=1"]
    old = tmp_path / f"job-{overrides_hash(overrides)}"  # named by an older ganlab
    old.mkdir()
    assert job_dir_for(tmp_path, 5, overrides) == old.name
    assert job_dir_for(tmp_path, 5, ["seed=1", "loss=mse", "resume=auto"]) == old.name  # same identity
