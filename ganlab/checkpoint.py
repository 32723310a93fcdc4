"""Checkpoints as plain data (state dicts, step, RNG states, resolved config), written atomically."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from ganlab.errors import ResumeError

_STEP_FILE = re.compile(r"^step_(\d+)\.pt$")


def step_path(ckpt_dir: Path, step: int) -> Path:
    """Where the checkpoint of ``step`` lives."""
    return ckpt_dir / f"step_{step:08d}.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically: a crash leaves the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_failure(err: Exception) -> str:
    """The reason in torch.load's error, in one line (its weights_only report runs to a dozen lines of advice)."""
    found = re.search(r"WeightsUnpickler error:\s*(.+)", str(err))
    if found:  # "Unsupported operand 123" (not a torch file), "Unsupported global: GLOBAL x.Y was not ..." (code)
        return "weights_only load: " + found[1].split(" Please use")[0].strip()
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    if "failed finding central directory" in lines[0]:  # torch's zip reader on a file cut short
        return "cut short: a copy or save that did not finish?"
    return f"{type(err).__name__}: {lines[0].split('. ')[0]}"  # torch adds sentences of advice


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a ganlab checkpoint with ``weights_only=True`` (plain data only, no pickled code)."""
    path = Path(path)
    if not path.is_file():
        raise ResumeError(f"checkpoint {path} does not exist")
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04" and not magic.startswith(b"\x80"):  # torch.save's zip file; its older pickle format
        raise ResumeError(f"{path} is not a ganlab checkpoint (not a file torch.save wrote)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ResumeError(f"{path} is not a loadable ganlab checkpoint ({load_failure(err)})") from err
    if not isinstance(state, dict) or "generator" not in state or "step" not in state:
        raise ResumeError(f"{path} is not a ganlab checkpoint (no generator/step entries)")
    return state


def list_checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the step checkpoints in ``ckpt_dir``, oldest first."""
    if not ckpt_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in ckpt_dir.iterdir() if (m := _STEP_FILE.match(p.name))]
    return sorted(found)


def prune_checkpoints(ckpt_dir: Path, keep: int | None) -> None:
    """Delete all but the ``keep`` newest step checkpoints (None keeps all)."""
    if keep is None:
        return
    for _, path in list_checkpoints(ckpt_dir)[: max(0, len(list_checkpoints(ckpt_dir)) - keep)]:
        path.unlink(missing_ok=True)


def checkpoint_file(path: Path) -> Path:
    """``path``; for a run's folder (the one a run prints) or its checkpoints/, the newest checkpoint there (a
    ResumeError when there is none). Every command that takes a checkpoint takes a run's folder this way."""
    if not path.is_dir():
        return path
    found = list_checkpoints(path / "checkpoints") or list_checkpoints(path)
    if not found:
        raise ResumeError(f"{path}: no checkpoint (step_XXXXXXXX.pt) in this folder or its checkpoints/")
    return found[-1][1]


def resolve_resume(resume: str | None, ckpt_dir: Path) -> Path | None:
    """The checkpoint to resume from: None; for "auto" the newest in ``ckpt_dir`` (None when there is none);
    a checkpoint file; or a run's folder or its checkpoints folder (the newest checkpoint there)."""
    if resume is None:
        return None
    if not isinstance(resume, str):  # resume=true, resume=3: parsed as a bool, a number
        raise ResumeError(f"resume={resume}: must be auto, a checkpoint file or a run's folder")
    if resume == "auto":
        found = list_checkpoints(ckpt_dir)
        return found[-1][1] if found else None
    path = checkpoint_file(Path(resume).expanduser())
    if not path.is_file():
        raise ResumeError(f"resume={resume}: no such checkpoint file or run folder "
                          "(use resume=auto to pick the newest in the run dir)")
    return path
