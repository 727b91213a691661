"""Estimating the match model: λ, u and m.

- λ (the share of true matches among all pairs) from deterministic rules and their assumed recall
  (Splink), or a given prior;
- u (how often non-matches agree at each level) by Splink's random sampling with a seed;
- m (how often true matches agree at each level) by expectation maximisation on the agreement
  patterns of the pairs that a training blocking rule finds. Splink computes the patterns; the EM
  itself runs here on their counts (tiny), with add-one smoothing: a level that the true matches of
  a small sample never showed gets a small m instead of zero. (Splink 5's own EM stops with an error
  when an m underflows to zero, and an m of 1e-60 would veto every later match at that level, e.g.
  of a customer who moved to another city.)

The comparisons in a training rule's columns are not estimated from that rule (they agree by
construction); each comparison's m is the mean over the rules that could estimate it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from splink import Linker
from splink.internals.splink_dataframe import SplinkDataFrame

__all__ = [
    "comparison_levels",
    "estimate_m",
    "fill_parameters",
    "monotone_u",
    "pattern_counts",
    "sampled_u",
    "to_pandas",
]


def comparison_levels(model: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Non-null levels per comparison, index = Splink's comparison vector value (gamma)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for comp in model["comparisons"]:
        levels = [lv for lv in comp["comparison_levels"] if not lv.get("is_null_level")]
        out[comp["output_column_name"]] = levels[::-1]
    return out


def pattern_counts(frames: Sequence[SplinkDataFrame], model: Mapping[str, Any], rule: str) -> pd.DataFrame:
    """Count of pairs per agreement pattern (one gamma column per comparison) among ``rule``'s pairs."""
    settings = copy.deepcopy(dict(model))
    settings["blocking_rules_to_generate_predictions"] = [rule]
    settings["retain_matching_columns"] = True
    settings["retain_intermediate_calculation_columns"] = False
    settings.pop("linker_uid", None)
    linker = Linker(list(frames), settings, log_level=None)
    predictions = linker.inference.predict(warning_mode="never")
    gammas = ", ".join(f"gamma_{c['output_column_name']}" for c in settings["comparisons"])
    counts = predictions.query_sql(f"select {gammas}, count(*) as n from {{this}} group by {gammas}")
    try:
        return to_pandas(counts)
    finally:
        counts.drop_table_from_database_and_remove_from_cache()
        predictions.drop_table_from_database_and_remove_from_cache()


def to_pandas(frame: SplinkDataFrame) -> pd.DataFrame:
    """A Splink table as pandas, through Arrow (Spark's own pandas conversion warns under pandas 3)."""
    if hasattr(frame, "as_duckdbpyrelation"):
        return frame.as_duckdbpyrelation().df()
    if hasattr(frame, "as_spark_dataframe"):
        return frame.as_spark_dataframe().toArrow().to_pandas()
    return frame.as_pandas_dataframe()


def estimate_m(
    patterns: pd.DataFrame,
    u: Mapping[str, np.ndarray],
    trained: Sequence[str],
    *,
    iterations: int = 200,
    tolerance: float = 1e-7,
) -> dict[str, np.ndarray]:
    """m per level of each ``trained`` comparison, by EM over pattern counts (u held fixed)."""
    if patterns.empty or not trained:
        return {}
    n = patterns["n"].to_numpy(dtype=float)
    gamma = {c: patterns[f"gamma_{c}"].to_numpy(dtype=np.int64) for c in trained}
    known = {c: gamma[c] >= 0 for c in trained}
    log_u = {c: np.log(u[c]) for c in trained}
    # start: matches mostly agree exactly (m doubles with each level), half of the pairs match
    m = {c: np.exp2(np.arange(len(u[c]), dtype=float)) for c in trained}
    m = {c: v / v.sum() for c, v in m.items()}
    lam = 0.5
    for _ in range(iterations):
        logit = np.full(len(n), math.log(lam / (1 - lam)))
        for c in trained:
            g = np.where(known[c], gamma[c], 0)
            logit += np.where(known[c], np.log(m[c])[g] - log_u[c][g], 0.0)
        weight = n * expit(logit)
        lam = float(np.clip(weight.sum() / n.sum(), 1e-9, 1 - 1e-9))
        change = 0.0
        for c in trained:
            counts = np.bincount(gamma[c][known[c]], weights=weight[known[c]], minlength=len(u[c]))
            new = (counts + 1.0) / (counts.sum() + len(counts))
            change = max(change, float(np.abs(new - m[c]).max()))
            m[c] = new
        if change < tolerance:
            break
    return m


def fill_parameters(
    model: dict[str, Any], m: Mapping[str, np.ndarray], u: Mapping[str, np.ndarray], prior: float
) -> dict[str, Any]:
    """The model with every non-null level's m and u and λ set (a Splink settings dict)."""
    filled = copy.deepcopy(model)
    filled["probability_two_random_records_match"] = prior
    for name, levels in comparison_levels(filled).items():
        for g, level in enumerate(levels):
            level["m_probability"] = float(m[name][g]) if name in m else level.get("m_probability")
            level["u_probability"] = float(u[name][g])
    return filled


def monotone_u(m: Mapping[str, np.ndarray], u: Mapping[str, np.ndarray], floor: float) -> dict[str, np.ndarray]:
    """u raised where it was never observed, so that no level weighs more than the level above it.

    Levels go from most to least similar; a level that no sampled pair showed has only a guessed u
    (``floor``), and with it a weaker agreement could count as stronger evidence than a closer one.
    """
    out = {name: np.array(values, dtype=float) for name, values in u.items()}
    for name, mv in m.items():
        uv = out[name]
        cap = math.inf
        for g in range(len(uv) - 1, -1, -1):
            weight = math.log2(mv[g] / uv[g])
            if weight > cap and uv[g] <= floor:
                uv[g] = mv[g] / 2.0**cap
                weight = cap
            cap = weight
    return out


def sampled_u(model: Mapping[str, Any], floor: float) -> dict[str, np.ndarray]:
    """u per level from Splink's sampling; a level never seen among sampled pairs gets ``floor``."""
    out: dict[str, np.ndarray] = {}
    for name, levels in comparison_levels(model).items():
        values = [lv.get("u_probability") for lv in levels]
        out[name] = np.array([v if isinstance(v, int | float) and v > 0 else floor for v in values], dtype=float)
    return out
