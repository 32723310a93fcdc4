"""The jobs of a multirun share a process: each IDX file is decoded once, and again only if it changes."""

from __future__ import annotations

import os

import numpy as np
import torch

import ganlab.data.idx as data

from conftest import write_idx_images


def test_idx_files_are_decoded_once_per_process_until_they_change(tmp_path, monkeypatch):
    calls = []
    original = data.read_idx_images
    monkeypatch.setattr(data, "read_idx_images", lambda path: calls.append(path) or original(path))
    data._read_idx_cached.cache_clear()
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx_images(path, np.full((4, 28, 28), 255, np.uint8), gz=False)
    first = data.idx("mnist", str(tmp_path)).images
    first.mul_(0)  # a caller changing its tensor must not change what the next job gets
    second = data.idx("mnist", str(tmp_path), pixel_range=(0.0, 1.0)).images
    assert len(calls) == 1 and torch.equal(second, torch.ones(4, 1, 28, 28))
    write_idx_images(path, np.zeros((6, 28, 28), np.uint8), gz=False)
    os.utime(path, ns=(1, 1))  # a new mtime even on coarse-clock file systems
    third = data.idx("mnist", str(tmp_path)).images
    assert len(calls) == 2 and third.shape[0] == 6
