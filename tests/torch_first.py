"""``python -m torch_first <ganlab arguments>``: the ganlab entry point in a process that has imported torch
first (as a notebook's or a script's would): population workers with several threads are then spawned."""

import runpy

import torch  # noqa: F401  (the point)

runpy.run_module("ganlab", run_name="__main__", alter_sys=True)
