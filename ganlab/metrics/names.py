"""The evaluation metrics' names: which are better low, which high, which an objective may name (no torch
import: compare.py and the config check stay light)."""

from __future__ import annotations

PREFIX = "eval/"
LOWER_IS_BETTER = ("fid_clf", "kid_clf", "fid_inception", "kid_inception", "class_kl", "mode_reverse_kl", "jsd_hist")
HIGHER_IS_BETTER = ("classes_hit", "max_softmax", "modes_covered", "hq_percent",
                    "precision", "recall", "coverage", "cond_accuracy")
# density is about 1 when fakes are spread as reals are, above 1 when they crowd the dense real regions,
# so a larger value is not simply better
NEITHER_SIDE = ("d_real", "d_fake", "density")
EVAL_NAMES = (*LOWER_IS_BETTER, *HIGHER_IS_BETTER, *NEITHER_SIDE)  # every metric an evaluation can log
OTHER_G_PREFIXES = ("eval_g/", "eval_g_ema/")  # a run with an EMA also logs the G it does not sample from


def lower_is_better(metric: str) -> bool | None:
    """True/False for metrics with a better side (``eval/`` or ``eval_g*/`` prefix optional), None otherwise."""
    name = metric.removeprefix(PREFIX)
    for prefix in OTHER_G_PREFIXES:
        name = name.removeprefix(prefix)
    return True if name in LOWER_IS_BETTER else False if name in HIGHER_IS_BETTER else None


def objective_problem(objective: str, evaluating: bool) -> str | None:
    """Why ``objective`` cannot be a final metric of a run, known before it trains (None: it may be).

    A sweep's every trial would otherwise train to its end and fail there. Evaluation metrics are all known
    here (which of them a run logs depends on its data: the end of the run checks that); step metrics
    depend on the loss, so the end of the run checks them too.
    """
    prefix = next((p for p in (PREFIX, *OTHER_G_PREFIXES) if objective.startswith(p)), None)
    if prefix is None:
        if objective in EVAL_NAMES and objective not in ("d_real", "d_fake"):  # also step metrics
            return f"an evaluation metric; did you mean objective={PREFIX}{objective}?"
        return None
    if not evaluating:
        return "an evaluation metric, and evaluation is off (eval.every=0)"
    name = objective.removeprefix(prefix)
    name = name.removesuffix("_best_step") if name.endswith("_best_step") else name.removesuffix("_best")
    if name not in EVAL_NAMES:
        return f"no evaluation logs {name} (known: {', '.join(sorted(EVAL_NAMES))})"
    return None
