"""GeneratorEMA: the average by hand, warm-up, buffers copied, bit-exact resume, no host sync, bad values."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ganlab.ema import GeneratorEMA, decay_from_half_life
from ganlab.errors import ConfigError, ResumeError
from ganlab.launch.job import objective_value
from ganlab.train import build_run, train

from conftest import FAST, compose_cfg, jsonl_rows


def tiny_generator() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 4))


@torch.no_grad()
def set_weights(generator: nn.Module, value: float) -> None:
    """Every parameter element = value * (1 + its flat index), so each element's average is checkable."""
    for param in generator.parameters():
        param.copy_(value * (1 + torch.arange(param.numel(), dtype=param.dtype)).reshape(param.shape))


def train_forward(generator: nn.Module, seed: int) -> None:
    """A train-mode forward: moves BatchNorm's running statistics (the buffers)."""
    with torch.no_grad():
        generator.train()(torch.randn(8, 2, generator=torch.Generator().manual_seed(seed)))


def sgd_step(generator: nn.Module, seed: int) -> None:
    """A deterministic change of G's weights and buffers, standing in for one training step."""
    with torch.no_grad():
        for param in generator.parameters():
            param.add_(torch.randn(param.shape, generator=torch.Generator().manual_seed(seed)) * 0.1)
    train_forward(generator, seed)


def assert_weights(ema: GeneratorEMA, value: float) -> None:
    reference = tiny_generator()
    set_weights(reference, value)
    for got, want in zip(ema.module.parameters(), reference.parameters()):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_the_average_by_hand_with_warm_up():
    """decay 0.9, start 2, G's weights = t (times the index) after step t."""
    G = tiny_generator()
    set_weights(G, 0.0)
    ema = GeneratorEMA(G, decay=0.9, start=2)
    # steps 1, 2: warm-up, the copy follows G exactly
    # step 3 (averaging starts): 0.9 * 2 + 0.1 * 3 = 2.1; step 4: 0.9 * 2.1 + 0.1 * 4 = 2.29;
    # step 5: 0.9 * 2.29 + 0.1 * 5 = 2.561
    for step, expected in [(1, 1.0), (2, 2.0), (3, 2.1), (4, 2.29), (5, 2.561)]:
        set_weights(G, float(step))
        ema.update(G, step)
        if step <= 2:
            assert all(torch.equal(e, p) for e, p in zip(ema.module.parameters(), G.parameters()))
        assert_weights(ema, expected)


def test_start_zero_averages_from_the_first_step_against_the_initial_weights():
    G = tiny_generator()
    set_weights(G, 10.0)
    ema = GeneratorEMA(G, decay=0.75)
    set_weights(G, 2.0)
    ema.update(G, 1)
    assert_weights(ema, 0.75 * 10 + 0.25 * 2)


def test_buffers_are_copied_not_averaged():
    G = tiny_generator()
    ema = GeneratorEMA(G, decay=0.99, start=0)
    for step in range(1, 4):
        sgd_step(G, step)
        ema.update(G, step)
        for (name, got), want in zip(ema.module.named_buffers(), G.buffers()):
            assert torch.equal(got, want), name  # running_mean, running_var, num_batches_tracked
    assert int(ema.module[1].num_batches_tracked) == 3
    assert not torch.equal(ema.module[0].weight, G[0].weight)  # the weights are averaged


def test_same_as_averaged_model_with_torchs_ema_fn():
    """start=1 is AveragedModel's rule (its first update copies); the results are bit-identical."""
    G = tiny_generator()
    ours, torchs = GeneratorEMA(G, 0.9, start=1), AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    for step in range(1, 6):
        sgd_step(G, step)
        ours.update(G, step)
        torchs.update_parameters(G)
    for a, b in zip(ours.module.state_dict().values(), torchs.module.state_dict().values()):
        assert torch.equal(a, b)


