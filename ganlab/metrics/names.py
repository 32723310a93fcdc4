"""Which evaluation metrics are better low and which high (no torch import: compare.py stays light)."""

from __future__ import annotations

PREFIX = "eval/"
LOWER_IS_BETTER = ("fid_clf", "kid_clf", "fid_inception", "kid_inception", "class_kl", "mode_reverse_kl", "jsd_hist")
# neither side: d_real/d_fake; density (about 1 when fakes are spread as reals are, above 1 when they
# crowd the dense real regions, so a larger value is not simply better)
HIGHER_IS_BETTER = ("classes_hit", "max_softmax", "modes_covered", "hq_percent",
                    "precision", "recall", "coverage", "cond_accuracy")
OTHER_G_PREFIXES = ("eval_g/", "eval_g_ema/")  # a run with an EMA also logs the G it does not sample from


def lower_is_better(metric: str) -> bool | None:
    """True/False for metrics with a better side (``eval/`` or ``eval_g*/`` prefix optional), None otherwise."""
    name = metric.removeprefix(PREFIX)
    for prefix in OTHER_G_PREFIXES:
        name = name.removeprefix(prefix)
    return True if name in LOWER_IS_BETTER else False if name in HIGHER_IS_BETTER else None
