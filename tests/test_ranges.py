"""Every numeric key of every shipped config has a checked range (ganlab/ranges.py), and each range is
enforced through the real entry point: a one-line `ganlab: error:` naming the key, exit 2, and nothing
in the run directory beyond Hydra's own."""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ganlab.config import config_groups, plain_config
from ganlab.ranges import RULES, check_ranges, is_numeric, leaves, rule_for

from conftest import FAST, compose_cfg

HYDRA_OWN = {".hydra", "ganlab.log"}  # what Hydra itself writes into a run directory


def shipped_configs() -> list[list[str]]:
    """One override list per shipped option (and the defaults): every numeric key appears in one of them."""
    return [[]] + [[f"{g}={o}"] for g, names in config_groups().items() for o in names]


@cache
def shipped_plain_configs() -> tuple[tuple[list[str], dict], ...]:
    """(overrides, the composed plain config) per shipped option: ~0.25 s of Hydra each, so composed once
    per process (collection and three tests use them)."""
    return tuple((overrides, plain_config(compose_cfg(overrides))) for overrides in shipped_configs())


def shipped_keys() -> dict[str, tuple[list[str], object]]:
    """Every key of every shipped option -> (overrides that have it, its shipped value)."""
    found: dict[str, tuple[list[str], object]] = {}
    for overrides, cfg in shipped_plain_configs():
        for key, value in leaves(cfg):
            found.setdefault(key, (overrides, value))
    return found


def test_every_numeric_key_of_every_shipped_option_has_a_range():
    keys = {k: v for k, v in shipped_keys().items() if is_numeric(v[1])}
    assert len(keys) > 50  # the walk really saw the configs
    missing = sorted(k for k in keys if rule_for(k) is None)
    assert not missing, f"numeric keys without a rule in ganlab/ranges.py: {missing}"
    for _, cfg in shipped_plain_configs():  # and every shipped value is inside its own range
        check_ranges(cfg)


def test_every_rule_matches_a_shipped_key():
    keys = shipped_keys()
    unused = [r.pattern for r in RULES if not any(rule_for(k) is r for k in keys)]
    assert not unused, f"rules that no shipped key uses (stale?): {unused}"


def bad_cases() -> list[tuple[str, list[str], str, object]]:
    """(rule, overrides that have the key, the key, a value the rule rejects), one per rule."""
    keys = shipped_keys()
    cases = []
    for rule in RULES:
        key = next(k for k in keys if rule_for(k) is rule)
        cases.append((rule.pattern, keys[key][0], key, rule.bad))
    return cases


def cli_value(value: object) -> str:
    return "[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else str(value)


@pytest.mark.parametrize("pattern,overrides,key,bad", bad_cases(), ids=[c[0] for c in bad_cases()])
def test_a_bad_value_is_one_line_naming_the_key_and_writes_nothing(pattern, overrides, key, bad, tmp_path,
                                                                   monkeypatch, capsys):
    from ganlab.__main__ import main

    run_dir = tmp_path / "run"
    # FAST's choices, except where they would swap away the group that holds the key (logger=none has no timeout)
    fast = [f for f in FAST if not (any(o.split("=")[0] == f.split("=")[0] for o in overrides)
                                    or key.startswith(f.split("=")[0] + "."))]
    argv = ["ganlab", *overrides, *fast, f"{key}={cli_value(bad)}", f"hydra.run.dir={run_dir}"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()  # the real entry point, in this process (Hydra and all; a subprocess per key would take minutes)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ganlab: error: {key}="), err
    assert {p.name for p in Path(run_dir).iterdir()} <= HYDRA_OWN


def test_interpolated_keys_are_reported_as_the_key_the_user_set():
    cfg = compose_cfg(["optimizer.lr=-1"])
    with pytest.raises(Exception, match=r"^optimizer\.lr=-1: must be a number > 0$"):
        check_ranges(plain_config(cfg))
    cfg = compose_cfg(["optimizer.discriminator.lr=0"])
    with pytest.raises(Exception, match=r"^optimizer\.discriminator\.lr=0: must be a number > 0$"):
        check_ranges(plain_config(cfg))


def test_null_is_allowed_only_where_the_rule_says_so():
    check_ranges(plain_config(compose_cfg(["trainer.max_steps=null", "trainer.ckpt_keep=null"])))
    with pytest.raises(Exception, match=r"trainer\.epochs=None: must be an integer >= 1$"):
        check_ranges(OmegaConf.to_container(OmegaConf.merge(plain_config(compose_cfg([])),
                                                            {"trainer": {"epochs": None}})))
