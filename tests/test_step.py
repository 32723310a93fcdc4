"""The shared training step: bit-identical to the foundation's eager step, loss hooks, precision,
CUDA-graph capture (on CUDA only), and no host syncs outside log steps."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

import ganlab
from ganlab.errors import ConfigError, NonFiniteLossError
from ganlab.hardware.device import Hardware, setup
from ganlab.step import CapturedStep, GANStep, build_step, grad_norm, set_capturable
from ganlab.train import build_run, train

from conftest import FAST, compose_cfg, jsonl_rows

CONFIGS = {
    "bce": ["model.middle_size=32"],
    # the blog's quirks: sigmoid + BatchNorm1d(1) on D, MSE, no detach, two D updates per G update
    "blog": ["experiment=seed", "data=digits", "data.batch_size=64", "model.middle_size=32", "trainer.n_critic=2"],
}


def reference_step(run, reals, z_d, z_g, is_log):
    """The foundation's loop body (ganlab/train.py before the step module), kept verbatim as the oracle."""
    tc, G, D, loss = run.trainer, run.generator, run.discriminator, run.loss
    for k in range(tc.n_critic):
        real = reals[k]
        fake = G(z_d[k])
        real_out, fake_out = D(real), D(fake.detach() if tc.detach_fake else fake)
        d_loss = loss.d_loss(real_out, fake_out)
        run.d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_grad = grad_norm(D) if is_log and k == tc.n_critic - 1 else None
        run.d_opt.step()
    fake_out_g = D(G(z_g))
    g_loss = loss.g_loss(fake_out_g)
    run.g_opt.zero_grad(set_to_none=True)
    g_loss.backward()
    g_grad = grad_norm(G) if is_log else None
    run.g_opt.step()
    return d_loss, g_loss, real_out, fake_out, d_grad, g_grad


def inputs(run, step):
    n, b = run.trainer.n_critic, run.batches.batch_size
    reals = [run.batches.get((step - 1) * n + k) for k in range(n)]
    return reals, [run.latent(b) for _ in range(n)], run.latent(b)


def state(run) -> dict:
    return {**{f"G.{k}": v for k, v in run.generator.state_dict().items()},
            **{f"D.{k}": v for k, v in run.discriminator.state_dict().items()},
            **{f"g_opt.{i}.{k}": v for i, s in run.g_opt.state_dict()["state"].items() for k, v in s.items()},
            **{f"d_opt.{i}.{k}": v for i, s in run.d_opt.state_dict()["state"].items() for k, v in s.items()}}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_step_equals_the_reference_step_bit_for_bit(name):
    cfg = compose_cfg([*FAST, *CONFIGS[name]])
    ref, new = build_run(cfg), build_run(cfg)
    step_fn = build_step(new.generator, new.discriminator, new.loss, new.g_opt, new.d_opt,
                         new.trainer.detach_fake, new.hardware)
    assert isinstance(step_fn, GANStep)
    for step in range(1, 7):
        is_log = step % 3 == 0
        expected = reference_step(ref, *inputs(ref, step), is_log)
        out = step_fn(*inputs(new, step), grad_norms=is_log)
        got = (out.d_loss, out.g_loss, out.real_out, out.fake_out, out.d_grad, out.g_grad)
        for e, g in zip(expected, got):
            assert (e is None) == (g is None)
            assert e is None or torch.equal(e, g), (step, e, g)
    a, b = state(ref), state(new)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert all(p.requires_grad for p in new.discriminator.parameters())  # restored after G's update


CLIP = 2.0**-7  # exact in float32


class HookedLoss:
    """A least-squares loss with both hooks: a fixed penalty and weight clipping (as WGAN does)."""

    accepts_probabilities = True

    def __init__(self, penalty: float | None):
        self.penalty, self.calls = penalty, []

    def d_loss(self, real_out, fake_out):
        return real_out.pow(2).mean() + fake_out.pow(2).mean()

    def g_loss(self, fake_out):
        return (fake_out - 1).pow(2).mean()

    def d_penalty(self, discriminator, real, fake, real_out):
        self.calls.append(("d_penalty", discriminator, real.shape, fake.requires_grad, real_out.shape))
        return None if self.penalty is None else torch.tensor(self.penalty)

    def after_d_step(self, discriminator):
        self.calls.append(("after_d_step", discriminator))
        with torch.no_grad():
            for p in discriminator.parameters():
                p.clamp_(-CLIP, CLIP)


