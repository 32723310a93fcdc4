"""Every sensible loss x model x data combination trains through the real entry point.

One Hydra multirun per data set sweeps every model and loss (python -m ganlab -m model=... loss=...),
so a new option in conf/ must either join this grid or be excluded below with a reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from test_entry import job_dirs

from conftest import CONF_DIR, FAST, run_ganlab
from tiny_cifar import write_cifar_batches

LOSSES = ["bce", "bce_r1", "hinge", "minimax", "mse", "wgan", "wgan_gp"]
MODELS = ["dcgan", "mlp"]
DATA = {"digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32),
        "ring8": (2,), "grid25": (2,)}
EXCLUDED = {
    ("dcgan", "ring8"): "2D points have no height and width to convolve (a ConfigError, tested in test_data_zoo)",
    ("dcgan", "grid25"): "2D points have no height and width to convolve (a ConfigError, tested in test_data_zoo)",
}


def test_the_grid_covers_every_option_in_conf():
    for group, listed in (("loss", LOSSES), ("model", MODELS), ("data", DATA)):
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
                *data_root(data, tmp_path, tiny_mnist), "data.batch_size=8", "trainer.max_steps=2",
                "trainer.log_every=1", "trainer.n_grid=4", *FAST, f"hydra.sweep.dir={sweep}"], cwd=tmp_path,
               env={"OMP_NUM_THREADS": "1"})  # tiny models: threads only add overhead on shared cores
    trained = set()
    for job in job_dirs(sweep):
        choices = dict(o.split("=", 1) for o in yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
                       if o.split("=", 1)[0] in ("model", "loss"))
        rows = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [1, 2], job
        assert all(torch.isfinite(torch.tensor([r["d_loss"], r["g_loss"], r["d_grad_norm"]])).all() for r in rows)
        penalised = choices["loss"] in ("bce_r1", "wgan_gp")  # the penalty term is logged on its own
        assert all(("d_penalty" in r) == penalised for r in rows), job
        assert all(r["d_penalty"] >= 0 and torch.isfinite(torch.tensor(r["d_penalty"])) for r in rows if penalised)
        assert (job / "samples" / "samples_00000002.png").is_file()
        state = torch.load(job / "checkpoints" / "step_00000002.pt", weights_only=True)
        assert tuple(state["img_shape"]) == DATA[data]
        trained.add((choices["model"], choices["loss"]))
    assert trained == {(m, loss) for m in models for loss in LOSSES}
