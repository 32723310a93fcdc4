"""Class-conditional GANs: labels through the data contract and the step, concat / projection / ACGAN
networks, one class per grid row, cond_accuracy, resume, and the one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ganlab.build import build_evaluator
from ganlab.data.batches import LabelSampler, ShuffledBatches
from ganlab.data.images import digits
from ganlab.errors import ConfigError
from ganlab.models.dcgan import DCGANDiscriminator, DCGANGenerator
from ganlab.models.mlp import MLPDiscriminator, MLPGenerator
from ganlab.train import build_run, train

from conftest import (
    FAST,
    assert_same_weights,
    compose_cfg,
    grid_cells,
    jsonl_rows,
    run_ganlab,
    train_straight_and_resumed,
)

RUN = [*FAST, "trainer.log_every=1", "trainer.ckpt_every=3", "eval.n_samples=100", "eval.kid_subsets=2"]
MLP = ["model.middle_size=32"]
DCGAN = ["model=dcgan", "model.width=8"]


def test_batch_labels_follow_the_images_permutation_across_epochs():
    data = digits()
    batches = ShuffledBatches(data.images, 500, seed=3, labels=data.labels)
    assert batches.per_epoch == 3
    for index in (0, 2, 3, 7):  # two epochs: two permutations
        positions = batches.indices(index)
        assert torch.equal(batches.get(index), data.images[positions])
        assert torch.equal(batches.labels(index), data.labels[positions])
    assert torch.equal(data.batches(500, 3).labels(4), batches.labels(4))


def test_label_sampler_is_uniform_and_its_own_stream():
    sampler = LabelSampler(10, torch.device("cpu"), seed=0)
    state = sampler.generator.get_state()
    global_state = torch.get_rng_state()
    counts = torch.bincount(sampler(50_000), minlength=10).double() / 50_000
    assert (counts - 0.1).abs().max() < 0.01
    assert torch.equal(torch.get_rng_state(), global_state)  # the global stream is untouched
    assert torch.equal(LabelSampler(10, torch.device("cpu"), seed=0).generator.get_state(), state)
    assert not torch.equal(LabelSampler(10, torch.device("cpu"), seed=1).generator.get_state(), state)


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("conditional", ["concat", "projection"])
def test_conditional_networks_shapes_and_that_the_label_matters(shape, conditional):
    torch.manual_seed(0)
    z, labels = torch.randn(6, 16), torch.tensor([0, 1, 2, 3, 4, 5])
    nets = [(MLPGenerator(16, 32, shape, conditional=conditional, n_classes=10),
             MLPDiscriminator(32, shape, conditional=conditional, n_classes=10)),
            (DCGANGenerator(16, 4, shape, conditional=conditional, n_classes=10),
             DCGANDiscriminator(4, shape, conditional=conditional, n_classes=10))]
    for G, D in nets:
        with torch.no_grad():  # class BatchNorm starts at scale 1, shift 0 for every class: move it off
            for name, param in G.named_parameters():
                if ".scale." in name or ".shift." in name:
                    param.normal_(float(".scale." in name), 0.5)
        fake = G(z, labels)
        assert fake.shape == (6, *shape) and G.n_classes == 10 and D.takes_labels
        assert D(fake, labels).shape == (6,)
        G.eval()  # BatchNorm on running statistics: each sample on its own
        other = (labels + 1) % 10
        assert not torch.allclose(G(z, labels), G(z, other))  # G draws the class it is asked for
        assert not torch.allclose(D(fake, labels), D(fake, other))  # D judges (image, class) pairs
        with pytest.raises(ValueError, match="needs labels"):
            G(z)
        with pytest.raises(ValueError, match="needs labels"):
            D(fake)


@pytest.mark.parametrize("D", [MLPDiscriminator(32, (1, 8, 8), n_classes=10, aux_classifier=True, conditional="concat"),
                               DCGANDiscriminator(4, (1, 8, 8), n_classes=10, aux_classifier=True,
                                                  conditional="projection")])
def test_an_acgan_d_takes_no_labels_and_outputs_a_score_and_class_logits(D):
    assert not D.takes_labels and D.conditional == "none"
    assert D(torch.randn(5, 1, 8, 8)).shape == (5, 11)


def test_unconditional_networks_have_no_labels_and_the_old_parameters():
    G, D = DCGANGenerator(16, 4, (1, 8, 8)), DCGANDiscriminator(4, (1, 8, 8))
    assert G.n_classes is None and not D.takes_labels and D.plain
    assert not any("embed" in k or "aux" in k or "scale" in k for k in [*G.state_dict(), *D.state_dict()])


@pytest.mark.parametrize("model", [MLP, DCGAN])
def test_a_conditional_run_draws_the_same_z_and_trains_on_labels(model, tmp_path):
    plain = train(compose_cfg([*RUN, *model, "trainer.max_steps=3"], run_dir=tmp_path / "plain"))
    cond = train(compose_cfg([*RUN, *model, "trainer.max_steps=3", "model.conditional=concat"],
                             run_dir=tmp_path / "cond"))
    a, b = [torch.load(tmp_path / d / "checkpoints" / "step_00000003.pt", weights_only=True) for d in ("plain", "cond")]
    assert torch.equal(a["rng"]["latent"], b["rng"]["latent"])  # labels come from their own stream
    assert "labels" in b["rng"] and b["n_classes"] == 10 and "n_classes" not in a
    assert 0 <= cond["eval/cond_accuracy"] <= 1 and "eval/cond_accuracy" not in plain


def test_resume_of_a_conditional_acgan_run_is_bit_identical(tmp_path):
    args = [*RUN, *DCGAN, "model.conditional=concat", "loss=acgan"]
    a, b, _ = train_straight_and_resumed(args, tmp_path)
    assert_same_weights(b, a)
    rows = jsonl_rows(tmp_path / "straight" / "metrics.jsonl")
    assert all(r["d_class"] > 0 and r["g_class"] > 0 for r in rows)  # the class losses, logged beside the game's
    assert all(r["d_loss"] > r["d_class"] for r in rows)  # inside d_loss


def test_the_sample_grid_has_one_class_per_row(tmp_path):
    train(compose_cfg([*RUN, *MLP, "trainer.max_steps=2", "model.conditional=projection", "trainer.n_grid=64"],
                      run_dir=tmp_path))
    grid = np.asarray(Image.open(tmp_path / "samples" / "samples_00000002.png"))
    cell = 8 * 4 + 2  # digits upscaled x4, 2 px of padding
    assert grid.shape[:2] == (10 * cell + 2, 8 * cell + 2)  # 10 rows (classes) of 8 (the bank's first 8 z)


class ClassPicker(torch.nn.Module):
    """A G that 'draws' held-out digits of the class it is asked for (or always class 0)."""

    z_size = 4

    def __init__(self, obey: bool) -> None:
        super().__init__()
        images, labels = digits().labelled("test")
        self.by_class = [images[labels == k] for k in range(10)]
        self.n_classes, self.obey = 10, obey

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        index = (z[:, 0].abs() * 1000).long()
        return torch.stack([self.by_class[int(k) if self.obey else 0][int(i) % len(self.by_class[0])]
                            for k, i in zip(labels, index)])


def test_cond_accuracy_is_the_classifiers_accuracy_on_asked_for_classes():
    from ganlab.data.batches import LatentSampler

    evaluator = build_evaluator(compose_cfg(["eval.n_samples=300"]), digits(), torch.device("cpu"))
    latent = LatentSampler(4, "normal", 1.0, torch.device("cpu"), 0)
    D = MLPDiscriminator(8, (1, 8, 8))
    good = evaluator(ClassPicker(obey=True), D, latent, 1)
    assert good["eval/cond_accuracy"] > 0.85  # the digits classifier's own test accuracy, near enough
    ignored = evaluator(ClassPicker(obey=False), D, latent, 2)
    assert ignored["eval/cond_accuracy"] == pytest.approx(0.1, abs=0.02)  # one class in ten is right by chance


def test_conditional_data_sets_compose(tiny_labelled_mnist, tmp_path):
    for data in ("mnist", "fashion_mnist"):
        run = build_run(compose_cfg([*FAST, f"data={data}", f"data.root={tiny_labelled_mnist}",
                                     "data.batch_size=16", "model.conditional=concat"]))
        labels = run.batches.labels(0)
        assert labels.shape == (16,) and run.classes.n_classes == 10 and labels.max() <= 9


@pytest.mark.parametrize("overrides,match", [
    (["data=ring8", "model.conditional=concat"], "2D points cannot condition G and D"),
    (["loss=acgan"], "loss=acgan needs a conditional G"),
    (["model.conditional=projection", "model.pack=2"], "model.pack=2 works with model.conditional=none or concat"),
    (["model.conditional=concat", "loss=acgan", "model.pack=2"], "not with loss=acgan"),
    (["model.conditional=sideways"], "model.generator.conditional: expected one of 'none', 'concat', 'projection'"),
])
def test_conditional_misconfigurations_are_one_line_errors(overrides, match):
    with pytest.raises(ConfigError, match=match) as err:
        build_run(compose_cfg([*FAST, *overrides]))
    assert "\n" not in str(err.value)


def test_conditional_on_a_data_set_without_labels_is_a_one_line_error_at_the_entry_point(tiny_mnist, tmp_path):
    proc = run_ganlab(["data=mnist", f"data.root={tiny_mnist}", "model.conditional=concat", *FAST,
                       f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, check=False)
    assert proc.returncode != 0
    [line] = [x for x in proc.stderr.splitlines() if x.startswith("ganlab: error:")]
    assert "a data set without class labels cannot condition G and D" in line


def test_sample_draws_a_conditional_gs_png_one_class_per_row(tmp_path):
    train(compose_cfg([*RUN, *MLP, "trainer.max_steps=2", "model.conditional=concat"], run_dir=tmp_path))
    run_ganlab([str(tmp_path), "--out", str(tmp_path / "g.png")], cwd=tmp_path, module="ganlab.sample")
    run_ganlab([str(tmp_path), "--n", "80", "--out", str(tmp_path / "g.npy")], cwd=tmp_path, module="ganlab.sample")
    grid = np.asarray(Image.open(tmp_path / "g.png"))[..., 0]
    samples = np.load(tmp_path / "g.npy")[:, 0].repeat(4, axis=1).repeat(4, axis=2)  # sample i is of class i % 10
    found = grid_cells(grid, 10, 8, 32)
    for k in range(10):  # row k: class k's samples, in the order drawn
        assert np.array_equal(found[k], samples[k::10])


def test_sample_exports_balanced_classes_and_their_labels(tmp_path):
    train(compose_cfg([*RUN, *MLP, "trainer.max_steps=2", "model.conditional=concat"], run_dir=tmp_path))
    ckpt = tmp_path / "checkpoints" / "step_00000002.pt"
    run_ganlab([str(ckpt), "--n", "25", "--out", str(tmp_path / "s.npy")], cwd=tmp_path, module="ganlab.sample")
    assert np.load(tmp_path / "s.npy").shape == (25, 1, 8, 8)
    assert np.load(tmp_path / "s.labels.npy").tolist() == [i % 10 for i in range(25)]
    run_ganlab([str(ckpt), "--n", "4", "--label", "7", "--out", str(tmp_path / "7.npy")], cwd=tmp_path,
               module="ganlab.sample")
    assert np.load(tmp_path / "7.labels.npy").tolist() == [7] * 4
    proc = run_ganlab([str(ckpt), "--n", "4", "--label", "10", "--out", str(tmp_path / "x.npy")], cwd=tmp_path,
                      module="ganlab.sample", check=False)
    assert proc.returncode == 2 and "classes 0..9" in proc.stderr