def test_module_is_an_eval_mode_copy_without_grads():
    G = tiny_generator()
    ema = GeneratorEMA(G, 0.5)
    assert not ema.module.training and not any(p.requires_grad for p in ema.module.parameters())
    sgd_step(G, 1)  # G moves; the copy only when updated
    assert not torch.equal(ema.module[0].weight, G[0].weight)
    ema.update(G, 1)
    assert all(p.grad_fn is None and not p.requires_grad for p in ema.module.parameters())


def test_state_dict_round_trip_continues_bit_identically(tmp_path):
    G = tiny_generator()
    ema = GeneratorEMA(G, 0.95, start=2)
    for step in range(1, 5):
        sgd_step(G, step)
        ema.update(G, step)
    path = tmp_path / "ema.pt"
    torch.save({"g_ema": ema.state_dict()}, path)
    state = torch.load(path, weights_only=True)["g_ema"]
    assert list(state) == list(G.state_dict())  # a G's keys: loads into a plain generator for sampling
    tiny_generator().load_state_dict(state)
    resumed = GeneratorEMA(tiny_generator(), 0.95, start=2)  # built from a fresh G, as a resumed run is
    resumed.load_state_dict(state)
    for step in range(5, 9):
        sgd_step(G, step)
        ema.update(G, step)
        resumed.update(G, step)
    for (name, a), b in zip(ema.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


SYNCS = ("item", "__bool__", "__float__", "__int__", "tolist", "numpy")


def forbid_syncs(monkeypatch: pytest.MonkeyPatch) -> None:
    def sync(*args, **kwargs):
        raise AssertionError("a tensor was read back to the host")

    for name in SYNCS:
        monkeypatch.setattr(torch.Tensor, name, sync)


def test_update_reads_nothing_back_but_averaged_model_does(monkeypatch):
    G = tiny_generator()
    ema, averaged = GeneratorEMA(G, 0.9, start=1), AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    sgd_step(G, 1)
    forbid_syncs(monkeypatch)
    for step in (1, 2, 3):  # warm-up, then averaging
        ema.update(G, step)
    with pytest.raises(AssertionError, match="read back"):  # bool(self.n_averaged == 0)
        averaged.update_parameters(G)


def test_a_different_generator_is_refused():
    ema = GeneratorEMA(tiny_generator(), 0.9)
    with pytest.raises(ValueError, match="bare G"):
        ema.update(nn.Linear(2, 4), 1)


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5, float("nan"), True, "0.9"])
def test_bad_decay_is_a_one_line_config_error(decay):
    with pytest.raises(ConfigError, match=r"trainer.g_ema must be a decay in \[0, 1\)") as err:
        GeneratorEMA(tiny_generator(), decay)
    assert "\n" not in str(err.value) and repr(decay) in str(err.value)


@pytest.mark.parametrize("start", [-1, 1.5, True])
def test_bad_start_is_a_one_line_config_error(start):
    with pytest.raises(ConfigError, match="trainer.g_ema_start must be an integer >= 0") as err:
        GeneratorEMA(tiny_generator(), 0.9, start)
    assert "\n" not in str(err.value)


def test_decay_from_half_life():
    decay = decay_from_half_life(10_000, 32)  # StyleGAN2-ADA's ema_kimg=10 at batch 32
    assert decay == pytest.approx(0.997784, abs=1e-6)
    assert decay ** (10_000 / 32) == pytest.approx(0.5)  # the old weights' share halves in 10k images
    for bad in [(0, 32), (-5, 32), (100, 0)]:
        with pytest.raises(ConfigError, match="half-life"):
            decay_from_half_life(*bad)