@pytest.mark.parametrize("penalty", [None, 0.5])
def test_loss_hooks_slot_into_the_d_update(penalty):
    run = build_run(compose_cfg([*FAST, "model.middle_size=16", "trainer.n_critic=2"]))
    loss = HookedLoss(penalty)
    step_fn = GANStep(run.generator, run.discriminator, loss, run.g_opt, run.d_opt, detach_fake=True)
    reals, z_d, z_g = inputs(run, 1)
    out = step_fn(reals, z_d, z_g)
    assert [c[0] for c in loss.calls] == ["d_penalty", "after_d_step"] * 2
    assert loss.calls[0][1] is run.discriminator and loss.calls[0][2] == reals[0].shape
    assert loss.calls[0][3] is False  # the detached fake
    base = loss.d_loss(out.real_out, out.fake_out)
    assert torch.allclose(out.d_loss, base + (penalty or 0.0))
    assert (out.d_penalty is None) if penalty is None else out.d_penalty.item() == pytest.approx(penalty)
    # after_d_step ran after D's last update: every D weight is clipped
    assert max(p.abs().max().item() for p in run.discriminator.parameters()) <= CLIP


def test_bf16_autocast_runs_and_changes_the_numbers(tmp_path):
    base = [*FAST, "model.middle_size=32", "trainer.max_steps=4", "trainer.log_every=1"]
    fp32 = train(compose_cfg([*base, "hardware=cpu"], run_dir=tmp_path / "fp32"))
    bf16 = train(compose_cfg([*base, "hardware=cpu", "hardware.precision=bf16"], run_dir=tmp_path / "bf16"))
    assert bf16["step"] == 4 and torch.isfinite(torch.tensor([bf16["d_loss"], bf16["g_loss"]])).all()
    assert bf16["d_loss"] != fp32["d_loss"]  # autocast really ran the matmuls in bf16
    assert bf16["d_loss"] == pytest.approx(fp32["d_loss"], rel=0.1)


def test_bf16_autocast_keeps_losses_fp32():
    run = build_run(compose_cfg([*FAST, "model.middle_size=16", "hardware=cpu", "hardware.precision=bf16"]))
    assert run.hardware.autocast_dtype is torch.bfloat16
    step_fn = build_step(run.generator, run.discriminator, run.loss, run.g_opt, run.d_opt, True, run.hardware)
    out = step_fn(*inputs(run, 1))
    assert out.d_loss.dtype == out.g_loss.dtype == out.real_out.dtype == torch.float32


def test_tf32_switch_sets_the_backend_flags():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        hw = setup(device="cpu", tf32=True)
        assert hw.tf32 and torch.backends.cuda.matmul.allow_tf32
        setup(device="cpu", tf32=False)  # the next job of a multirun (same process) asks for fp32 again
        assert not torch.backends.cuda.matmul.allow_tf32
    finally:  # process-wide flags: leave them as found
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without CUDA")
def test_cuda_graph_without_cuda_is_a_clear_error():
    with pytest.raises(ConfigError, match="cuda_graph=true needs CUDA"):
        build_run(compose_cfg([*FAST, "hardware.cuda_graph=true"]))


def test_set_capturable_moves_step_counters_and_back():
    run = build_run(compose_cfg([*FAST, "model.middle_size=16"]))
    step_fn = build_step(run.generator, run.discriminator, run.loss, run.g_opt, run.d_opt, True, run.hardware)
    step_fn(*inputs(run, 1))
    set_capturable(run.d_opt, True, torch.device("cpu"))
    assert all(g["capturable"] for g in run.d_opt.param_groups)
    set_capturable(run.d_opt, False, torch.device("cpu"))
    assert not any(g["capturable"] for g in run.d_opt.param_groups)
    assert all(s["step"].dtype == torch.float32 for s in run.d_opt.state.values())


