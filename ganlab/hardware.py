"""Device selection."""

from __future__ import annotations

from typing import Literal

import torch

from ganlab.errors import ConfigError


def resolve_device(device: Literal["auto", "cpu", "cuda"] = "auto") -> torch.device:
    """The torch device for a run: "auto" picks CUDA when one is visible, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("hardware=gpu asks for CUDA, but no CUDA device is visible; use hardware=cpu or auto")
    return torch.device(device)