def test_decay_zero_is_a_copy_of_g():
    """lerp with weight 1 - 0 = 1 lands exactly on G (torch computes end - (end - start) * 0 there)."""
    G = tiny_generator()
    ema = GeneratorEMA(G, 0.0)
    sgd_step(G, 1)
    ema.update(G, 1)
    assert all(torch.equal(a, b) for a, b in zip(ema.module.parameters(), G.parameters()))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_update_captures_in_a_cuda_graph():
    """No sync, so the averaging branch records as a CUDA graph; a replay equals the eager update."""
    G = tiny_generator().cuda()
    eager, captured = GeneratorEMA(G, 0.9), GeneratorEMA(G, 0.9)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the capture (lazy allocations)
        captured.update(G, 1)
    torch.cuda.current_stream().wait_stream(side)
    eager.update(G, 1)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):  # records, does not run: each replay below is one update
        captured.update(G, 2)
    for step in range(2, 5):
        with torch.no_grad():  # G moves between updates
            for param in G.parameters():
                param.mul_(1.01)
        eager.update(G, step)
        graph.replay()
    torch.cuda.synchronize()
    for a, b in zip(eager.module.state_dict().values(), captured.module.state_dict().values()):
        assert torch.equal(a, b)


# --- wired into training: trainer.g_ema, trainer.g_ema_start, trainer.sample_from


RUN = [*FAST, "trainer.log_every=1", "trainer.ckpt_every=3", "trainer.ckpt_keep=null",
       "eval.every=3", "eval.n_samples=64", "eval.kid_subsets=2", "trainer.n_grid=8"]


def ckpt(run_dir: Path, step: int) -> dict:
    return torch.load(run_dir / "checkpoints" / f"step_{step:08d}.pt", weights_only=True)


def test_a_run_samples_and_evaluates_the_ema_g_and_logs_the_raw_g_beside_it(tmp_path):
    final = train(compose_cfg([*RUN, "trainer.max_steps=6", "trainer.g_ema=0.8", "trainer.g_ema_start=2"],
                              run_dir=tmp_path))
    state = ckpt(tmp_path, 6)
    assert state["generator_ema"].keys() == state["generator"].keys()
    evals = jsonl_rows(tmp_path / "eval.jsonl")
    assert all("eval/fid_clf" in r and "eval_g/fid_clf" in r and r["eval/fid_clf"] != r["eval_g/fid_clf"]
               for r in evals)
    assert {p.name for p in (tmp_path / "samples").iterdir()} == {"samples_00000006.png", "samples_g_00000006.png"}
    # the objective and the summary's best values are the EMA G's; the raw G's final values are in the summary
    assert objective_value(final, "eval/fid_clf") == evals[-1]["eval/fid_clf"]
    assert final["eval/fid_clf_best"] == min(r["eval/fid_clf"] for r in evals)
    assert final["eval_g/fid_clf"] == evals[-1]["eval_g/fid_clf"] and "eval_g/fid_clf_best" not in final


def test_sample_from_g_keeps_g_as_the_sampler_and_logs_the_ema_as_eval_g_ema(tmp_path):
    train(compose_cfg([*RUN, "trainer.max_steps=3", "trainer.g_ema=0.8", "trainer.sample_from=g"], run_dir=tmp_path))
    [row] = jsonl_rows(tmp_path / "eval.jsonl")
    assert "eval_g_ema/fid_clf" in row and not any(k.startswith("eval_g/") for k in row)
    assert (tmp_path / "samples" / "samples_g_ema_00000003.png").is_file()


@pytest.mark.parametrize("extra", [["model.middle_size=32"], ["model=dcgan", "model.width=8", "loss=hinge",
                                                              "trainer.n_critic=2"]])
def test_resume_with_an_ema_is_bit_identical(tmp_path, extra):
    args = [*RUN, *extra, "trainer.g_ema=0.9", "trainer.g_ema_start=2"]
    train(compose_cfg([*args, "trainer.max_steps=9"], run_dir=tmp_path / "straight"))
    train(compose_cfg([*args, "trainer.max_steps=3"], run_dir=tmp_path / "split"))
    half = tmp_path / "split" / "checkpoints" / "step_00000003.pt"
    train(compose_cfg([*args, "trainer.max_steps=9", f"resume={half}"], run_dir=tmp_path / "split"))
    a, b = ckpt(tmp_path / "straight", 9), ckpt(tmp_path / "split", 9)
    for net in ("generator", "generator_ema", "discriminator"):
        for key in a[net]:
            assert torch.equal(a[net][key], b[net][key]), f"{net}.{key}"
    assert jsonl_rows(tmp_path / "straight" / "eval.jsonl") == jsonl_rows(tmp_path / "split" / "eval.jsonl")


