"""Where metrics and images go: the run's own files always (files.py), W&B (wandb_run.py), TensorBoard
(tensorboard_run.py) and CSV (csv_run.py) as the ``logger`` group says, any of them at once.

The only package that imports wandb and tensorboard (lazily: a run without them never pays for them).
"""

from ganlab.tracking.files import Logger, SilentTracker, Tracker, drop_rows_after

__all__ = ["Logger", "SilentTracker", "Tracker", "drop_rows_after"]
