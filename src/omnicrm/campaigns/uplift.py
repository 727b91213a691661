"""Uplift statistics: differences of proportions and of means between a treatment and a control arm, with
confidence intervals and a plain verdict; pure numpy/scipy, broadcasting over arrays so many campaigns go at once.

Conversion uplift is a difference of proportions with Newcombe's hybrid score interval (method 10 of Newcombe
1998: Wilson intervals of each arm combined; good coverage near 0% conversion and for small holdouts, where Wald's
is too narrow); revenue per person a difference of means with Welch's interval (unequal variances, as a campaign
changes the spread of revenue too). Pooling over campaigns is a weighted average with a normal interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from omnicrm.errors import InputError, Problem

__all__ = [
    "NEGATIVE", "NOT_ENOUGH", "NO_EFFECT", "POSITIVE", "ArmStats", "Interval", "Uplift", "newcombe_difference",
    "pooled_difference", "uplift", "verdicts", "welch_difference", "wilson_interval",
]  # fmt: skip

NOT_ENOUGH, NO_EFFECT = "not enough data", "no measurable effect"
POSITIVE, NEGATIVE = "positive effect", "negative effect"
Floats = NDArray[np.float64]


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        problem = Problem("not between 0 and 1", field="confidence")
        raise InputError(f"confidence must be between 0 and 1, not {confidence}", [problem])
    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson_interval(x: ArrayLike, n: ArrayLike, confidence: float = 0.95) -> tuple[Floats, Floats]:
    """Wilson score interval of a proportion x/n, element-wise; NaN where n is 0."""
    x, n, z = np.asarray(x, np.float64), np.asarray(n, np.float64), _z(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        denominator = 1 + z * z / n
        centre = (p + z * z / (2 * n)) / denominator
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    ok = n > 0
    return np.where(ok, np.clip(centre - half, 0, 1), np.nan), np.where(ok, np.clip(centre + half, 0, 1), np.nan)


def newcombe_difference(
    x1: ArrayLike, n1: ArrayLike, x2: ArrayLike, n2: ArrayLike, confidence: float = 0.95
) -> tuple[Floats, Floats, Floats]:
    """(p1 − p2, low, high) with Newcombe's hybrid score interval, element-wise; NaN where an arm is empty."""
    x1, n1, x2, n2 = (np.asarray(a, np.float64) for a in (x1, n1, x2, n2))
    (l1, u1), (l2, u2) = wilson_interval(x1, n1, confidence), wilson_interval(x2, n2, confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1, p2 = x1 / n1, x2 / n2
    d = np.where((n1 > 0) & (n2 > 0), p1 - p2, np.nan)
    return d, d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def welch_difference(
    mean1: ArrayLike, var1: ArrayLike, n1: ArrayLike, mean2: ArrayLike, var2: ArrayLike, n2: ArrayLike,
    confidence: float = 0.95,
) -> tuple[Floats, Floats, Floats]:  # fmt: skip
    """(mean1 − mean2, low, high) with Welch's t interval (sample variances), element-wise; NaN where an arm has
    fewer than two people. Both variances 0 (say nobody bought in either arm) gives the point itself."""
    m1, v1, n1, m2, v2, n2 = (np.asarray(a, np.float64) for a in (mean1, var1, n1, mean2, var2, n2))
    _z(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b = v1 / n1, v2 / n2
        se2 = a + b
        df = se2**2 / (a**2 / (n1 - 1) + b**2 / (n2 - 1))
        half = np.where(se2 > 0, stats.t.ppf(0.5 + confidence / 2, np.where(se2 > 0, df, 1.0)) * np.sqrt(se2), 0.0)
    d = np.where((n1 >= 2) & (n2 >= 2), m1 - m2, np.nan)
    return d, d - half, d + half


def verdicts(low: ArrayLike, high: ArrayLike) -> NDArray[np.str_]:
    """The plain reading of intervals: positive / negative effect, no measurable effect (it covers 0), or not
    enough data (no interval)."""
    lo, hi = np.asarray(low, np.float64), np.asarray(high, np.float64)
    missing = np.isnan(lo) | np.isnan(hi)
    return np.select([missing, lo > 0, hi < 0], [NOT_ENOUGH, POSITIVE, NEGATIVE], NO_EFFECT)


def _num(value: Any, scale: float = 1.0) -> float | None:
    return None if value is None or np.isnan(v := float(value)) else v * scale


@dataclass(frozen=True)
class Interval:
    """An estimate with its confidence interval (all None when there is not enough data)."""

    estimate: float | None
    low: float | None
    high: float | None

    @classmethod
    def of(cls, estimate: Any, low: Any, high: Any, scale: float = 1.0) -> Interval:
        return cls(_num(estimate, scale), _num(low, scale), _num(high, scale))

    def covers(self, value: float) -> bool:
        return self.low is not None and self.high is not None and self.low <= value <= self.high


@dataclass(frozen=True)
class ArmStats:
    """What the uplift needs of one arm: people, converters, total revenue, sample variance of revenue per person."""

    n: int
    conversions: int
    revenue: float
    revenue_var: float

    @classmethod
    def of(cls, converted: ArrayLike, revenue: ArrayLike) -> ArmStats:
        """From per-person outcomes of the arm (converted or not, revenue)."""
        c, r = np.asarray(converted, bool), np.asarray(revenue, np.float64)
        return cls(int(c.size), int(c.sum()), float(r.sum()), float(r.var(ddof=1)) if r.size > 1 else 0.0)


@dataclass(frozen=True)
class Uplift:
    """Treatment minus holdout: conversion rate (Newcombe) and revenue per person (Welch), each with a verdict."""

    conversion: Interval
    revenue_per_person: Interval
    verdict: str
    revenue_verdict: str

    @classmethod
    def of(cls, conversion: tuple[Any, Any, Any], revenue: tuple[Any, Any, Any]) -> Uplift:
        """From (estimate, low, high) of each, the verdicts read off the intervals."""
        say = [str(verdicts(low, high)) for _, low, high in (conversion, revenue)]
        return cls(Interval.of(*conversion), Interval.of(*revenue), *say)


def uplift(treatment: ArmStats, holdout: ArmStats, confidence: float = 0.95) -> Uplift:
    """The uplift of ``treatment`` over ``holdout``; an empty arm gives "not enough data", not an error."""
    conv = newcombe_difference(treatment.conversions, treatment.n, holdout.conversions, holdout.n, confidence)
    means = [(s.revenue / s.n if s.n else np.nan, s.revenue_var, s.n) for s in (treatment, holdout)]
    return Uplift.of(conv, welch_difference(*means[0], *means[1], confidence))


def pooled_difference(
    differences: ArrayLike, variances: ArrayLike, weights: ArrayLike, confidence: float = 0.95
) -> tuple[float, float, float]:
    """(Σ w·d / Σ w, low, high): a weighted average of independent differences with a normal interval from their
    variances (NaN ones left out). NaN throughout when nothing is left."""
    d, v, w = (np.asarray(a, np.float64) for a in (differences, variances, weights))
    ok = ~np.isnan(d) & ~np.isnan(v) & (w > 0)
    if not ok.any():
        return np.nan, np.nan, np.nan
    d, v, w = d[ok], v[ok], w[ok] / w[ok].sum()
    estimate, half = float(w @ d), _z(confidence) * float(np.sqrt((w * w) @ v))
    return estimate, estimate - half, estimate + half