@pytest.mark.parametrize("options", [[], ["trainer.g_ema=0.9", "augment=diffaugment", "model.conditional=concat",
                                     "loss=hinge", "model.pack=2"], ["model.conditional=concat", "loss=acgan"]])
def test_no_host_sync_outside_log_sample_and_checkpoint_steps(monkeypatch, tmp_path, options):
    """ganlab's code reads a tensor back (item, bool, float, int, tolist, numpy) a fixed number of times,
    however many plain steps run between the gated ones. (Reads inside torch, e.g. Adam's CPU step
    counter, touch no device tensor and are not counted.) Also with issue 12's options: the EMA update,
    the augmentation's draws and the labels stay on the device."""
    counts = {"n": 0}
    ganlab_dir = str(Path(ganlab.__file__).parent)
    for name in ("item", "__bool__", "__float__", "__int__", "tolist", "numpy"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            counts["n"] += sys._getframe(1).f_code.co_filename.startswith(ganlab_dir)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    per_run = []
    for steps in (3, 9):
        gated = [f"trainer.max_steps={steps}", "trainer.log_every=100", "trainer.sample_every=100",
                 "trainer.ckpt_every=100", "model.middle_size=16", *options]
        run_dir = tmp_path / str(steps)
        counts["n"] = 0
        train(compose_cfg([*FAST, *gated], run_dir=run_dir))
        per_run.append(counts["n"])
    assert per_run[0] == per_run[1], per_run  # 6 more plain steps, not one more sync
    assert per_run[0] > 0  # the gated reads (final log, NaN check) were seen: the counter works


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device (checked by "
                    "benchmarks/gpu_check.py on the GPU machine)")
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_cuda_graph_replay_matches_eager(name):
    overrides = [*FAST, *CONFIGS[name], "hardware=gpu"]
    eager = build_run(compose_cfg(overrides))
    graph = build_run(compose_cfg([*overrides, "hardware.cuda_graph=true"]))
    eager_step = build_step(eager.generator, eager.discriminator, eager.loss, eager.g_opt, eager.d_opt,
                            eager.trainer.detach_fake, eager.hardware)
    graph_step = build_step(graph.generator, graph.discriminator, graph.loss, graph.g_opt, graph.d_opt,
                            graph.trainer.detach_fake, graph.hardware)
    assert isinstance(graph_step, CapturedStep)
    for step in range(1, 9):  # 3 warm-up steps, the capture, then replays
        e = eager_step(*inputs(eager, step), grad_norms=True)
        g = graph_step(*inputs(graph, step), grad_norms=True)
        for a, b in ((e.d_loss, g.d_loss), (e.g_loss, g.g_loss), (e.d_grad, g.d_grad), (e.g_grad, g.g_grad)):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    assert graph_step.graph is not None
    want, got = comparable_state(eager), comparable_state(graph)
    assert want.keys() == got.keys()
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=1e-3, atol=1e-4, msg=lambda m, key=key: f"{key}: {m}")


def comparable_state(run) -> dict:
    """``state(run)`` on the CPU in float32 (an eager run keeps Adam's step counters on the CPU, a captured
    one on the GPU), without the biases a BatchNorm cancels and their optimizer state: rounding noise
    that Adam scales up (ganlab.models.inert), so eager and graph runs move them differently."""
    from ganlab.models.inert import biases_before_batchnorm

    skip = {f"G.{n}" for n in biases_before_batchnorm(run.generator)} | \
        {f"D.{n}" for n in biases_before_batchnorm(run.discriminator)}
    for prefix, module in (("g_opt", run.generator), ("d_opt", run.discriminator)):
        net = prefix[0].upper()
        skip |= {f"{prefix}.{i}." for i, (n, _) in enumerate(module.named_parameters()) if f"{net}.{n}" in skip}
    return {k: v.detach().float().cpu() for k, v in state(run).items()
            if k not in skip and not any(k.startswith(s) for s in skip if s.endswith("."))}


