"""The inbox's SLA report page: first response and resolution (p50 / p90) and breaches by agent, channel or day.

Dates are the merchant's (``settings.timezone``): the report counts conversations whose first customer message fell
on ``start`` to ``end`` inclusive (omnicrm.inbox.reports). The chart's ECharts option is built here and fetched as
JSON by the page (the console's Content-Security-Policy allows no inline script).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from omnicrm.console.web import PREFIX, Page, need, render
from omnicrm.errors import InputError, Problem
from omnicrm.inbox.reports import GROUPS, ReportRow, sla_report

__all__ = ["chart_option", "router"]

router = APIRouter(prefix=f"{PREFIX}/inbox/reports")
Manage = Annotated[Page, Depends(need("inbox.manage"))]
Day = Annotated[str, Query(max_length=10)]
DEFAULT_DAYS = 7


def _period(page: Page, start: str, end: str) -> tuple[dt.date, dt.date, dt.datetime, dt.datetime]:
    """The dates asked for (default: the last seven days) and the UTC bounds of the report."""
    zone = ZoneInfo(page.request.app.state.settings.timezone)
    today = dt.datetime.now(zone).date()
    days: dict[str, dt.date] = {}
    for name, text, default in (("start", start, today - dt.timedelta(days=DEFAULT_DAYS - 1)), ("end", end, today)):
        try:
            days[name] = dt.date.fromisoformat(text) if text else default
        except ValueError:
            raise InputError(page.t("inbox.report.bad_date", value=text), [Problem("YYYY-MM-DD", name)]) from None
    if days["end"] < days["start"]:
        raise InputError(page.t("inbox.report.end_before"), [Problem(page.t("inbox.report.end_before"), "end")])
    lo = dt.datetime.combine(days["start"], dt.time(), zone).astimezone(dt.UTC)
    hi = dt.datetime.combine(days["end"] + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
    return days["start"], days["end"], lo, hi


def _rows(page: Page, by: str, start: str, end: str) -> tuple[dt.date, dt.date, list[ReportRow]]:
    if by not in GROUPS:
        raise InputError(page.t("inbox.report.bad_by", value=by), [Problem(", ".join(GROUPS), "by")])
    first, last, lo, hi = _period(page, start, end)
    settings = page.request.app.state.settings
    rows = sla_report(page.request.app.state.state_store, start=lo, end=hi, by=by, timezone=settings.timezone)
    return first, last, rows


def _label(page: Page, row: ReportRow, by: str) -> str:
    if row.group == "all":
        return page.t("inbox.report.all")
    if by == "agent" and row.group is None:
        return page.t("inbox.unassigned")
    return page.t(f"inbox.channel.{row.label}") if by == "channel" else row.label


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def chart_option(page: Page, rows: list[ReportRow], by: str) -> dict[str, Any]:
    """Bars of first response p50 and p90 (business minutes) per group, and the breaches as a line."""
    t = page.t
    groups = [r for r in rows if r.group != "all"]
    return {
        "title": {"text": t("inbox.report.chart"), "left": "center", "textStyle": {"fontSize": 14}},
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 28},
        "grid": {"left": 50, "right": 50, "top": 70, "bottom": 40},
        "xAxis": {"type": "category", "data": [_label(page, r, by) for r in groups]},
        "yAxis": [
            {"type": "value", "name": t("inbox.report.minutes")},
            {"type": "value", "name": t("inbox.report.breaches"), "minInterval": 1},
        ],
        "series": [
            {
                "type": "bar",
                "name": t("inbox.report.first_p50"),
                "data": [_minutes(r.first_response_p50_s) for r in groups],
            },
            {
                "type": "bar",
                "name": t("inbox.report.first_p90"),
                "data": [_minutes(r.first_response_p90_s) for r in groups],
            },
            {
                "type": "line",
                "yAxisIndex": 1,
                "name": t("inbox.report.breaches"),
                "data": [r.response_breaches + r.resolution_breaches for r in groups],
            },
        ],
    }


@router.get("", response_class=HTMLResponse, include_in_schema=False)
async def report(
    page: Manage, by: Annotated[str, Query(max_length=10)] = "agent", start: Day = "", end: Day = ""
) -> Response:
    """The report's table and chart; a bad date or grouping is shown on the page (400)."""
    try:
        first, last, rows = await run_in_threadpool(_rows, page, by, start, end)
    except InputError as exc:
        return render(page, "inbox/reports.html", status_code=400, error=exc.message, rows=[], by=by, groups=GROUPS,
                      start=start, end=end, label=lambda r: "", minutes=_minutes)  # fmt: skip
    return render(page, "inbox/reports.html", error=None, rows=rows, by=by, groups=GROUPS, start=first.isoformat(),
                  end=last.isoformat(), label=lambda r: _label(page, r, by), minutes=_minutes)  # fmt: skip


@router.get("/chart", include_in_schema=False)
async def chart(page: Manage, by: Annotated[str, Query(max_length=10)] = "agent", start: Day = "",
                end: Day = "") -> Response:  # fmt: skip
    try:
        _, _, rows = await run_in_threadpool(_rows, page, by, start, end)
    except InputError as exc:
        return JSONResponse(exc.as_dict(), status_code=400)
    return JSONResponse(chart_option(page, rows, by))
