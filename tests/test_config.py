"""Every option of every config group composes and builds; bad config is a clear error."""

from __future__ import annotations

import pytest
import torch

from ganlab.build import build, build_tracker
from ganlab.errors import ConfigError
from ganlab.losses import GANLoss
from ganlab.train import build_run, train

from conftest import CONF_DIR, compose_cfg
from tiny_cifar import write_cifar_batches

GROUPS = ["model", "loss", "optimizer", "data", "augment", "hardware", "logger", "experiment", "debug"]
NEEDS = {("loss", "acgan"): ["model.conditional=concat"]}  # an option that only composes with another


def options(group: str) -> list[str]:
    folder = CONF_DIR.parent / "sweeps" if group == "sweep" else CONF_DIR / group  # the sweep group is sweeps/
    return sorted(p.stem for p in folder.glob("*.yaml"))


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"conf/{group} is empty"


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_option_composes_and_builds(group, option, tiny_mnist, tmp_path):
    overrides = [f"{group}={option}", *NEEDS.get((group, option), [])]
    data = compose_cfg(overrides).data
    if "root" in data and data.dataset._target_.endswith("cifar10"):
        write_cifar_batches(tmp_path / "cifar")
        overrides.append(f"data.root={tmp_path / 'cifar'}")
    elif "root" in data:  # mnist, fashion_mnist: the same IDX layout
        overrides.append(f"data.root={tiny_mnist}")
    cfg = compose_cfg(overrides)
    if group == "hardware" and option == "gpu" and not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            build(cfg.hardware, "hardware")
        return
    if group == "hardware" and option == "ddp":  # built for real by 2 torchrun processes in test_ddp.py
        with pytest.raises(ConfigError, match="needs a distributed launcher"):
            build(cfg.hardware, "hardware")
        return
    if group == "logger":
        if option == "wandb":
            cfg.logger.wandb.mode = "disabled"
        tracker = build_tracker(cfg, tmp_path, "t", "g")
        assert len(tracker.loggers) == (option != "none")
        tracker.log({"x": 1.0}, 1)
        tracker.finish()
        assert (tmp_path / "metrics.jsonl").read_text().strip()
        return
    run = build_run(cfg)
    assert isinstance(run.loss, GANLoss)
    z = run.latent(4)
    if run.classes is None:
        fake = run.generator(z)
        scores = run.discriminator(fake)
    else:  # a conditional G (the acgan option): D has no labels in and one score + 10 class logits out
        fake = run.generator(z, run.classes(4))
        scores = run.discriminator(fake)[:, 0]
    assert fake.shape == (4, *run.shape)
    assert scores.shape == (4,)
    assert run.total_steps >= 1


def test_experiment_seed_is_the_blog():
    cfg = compose_cfg(["experiment=seed"])
    assert cfg.data.batch_size == 512 and list(cfg.data.pixel_range) == [0.0, 1.0]
    assert cfg.data.latent_std == 0.1 and cfg.trainer.epochs == 50 and not cfg.trainer.detach_fake
    assert cfg.model.d_output_batchnorm and cfg.model.d_sigmoid and cfg.model.z_size == 50
    assert cfg.loss._target_.endswith("LeastSquaresLoss")
    assert cfg.optimizer.lr == 2e-4 and list(cfg.optimizer.betas) == [0.5, 0.999]
    assert cfg.data.dataset.name == "mnist"


def test_experiment_vanilla_fixes():
    cfg = compose_cfg(["experiment=vanilla"])
    assert list(cfg.data.pixel_range) == [-1.0, 1.0] and cfg.data.latent_std == 1.0
    assert cfg.trainer.detach_fake and not cfg.model.d_output_batchnorm and not cfg.model.d_sigmoid
    assert cfg.loss._target_.endswith("NonSaturatingLoss")


