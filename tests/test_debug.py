"""The debug group: debug=smoke (a few steps, no evaluation, no logger, a temp run dir) and debug=profile
(a torch.profiler trace of the loop in the run dir), through the real entry point."""

from __future__ import annotations

import json

from conftest import compose_cfg, logged_steps, run_ganlab


def test_smoke_runs_a_few_steps_into_a_temp_dir_and_leaves_nothing_here(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = run_ganlab(["debug=smoke"], cwd=tmp_path, env={"TMPDIR": str(temp)})
    [run_dir] = (temp / "ganlab-smoke").iterdir()
    assert f"ganlab: run finished at step 5: {run_dir}" in proc.stdout
    logged = logged_steps(run_dir / "metrics.jsonl")
    assert logged == [1, 2, 3, 4, 5]
    assert (run_dir / "samples" / "samples_00000005.png").is_file()
    assert (run_dir / "checkpoints" / "step_00000005.pt").is_file()
    assert not (run_dir / "eval.jsonl").exists() and not (run_dir / "wandb").exists()  # no evaluation, no logger
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]  # no outputs/ where it ran
    cfg = compose_cfg(["debug=smoke", "logger=tensorboard", "data=ring8"])  # what you pass still wins
    assert list(cfg.logger) == ["tensorboard"] and cfg.data.dataset._target_.endswith("ring8")


def test_profile_writes_a_trace_and_the_costliest_ops_to_the_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    run_ganlab(["debug=profile", "trainer.max_steps=3", "model.middle_size=16", f"hydra.run.dir={run_dir}"],
               cwd=tmp_path)
    trace = json.loads((run_dir / "profile" / "trace.json").read_text())
    names = {event.get("name", "") for event in trace["traceEvents"]}
    assert any(name.startswith("aten::addmm") for name in names)  # the MLPs' matmuls are in it
    assert any("Optimizer.step" in name for name in names)
    assert "aten::" in (run_dir / "profile" / "top_ops.txt").read_text()
    assert logged_steps(run_dir / "metrics.jsonl")[-1] == 3
    assert compose_cfg([]).profile is None  # off unless asked for
