"""ECharts options for campaign results, in the user's language.

Built here and fetched by the page as JSON (the console's Content-Security-Policy allows no inline script):
a campaign's conversion rate by arm beside the uplift's 95% interval, and the channels' conversion rates.
Input is the JSON form of ``CampaignMeasure`` / ``ChannelMeasure`` (``as_dict()``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omnicrm.campaigns.uplift import NEGATIVE, NO_EFFECT, NOT_ENOUGH, POSITIVE

__all__ = ["VERDICTS", "channels_option", "rate", "results_option", "verdict_key"]

VERDICTS = {NOT_ENOUGH: "not_enough", NO_EFFECT: "no_effect", POSITIVE: "positive", NEGATIVE: "negative"}
Translate = Callable[..., str]


def verdict_key(verdict: str) -> str:
    """The message key of a verdict of ``omnicrm.campaigns.measure``."""
    return f"campaigns.verdict.{VERDICTS.get(verdict, 'not_enough')}"


def rate(arm: dict[str, Any]) -> float | None:
    """Conversion rate of an arm's figures (converted / reached); None for an empty arm."""
    return arm["converted"] / arm["reached"] if arm["reached"] else None


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 3)


def _points(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.2f}"


def results_option(t: Translate, results: dict[str, Any]) -> dict[str, Any]:
    """Bars of conversion rate (%) by arm on the left; the uplift (percentage points) with its interval on the
    right, a dashed line at 0, so "covers 0" reads at a glance; the verdict in the subtitle."""
    arms = ("treatment", "holdout")
    uplift = results["uplift"]["conversion"]
    estimate, low, high = uplift["estimate"], uplift["low"], uplift["high"]
    subtitle = t("campaigns.chart.uplift", estimate=_points(estimate), low=_points(low), high=_points(high),
                 verdict=t(verdict_key(results["uplift"]["verdict"])))  # fmt: skip
    interval = [] if low is None or high is None else [[_percent(low), 0], [_percent(high), 0]]
    point = [] if estimate is None else [[_percent(estimate), 0]]
    return {
        "title": {"text": t("campaigns.chart.title"), "subtext": subtitle, "left": "center",
                  "textStyle": {"fontSize": 14}},
        "tooltip": {"trigger": "item"},
        "grid": [
            {"left": 50, "right": "48%", "top": 95, "bottom": 40},
            {"left": "60%", "right": 30, "top": 95, "bottom": 40},
        ],
        "xAxis": [
            {"type": "category", "gridIndex": 0, "data": [t(f"campaigns.arm.{a}") for a in arms]},
            {"type": "value", "gridIndex": 1, "name": t("campaigns.pp"), "nameLocation": "middle", "nameGap": 25},
        ],
        "yAxis": [
            {"type": "value", "gridIndex": 0, "name": "%", "min": 0},
            {"type": "category", "gridIndex": 1, "data": [t("campaigns.uplift")]},
        ],
        "series": [
            {"type": "bar", "name": t("campaigns.rate"), "xAxisIndex": 0, "yAxisIndex": 0, "barMaxWidth": 80,
             "data": [_percent(rate(results[a])) for a in arms],
             "label": {"show": True, "position": "top", "formatter": "{c}%"}},
            {"type": "line", "name": t("campaigns.interval"), "xAxisIndex": 1, "yAxisIndex": 1, "data": interval,
             "symbol": "rect", "symbolSize": [3, 16], "lineStyle": {"width": 4},
             "markLine": {"symbol": "none", "silent": True, "lineStyle": {"type": "dashed", "color": "#6b7785"},
                          "data": [{"xAxis": 0}]}},
            {"type": "scatter", "name": t("campaigns.uplift"), "xAxisIndex": 1, "yAxisIndex": 1, "data": point,
             "symbolSize": 14},
        ],
    }  # fmt: skip


def channels_option(t: Translate, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Conversion rate (%) of the treatment and holdout arms per channel, summed over its campaigns."""
    names = [r["channel"] for r in rows]
    return {
        "title": {"text": t("campaigns.chart.channels"), "left": "center", "textStyle": {"fontSize": 14}},
        "tooltip": {"trigger": "axis"},
        "legend": {"bottom": 0},
        "grid": {"left": 50, "right": 30, "top": 50, "bottom": 60},
        "xAxis": {"type": "category", "data": names},
        "yAxis": {"type": "value", "name": "%", "min": 0},
        "series": [
            {"type": "bar", "name": t(f"campaigns.arm.{arm}"), "data": [_percent(rate(r[arm])) for r in rows]}
            for arm in ("treatment", "holdout")
        ],
    }
