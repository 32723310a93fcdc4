"""Every command in the README's fenced blocks, checked as a new user would run it.

Trainer commands are composed (what ``--cfg job`` does; a multirun's first and last combination), other
commands are parsed by their own argument parsers, other programs must exist; the cheap ones run for real:
the first command's composition (digits, no network), the smoke run and the whole first tour (a sweep,
its comparison, its TensorBoard files, a sample export), shortened to a few steps."""

from __future__ import annotations

import importlib
import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from ganlab.config import validate

from conftest import REPO, compose_cfg, run_ganlab, sweep_index

README = (REPO / "README.md").read_text()
BIN = Path(sys.executable).parent
_OPTIONAL = (REPO / "pyproject.toml").read_text().split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
EXTRAS = set(re.findall(r"^([a-z0-9_-]+) = \[", _OPTIONAL, re.M))  # pip install -e '.[<extra>]'  (no tomllib on 3.10)
# the tour, shortened: replaced or added to each trainer command of the tour
CHEAP = {"trainer.max_steps": "4", "eval.every": "2", "eval.n_samples": "64", "eval.kid_subsets": "2",
         "model.middle_size": "16", "trainer.progress": "false"}


def blocks(section: str | None = None) -> list[str]:
    """The README's ```bash blocks (of one ``## section`` when named)."""
    text = README
    if section is not None:
        text = README.split(f"\n## {section}", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", text, re.S)


def commands(block: str) -> list[list[str]]:
    """A block's commands as argument lists: continuations joined, comments dropped, ``a && b`` split."""
    found = []
    for line in block.replace("\\\n", " ").splitlines():
        tokens = shlex.split(line, comments=True)
        while tokens:
            cut = tokens.index("&&") if "&&" in tokens else len(tokens)
            found.append(tokens[:cut])
            tokens = tokens[cut + 1:]
    return found


ALL = [c for block in blocks() for c in commands(block)]


def trainer_args(command: list[str]) -> list[str] | None:
    """The arguments after ``python -m ganlab`` (or ``torchrun ... -m ganlab``), else None."""
    if command[:3] == ["python", "-m", "ganlab"]:
        return command[3:]
    if command[0] == "torchrun" and "ganlab" in command:
        return command[command.index("ganlab") + 1:]
    return None


def combinations(overrides: list[str]) -> list[list[str]]:
    """A multirun's first and last job (every swept key at its first, then its last value)."""
    first, last = [], []
    for override in OverridesParser.create().parse_overrides(overrides):
        if not override.is_sweep_override():
            first.append(override.input_line)
            last.append(override.input_line)
            continue
        try:
            values = list(override.sweep_string_iterator())
        except Exception:  # an interval (Optuna): its ends
            values = [str(override.value().start), str(override.value().end)]
        first.append(f"{override.get_key_element()}={values[0]}")
        last.append(f"{override.get_key_element()}={values[-1]}")
    return [first, last] if first != last else [first]


def check_trainer(args: list[str]) -> None:
    overrides = [a for a in args if a not in ("-m", "--multirun", "...")]
    if "--cfg" in overrides:  # `--cfg job` itself: compose what it names
        at = overrides.index("--cfg")
        overrides = overrides[:at] + overrides[at + 2:]
    if "--help" in overrides:
        return  # run for real in test_every_help_in_the_readme_runs
    for combination in combinations(overrides):
        validate(compose_cfg(combination, hydra_config=True))  # composes, and every value is in its range


def check_command(command: list[str]) -> None:
    """One README command: composed, parsed or found; AssertionError naming it otherwise."""
    if (args := trainer_args(command)) is not None:
        return check_trainer(args)
    program = command[0]
    if command[:3] == ["python", "-m", "ganlab.study"]:  # options, then overrides for every run of the study
        from ganlab.study import LOSSES, parser

        options, overrides = parser().parse_known_args(command[3:])
        for loss in options.losses.split(","):
            assert loss in LOSSES, loss
            check_trainer(["-m", "sweep=loss_study", f"loss={loss}", *overrides])
    elif command[:2] == ["python", "-m"] and command[2].startswith("ganlab."):
        module = importlib.import_module(command[2])
        if "--help" not in command:
            module.parser().parse_args(command[3:])  # SystemExit(2) on an unknown option
    elif command[:2] == ["python", "-m"] and command[2] == "pytest":
        pass
    elif command[:2] == ["pip", "install"]:
        for spec in command[2:]:
            extras = re.fullmatch(r"\.(?:\[(.+)\])?", spec.removeprefix("-e").strip() or ".")
            assert spec == "-e" or extras, spec
            if extras and extras.group(1):
                assert set(extras.group(1).split(",")) <= EXTRAS, f"{spec}: no such extra in pyproject.toml"
    elif program == "tensorboard":
        assert shutil.which("tensorboard", path=str(BIN)) or shutil.which("tensorboard"), "tensorboard not installed"
    elif program == "wandb":
        assert command[1] in ("sync", "login"), command
    elif program in ("bash", "apt-get"):
        assert program == "apt-get" or (REPO / command[1]).is_file(), command
    else:
        raise AssertionError(f"the README runs {program!r}: teach tests/test_readme.py to check it")


def test_the_readme_has_commands_and_its_two_commands_keep_their_meaning():
    assert len(ALL) > 25
    first = blocks("Two commands")[0]
    assert commands(first) == [["pip", "install", "-e", "."], ["python", "-m", "ganlab"],
                               ["pip", "install", "-e", ".[test]"], ["python", "-m", "pytest"]]
    assert "pip install -e '.[test]' && python -m pytest" in first  # what .ci/run runs


@pytest.mark.parametrize("command", ALL, ids=[" ".join(c)[:80] for c in ALL])
def test_every_readme_command_composes_or_parses(command):
    check_command(command)


def test_the_first_command_trains_the_embedded_digits_without_network(tmp_path):
    proc = run_ganlab(["--cfg", "job", "--resolve"], cwd=tmp_path)  # exactly what `python -m ganlab` composes
    assert "_target_: ganlab.data.images.digits" in proc.stdout
    assert "download" not in proc.stdout.split("\ndata:", 1)[1].split("\neval:", 1)[0]


def test_every_help_in_the_readme_runs(tmp_path):
    helps = [c for c in ALL if "--help" in c]
    for command in helps:
        module = command[2]
        run_ganlab(command[3:], cwd=tmp_path, module=module)


def test_the_smoke_run_runs(tmp_path):
    [[*_, smoke]] = commands(blocks("A 10-second smoke run")[0])
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = run_ganlab([smoke], cwd=tmp_path, env={"TMPDIR": str(temp)})
    assert "ganlab: run finished at step 5" in proc.stdout


def cheap(args: list[str]) -> list[str]:
    """A trainer command with CHEAP's values in place of (or beside) its own."""
    kept = [a for a in args if a.split("=", 1)[0] not in CHEAP]
    return kept + [f"{k}={v}" for k, v in CHEAP.items()]


def test_the_first_tour_runs_end_to_end(tmp_path):
    """A new user's first session: a sweep, its comparison, its dashboard, a sample export."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tour = commands(blocks("A first tour: samples, a sweep, its comparison, a local dashboard")[0])
    sweep_dir = None
    for command in tour:
        check_command(command)
        if command[0] == "pip":
            continue  # installed already: the test extra holds tensorboard
        if (args := trainer_args(command)) is not None:
            proc = run_ganlab(cheap(args), cwd=tmp_path)
            [printed] = re.findall(r"compare: python -m ganlab.compare (\S+)", proc.stdout)
            sweep_dir = tmp_path / printed
            jobs = sorted(p for p in sweep_dir.iterdir() if p.name.startswith("job-"))
            assert len(jobs) == 4 and all(re.match(r"job-00\d-loss=(bce|hinge),seed=\d-[0-9a-f]{10}$", j.name)
                                          for j in jobs)
            continue
        real = [a.replace("multirun/multirun-<hash>", str(sweep_dir.relative_to(tmp_path)))
                 .replace("<job>", jobs[0].name).replace("step_00001000", "step_00000004") for a in command]
        if command[0] == "tensorboard":  # the dashboard reads these files: TensorBoard's own reader
            for job in jobs:
                events = EventAccumulator(str(Path(tmp_path / real[2]) / job.name / "tensorboard"))
                events.Reload()
                assert [e.step for e in events.Scalars("d_loss")][-1] == 4 and events.Images("samples")
            continue
        proc = run_ganlab(real[3:], cwd=tmp_path, module=real[2])
        if real[2] == "ganlab.compare":
            table = (sweep_dir / "compare" / "table.md").read_text()
            assert "sorted by eval/fid_clf" in table and table.count("| `loss=") == 2
        if real[2] == "ganlab.sample" and real[-1].endswith(".npy"):
            assert "wrote 64 images (1, 8, 8) uint8" in proc.stdout
        elif real[2] == "ganlab.sample":  # the newest checkpoint of the job's folder, drawn
            assert "wrote a picture of 64 samples (274x274 px)" in proc.stdout and (tmp_path / real[-1]).is_file()
    assert sweep_dir is not None and sweep_index(sweep_dir)