def test_experiment_wgan_gp_ring8_is_the_papers_and_trains(tmp_path):
    cfg = compose_cfg(["experiment=wgan_gp_ring8"])
    assert cfg.loss._target_.endswith("WassersteinGPLoss") and cfg.loss.gp_weight == 10.0
    assert cfg.optimizer.generator._target_ == "torch.optim.Adam" and cfg.optimizer.lr == 1e-4
    assert list(cfg.optimizer.discriminator.betas) == [0.0, 0.9] and cfg.trainer.n_critic == 5
    assert cfg.data.dataset._target_.endswith("ring8") and not cfg.model.d_output_batchnorm
    run = build_run(cfg)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in run.discriminator.modules())
    final = train(compose_cfg(["experiment=wgan_gp_ring8", "trainer.max_steps=2", "eval.n_samples=64",
                               "trainer.progress=false", "logger=none"], run_dir=tmp_path / "run"))
    assert final["step"] == 2 and "d_penalty" in final and "eval/modes_covered" in final


def test_experiment_dcgan_cifar10_is_radfords_and_trains(tmp_path):
    write_cifar_batches(tmp_path / "cifar")
    cfg = compose_cfg(["experiment=dcgan_cifar10", f"data.root={tmp_path / 'cifar'}"])
    assert cfg.model.generator._target_.endswith("DCGANGenerator") and cfg.model.z_size == 100
    assert cfg.optimizer.lr == 2e-4 and list(cfg.optimizer.betas) == [0.5, 0.999] and cfg.data.batch_size == 128
    assert cfg.loss._target_.endswith("NonSaturatingLoss") and cfg.data.latent_dist == "uniform"
    z = build_run(cfg).latent(10000)
    assert -1 <= z.min() < -0.99 and 0.99 < z.max() <= 1  # U[-1, 1]
    final = train(compose_cfg(["experiment=dcgan_cifar10", f"data.root={tmp_path / 'cifar'}", "trainer.max_steps=2",
                               "model.width=8", "eval.every=0", "trainer.progress=false", "logger=none"],
                              run_dir=tmp_path / "run"))
    assert final["step"] == 2 and (tmp_path / "run" / "samples" / "samples_00000002.png").is_file()


@pytest.mark.parametrize("experiment", ["seed", "vanilla"])
def test_experiment_with_fashion_mnist(experiment):
    cfg = compose_cfg([f"experiment={experiment}", "data=fashion_mnist"])
    assert cfg.data.dataset.name == "fashion_mnist"
    assert cfg.data.batch_size == 512  # the experiment's values still apply on top


def test_optimizer_split_lr(tiny_mnist):
    cfg = compose_cfg(["optimizer.generator.lr=1e-3", "optimizer.discriminator.lr=5e-4"])
    run = build_run(cfg)
    assert run.g_opt.param_groups[0]["lr"] == 1e-3 and run.d_opt.param_groups[0]["lr"] == 5e-4
    assert tuple(run.g_opt.param_groups[0]["betas"]) == (0.5, 0.999)


@pytest.mark.parametrize("overrides,message", [
    # a shared value nothing interpolates: training went on without it (no weight decay at all)
    (["+optimizer.weight_decay=1e-4"], "optimizer.weight_decay: nothing reads this key (the optimizer keys a run "
                                       "reads: lr, betas; optimizer.generator and optimizer.discriminator take"),
    (["++model.foo=1"], "model.foo: nothing reads this key (the model keys a run reads: z_size, middle_size, "),
    (["+data.foo=1"], "data.foo: nothing reads this key (the data keys a run reads: epochs, batch_size, pixel_range, "
                      "latent_dist, latent_std, max_train; data.dataset takes its own"),
    (["model=dcgan", "+data.mlp.g_output=linear"], "data.mlp.g_output: nothing reads this key"),  # only MLPs read it
    (["+model.z_sise=20"], "model.z_sise: nothing reads this key (did you mean model.z_size? the model keys "),
])
def test_a_key_added_that_nothing_reads_is_an_error(overrides, message):
    from ganlab.unread_keys import check_unread_keys

    with pytest.raises(ConfigError) as err:
        check_unread_keys(compose_cfg(overrides), overrides)
    assert str(err.value).startswith(message)


