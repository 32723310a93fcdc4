"""`python -m ganlab.compare` on a small real multirun, and `python -m ganlab.eval` on one of its checkpoints."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_entry import job_dirs

from conftest import jsonl_rows, run_ganlab


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """2 learning rates x 2 seeds, 12 steps each, evaluated every 6 steps."""
    root = tmp_path_factory.mktemp("compare")
    run_ganlab(["-m", "optimizer.lr=1e-4,2e-4", "seed=0,1", "trainer.max_steps=12", "trainer.log_every=3",
                "eval.every=6", "eval.n_samples=100", "eval.kid_subsets=5", "model.middle_size=32", "logger=none",
                "trainer.progress=false", f"hydra.sweep.dir={root / 'sweep'}"], cwd=root)
    return root / "sweep"


def test_compare_writes_the_table_and_the_plot(sweep, tmp_path):
    proc = run_ganlab([str(sweep), "--out", str(tmp_path)], cwd=tmp_path, module="ganlab.compare")
    table = (tmp_path / "table.md").read_text()
    assert "sorted by eval/fid_clf (ascending)" in table and table in proc.stdout
    assert "All runs: `eval.every=6,eval.kid_subsets=5,eval.n_samples=100,model.middle_size=32,trainer.log_every=3," \
           "trainer.max_steps=12`" in table
    with open(tmp_path / "runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 4 and {r["seed"] for r in runs} == {"0", "1"}
    with open(tmp_path / "table.csv") as f:
        configs = list(csv.DictReader(f))
    assert len(configs) == 2 and all(c["n_seeds"] == "2" for c in configs)
    means = [float(c["eval/fid_clf_mean"]) for c in configs]
    assert means == sorted(means)  # best first
    for config in configs:  # mean ± std over the two seeds, from the runs' own summaries
        values = [float(r["eval/fid_clf"]) for r in runs if r["config"] == config["config"]]
        assert float(config["eval/fid_clf_mean"]) == pytest.approx(np.mean(values))
        assert float(config["eval/fid_clf_std"]) == pytest.approx(np.std(values, ddof=1))
        assert "optimizer.lr=" in config["config"] and "seed" not in config["config"]
    assert table.count(" ± ") >= 2 and "| 1 | `optimizer.lr=" in table
    image = np.asarray(Image.open(tmp_path / "compare.png").convert("RGB"))
    assert image.shape[0] > 400 and image.shape[1] > 600
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # drawn, not blank


def test_compare_sorts_by_a_chosen_metric_and_rejects_unknown_ones(sweep, tmp_path):
    run_ganlab([str(sweep), "--metric", "eval/classes_hit", "--out", str(tmp_path)], cwd=tmp_path,
               module="ganlab.compare")
    assert "sorted by eval/classes_hit (descending)" in (tmp_path / "table.md").read_text()
    proc = run_ganlab([str(sweep), "--metric", "eval/modes_covered"], cwd=tmp_path, module="ganlab.compare",
                      check=False)
    assert proc.returncode == 2 and "ganlab.compare: error: --metric eval/modes_covered: no run has it" in proc.stderr
    proc = run_ganlab([str(tmp_path)], cwd=tmp_path, module="ganlab.compare", check=False)
    assert proc.returncode == 2 and "holds no runs" in proc.stderr


def test_compare_rejects_a_negative_top_and_an_unwritable_out_in_one_line(sweep, tmp_path, capsys):
    from ganlab.compare import main

    with pytest.raises(SystemExit) as exit_info:
        main([str(sweep), "--top", "-1", "--out", str(tmp_path / "t")])
    assert exit_info.value.code == 2 and capsys.readouterr().err.strip().splitlines()[-1] == \
        "python -m ganlab.compare: error: --top must be >= 0 (configs whose curves are plotted), got -1"
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main([str(sweep), "--out", str(blocker / "compare")]) == 2
    error = f"ganlab.compare: error: cannot make the folder {blocker / 'compare'}: Not a directory"
    assert capsys.readouterr().err == error + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing written anywhere


def test_eval_of_a_checkpoint_matches_the_runs_own_final_evaluation(sweep, tmp_path):
    job = job_dirs(sweep)[0]
    out = tmp_path / "m.json"
    proc = run_ganlab([str(job / "checkpoints" / "step_00000012.pt"), "--out", str(out)], cwd=tmp_path,
                      module="ganlab.eval")
    result = json.loads(out.read_text())
    assert json.loads(proc.stdout) == result and result["step"] == 12
    final = jsonl_rows(job / "eval.jsonl")[-1]
    for key in ("eval/fid_clf", "eval/kid_clf", "eval/classes_hit", "eval/d_real", "eval/d_fake"):
        assert result[key] == pytest.approx(final[key], rel=1e-5), key  # same G, z, real subset, classifier
    proc = run_ganlab([str(job / "checkpoints" / "step_00000012.pt"), "--n-samples", "50", "--features", "none"],
                      cwd=tmp_path, module="ganlab.eval")
    assert "eval/fid_clf" not in json.loads(proc.stdout)
    assert (job / "checkpoints" / "step_00000012.eval.json").is_file()
    proc = run_ganlab([str(tmp_path / "missing.pt")], cwd=tmp_path, module="ganlab.eval", check=False)
    assert proc.returncode == 2 and "ganlab.eval: error:" in proc.stderr


def test_compare_sorts_by_recall_descending_and_shows_the_prdc_columns(sweep, tmp_path):
    run_ganlab([str(sweep), "--metric", "eval/recall", "--out", str(tmp_path)], cwd=tmp_path, module="ganlab.compare")
    table = (tmp_path / "table.md").read_text()
    assert "sorted by eval/recall (descending)" in table
    assert all(f"eval/{k}" in table for k in ("precision", "recall", "density", "coverage"))


def test_a_colour_is_a_loss_in_every_panel_and_a_rank_its_marker():
    # the top panels coloured by loss, the curves by rank, from one palette: C0 was bce above and #1 (hinge) below.
    # One logged point per key: line styles draw nothing, so g_loss and d_loss differ by fill
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    from ganlab.report.plots import _curves, _metric_vs, loss_colours
    from ganlab.report.runs import ConfigRow, RunRecord

    def run(loss: str, lr: float, fid: float) -> RunRecord:
        return RunRecord(path=Path("."), overrides=[], config={"optimizer": {"generator": {"lr": lr}}},
                         choices={"loss": loss}, final={"eval/fid_clf": fid},
                         curves=[{"step": 3, "g_loss": 0.7, "d_loss": 1.4}])

    rows = [ConfigRow("h", [run("hinge", 2e-4, 10.0)], {}), ConfigRow("b", [run("bce", 1e-4, 20.0)], {}),
            ConfigRow("b2", [run("bce", 2e-4, 30.0)], {})]  # best first, as compare sorts them
    colours = loss_colours(rows)
    assert colours == {"bce": "C0", "hinge": "C1"}
    fig, (top, curves) = plt.subplots(1, 2)
    _metric_vs(top, rows, "eval/fid_clf", "optimizer.generator.lr", "lr", log_x=True, colours=colours)
    handles, labels = top.get_legend_handles_labels()
    hexes = {label: to_hex(handle.lines[0].get_color()) for handle, label in zip(handles, labels)}
    assert hexes == {"loss=bce": to_hex("C0"), "loss=hinge": to_hex("C1")}
    _curves(curves, rows, "metrics", ("g_loss", "d_loss"), "losses", colours)
    lines = {line.get_label(): line for line in curves.get_lines()}
    assert set(lines) == {f"#{r} {k}" for r in (1, 2, 3) for k in ("g_loss", "d_loss")}
    assert [to_hex(lines[f"#{r} g_loss"].get_color()) for r in (1, 2, 3)] == [hexes["loss=hinge"], hexes["loss=bce"],
                                                                               hexes["loss=bce"]]
    assert len({lines[f"#{r} g_loss"].get_marker() for r in (1, 2, 3)}) == 3  # the two bce configs apart
    assert lines["#1 g_loss"].get_marker() == lines["#1 d_loss"].get_marker()
    assert lines["#1 g_loss"].get_markerfacecolor() != lines["#1 d_loss"].get_markerfacecolor()
    plt.close(fig)