def test_hardware_accepts_a_bare_device():
    """Configs that still target resolve_device (a torch.device) build as plain fp32 eager runs."""
    cfg = compose_cfg([*FAST, "hardware._target_=ganlab.hardware.device.resolve_device", "~hardware.cuda_graph",
                       "~hardware.precision", "~hardware.tf32"])
    run = build_run(cfg)
    assert isinstance(run.hardware, Hardware) and not run.hardware.cuda_graph and run.hardware.autocast_dtype is None
    _ = copy.copy(run.hardware)


def test_nan_is_reported_at_its_own_step_when_found_at_a_later_log_step(monkeypatch, tmp_path):
    """The NaN check is deferred to log/checkpoint steps, but still names the first bad step."""
    original, calls = GANStep.__call__, {"n": 0}

    def poisoned(self, reals, z_d, z_g, grad_norms=False):
        calls["n"] += 1
        if calls["n"] == 4:  # G's weights turn NaN before step 4: its losses are the first bad ones
            with torch.no_grad():
                next(self.generator.parameters()).fill_(float("nan"))
        return original(self, reals, z_d, z_g, grad_norms)

    monkeypatch.setattr(GANStep, "__call__", poisoned)
    with pytest.raises(NonFiniteLossError, match="^step 4: "):
        train(compose_cfg([*FAST, "model.middle_size=16", "trainer.max_steps=12", "trainer.log_every=10",
                           "trainer.ckpt_every=100"], run_dir=tmp_path))
    assert calls["n"] == 10  # found at the log step, 6 steps later; no checkpoint of the NaN model
    assert not (tmp_path / "checkpoints").exists()


def test_a_run_built_without_hardware_defaults_to_plain_eager(tmp_path):
    """Code that builds a Run by hand (no hardware, no DDP wrappers) still trains with the shared step."""
    import dataclasses

    from ganlab.loop import run_loop
    from ganlab.run import Run
    from ganlab.tracking import Tracker

    run = build_run(compose_cfg([*FAST, "model.middle_size=16", "trainer.max_steps=2"]))
    fields = {f.name: getattr(run, f.name) for f in dataclasses.fields(Run)}
    bare = Run(**{**fields, "hardware": None, "g_train": None, "d_train": None})
    assert bare.hardware.device == run.device and not bare.hardware.ddp and bare.g_train is run.generator
    assert run_loop(bare, Tracker(tmp_path), 0, tmp_path / "ck", {})["step"] == 2


