"""Predicted value for the portrait: BG/NBD (P(alive), expected purchases) and Gamma-Gamma (spend per purchase)
fitted on the merchant's own purchases, scored for every buyer.

The fit is the expensive part and changes slowly, so it follows the tags' refresh policy ("daily"): a refresh
within a day of the last fit scores with the stored parameters. Too little history (fewer repeat buyers than
``MIN_REPEAT_BUYERS``) leaves the value tags empty and says so in the refresh stats.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from omnicrm.portrait.clv import BetaGeoModel, GammaGammaModel
from omnicrm.portrait.clv.bgnbd import FitError
from omnicrm.portrait.clv.summary import rfm_summary
from omnicrm.portrait.inputs import PortraitInputs

__all__ = ["MIN_REPEAT_BUYERS", "ValueScores", "value_scores"]

MIN_REPEAT_BUYERS = 20
PENALIZER = 0.001
HORIZONS = (30, 90, 365)


@dataclass
class ValueScores:
    table: pa.Table
    info: dict[str, Any] = field(default_factory=dict)


def _models(params: dict[str, dict[str, float]]) -> tuple[BetaGeoModel, GammaGammaModel | None]:
    bg = BetaGeoModel(PENALIZER)
    bg.params_ = dict(params["bgnbd"])
    gg = None
    if params.get("gamma_gamma"):
        gg = GammaGammaModel(PENALIZER)
        gg.params_ = dict(params["gamma_gamma"])
    return bg, gg


def value_scores(inputs: PortraitInputs, previous: dict[str, Any] | None = None, *, refit: bool = True) -> ValueScores:
    """Per-buyer value columns; ``previous`` (an earlier ``info``) is reused unless ``refit`` or a day old."""
    o = inputs.orders()
    bought = o.filter(o.net > 0)
    tx = bought.select("customer_id", timestamp=bought.created_at, monetary=bought.net.cast("float64"))
    summary = inputs.engine.to_arrow(
        rfm_summary(tx, observation_end=inputs.as_of, unit="days", validate=False).order_by("customer_id")
    )
    x = summary["frequency"].to_numpy().astype(np.float64)
    t_x = summary["recency"].to_numpy().astype(np.float64)
    big_t = summary["T"].to_numpy().astype(np.float64)
    m = summary["monetary_value"].to_numpy().astype(np.float64)
    info: dict[str, Any] = {"buyers": len(x), "repeat_buyers": int((x > 0).sum())}
    fitted_at = _fitted_at(previous)
    reuse = (
        not refit
        and previous is not None
        and previous.get("params")
        and fitted_at is not None
        and inputs.as_of - fitted_at < dt.timedelta(days=1)
    )
    columns: dict[str, Any] = {
        "customer_id": summary["customer_id"],
        "frequency_days": pa.array(x),
        "recency_span_days": pa.array(t_x),
        "age_days": pa.array(big_t),
        "repeat_mean_value": pa.array(m),
    }
    if reuse:
        assert previous is not None
        info |= {"params": previous["params"], "fitted_at": previous["fitted_at"], "reused": True}
    elif info["repeat_buyers"] < MIN_REPEAT_BUYERS:
        info["skipped"] = f"only {info['repeat_buyers']} repeat buyers; the models need {MIN_REPEAT_BUYERS}"
    else:
        try:
            bg = BetaGeoModel(PENALIZER).fit(summary)
            params: dict[str, dict[str, float]] = {"bgnbd": bg.params_}
            try:
                params["gamma_gamma"] = GammaGammaModel(PENALIZER).fit(summary).params_
            except FitError as exc:
                info["gamma_gamma_skipped"] = str(exc)
            info |= {"params": params, "fitted_at": inputs.as_of.isoformat(), "reused": False}
        except FitError as exc:
            info["skipped"] = str(exc)
    if "params" in info:
        bg, gg = _models(info["params"])
        columns["p_alive"] = pa.array(bg.probability_alive(x, t_x, big_t))
        for h in HORIZONS:
            columns[f"expected_purchases_{h}d"] = pa.array(bg.expected_purchases(h, x, t_x, big_t))
        if gg is not None:
            spend = _expected_spend(gg, x, m, info)
            columns["expected_spend"] = pa.array(spend)
            columns["clv_365d"] = pa.array(spend * bg.expected_purchases(365, x, t_x, big_t))
    for name in ("p_alive", *(f"expected_purchases_{h}d" for h in HORIZONS), "expected_spend", "clv_365d"):
        columns.setdefault(name, pa.nulls(len(x), pa.float64()))
    return ValueScores(pa.table(columns), info)


def _expected_spend(gg: GammaGammaModel, x: np.ndarray, m: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """Gamma-Gamma's expected spend per purchase; where it is undefined, the mean repeat spend of repeat buyers.

    With q ≤ 1 the model's population mean does not exist (heavy-tailed spend), so customers without repeat
    purchases (x = 0) get no model value; they get the plain mean instead, and the stats say so.
    """
    spend = np.full(len(x), np.nan)
    with np.errstate(all="ignore"):
        defined = gg.params_["p"] * x + gg.params_["q"] - 1 > 0
        spend[defined] = gg.expected_average_value(x[defined], m[defined])
    fallback = float(m[x > 0].mean()) if (x > 0).any() else float("nan")
    missing = ~np.isfinite(spend) | (spend < 0)
    if missing.any():
        info["gamma_gamma_note"] = (
            f"{int(missing.sum()):,} customers without a model value (q = {gg.params_['q']:.3f}); "
            f"they get the mean repeat spend {fallback:.2f}"
        )
        spend[missing] = fallback
    return spend


def _fitted_at(previous: dict[str, Any] | None) -> dt.datetime | None:
    if not previous or not previous.get("fitted_at"):
        return None
    return dt.datetime.fromisoformat(previous["fitted_at"])
