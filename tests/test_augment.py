"""DiffAugment: identity, shapes, differentiability, the ops' exact form, reproducibility, bad values."""

import copy

import pytest
import torch

from ganlab.augment import DiffAugment, cutout_mask, translate
from ganlab.errors import ConfigError
from ganlab.losses import NonSaturatingLoss
from ganlab.models.mlp import MLPDiscriminator, MLPGenerator
from ganlab.step import GANStep
from ganlab.train import build_run

from conftest import FAST, assert_same_weights, compose_cfg, jsonl_rows, train_straight_and_resumed

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]


def gen(seed: int = 0, device: str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def images(batch: int, shape: tuple[int, int, int], seed: int = 1, device: str = "cpu",
           dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Random images in [-1, 1] (the reference's pixel range)."""
    return (torch.rand(batch, *shape, generator=gen(seed), dtype=dtype) * 2 - 1).to(device)


def find_shift(x: torch.Tensor, out: torch.Tensor, bound: int) -> tuple[int, int]:
    """The one (dh, dw) within +-bound with translate(x, dh, dw) == out (x, out: one image each)."""
    found = [(dh, dw) for dh in range(-bound, bound + 1) for dw in range(-bound, bound + 1)
             if torch.equal(translate(x[None], torch.tensor([dh]), torch.tensor([dw]))[0], out)]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("policy", ["none", "", " none ", None])
def test_empty_policy_is_the_identity_and_draws_nothing(policy):
    x, g = images(4, (3, 8, 8)), gen()
    state = g.get_state()
    assert DiffAugment(policy)(x, g) is x
    assert torch.equal(g.get_state(), state)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_device_kept(device, shape, dtype):
    x = images(5, shape, device=device, dtype=dtype)
    out = DiffAugment()(x, gen(device=device))
    assert (out.shape, out.dtype, out.device) == (x.shape, x.dtype, x.device)
    assert not torch.equal(out, x)


def test_gradcheck_full_policy():
    """With the draws fixed (a fresh generator per call) T is a function of x: its Jacobian checks out."""
    x = images(2, (3, 8, 8), dtype=torch.float64).requires_grad_(True)
    augment = DiffAugment()
    assert torch.autograd.gradcheck(lambda v: augment(v, gen(3)), (x,))
    augment(x, gen(3)).square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_translate_is_a_zero_filled_shift():
    x = images(1, (1, 6, 7))
    out = translate(x, torch.tensor([2]), torch.tensor([-1]))
    expected = torch.zeros_like(x)
    expected[:, :, 2:, :-1] = x[:, :, :-2, 1:]
    assert torch.equal(out, expected)


@pytest.mark.parametrize("shape,bound", [((1, 8, 8), 1), ((1, 28, 28), 4), ((3, 32, 32), 4)])
def test_translation_per_sample_shift_and_its_gradient(shape, bound):
    x = images(64, shape).requires_grad_(True)
    out = DiffAugment("translation")(x, gen())
    out.sum().backward()
    shifts = [find_shift(x[b].detach(), out[b].detach(), bound) for b in range(len(x))]
    assert len(set(shifts)) > 1  # drawn per sample
    assert max(max(abs(dh), abs(dw)) for dh, dw in shifts) == bound  # int(side / 8 + 0.5)
    for b, (dh, dw) in enumerate(shifts):
        # d sum(out) / dx = 1 exactly on the input pixels that stay inside the image
        visible = translate(torch.ones_like(x[b:b + 1]), torch.tensor([-dh]), torch.tensor([-dw]))[0]
        assert torch.equal(x.grad[b], visible)


@pytest.mark.parametrize("shape,side", [((1, 8, 8), 4), ((1, 28, 28), 14), ((3, 32, 32), 16)])
def test_cutout_one_clipped_square_per_sample_and_its_gradient(shape, side):
    x = images(64, shape).requires_grad_(True)
    out = DiffAugment("cutout")(x, gen())
    out.sum().backward()
    mask = x.grad
    assert torch.equal(out, x.detach() * mask)  # the gradient is the mask itself
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    corners = set()
    for b in range(len(x)):
        holes = (mask[b] == 0).all(0).nonzero()
        assert torch.equal(mask[b], mask[b, :1].expand_as(mask[b]))  # the same hole in every channel
        (top, left), (bottom, right) = holes.min(0).values.tolist(), holes.max(0).values.tolist()
        height, width = bottom - top + 1, right - left + 1
        assert len(holes) == height * width and height <= side and width <= side  # one rectangle
        if 0 < top and bottom < shape[1] - 1 and 0 < left and right < shape[2] - 1:
            assert height == width == side  # away from the border the square is whole
        corners.add((top, left))
    assert len(corners) > 1


def test_cutout_mask_clips_at_the_border():
    x = torch.zeros(1, 1, 4, 4)
    mask = cutout_mask(x, (2, 2), torch.tensor([-1]), torch.tensor([3]))
    assert mask[0, 0].eq(0).nonzero().tolist() == [[0, 3]]


@pytest.mark.parametrize("channels", [1, 3])
def test_color_matches_the_reference_formula(channels):
    """brightness + (u0 - 0.5); saturation (x - channel mean) * 2 u1; contrast (x - mean) * (u2 + 0.5)."""
    x = images(6, (channels, 8, 8))
    out = DiffAugment("color")(x, gen(5))
    g = gen(5)
    u0, u1, u2 = (torch.rand(6, 1, 1, 1, generator=g) for _ in range(3))
    y = x + (u0 - 0.5)
    y = (y - y.mean(1, keepdim=True)) * (u1 * 2) + y.mean(1, keepdim=True)
    y = (y - y.mean((1, 2, 3), keepdim=True)) * (u2 + 0.5) + y.mean((1, 2, 3), keepdim=True)
    torch.testing.assert_close(out, y, rtol=0, atol=1e-6)
    if channels == 1:  # saturation is a no-op on one channel: brightness and contrast only
        y = x + (u0 - 0.5)
        torch.testing.assert_close(out, (y - y.mean((1, 2, 3), keepdim=True)) * (u2 + 0.5)
                                   + y.mean((1, 2, 3), keepdim=True), rtol=0, atol=1e-6)


@pytest.mark.parametrize("policy", ["color", "translation", "cutout", "color,translation,cutout"])
@pytest.mark.parametrize("shape", SHAPES)
def test_each_policy_changes_images_within_a_sane_range(policy, shape):
    x = images(32, shape)
    out = DiffAugment(policy)(x, gen())
    changed = (out != x).flatten(1).any(1)
    assert changed.float().mean() > 0.5  # most samples are changed (a draw may be a zero shift)
    assert torch.isfinite(out).all()
    if policy in ("translation", "cutout"):  # values only move or become 0
        assert out.min() >= min(x.min(), 0) and out.max() <= max(x.max(), 0)
    # |x| <= 1: brightness -> 1.5; saturation (1 - s) m + s x, s < 2 -> 4.5; contrast, c < 1.5 -> 9
    assert out.abs().max() <= 9


def test_same_generator_state_same_transform_successive_calls_independent():
    real, fake = images(16, (3, 32, 32), seed=1), images(16, (3, 32, 32), seed=2)
    augment = DiffAugment()
    # generators in the same state: the same op on same-shaped batches (the same mask on ones)
    torch.testing.assert_close(augment(real, gen(7)), augment(real, gen(7)), rtol=0, atol=0)
    ones = torch.ones_like(real)
    assert torch.equal(augment(ones, gen(7)), augment(ones, gen(7)))
    # one generator for the real then the fake batch (what the trainer does): independent draws
    g = gen(7)
    first, second = DiffAugment("translation,cutout")(ones, g), DiffAugment("translation,cutout")(ones, g)
    assert not torch.equal(first, second)
    assert not torch.equal(augment(fake, gen(7)), augment(fake, gen(8)))


@pytest.mark.parametrize("kwargs,words", [
    (dict(policy="color,flip"), ["'flip'", "color, translation, cutout"]),
    (dict(policy="colour"), ["'colour'", "none"]),
    (dict(translation_ratio=0.0), ["translation_ratio", "(0, 1)", "0.0"]),
    (dict(translation_ratio=1.0), ["translation_ratio", "1.0"]),
    (dict(cutout_ratio=-0.5), ["cutout_ratio", "-0.5"]),
    (dict(cutout_ratio=1.5), ["cutout_ratio", "1.5"]),
])
def test_bad_values_are_one_line_config_errors(kwargs, words):
    with pytest.raises(ConfigError) as err:
        DiffAugment(**kwargs)
    message = str(err.value)
    assert "\n" not in message and all(word in message for word in words), message


def test_points_are_refused():
    with pytest.raises(ConfigError, match="needs images") as err:
        DiffAugment()(torch.randn(8, 2), gen())
    assert "\n" not in str(err.value)


# --- wired into training: the augment group


class SpyD(MLPDiscriminator):
    """An MLP D that records every batch it is shown."""

    def __init__(self) -> None:
        super().__init__(middle_size=8, img_shape=(1, 8, 8))
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return super().forward(x)


def test_every_image_d_sees_is_augmented_reals_fakes_penalty_and_g_update():
    torch.manual_seed(0)
    G, D = MLPGenerator(z_size=4, middle_size=8, img_shape=(1, 8, 8)), SpyD()
    augment, stream = DiffAugment("translation,cutout"), gen(11)
    step = GANStep(G, D, NonSaturatingLoss(r1_gamma=1.0), torch.optim.SGD(G.parameters(), lr=0.0),
                   torch.optim.SGD(D.parameters(), lr=0.0), augment=augment, augment_gen=stream)
    real, z_d, z_g = images(16, (1, 8, 8)), torch.randn(16, 4), torch.randn(16, 4)
    replay = gen(11)  # the same stream, drawn in the step's order: real, fake, R1's real, G's fake
    with torch.no_grad():
        G.train()
        fake_d, fake_g = G(z_d), G(z_g)  # lr 0: G is the same in both updates (BatchNorm stats aside)
    step([real], [z_d], z_g)
    expected = [augment(real, replay), augment(fake_d, replay), augment(real, replay), augment(fake_g, replay)]
    assert len(D.seen) == 4
    for got, want, what in zip(D.seen, expected, ["real", "fake", "R1's real", "G's fake"]):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6, msg=what)
    assert not torch.equal(D.seen[0], real)


def test_g_gets_its_gradient_through_the_augmentation():
    torch.manual_seed(0)
    G, D = MLPGenerator(z_size=4, middle_size=8, img_shape=(1, 8, 8)), MLPDiscriminator(8, (1, 8, 8))
    step = GANStep(G, D, NonSaturatingLoss(), torch.optim.SGD(G.parameters(), lr=0.1),
                   torch.optim.SGD(D.parameters(), lr=0.1), augment=DiffAugment(), augment_gen=gen(0))
    out = step([images(8, (1, 8, 8))], [torch.randn(8, 4)], torch.randn(8, 4), grad_norms=True)
    assert out.g_grad > 0 and torch.isfinite(out.g_grad)


AUG = [*FAST, "augment=diffaugment", "model=dcgan", "model.width=8", "trainer.log_every=1", "trainer.ckpt_every=3",
       "eval.n_samples=64", "eval.kid_subsets=2"]


@pytest.mark.parametrize("loss", ["bce", "wgan_gp"])
def test_resume_with_augmentation_is_bit_identical(tmp_path, loss):
    args = [*AUG, f"loss={loss}", "model.d_batchnorm=false"]
    a, b, half = train_straight_and_resumed(args, tmp_path)
    assert "augment" in torch.load(half, weights_only=True)["rng"]  # the augmentation's stream is checkpointed
    assert_same_weights(b, a)
    straight, split = [jsonl_rows(tmp_path / d / "metrics.jsonl")
                       for d in ("straight", "split")]
    assert [{k: v for k, v in r.items() if k != "images_per_s"} for r in straight] == \
        [{k: v for k, v in r.items() if k != "images_per_s"} for r in split]


def test_augmentation_changes_training_and_its_stream_is_the_runs_own(tmp_path):
    plain = build_run(compose_cfg([*FAST, "model=dcgan", "model.width=8"]))
    augmented = build_run(compose_cfg(AUG))
    assert plain.augment is None and augmented.augment.names == ["color", "translation", "cutout"]
    # built after the networks: the same initial weights as without augmentation
    for a, b in zip(plain.generator.state_dict().values(), augmented.generator.state_dict().values()):
        assert torch.equal(a, b)
    other_seed = build_run(compose_cfg([*AUG, "seed=1"]))
    assert not torch.equal(augmented.augment_gen.get_state(), other_seed.augment_gen.get_state())
    state = copy.deepcopy(augmented.augment_gen.get_state())
    assert torch.equal(build_run(compose_cfg(AUG)).augment_gen.get_state(), state)


@pytest.mark.parametrize("overrides,match", [
    (["data=ring8", "augment=diffaugment"], "DiffAugment needs images"),
    (["augment=diffaugment", "augment.policy=flip"], "unknown augmentation 'flip'"),
    (["augment=diffaugment", "augment.cutout_ratio=1.5"], r"augment.cutout_ratio=1.5: must be a number in \(0, 1\)"),
])
def test_bad_augment_settings_are_one_line_errors(overrides, match):
    with pytest.raises(ConfigError, match=match) as err:
        build_run(compose_cfg([*FAST, *overrides]))
    assert "\n" not in str(err.value)