def test_logged_d_outputs_and_penalty_add_up_to_d_loss(tmp_path):
    common = [*FAST, "model.middle_size=16", "trainer.max_steps=3", "trainer.log_every=1"]

    def rows(name: str, overrides: list[str]) -> list[dict]:
        train(compose_cfg([*common, *overrides], run_dir=tmp_path / name))
        return jsonl_rows(tmp_path / name / "metrics.jsonl")

    for r in rows("wgan", ["loss=wgan"]):  # critic loss: d_loss = mean D(G(z)) - mean D(x), raw scores
        assert "d_penalty" not in r
        assert r["d_loss"] == pytest.approx(r["d_fake_out"] - r["d_real_out"], rel=1e-5, abs=1e-6)
    for r in rows("wgan_gp", ["loss=wgan_gp"]):
        assert r["d_penalty"] > 0
        assert r["d_loss"] == pytest.approx(r["d_fake_out"] - r["d_real_out"] + r["d_penalty"], rel=1e-5, abs=1e-6)
    for r in rows("sigmoid_d", ["loss=mse", "model.d_sigmoid=true"]):  # D's output is the probability
        assert r["d_real_out"] == r["d_real"] and r["d_fake_out"] == r["d_fake"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device (benchmarks/gpu_check.py "
                    "runs this file on the GPU machine)")
def test_cuda_graph_with_labels_matches_eager_and_trains_with_ema_and_augmentation(tmp_path):
    """Issue 12 under a captured step: labels are static inputs (replay = eager), the EMA updates after the
    replay, and the augmentation's generator is registered with the graph (fresh draws every replay)."""
    overrides = [*FAST, "model.middle_size=32", "model.conditional=concat", "loss=acgan", "hardware=gpu"]
    eager, graph = build_run(compose_cfg(overrides)), build_run(compose_cfg([*overrides, "hardware.cuda_graph=true"]))
    steps = [build_step(r.generator, r.discriminator, r.loss, r.g_opt, r.d_opt, True, r.hardware)
             for r in (eager, graph)]
    assert isinstance(steps[1], CapturedStep)
    for step in range(1, 9):
        outs = []
        for run, step_fn in zip((eager, graph), steps):
            reals, z_d, z_g = inputs(run, step)
            labels = {"y_real": [run.batches.labels(step - 1)], "y_d": [run.classes(len(z_g))],
                      "y_g": run.classes(len(z_g))}
            outs.append(step_fn(reals, z_d, z_g, grad_norms=True, **labels))
        for a, b in ((outs[0].d_loss, outs[1].d_loss), (outs[0].g_loss, outs[1].g_loss),
                     (outs[0].d_class, outs[1].d_class)):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    run_dir = tmp_path / "run"
    train(compose_cfg([*overrides, "hardware.cuda_graph=true", "augment=diffaugment", "trainer.g_ema=0.9",
                       "trainer.max_steps=8", "trainer.ckpt_every=4", "trainer.ckpt_keep=null"], run_dir=run_dir))
    states = [torch.load(run_dir / "checkpoints" / f"step_0000000{s}.pt", weights_only=True) for s in (4, 8)]
    assert not torch.equal(states[0]["rng"]["augment"], states[1]["rng"]["augment"])  # replays drew afresh
    assert all(torch.isfinite(v).all() for v in states[1]["generator_ema"].values() if v.is_floating_point())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device (benchmarks/gpu_check.py "
                    "runs this file on the GPU machine)")
def test_population_graph_draws_each_members_z_stream_as_eager_and_as_the_member_alone(tmp_path):
    """The population's captured step draws z inside the graph (DrawingStep, each z generator registered):
    every replay must take each member's next z, as the eager population and the member alone do."""
    from ganlab.config import RunContext
    from ganlab.launch.population.members import Population, build_member
    from ganlab.launch.population.trainer import step_reals

    base = [*FAST, "model.middle_size=32", "hardware=gpu", "loss=bce"]
    pops = {}
    for mode in ("eager", "graph"):
        members = [build_member(compose_cfg([*base, f"seed={k}", f"hardware.cuda_graph={mode == 'graph'}"]),
                                RunContext(dir=tmp_path / mode / str(k)), None) for k in range(3)]
        pops[mode] = Population(members)
    alone = build_run(compose_cfg([*base, "seed=1"]))  # member 1 trained by itself
    alone_step = build_step(alone.generator, alone.discriminator, alone.loss, alone.g_opt, alone.d_opt,
                            alone.trainer.detach_fake, alone.hardware)
    assert isinstance(pops["graph"].step, CapturedStep)
    for step in range(1, 9):  # 3 warm-up steps, the capture, then replays
        outs = {mode: pop.step(step_reals([m.run for m in pop.members], step, 1)) for mode, pop in pops.items()}
        by_itself = alone_step(*inputs(alone, step))
        torch.testing.assert_close(outs["graph"].d_loss, outs["eager"].d_loss, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(outs["graph"].g_loss, outs["eager"].g_loss, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(outs["eager"].d_loss[1], by_itself.d_loss, rtol=1e-4, atol=1e-5)
    for k in range(3):  # every stream advanced by exactly the draws of 8 steps
        states = [pop.members[k].run.latent.generator.get_state() for pop in (pops["eager"], pops["graph"])]
        assert torch.equal(*states), f"member {k}: z generator state after 8 steps"
    assert torch.equal(pops["graph"].members[1].run.latent.generator.get_state(), alone.latent.generator.get_state())
