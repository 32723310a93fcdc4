"""Every command answers --help: a line on what it does, its options, examples; the trainer's through Hydra's
hydra/help (short, not the whole config), and none of them imports torch to say it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ganlab.config import config_groups, default_choices

from conftest import REPO, run_ganlab

COMMANDS = ["ganlab", "ganlab.sample", "ganlab.eval", "ganlab.compare", "ganlab.classifier"]


@pytest.mark.parametrize("module", COMMANDS)
def test_help_says_what_it_does_its_options_and_examples(module, tmp_path):
    out = run_ganlab(["--help"], cwd=tmp_path, module=module).stdout
    assert out.startswith(f"usage: python -m {module} ")
    assert "examples:" in out.lower() and out.count(f"python -m {module} ") >= 3
    assert "powered by Hydra" not in out and "Traceback" not in out
    assert len(out.splitlines()) < 60


def test_the_trainers_help_lists_every_group_and_option_and_marks_the_defaults(tmp_path):
    out = run_ganlab(["--help"], cwd=tmp_path).stdout
    picked = default_choices()
    for group, options in config_groups().items():
        [line] = [line for line in out.splitlines() if line.strip().startswith(group + " ")]
        listed = [o.strip() for o in line.split(None, 1)[1].split(",")]
        assert sorted(o.rstrip("*") for o in listed) == options
        assert [o for o in listed if o.endswith("*")] == ([picked[group] + "*"] if group in picked else [])
    for key in ("seed=", "trainer.max_steps=", "resume=", "objective=", "-m, --multirun", "--cfg"):
        assert key in out


def test_the_fast_help_is_what_hydra_renders(tmp_path):
    fast = run_ganlab(["--help"], cwd=tmp_path).stdout  # --help alone: no compose
    hydra = run_ganlab(["--help", "hydra.job.name=ganlab"], cwd=tmp_path).stdout  # Hydra's hydra/help path
    assert fast == hydra


@pytest.mark.parametrize("module", COMMANDS)
def test_help_imports_no_torch(module):
    # asked at exit (an atexit handler): a command leaves through sys.exit or ganlab.quick_exit, which runs them too
    code = ("import atexit, runpy, sys\n"
            "atexit.register(lambda: print('TORCH' if 'torch' in sys.modules else 'NO TORCH', flush=True))\n"
            "sys.argv = ['x', '--help']\nrunpy.run_module(%r, run_name='__main__')") % module
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip().endswith("NO TORCH"), proc.stdout[-500:] + proc.stderr[-2000:]


def test_the_classifier_takes_overrides_and_rejects_flags(tmp_path):
    proc = run_ganlab(["--bogus"], cwd=tmp_path, module="ganlab.classifier", check=False)
    assert proc.returncode == 2 and "unrecognized arguments: --bogus" in proc.stderr
    proc = run_ganlab(["data=nope"], cwd=tmp_path, module="ganlab.classifier", check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("ganlab.classifier: error:")


def test_a_bare_classifier_trains_the_default_data_sets_as_a_bare_trainer_would(tmp_path):
    proc = run_ganlab([], cwd=tmp_path, module="ganlab.classifier", env={"GANLAB_CACHE": str(tmp_path)})
    assert proc.stdout.startswith("training the digits classifier: 500 steps")
    assert (tmp_path / "classifiers" / "digits.pt").is_file()
