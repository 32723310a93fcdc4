"""Errors that reach the user as one clear line and a non-zero exit."""

from __future__ import annotations

import errno
import sys
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from pathlib import Path


class GanlabError(Exception):
    """Base for errors with a message meant for the user, not a traceback."""


class ConfigError(GanlabError):
    """A config value that cannot work (wrong type, incompatible options)."""


class DataNotFoundError(GanlabError):
    """A data set that is not on disk and cannot be downloaded."""


class NonFiniteLossError(GanlabError):
    """A loss became NaN or inf; training stopped, the last good checkpoint is kept."""


class ResumeError(GanlabError):
    """A resume path that does not exist or does not hold a ganlab checkpoint."""


class FeaturesUnavailableError(GanlabError):
    """An evaluation feature extractor (Inception weights, a data set's classifier) that is not available."""


class Preempted(Exception):
    """Training stopped on a preemption signal after checkpointing ``step`` (not an error: the run resumes).

    Here, below every module that raises or catches it, so that a launcher can catch it without
    importing the training loop (and torch)."""

    def __init__(self, step: int) -> None:
        super().__init__(f"preempted: stopped after checkpointing step {step}")
        self.step = step


# OSErrors about a path the user chose (not a bug): a folder in the way, a read-only mount, a full disk
FILE_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EACCES, errno.EPERM, errno.EROFS,
               errno.ENOSPC, errno.EDQUOT}


def user_error_line(err: BaseException) -> str | None:
    """The one line for an error about what the user asked for (a GanlabError, a path OSError); None for a bug.

    Every place that turns errors into lines asks here: a run's entry point and each member of a population,
    so that a full disk is the same line in both."""
    if isinstance(err, GanlabError):
        return str(err)
    if isinstance(err, OSError) and err.filename is not None and err.errno in FILE_ERRNOS:
        return f"{err.filename}: {err.strerror}"
    return None


def make_folder(path: Path) -> None:
    """``mkdir -p path``, or a one-line ConfigError (a file in the way, a read-only or missing mount)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot make the folder {path}: {err.strerror}") from err


INTERRUPTED_EXIT = 130  # 128 + SIGINT, what a shell reports after Ctrl-C


def interruptible(prog: str, main: Callable[[], int | None]) -> int | None:
    """``main()``, a Ctrl-C that reaches it being one line and exit status 130 rather than a traceback."""
    try:
        return main()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted (Ctrl-C)", file=sys.stderr)
        return INTERRUPTED_EXIT
