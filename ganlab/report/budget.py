"""The study figures' numbers (Lucic et al. 2018): the best metric reached within a budget of k trials.

With n trials of a random search, running them in a random order and stopping after k of them
reaches ``min`` of a uniformly random k-subset. Its distribution is exact, no resampling needed:
with the values sorted ascending, v(1) <= ... <= v(n), P(min > v(i)) = C(n - i, k) / C(n, k), the
chance that all k trials come from the n - i worse ones. A failed trial (NaN, a crash) spends
budget and reaches nothing: it counts as +inf. Bootstrapping orderings converges to these numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class BudgetPoint:
    """The distribution of the best value within a budget of ``k`` trials."""

    k: int
    mean: float  # inf while k trials may all have failed
    median: float
    low: float  # the ``band`` quantiles (5% and 95% by default)
    high: float


def min_distribution(values: list[float], k: int) -> list[tuple[float, float]]:
    """(value, probability that the best of k random trials is it), for the sorted distinct values."""
    ordered = sorted(v if v is not None and not math.isnan(v) else math.inf for v in values)
    n = len(ordered)
    if not 1 <= k <= n:
        raise ValueError(f"budget k={k} outside 1..{n}")
    total = math.comb(n, k)
    out: list[tuple[float, float]] = []
    for i, value in enumerate(ordered, start=1):  # P(min = v(i)) for this position in the order
        p = (math.comb(n - i + 1, k) - math.comb(n - i, k)) / total
        if out and out[-1][0] == value:
            out[-1] = (value, out[-1][1] + p)
        elif p > 0:
            out.append((value, p))
    return out


def quantile(distribution: list[tuple[float, float]], q: float) -> float:
    """The smallest value whose cumulative probability reaches ``q``."""
    cumulative = 0.0
    for value, p in distribution:
        cumulative += p
        if cumulative >= q - 1e-12:
            return value
    return distribution[-1][0]


def budget_curve(values: list[float], band: tuple[float, float] = (0.05, 0.95)) -> list[BudgetPoint]:
    """The best value within k trials, k = 1..n: mean, median and ``band`` quantiles over random orderings."""
    points = []
    for k in range(1, len(values) + 1):
        dist = min_distribution(values, k)
        mean = sum(v * p for v, p in dist) if all(math.isfinite(v) or p == 0 for v, p in dist) else math.inf
        points.append(BudgetPoint(k, mean, quantile(dist, 0.5), quantile(dist, band[0]), quantile(dist, band[1])))
    return points
