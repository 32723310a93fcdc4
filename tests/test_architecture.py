"""The architecture as a check: the import contracts in pyproject.toml, no import cycles, ruff, and the
README's Layout section against the tree."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

BIN = Path(sys.executable).parent


def lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([str(BIN / "lint-imports"), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    proc = lint_imports(REPO, REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


@pytest.mark.parametrize("module,line,contract", [
    ("models/mlp.py", "from ganlab.tracking import Tracker", "networks know no tracker"),
    ("losses.py", "import ganlab.loop", "losses know no loop"),
    ("metrics/points.py", "from ganlab.train import train", "metrics are usable outside training"),
    ("data/toy2d.py", "import wandb", "only tracking imports wandb"),
])
def test_a_wrong_import_breaks_a_contract(tmp_path, module, line, contract):
    """The check can fail: the same tree with one forbidden import added."""
    shutil.copytree(REPO / "ganlab", tmp_path / "ganlab", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "ganlab" / module
    target.write_text(target.read_text() + f"\n{line}  # added by the test\n")
    proc = lint_imports(tmp_path, tmp_path)
    assert proc.returncode != 0
    assert re.search(rf"{re.escape(contract)}.* BROKEN", proc.stdout), proc.stdout


def test_no_import_cycles():
    import grimp

    graph = grimp.build_graph("ganlab", exclude_type_checking_imports=True)
    cycles = []
    for importer in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(importer):
            if imported.startswith("ganlab") and imported != "ganlab" and importer != "ganlab":
                back = graph.find_shortest_chain(importer=imported, imported=importer)
                if back and not (importer.startswith(imported + ".") or imported.startswith(importer + ".")):
                    cycles.append(f"{importer} -> {' -> '.join(back)}")
    assert not cycles, "\n".join(cycles)


def test_ruff_is_clean():
    proc = subprocess.run([str(BIN / "ruff"), "check", "."], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def layout_block() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Layout", 1)[1]
    return section.split("```", 2)[1]


def test_readme_layout_names_every_module_and_package_and_nothing_else():
    block = layout_block()
    named = set(re.findall(r"\b([a-z_0-9]+(?:\.py|/))", block))
    packages = [p.parent for p in (REPO / "ganlab").rglob("__init__.py")]  # every depth
    tree = {p.name + "/" for p in packages if p != REPO / "ganlab"}
    tree |= {p.name for package in packages for p in package.glob("*.py") if p.name != "__init__.py"}
    tree |= {p.name for p in (REPO / "hydra_plugins" / "ganlab_plugins").glob("*.py") if p.name != "__init__.py"}
    missing = sorted(tree - named)
    assert not missing, f"README Layout does not mention: {missing}"
    elsewhere = (REPO / "benchmarks",)
    stale = sorted(n for n in named if n.endswith(".py") and n not in tree and n != "__init__.py"
                   and not any((folder / n).exists() for folder in elsewhere))
    assert not stale, f"README Layout names modules that do not exist: {stale}"
