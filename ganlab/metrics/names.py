"""The metrics' names: which are better low, which high, which an objective may name (no torch import:
compare.py and the config check stay light)."""

from __future__ import annotations

import difflib

PREFIX = "eval/"
LOWER_IS_BETTER = ("fid_clf", "kid_clf", "fid_inception", "kid_inception", "class_kl", "mode_reverse_kl", "jsd_hist")
HIGHER_IS_BETTER = ("classes_hit", "max_softmax", "modes_covered", "hq_percent",
                    "precision", "recall", "coverage", "cond_accuracy")
# density is about 1 when fakes are spread as reals are, above 1 when they crowd the dense real regions,
# so a larger value is not simply better
NEITHER_SIDE = ("d_real", "d_fake", "density")
EVAL_NAMES = (*LOWER_IS_BETTER, *HIGHER_IS_BETTER, *NEITHER_SIDE)  # every metric an evaluation can log
OTHER_G_PREFIXES = ("eval_g/", "eval_g_ema/")  # a run with an EMA also logs the G it does not sample from

# every metric a run's step logs (ganlab/loop.py, the population's trainer), with what a run's end adds
# (objective_value's d_gap, the step): the zoo tests check that a run logs exactly these
STEP_NAMES = ("d_loss", "g_loss", "d_real", "d_fake", "d_real_out", "d_fake_out", "g_grad_norm", "d_grad_norm",
              "images_per_s", "epoch", "d_gap", "step")
PENALTY_NAMES = ("d_penalty",)  # a loss with a penalty on D's input gradient (R1, WGAN-GP)
CLASS_NAMES = ("d_class", "g_class")  # a loss with an auxiliary classifier (ACGAN)


def step_names(penalty: bool, classes: bool) -> tuple[str, ...]:
    """The step metrics of a run whose loss has a penalty / a class loss."""
    return (*STEP_NAMES, *(PENALTY_NAMES if penalty else ()), *(CLASS_NAMES if classes else ()))


def lower_is_better(metric: str) -> bool | None:
    """True/False for metrics with a better side (``eval/`` or ``eval_g*/`` prefix optional), None otherwise."""
    name = metric.removeprefix(PREFIX)
    for prefix in OTHER_G_PREFIXES:
        name = name.removeprefix(prefix)
    return True if name in LOWER_IS_BETTER else False if name in HIGHER_IS_BETTER else None


def objective_problem(objective: str, evaluating: bool, steps: tuple[str, ...]) -> str | None:
    """Why ``objective`` cannot be a final metric of a run, known before it trains (None: it may be).

    ``steps``: the run's step metrics (``step_names``). A sweep's every trial would otherwise train to its
    end and fail there. Which evaluation metrics a run logs depends on its data: the end of the run checks
    that; every other name is checked here.
    """
    prefix = next((p for p in (PREFIX, *OTHER_G_PREFIXES) if objective.startswith(p)), None)
    if prefix is None:
        if objective in steps:
            return None
        if objective in EVAL_NAMES:
            return f"an evaluation metric; did you mean objective={PREFIX}{objective}?"
        close = difflib.get_close_matches(objective, steps, n=1)
        guess = f"did you mean objective={close[0]}? " if close else ""
        return f"not a metric this run logs ({guess}its step metrics: {', '.join(steps)}; evaluation: {PREFIX}...)"
    if not evaluating:
        return "an evaluation metric, and evaluation is off (eval.every=0)"
    name = objective.removeprefix(prefix)
    name = name.removesuffix("_best_step") if name.endswith("_best_step") else name.removesuffix("_best")
    if name not in EVAL_NAMES:
        return f"no evaluation logs {name} (known: {', '.join(sorted(EVAL_NAMES))})"
    return None
