"""How a run's settings are written for people: numbers and overrides in W&B run names, job directory
names and compare's tables (one function each, so the three never disagree).

``optimizer.lr=0.0007750644796341915`` (an Optuna sample) reads ``optimizer.lr=7.75e-04``; values a
person typed (``2e-4``, ``0.999``, ``32``) stay exact.
"""

from __future__ import annotations

import re

_SAFE = re.compile(r"[^A-Za-z0-9._+=-]")  # what a job directory's name may hold besides the commas


def short_number(value: float) -> str:
    """A number as a person reads it: exact when 4 significant digits hold it, else 3 (``7.75e-04``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int) or value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if float(f"{value:.4g}") == value:  # typed by a person: 2e-4, 0.999, 1e-05, 10.0
        return f"{value:g}"
    if 1e-3 <= abs(value) < 1e3:
        return f"{value:.3g}"
    mantissa, exponent = f"{value:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"


def short_value(text: str) -> str:
    """An override's value as typed (``0.000775...``, ``[0.0,0.9]``, ``bce``) with its numbers shortened."""
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        return "[" + ",".join(short_value(v) for v in split_items(stripped[1:-1])) + "]"
    if re.fullmatch(r"[+-]?\d+", stripped):
        return stripped
    try:
        number = float(stripped)
    except ValueError:
        return text
    return short_number(number)


def split_items(text: str) -> list[str]:
    """Split at the commas that are not inside brackets or quotes: ``a=1,b=[2,3]`` -> ``a=1``, ``b=[2,3]``."""
    items, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [item for item in items if item]


def short_override(override: str) -> str:
    """``key=value`` with the value's numbers shortened (``optimizer.lr=7.75e-04``)."""
    key, sep, value = override.partition("=")
    return f"{key}={short_value(value)}" if sep else override


def short_overrides(text: str) -> str:
    """A comma-joined list of overrides (Hydra's ``override_dirname``) with every value shortened."""
    return ",".join(short_override(o) for o in split_items(text))


def dir_label(overrides: list[str], max_len: int = 48) -> str:
    """The overrides as a short, filesystem-safe part of a directory name: ``loss=bce,lr=7.75e-04``.

    Keys are cut to their last part (``optimizer.lr`` -> ``lr``; ``optimizer.betas.0`` -> ``betas.0``)
    unless two overrides would then share one; anything but letters, digits, ``._+=-`` becomes ``_``.
    Overrides that do not fit in ``max_len`` are left out (the directory's hash still tells jobs apart).
    """
    pairs = [o.lstrip("+~").partition("=")[::2] for o in overrides]

    def tail(key: str) -> str:
        parts = key.split(".")
        return ".".join(parts[-2:]) if len(parts) > 1 and parts[-1].isdigit() else parts[-1]

    tails = [tail(k) for k, _ in pairs]
    items = [f"{t if tails.count(t) == 1 else k}={short_value(v)}" for (k, v), t in zip(pairs, tails)]
    label = ""
    for item in (_SAFE.sub("_", item) for item in items):
        joined = f"{label},{item}" if label else item
        if len(joined) > max_len:
            return label or item[:max_len]
        label = joined
    return label
