"""Checkpoints: plain data, atomic, resumable bit for bit; same seed, same losses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from ganlab.checkpoint import load_checkpoint, save_checkpoint
from ganlab.errors import ResumeError
from ganlab.train import train

from conftest import FAST, compose_cfg, jsonl_rows

BASE = [*FAST, "model.middle_size=32", "trainer.log_every=1", "trainer.ckpt_every=4", "trainer.ckpt_keep=null"]


def losses(run_dir: Path) -> list[tuple]:
    rows = jsonl_rows(run_dir / "metrics.jsonl")
    return [(r["step"], r["d_loss"], r["g_loss"], r["d_real"], r["d_fake"]) for r in rows]


def weights(path: Path) -> dict:
    state = torch.load(path, weights_only=True)
    return {**{f"G.{k}": v for k, v in state["generator"].items()},
            **{f"D.{k}": v for k, v in state["discriminator"].items()}}


@pytest.mark.parametrize("extra", [[], ["loss=mse", "trainer.n_critic=2", "trainer.detach_fake=false"],
                                   ["loss=wgan_gp", "trainer.n_critic=2"]])  # the penalty's random interpolates
def test_resume_is_bit_identical(tmp_path, extra):
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(compose_cfg([*BASE, *extra, "trainer.max_steps=12"], run_dir=straight))
    train(compose_cfg([*BASE, *extra, "trainer.max_steps=6"], run_dir=split))
    first_half = split / "checkpoints" / "step_00000006.pt"
    train(compose_cfg([*BASE, *extra, "trainer.max_steps=12", f"resume={first_half}"], run_dir=split))
    a, b = weights(straight / "checkpoints" / "step_00000012.pt"), weights(split / "checkpoints" / "step_00000012.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key  # bit-identical, not merely close
    assert losses(straight) == losses(split)  # the same losses at every step, across the resume


def test_resume_auto_picks_newest_and_is_fresh_when_empty(tmp_path):
    run_dir = tmp_path / "run"
    result = train(compose_cfg([*BASE, "trainer.max_steps=4", "resume=auto"], run_dir=run_dir))  # nothing yet: fresh
    assert result["step"] == 4
    result = train(compose_cfg([*BASE, "trainer.max_steps=8", "resume=auto"], run_dir=run_dir))
    assert [r[0] for r in losses(run_dir)] == [1, 2, 3, 4, 5, 6, 7, 8]  # continued at 5, not restarted


def test_resume_from_a_run_folder_takes_its_newest_checkpoint(tmp_path):
    from ganlab.checkpoint import resolve_resume

    first = tmp_path / "first"
    train(compose_cfg([*BASE, "trainer.max_steps=8"], run_dir=first))  # checkpoints at 4 and 8
    newest = first / "checkpoints" / "step_00000008.pt"
    for given in (first, first / "checkpoints", newest):  # the folder a run printed, its checkpoints/, a file
        assert resolve_resume(str(given), tmp_path / "elsewhere") == newest
    result = train(compose_cfg([*BASE, "trainer.max_steps=12", f"resume={first}"], run_dir=tmp_path / "second"))
    assert result["step"] == 12 and [r[0] for r in losses(tmp_path / "second")] == [9, 10, 11, 12]
    # the commands that take a checkpoint take the run's folder the same way
    from ganlab.eval import main as evaluate
    from ganlab.sample import main as sample

    for given, out in ((first, "from_dir.npy"), (newest, "from_file.npy")):
        assert sample([str(given), "--out", str(tmp_path / out), "--n", "16"]) == 0
    assert (tmp_path / "from_dir.npy").read_bytes() == (tmp_path / "from_file.npy").read_bytes()
    assert evaluate([str(first), "--features", "none", "--n-samples", "64"]) == 0
    assert json.loads(newest.with_suffix(".eval.json").read_text())["checkpoint"] == str(newest)  # beside the newest
    (tmp_path / "empty").mkdir()
    for bad, message in ((str(tmp_path / "empty"), "no checkpoint (step_XXXXXXXX.pt) in this folder or its "),
                         (True, "resume=True: must be auto, a checkpoint file or a run's folder"),  # resume=true
                         (3, "resume=3: must be auto")):
        with pytest.raises(ResumeError, match=re.escape(message)):
            resolve_resume(bad, tmp_path / "elsewhere")


def test_same_seed_same_losses_other_seed_differs(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        train(compose_cfg([*BASE, "trainer.max_steps=5", f"seed={seed}"], run_dir=tmp_path / name))
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    assert losses(tmp_path / "a") != losses(tmp_path / "c")


def test_checkpoint_is_plain_data(tmp_path):
    train(compose_cfg([*BASE, "trainer.max_steps=4"], run_dir=tmp_path))
    state = torch.load(tmp_path / "checkpoints" / "step_00000004.pt", weights_only=True)
    assert set(state) >= {"generator", "discriminator", "g_opt", "d_opt", "step", "rng", "config", "img_shape"}
    assert state["step"] == 4 and state["config"]["loss"]["_target_"] == "ganlab.losses.NonSaturatingLoss"
    assert isinstance(state["rng"]["torch"], torch.Tensor) and isinstance(state["rng"]["latent"], torch.Tensor)


def test_ckpt_keep_prunes_old_step_files(tmp_path):
    train(compose_cfg([*FAST, "trainer.max_steps=8", "trainer.ckpt_every=2", "trainer.ckpt_keep=2"], run_dir=tmp_path))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_00000006.pt", "step_00000008.pt"]


def test_atomic_save_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"step": 1, "generator": {}})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint(path, {"step": 2, "generator": {}, "bad": Unpicklable()})
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temp file left behind


def test_resume_errors(tmp_path):
    with pytest.raises(ResumeError, match="no such checkpoint file or run folder"):
        train(compose_cfg([*BASE, f"resume={tmp_path / 'missing.pt'}"], run_dir=tmp_path / "r"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ResumeError) as raised:  # torch.load said "Unsupported operand 110" ('n', its first byte)
        train(compose_cfg([*BASE, f"resume={junk}"], run_dir=tmp_path / "r"))
    assert str(raised.value) == f"{junk} is not a ganlab checkpoint (not a file torch.save wrote)"
    pickled = tmp_path / "pickled.pt"
    pickled.write_bytes(b"\x80\x02" + b"not a checkpoint")  # a pickle's header, then junk
    with pytest.raises(ResumeError) as raised:
        train(compose_cfg([*BASE, f"resume={pickled}"], run_dir=tmp_path / "r"))
    # one line with torch's reason, not its dozen lines of weights_only advice
    message = str(raised.value)
    assert message.startswith(f"{pickled} is not a loadable ganlab checkpoint (") and "\n" not in message
    train(compose_cfg([*BASE, "trainer.max_steps=2"], run_dir=tmp_path / "small"))
    small = tmp_path / "small/checkpoints/step_00000002.pt"
    with pytest.raises(ResumeError, match="does not match") as raised:
        train(compose_cfg([*BASE, "model.middle_size=64", f"resume={small}"], run_dir=tmp_path / "r"))
    # one line: torch's first mismatch and a count, not a tab-indented line per tensor
    assert str(raised.value) == (f"{small} does not match this run's model/optimizer config: MLPGenerator: size "
                                 "mismatch for net.0.weight: copying a param with shape torch.Size([32, 50]) from "
                                 "checkpoint, the shape in current model is torch.Size([64, 50]). (and 6 more)")
    # Adam's state would load into RMSprop silently and fail at its first step (KeyError 'square_avg')
    with pytest.raises(ResumeError, match="trained its generator with torch.optim.Adam, this run with RMSprop"):
        train(compose_cfg([*BASE, "optimizer=rmsprop", f"resume={small}"], run_dir=tmp_path / "r"))
    for steps in (1, 2):  # a checkpoint at or past this run's end, from another run: nothing to train or report
        with pytest.raises(ResumeError, match=f"is at step 2 and this run ends at step {steps} .*nothing left"):
            train(compose_cfg([*BASE, f"trainer.max_steps={steps}", f"resume={small}"], run_dir=tmp_path / "r"))
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_the_same_finished_command_again_reports_its_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    first = train(compose_cfg([*BASE, "trainer.max_steps=4", "resume=auto"], run_dir=run_dir))
    rows = losses(run_dir)
    again = train(compose_cfg([*BASE, "trainer.max_steps=4", "resume=auto"], run_dir=run_dir))
    assert again == first and losses(run_dir) == rows  # nothing trained, nothing logged twice
    assert f"ganlab: run already finished at step 4: {run_dir}" in capsys.readouterr().out


def test_a_checkpoint_cut_short_says_so_in_one_line(tmp_path):
    path = tmp_path / "whole.pt"
    torch.save({"step": 1, "generator": {"w": torch.zeros(1000)}}, path)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(path.read_bytes()[:1000])  # a copy that stopped: torch's zip reader finds no central directory
    with pytest.raises(ResumeError) as raised:
        load_checkpoint(cut)
    assert str(raised.value) == f"{cut} is not a loadable ganlab checkpoint (cut short: a copy or save that did not " \
                                "finish?)"
    assert load_checkpoint(path)["step"] == 1


class Code:  # a pickled class: weights_only refuses to load it
    pass


def test_a_checkpoint_holding_code_is_refused_in_one_line(tmp_path):
    path = tmp_path / "code.pt"
    torch.save({"step": 1, "generator": {}, "hook": Code}, path)
    with pytest.raises(ResumeError) as raised:
        load_checkpoint(path)
    message = str(raised.value)
    assert message.startswith(f"{path} is not a loadable ganlab checkpoint (weights_only load: ")
    assert "\n" not in message
    assert f"{__name__}.Code" in message and "Please use" not in message  # the reason, without torch's advice
