"""Which evaluation metrics are better low and which high (no torch import: compare.py stays light)."""

from __future__ import annotations

PREFIX = "eval/"
LOWER_IS_BETTER = ("fid_clf", "kid_clf", "fid_inception", "kid_inception", "class_kl", "mode_reverse_kl", "jsd_hist")
HIGHER_IS_BETTER = ("classes_hit", "max_softmax", "modes_covered", "hq_percent")  # d_real/d_fake: neither


def lower_is_better(metric: str) -> bool | None:
    """True/False for metrics with a better side (``eval/`` prefix optional), None for those without."""
    name = metric.removeprefix(PREFIX)
    return True if name in LOWER_IS_BETTER else False if name in HIGHER_IS_BETTER else None
