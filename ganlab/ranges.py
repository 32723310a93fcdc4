"""The allowed range of every numeric key of the shipped configs, checked before a run builds anything.

One table, in config order, so ``optimizer.lr=-1`` is reported as ``optimizer.lr`` (the key the user
set) before the ``optimizer.generator.lr`` that interpolates it. ``tests/test_ranges.py`` checks that
every numeric key of every shipped option has a rule here, and feeds each rule a bad value through
the real entry point.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from typing import Any, Callable

from ganlab.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """``pattern`` (a dotted key, ``*`` matches one level) must satisfy ``check``, described by ``needs``."""

    pattern: str
    needs: str
    check: Callable[[Any], bool]
    nullable: bool = False
    bad: Any = None  # a value the rule rejects (tests feed it through the entry point)


def _num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def at_least(low: int, pattern: str, nullable: bool = False) -> Rule:
    """An integer >= ``low``."""
    return Rule(pattern, f"an integer >= {low}", lambda v: _int(v) and v >= low, nullable, low - 1)


SEED_LIMIT = 2**32  # numpy's and most tools' seed range; ganlab derives streams as seed * 1_000_003 + n (int64)


def seed(pattern: str) -> Rule:
    """A seed: an integer in [0, 2**32)."""
    return Rule(pattern, "an integer in [0, 2**32)", lambda v: _int(v) and 0 <= v < SEED_LIMIT, bad=SEED_LIMIT)


def positive(pattern: str) -> Rule:
    """A finite number > 0."""
    return Rule(pattern, "a number > 0", lambda v: _num(v) and v > 0, bad=0)


def non_negative(pattern: str) -> Rule:
    """A finite number >= 0."""
    return Rule(pattern, "a number >= 0", lambda v: _num(v) and v >= 0, bad=-1)


def unit_interval(pattern: str) -> Rule:
    """A number in [0, 1)."""
    return Rule(pattern, "a number in [0, 1)", lambda v: _num(v) and 0 <= v < 1, bad=1)


def open_unit_interval(pattern: str) -> Rule:
    """A number in (0, 1) (a share of an image's side)."""
    return Rule(pattern, "a number in (0, 1)", lambda v: _num(v) and 0 < v < 1, bad=1)


def finite(pattern: str) -> Rule:
    """Any finite number."""
    return Rule(pattern, "a finite number", _num, bad="nan")


def pair_in_unit_interval(pattern: str) -> Rule:
    """Two numbers in [0, 1) (Adam's betas)."""
    return Rule(pattern, "two numbers in [0, 1)",
                lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_num(b) and 0 <= b < 1 for b in v),
                bad=[0.5, 1.0])


def increasing_pair(pattern: str) -> Rule:
    """Two finite numbers lo < hi (a pixel range)."""
    return Rule(pattern, "two numbers lo < hi",
                lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(map(_num, v)) and v[0] < v[1],
                bad=[1.0, -1.0])