def test_keys_read_through_interpolations_are_accepted():
    from ganlab.unread_keys import check_unread_keys

    # the optimizer's own option, a suggestion the MLP reads with oc.select, a forced existing key; and a key
    # of the group's own file that goes unread when both optimizers' lr are set (not added: no error)
    added = ["+optimizer.generator.weight_decay=1e-4", "+data.mlp.hidden_layers=2", "++model.z_size=20",
             "+note=baseline"]
    cfg = compose_cfg([*added, "optimizer.generator.lr=1e-3", "optimizer.discriminator.lr=1e-3"])
    check_unread_keys(cfg, added)
    run = build_run(cfg)
    assert run.g_opt.param_groups[0]["weight_decay"] == 1e-4 and run.d_opt.param_groups[0]["weight_decay"] == 0
    assert run.generator.z_size == 20
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in run.generator.modules()) == 2  # two middle blocks


def test_what_an_interpolation_reads():
    from omegaconf import OmegaConf

    from ganlab.unread_keys import absolute, referenced_keys

    assert absolute("lr", ("optimizer", "generator")) == "lr"
    assert absolute(".lr", ("optimizer", "generator")) == "optimizer.generator.lr"
    assert absolute("..lr", ("optimizer", "generator")) == "optimizer.lr"
    assert absolute("...seed", ("a", "b")) == "seed"
    cfg = OmegaConf.create({"seed": 1, "a": {"x": 1, "b": {"y": "${..x}", "z": "${oc.select:c.w,3}",
                                                          "s": "${seed}-${ganlab_run_group:}", "l": ["${.y}"]}},
                            "run": {"d": "${a.never}"}})
    assert referenced_keys(cfg) == {"a.x", "c.w", "seed", "a.b.l.y"}


@pytest.mark.parametrize(
    "override,match",
    [
        ("model.middle_size=abc", r"model.middle_size='abc': must be an integer >= 1"),
        ("data.latent_dist=cauchy", r"data.latent.dist: expected one of 'normal', 'uniform'"),
        ("trainer.epochs=ten", r"trainer"),
        ("trainer.n_critic=0", r"trainer.n_critic=0: must be an integer >= 1"),
        ("seed=1.5", r"seed=1.5: must be an integer in \[0, 2\*\*32\)"),
        ("model.generator.output=sigmoid", r"model.generator.output: expected one of 'tanh', 'linear'"),
        ("+model.generator.dropout=0.1", r"model.generator.dropout: unknown option"),
        ("loss=bce", None),
    ],
)
def test_bad_values_are_config_errors(override, match):
    cfg = compose_cfg([override])
    if match is None:
        build_run(cfg)
        return
    with pytest.raises(ConfigError, match=match):
        build_run(cfg)


def test_sigmoid_d_with_logit_loss_is_rejected():
    cfg = compose_cfg(["model.d_sigmoid=true", "loss=bce"])
    with pytest.raises(ConfigError, match="works on logits"):
        build_run(cfg)


def test_uniform_latent_has_requested_std():
    cfg = compose_cfg(["data.latent_dist=uniform", "data.latent_std=0.5"])
    z = build_run(cfg).latent(20000)
    assert abs(z.std().item() - 0.5) < 0.01 and z.abs().max().item() <= 0.5 * 3**0.5 + 1e-6


def test_max_steps_cut_short_by_the_epochs_says_so(caplog):
    """data.max_train=180 leaves 2 batches an epoch: 300 epochs end at step 600, whatever max_steps asks."""
    with caplog.at_level("WARNING", logger="ganlab.train"):
        run = build_run(compose_cfg(["data.max_train=180", "trainer.max_steps=8400"]))
    assert run.total_steps == 600
    assert "trainer.max_steps=8400, but trainer.epochs=300 of 2 batches (n_critic 1) end at step 600" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="ganlab.train"):
        assert build_run(compose_cfg(["trainer.max_steps=100"])).total_steps == 100
    assert "trainer.max_steps" not in caplog.text  # epochs leave room: nothing to say
