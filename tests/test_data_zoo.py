"""CIFAR-10 from pickle batches, and the 2D benchmarks' contract (modes, std, (seed, index) batches)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganlab.build import build
from ganlab.data.cifar import cifar10
from ganlab.data.toy2d import grid25, ring8
from ganlab.errors import ConfigError, DataNotFoundError
from ganlab.train import build_run, train

from conftest import block_download, compose_cfg
from tiny_cifar import write_cifar_batches


def load_cifar10(*args, **kwargs):
    return cifar10(*args, **kwargs).images


@pytest.mark.parametrize("layout", ["", "cifar-10-batches-py"])
def test_cifar_reads_pickle_batches_in_both_layouts(tmp_path, layout):
    written = write_cifar_batches(tmp_path / layout if layout else tmp_path, per_batch=3)
    train_set = load_cifar10(str(tmp_path), split="train", pixel_range=(0.0, 1.0))
    assert train_set.shape == (15, 3, 32, 32) and train_set.dtype == torch.float32
    assert torch.equal(train_set.mul(255).round().to(torch.uint8), torch.from_numpy(written[:15]))
    assert len(load_cifar10(str(tmp_path), split="test")) == 3
    everything = load_cifar10(str(tmp_path), split="all", pixel_range=(-1.0, 1.0))
    assert len(everything) == 18 and everything.min() >= -1 and everything.max() <= 1
    labelled = cifar10(str(tmp_path))
    assert labelled.labels.shape == (15,) and labelled.n_classes == 10
    test_x, test_y = labelled.labelled("test")
    assert test_x.shape == (3, 3, 32, 32) and test_x.min() >= -1 and test_y.shape == (3,)


def test_cifar_missing_says_where_it_looked(tmp_path):
    with pytest.raises(DataNotFoundError, match="data_batch_1") as err:
        load_cifar10(str(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in str(err.value)


def test_cifar_download_failure_is_clear(tmp_path, monkeypatch):
    block_download(monkeypatch, "CIFAR10")
    with pytest.raises(DataNotFoundError, match="download into .* failed .*no network"):
        load_cifar10(str(tmp_path), download=True)


def test_cifar_rejects_a_file_that_is_not_a_batch(tmp_path):
    write_cifar_batches(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(DataNotFoundError, match="data_batch_3 is not a CIFAR-10 python batch"):
        load_cifar10(str(tmp_path))


def test_cifar_config_builds_through_the_data_group(tmp_path):
    write_cifar_batches(tmp_path / "cifar-10-batches-py")
    cfg = compose_cfg(["data=cifar10", f"data.root={tmp_path}", "data.split=all", "data.batch_size=8",
                       "model=dcgan", "model.width=4"])
    run = build_run(cfg)
    assert run.shape == (3, 32, 32) and run.batches.batch_size == 8 and run.batches.per_epoch == 3
    assert cfg.data.download is False and run.generator(run.latent(2)).shape == (2, 3, 32, 32)


def test_ring8_modes_std_and_config():
    data = build(compose_cfg(["data=ring8", "data.radius=3.0", "data.std=0.1", "data.n_modes=6"]).data.dataset,
                 "data.dataset")
    assert data.modes.shape == (6, 2) and data.modes.dtype == torch.float32 and data.mode_std == 0.1
    assert torch.allclose(data.modes.norm(dim=1), torch.full((6,), 3.0))
    angles = torch.atan2(data.modes[:, 1], data.modes[:, 0]).sort().values
    assert torch.allclose(angles.diff(), torch.full((5,), 2 * math.pi / 6), atol=1e-5)  # evenly spaced
    batches = data.batches(256, seed=0)
    points = torch.cat([batches.get(i) for i in range(40)])
    nearest = torch.cdist(points, data.modes).min(dim=1)
    assert nearest.values.max() < 6 * 0.1  # every point belongs to a mode
    offsets = points - data.modes[nearest.indices]
    assert offsets.std().item() == pytest.approx(0.1, rel=0.1)
    assert len(torch.bincount(nearest.indices)) == 6 and torch.bincount(nearest.indices).min() > 0


def test_grid25_modes_and_config():
    data = build(compose_cfg(["data=grid25", "data.spacing=1.5", "data.side=3", "data.std=0.01"]).data.dataset,
                 "data.dataset")
    assert data.modes.shape == (9, 2) and data.mode_std == 0.01
    assert sorted(set(data.modes[:, 0].tolist())) == [-1.5, 0.0, 1.5]
    default = build(compose_cfg(["data=grid25"]).data.dataset, "data.dataset")
    assert default.modes.shape == (25, 2) and default.modes.abs().max() == 4.0 and default.mode_std == 0.05


def test_2d_batches_depend_only_on_seed_and_index():
    a, b = ring8().batches(16, seed=3), ring8().batches(16, seed=3)
    assert torch.equal(a.get(7), b.get(7)) and torch.equal(b.get(2), a.get(2))  # order of access is irrelevant
    assert not torch.equal(a.get(0), a.get(1))
    assert not torch.equal(ring8().batches(16, seed=4).get(0), a.get(0))
    assert a.get(10**9).shape == (16, 2)  # infinite: any index is a batch
    assert ring8(samples_per_epoch=1000).batches(64, seed=0).per_epoch == 15
    mixture = ring8()
    assert mixture.to(torch.device("cpu")) is mixture


def test_2d_run_takes_its_seed_batch_size_and_epoch_from_config():
    cfg = compose_cfg(["data=ring8", "data.batch_size=32", "data.samples_per_epoch=320", "trainer.epochs=3", "seed=5"])
    run = build_run(cfg)
    assert run.shape == (2,) and run.batches.batch_size == 32 and run.batches.per_epoch == 10
    assert run.total_steps == 30 and run.batches.seed == 5
    assert run.generator(run.latent(4)).shape == (4, 2)


def test_2d_data_suggests_mlp_settings_and_overrides_win():
    ring = compose_cfg(["data=ring8"])
    assert ring.model.generator.output == "linear" and ring.model.generator.hidden_layers == 3
    assert ring.model.discriminator.hidden_layers == 3
    images = compose_cfg(["data=digits"])
    assert images.model.generator.output == "tanh" and images.model.generator.hidden_layers == 1
    chosen = compose_cfg(["data=ring8", "model.g_output=tanh", "model.hidden_layers=2"])
    assert chosen.model.generator.output == "tanh" and chosen.model.discriminator.hidden_layers == 2
    chosen = compose_cfg(["data=grid25", "data.mlp.hidden_layers=4", "data.mlp.g_output=tanh"])
    assert chosen.model.generator.hidden_layers == 4 and chosen.model.generator.output == "tanh"


@pytest.mark.parametrize("override,match", [("data.std=0", "data.std=0: must be a number > 0"),
                                            ("data.radius=-1", "data.radius=-1: must be a number > 0"),
                                            ("data.samples_per_epoch=10", "samples_per_epoch >= batch_size")])
def test_bad_2d_values(override, match):
    with pytest.raises(ConfigError, match=match):
        build_run(compose_cfg(["data=ring8", override]))


def test_2d_builders_check_their_own_arguments():  # the Python API, without the config's range table
    for call, match in ((lambda: ring8(std=0), "std > 0"), (lambda: ring8(radius=-1), "radius > 0"),
                        (lambda: grid25(side=0), "side >= 1"), (lambda: ring8().batches(1, seed=0), "batch_size >= 2")):
        with pytest.raises(ConfigError, match=match):
            call()


def test_dcgan_on_2d_points_is_a_clear_error():
    with pytest.raises(ConfigError, match="model=dcgan needs images .* use model=mlp"):
        build_run(compose_cfg(["data=ring8", "model=dcgan"]))


def test_2d_resume_is_bit_identical_and_plots_are_scatter_images(tmp_path):
    base = ["data=grid25", "data.batch_size=32", "model.middle_size=16", "trainer.log_every=1", "trainer.ckpt_every=3",
            "trainer.ckpt_keep=null", "trainer.sample_every=3", "trainer.progress=false", "logger=none"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(compose_cfg([*base, "trainer.max_steps=6"], run_dir=straight))
    train(compose_cfg([*base, "trainer.max_steps=3"], run_dir=split))
    half = split / "checkpoints" / "step_00000003.pt"
    train(compose_cfg([*base, "trainer.max_steps=6", f"resume={half}"], run_dir=split))
    a = torch.load(straight / "checkpoints" / "step_00000006.pt", weights_only=True)
    b = torch.load(split / "checkpoints" / "step_00000006.pt", weights_only=True)
    for net in ("generator", "discriminator"):
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), key
    from PIL import Image

    plot = np.asarray(Image.open(straight / "samples" / "samples_00000006.png"))
    assert plot.ndim == 3 and plot.shape[2] == 3 and plot.shape[0] >= 300  # an RGB figure, not a 2-pixel "image"
    red = (plot[..., 0] > 180) & (plot[..., 1] < 120) & (plot[..., 2] < 120)
    blue = (plot[..., 2] > 150) & (plot[..., 0] < 120)
    assert red.sum() > 100 and blue.sum() > 100  # generated (red) and real (blue) points are drawn


def test_2d_checkpoint_exports_points(tmp_path, capsys):
    from PIL import Image

    from ganlab.sample import main

    train(compose_cfg(["data=ring8", "data.batch_size=16", "trainer.max_steps=2", "trainer.progress=false",
                       "logger=none"], run_dir=tmp_path))
    out = tmp_path / "points.npy"
    assert main([str(tmp_path / "checkpoints" / "step_00000002.pt"), "--n", "300", "--out", str(out)]) == 0
    assert "wrote 300 points (2,) float32" in capsys.readouterr().out
    points = np.load(out)
    assert points.shape == (300, 2) and points.dtype == np.float32 and np.isfinite(points).all() and points.std() > 0
    assert main([str(tmp_path), "--out", str(tmp_path / "points.png")]) == 0  # a picture: the run's scatter plot
    assert "wrote a picture of 1000 samples" in capsys.readouterr().out
    plot = np.asarray(Image.open(tmp_path / "points.png"))
    red = (plot[..., 0] > 180) & (plot[..., 1] < 120) & (plot[..., 2] < 120)
    blue = (plot[..., 2] > 150) & (plot[..., 0] < 120)
    assert plot.shape == (480, 480, 3) and red.sum() > 100 and blue.sum() > 100