RULES: tuple[Rule, ...] = (
    seed("seed"),
    # trainer
    at_least(1, "trainer.epochs"),
    at_least(1, "trainer.max_steps", nullable=True),
    at_least(1, "trainer.n_critic"),
    at_least(1, "trainer.log_every"),
    at_least(1, "trainer.sample_every"),
    at_least(1, "trainer.ckpt_every"),
    at_least(1, "trainer.ckpt_keep", nullable=True),
    at_least(1, "trainer.n_grid"),
    Rule("trainer.g_ema", "a decay in [0, 1)", lambda v: _num(v) and 0 <= v < 1, nullable=True, bad=1),
    at_least(0, "trainer.g_ema_start"),
    # eval
    at_least(0, "eval.every"),
    at_least(2, "eval.n_samples"),
    at_least(1, "eval.batch_size"),
    at_least(1, "eval.kid_subsets"),
    seed("eval.seed"),
    at_least(1, "eval.prdc_k"),
    at_least(1, "eval.classifier.steps"),
    at_least(1, "eval.classifier.batch_size"),
    positive("eval.classifier.lr"),
    at_least(1, "eval.classifier.max_train", nullable=True),
    seed("eval.classifier.seed"),
    # model
    at_least(1, "model.z_size"),
    at_least(1, "model.middle_size"),
    at_least(1, "model.hidden_layers"),
    at_least(1, "model.width"),
    at_least(1, "model.*.z_size"),
    at_least(1, "model.*.middle_size"),
    at_least(1, "model.*.hidden_layers"),
    at_least(1, "model.*.width"),
    at_least(1, "model.pack"),
    at_least(1, "model.*.pack"),
    # loss
    non_negative("loss.r1_gamma"),
    finite("loss.real_target"),
    finite("loss.fake_target"),
    positive("loss.clip"),
    non_negative("loss.gp_weight"),
    non_negative("loss.drift"),
    non_negative("loss.aux_weight"),
    # optimizer: the shared keys first, then the per-network ones they interpolate into
    positive("optimizer.lr"),
    pair_in_unit_interval("optimizer.betas"),
    unit_interval("optimizer.alpha"),
    unit_interval("optimizer.momentum"),
    positive("optimizer.*.lr"),
    pair_in_unit_interval("optimizer.*.betas"),
    unit_interval("optimizer.*.alpha"),
    unit_interval("optimizer.*.momentum"),
    # data
    at_least(1, "data.epochs"),
    at_least(2, "data.batch_size"),  # BatchNorm in training needs two samples
    increasing_pair("data.pixel_range"),
    positive("data.latent_std"),
    at_least(2, "data.samples_per_epoch"),
    positive("data.radius"),
    positive("data.std"),
    at_least(1, "data.n_modes"),
    positive("data.spacing"),
    at_least(1, "data.side"),
    at_least(1, "data.mlp.hidden_layers"),
    increasing_pair("data.dataset.pixel_range"),
    positive("data.dataset.radius"),
    positive("data.dataset.std"),
    at_least(1, "data.dataset.n_modes"),
    positive("data.dataset.spacing"),
    at_least(1, "data.dataset.side"),
    at_least(2, "data.dataset.samples_per_epoch"),
    at_least(2, "data.max_train", nullable=True),  # a GAN batch needs two images
    at_least(2, "data.dataset.max_train", nullable=True),
    # augment
    open_unit_interval("augment.translation_ratio"),
    open_unit_interval("augment.cutout_ratio"),
    # debug=profile
    at_least(1, "profile.row_limit"),
    # logger
    positive("logger.wandb.init_timeout"),
    positive("logger.tensorboard.flush_secs"),
)


def rule_for(key: str) -> Rule | None:
    """The first rule whose pattern matches the dotted ``key`` (``*`` stands for one level)."""
    for rule in RULES:
        if key.count(".") == rule.pattern.count(".") and fnmatch.fnmatchcase(key, rule.pattern):
            return rule
    return None


def leaves(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every leaf under a plain (resolved) config; lists count as one leaf."""
    if isinstance(node, dict):
        return [leaf for k, v in node.items() for leaf in leaves(v, f"{prefix}{k}.")]
    return [(prefix[:-1], node)]


def is_numeric(value: Any) -> bool:
    """A number (bools are not), or a non-empty list of numbers."""
    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    return number(value) or (isinstance(value, (list, tuple)) and bool(value) and all(map(number, value)))


def check_ranges(plain: dict[str, Any], derived: frozenset[str] = frozenset()) -> None:
    """Raise a one-line ConfigError for the first key whose value is out of its range.

    ``plain`` is the resolved config as plain containers (``hydra`` and ``run`` left out). Keys are
    checked in config order, the ``derived`` ones (interpolations of other keys) last, so a bad value
    is reported under the key that was set (``optimizer.lr``), not one that copies it
    (``optimizer.generator.lr``). Keys without a rule (strings, booleans) are not checked here.
    """
    ordered = leaves(plain)
    for key, value in [kv for kv in ordered if kv[0] not in derived] + [kv for kv in ordered if kv[0] in derived]:
        rule = rule_for(key)
        if rule is None or (value is None and rule.nullable):
            continue
        if not rule.check(value):
            raise ConfigError(f"{key}={value!r}: must be {rule.needs}" + (" or null" if rule.nullable else ""))
