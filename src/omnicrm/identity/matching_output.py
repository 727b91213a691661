"""What probabilistic matching hands back: scored pairs with an explanation, and the parameters.

A pair's ``explain`` names, for each comparison both records had data for, the level it reached
(``surname=exact; given_name=pinyin; birthday=typo; phone=last4``). ``held`` marks pairs that must
not merge automatically whatever their probability: the records contradict each other on who they
are (given name, gender, birthday) and no identifier agrees — typically two members of one
household, who share a surname, a phone and an address; or twins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from omnicrm.identity.matching_training import comparison_levels

__all__ = ["IDENTITY_CONFLICT", "PAIR_SCHEMA", "PARAMETER_SCHEMA", "pairs_table", "parameters_table"]

PAIR_SCHEMA = pa.schema(
    [
        ("record_id_l", pa.string()),
        ("record_id_r", pa.string()),
        ("match_probability", pa.float64()),
        ("match_weight", pa.float64()),
        ("explain", pa.string()),
        ("held", pa.bool_()),
    ]
)
PARAMETER_SCHEMA = pa.schema(
    [
        ("comparison", pa.string()),
        ("gamma", pa.int64()),
        ("label", pa.string()),
        ("m_probability", pa.float64()),
        ("u_probability", pa.float64()),
        ("match_weight", pa.float64()),
    ]
)
# Levels at which two records contradict each other on who they are: a different given name, gender,
# or two real dates of birth more than a year apart ("diff" there means a date that does not parse,
# a typo more likely than a contradiction). Such a pair is held from merging unless an identifier agrees.
IDENTITY_CONFLICT = frozenset(
    {
        "given_name=diff",
        "given_name=initials",
        "given_name=jw80",
        "gender=diff",
        "birthday=within_10y",
        "birthday=far",
    }
)


def _labels(model: Mapping[str, Any]) -> dict[str, dict[int, str]]:
    """``comparison=label`` per comparison and comparison vector value (null levels left out)."""
    return {
        name: {g: f"{name}={lv.get('label_for_charts') or g}" for g, lv in enumerate(levels)}
        for name, levels in comparison_levels(model).items()
    }


def pairs_table(
    scored: pd.DataFrame, model: Mapping[str, Any], conflict: frozenset[str], overrule: frozenset[str]
) -> pa.Table:
    """Splink's predictions as (record_id_l < record_id_r, probability, weight, explain, held), sorted.

    ``held``: a ``conflict`` part and no ``overrule`` part in the explanation.
    """
    if scored.empty:
        return PAIR_SCHEMA.empty_table()
    left = scored["record_id_l"].astype(str).to_numpy()
    right = scored["record_id_r"].astype(str).to_numpy()
    swap = left > right
    explain = pd.Series("", index=scored.index, dtype=object)
    clash = np.zeros(len(scored), dtype=bool)
    agree = np.zeros(len(scored), dtype=bool)
    for name, by_gamma in _labels(model).items():
        col = f"gamma_{name}"
        if col not in scored:
            continue
        part = scored[col].map(by_gamma).fillna("")
        clash |= part.isin(conflict).to_numpy()
        agree |= part.isin(overrule).to_numpy()
        explain = explain.where(part == "", explain.where(explain == "", explain + "; ") + part)
    frame = pd.DataFrame(
        {
            "record_id_l": np.where(swap, right, left),
            "record_id_r": np.where(swap, left, right),
            # rounded: the same input must give the same pairs, whatever the order of float sums
            "match_probability": scored["match_probability"].astype(float).round(12).to_numpy(),
            "match_weight": scored["match_weight"].astype(float).round(9).to_numpy(),
            "explain": explain.astype(str).to_numpy(),
            "held": clash & ~agree,
        }
    ).sort_values(["record_id_l", "record_id_r"], kind="stable")
    return pa.Table.from_pandas(frame, schema=PAIR_SCHEMA, preserve_index=False)


def parameters_table(model: Mapping[str, Any]) -> pa.Table:
    """m, u and match weight (log2 m/u) per comparison level, most similar level first."""
    rows: list[dict[str, Any]] = []
    for name, levels in comparison_levels(model).items():
        for g in range(len(levels) - 1, -1, -1):
            m, u = _num(levels[g].get("m_probability")), _num(levels[g].get("u_probability"))
            weight = math.log2(m / u) if m and u else None
            label = levels[g].get("label_for_charts") or str(g)
            rows.append({"comparison": name, "gamma": g, "label": label, "m_probability": m, "u_probability": u})
            rows[-1]["match_weight"] = weight
    return pa.Table.from_pylist(rows, schema=PARAMETER_SCHEMA)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and value > 0 else None
