"""G and D take their shapes from construction arguments, for any data shape and batch size."""

from __future__ import annotations

import pytest
import torch

from ganlab.errors import ConfigError
from ganlab.models.dcgan import DCGANDiscriminator, DCGANGenerator, plan_resolution
from ganlab.models.mlp import MLPDiscriminator, MLPGenerator


@pytest.mark.parametrize("img_shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (2,)])
@pytest.mark.parametrize("batch", [2, 7, 64])
def test_shapes(img_shape, batch):
    G = MLPGenerator(z_size=16, middle_size=32, img_shape=img_shape)
    D = MLPDiscriminator(middle_size=32, img_shape=img_shape)
    fake = G(torch.randn(batch, 16))
    assert fake.shape == (batch, *img_shape)
    assert fake.min() >= -1 and fake.max() <= 1  # Tanh output
    assert D(fake).shape == (batch,)


def test_blog_quirks_switch_layers():
    plain = MLPDiscriminator(middle_size=8, img_shape=(1, 4, 4))
    blog = MLPDiscriminator(middle_size=8, img_shape=(1, 4, 4), output_batchnorm=True, sigmoid=True)
    assert not plain.outputs_probability and blog.outputs_probability
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in blog.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in plain.modules())
    out = blog(torch.randn(16, 1, 4, 4))
    assert out.min() >= 0 and out.max() <= 1
    # logits are unbounded: a scaled input pushes them outside [0, 1]
    assert plain(torch.randn(16, 1, 4, 4) * 100).abs().max() > 1


def test_generator_has_the_blog_layout():
    G = MLPGenerator(z_size=50, middle_size=200, img_shape=(1, 28, 28))
    kinds = [type(m).__name__ for m in G.net]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear", "Tanh"]
    assert G.net[0].in_features == 50 and G.net[3].out_features == 784


@pytest.mark.parametrize("img_shape,base,doublings", [((1, 28, 28), 7, 2), ((3, 32, 32), 4, 3), ((1, 8, 8), 4, 1),
                                                      ((3, 64, 64), 4, 4)])
@pytest.mark.parametrize("spectral", [False, True])
def test_dcgan_is_sized_from_the_data(img_shape, base, doublings, spectral):
    G = DCGANGenerator(z_size=16, width=4, img_shape=img_shape)
    D = DCGANDiscriminator(width=4, img_shape=img_shape, spectral=spectral)
    assert plan_resolution(img_shape) == (base, doublings)
    fake = G(torch.randn(3, 16))
    assert fake.shape == (3, *img_shape) and G.z_size == 16
    assert fake.min() >= -1 and fake.max() <= 1
    assert D(fake).shape == (3,)
    convs = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(convs) == doublings + 1 and convs[0].out_channels == 4 * 2 ** (doublings - 1)  # width multiplier
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in G.modules())
    has_sn = any("parametrizations" in name for name, _ in D.named_parameters())
    assert has_sn == spectral


def test_dcgan_width_and_batchnorm_switches():
    thin = DCGANDiscriminator(width=2, img_shape=(3, 32, 32), batchnorm=False)
    wide = DCGANDiscriminator(width=8, img_shape=(3, 32, 32))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in thin.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in wide.modules())
    assert sum(p.numel() for p in wide.parameters()) > 10 * sum(p.numel() for p in thin.parameters())


def test_spectral_norm_bounds_the_conv_operators():
    D = DCGANDiscriminator(width=4, img_shape=(1, 8, 8), spectral=True)
    for _ in range(30):  # power iteration converges in train mode
        D(torch.randn(4, 1, 8, 8))
    for module in D.modules():
        if isinstance(module, torch.nn.Conv2d):
            sigma = torch.linalg.matrix_norm(module.weight.detach().flatten(1), ord=2)
            assert sigma == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("img_shape,match", [((2,), "needs images"), ((1, 9, 9), "square images"),
                                             ((3, 32, 16), "square images"), ((1, 36, 36), "square images")])
def test_dcgan_rejects_shapes_it_cannot_build(img_shape, match):
    with pytest.raises(ConfigError, match=match):
        DCGANGenerator(z_size=8, width=4, img_shape=img_shape)
    with pytest.raises(ConfigError, match=match):
        DCGANDiscriminator(width=4, img_shape=img_shape)


def test_mlp_on_2d_points_has_a_linear_output_option():
    torch.manual_seed(0)
    G = MLPGenerator(z_size=8, middle_size=16, img_shape=(2,), output="linear")
    with torch.no_grad():  # large output weights: a Tanh would still squash the points into [-1, 1]
        G.net[-1].weight.fill_(3.0)
    points = G(torch.randn(256, 8))
    assert points.shape == (256, 2) and points.abs().max() > 1  # not squashed into [-1, 1]
    assert type(G.net[-1]).__name__ == "Linear"


def test_mlp_hidden_layers():
    G = MLPGenerator(z_size=8, middle_size=16, img_shape=(2,), hidden_layers=3)
    D = MLPDiscriminator(middle_size=16, img_shape=(2,), hidden_layers=3)
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in G.modules()) == 3
    assert sum(isinstance(m, torch.nn.Linear) for m in D.modules()) == 4
    assert D(G(torch.randn(5, 8))).shape == (5,)
    with pytest.raises(ConfigError, match="hidden_layers must be >= 1"):
        MLPGenerator(z_size=8, middle_size=16, img_shape=(2,), hidden_layers=0)
    with pytest.raises(ConfigError, match="hidden_layers must be >= 1"):
        MLPDiscriminator(middle_size=16, img_shape=(2,), hidden_layers=0)


def test_biases_before_batchnorm_are_the_ones_batchnorm_cancels():
    """The names are those of biases whose gradient is zero in training mode (a BatchNorm follows), and only those."""
    from ganlab.models.inert import biases_before_batchnorm

    torch.manual_seed(0)
    models = {"blog_g": MLPGenerator(8, 16, (1, 4, 4)),
              "blog_d": MLPDiscriminator(16, (1, 4, 4), output_batchnorm=True, sigmoid=True),
              "mlp_d": MLPDiscriminator(16, (1, 4, 4)), "dcgan_g": DCGANGenerator(8, 4, (1, 8, 8))}
    assert biases_before_batchnorm(models["blog_g"]) == ["net.0.bias"]
    assert biases_before_batchnorm(models["blog_d"]) == [f"net.{models['blog_d'].head}.bias"]
    assert biases_before_batchnorm(models["mlp_d"]) == biases_before_batchnorm(models["dcgan_g"]) == []
    for name, model in models.items():
        x = torch.randn(32, 8) if name.endswith("_g") else torch.randn(32, 1, 4, 4)
        model(x).double().square().sum().backward()
        inert = set(biases_before_batchnorm(model))
        scale = max(p.grad.abs().max().item() for p in model.parameters())
        for pname, p in model.named_parameters():
            if pname.endswith("bias"):
                tiny = p.grad.abs().max().item() < 1e-4 * scale  # float32 rounding noise, not a gradient
                assert tiny == (pname in inert), f"{name} {pname}: grad {p.grad.abs().max().item():.1e}"