def test_a_checkpoint_without_an_ema_resumes_with_one_started_from_its_g(tmp_path):
    """Older checkpoints (and runs that turn the EMA on later) have no generator_ema: it starts as G."""
    train(compose_cfg([*RUN, "trainer.max_steps=3"], run_dir=tmp_path / "plain"))
    plain = tmp_path / "plain" / "checkpoints" / "step_00000003.pt"
    assert "generator_ema" not in torch.load(plain, weights_only=True)
    run = build_run(compose_cfg([*RUN, "trainer.max_steps=6", "trainer.g_ema=0.9"]))
    from ganlab.run import restore

    restore(run, torch.load(plain, weights_only=True), plain)
    for a, b in zip(run.g_ema.module.state_dict().values(), run.generator.state_dict().values()):
        assert torch.equal(a, b)
    final = train(compose_cfg([*RUN, "trainer.max_steps=6", "trainer.g_ema=0.9", f"resume={plain}"],
                              run_dir=tmp_path / "resumed"))
    assert final["step"] == 6 and "generator_ema" in ckpt(tmp_path / "resumed", 6)


def test_the_commands_use_the_g_the_run_sampled_from(tmp_path):
    train(compose_cfg([*RUN, "trainer.max_steps=3", "trainer.g_ema=0.5"], run_dir=tmp_path))
    path = tmp_path / "checkpoints" / "step_00000003.pt"
    [row] = jsonl_rows(tmp_path / "eval.jsonl")
    for choice, prefix in (("auto", "eval/"), ("g_ema", "eval/"), ("g", "eval_g/")):
        out = tmp_path / f"{choice}.json"
        proc = subprocess.run([sys.executable, "-m", "ganlab.eval", str(path), "--generator", choice,
                               "--out", str(out)], capture_output=True, text=True, check=True)
        result = json.loads(out.read_text())
        assert result["generator"] == ("g_ema" if choice == "auto" else choice), proc.stderr
        assert result["eval/fid_clf"] == pytest.approx(row[f"{prefix}fid_clf"], rel=1e-9)
    exports = {}
    for choice in ("auto", "g"):
        subprocess.run([sys.executable, "-m", "ganlab.sample", str(path), "--n", "8", "--generator", choice,
                        "--out", str(tmp_path / f"{choice}.npy")], capture_output=True, text=True, check=True)
        exports[choice] = np.load(tmp_path / f"{choice}.npy")
    assert not np.array_equal(exports["auto"], exports["g"])


def test_no_ema_in_the_checkpoint_is_a_clear_error_for_generator_g_ema(tmp_path):
    from ganlab.from_checkpoint import load_models

    train(compose_cfg([*RUN, "trainer.max_steps=3"], run_dir=tmp_path))
    state = ckpt(tmp_path, 3)
    with pytest.raises(ResumeError, match="no EMA generator"):
        load_models(state, torch.device("cpu"), "g_ema")
    load_models(state, torch.device("cpu"), "auto")  # the G, as before


@pytest.mark.parametrize("overrides,match", [
    (["trainer.sample_from=g_ema"], "sample_from=g_ema needs an EMA"),
    (["trainer.sample_from=both"], "sample_from='both': must be auto, g or g_ema"),
    (["trainer.g_ema=1.0"], r"trainer.g_ema=1.0: must be a decay in \[0, 1\) or null"),
    (["trainer.g_ema=0.9", "trainer.g_ema_start=-1"], "trainer.g_ema_start=-1: must be an integer >= 0"),
])
def test_bad_ema_settings_are_one_line_errors(overrides, match):
    with pytest.raises(ConfigError, match=match) as err:
        build_run(compose_cfg([*FAST, *overrides]))
    assert "\n" not in str(err.value)
