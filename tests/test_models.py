"""G and D take their shapes from construction arguments, for any data shape and batch size."""

from __future__ import annotations

import pytest
import torch

from ganlab.models import MLPDiscriminator, MLPGenerator


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
