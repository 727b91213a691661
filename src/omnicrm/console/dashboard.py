"""The dashboard: the analytics reports as ECharts charts, with their numbers.

Each chart's ECharts option is built here, in the user's language, and fetched by the page as JSON
(the page has no inline script: the Content-Security-Policy allows only our own files). Reports are
cached per derived snapshot, so the dashboard of a large merchant costs its queries once per refresh.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from omnicrm.analytics.reports import Analytics
from omnicrm.console.web import PREFIX, Page, need, render
from omnicrm.errors import NotFound
from omnicrm.store.engine import Engine

__all__ = ["CHARTS", "router"]

router = APIRouter(prefix=PREFIX)
_lock = threading.Lock()


def _report(page: Page, name: str, pick: Callable[[Analytics], Any]) -> Any:
    state = page.request.app.state
    derived = state.derived
    key = (name, str(derived.current("portrait")), str(derived.current("identity")))
    cache: dict[tuple[str, str, str], Any] = state.console_reports
    with _lock:
        if key in cache:
            return cache[key]
    value = pick(Analytics(Engine(state.facts), derived))
    with _lock:
        cache[key] = value
    return value


def _title(text: str) -> dict[str, Any]:
    return {"text": text, "left": "center", "textStyle": {"fontSize": 14}}


def _repeat(page: Page) -> dict[str, Any]:
    t = page.t
    data = _report(page, "repeat", lambda a: a.repeat_rate())
    rows = data["by_channel"]
    return {
        "title": _title(t("chart.repeat", rate=f"{data['rate']:.1%}")),
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "data": [t(f"channel.{r['channel']}") for r in rows]},
        "yAxis": {"type": "value", "max": 1, "axisLabel": {"formatter": "{value}"}},
        "series": [{"type": "bar", "name": t("chart.repeat_rate"), "data": [round(r["rate"], 4) for r in rows]}],
    }


def _cohorts(page: Page) -> dict[str, Any]:
    t = page.t
    rows = _report(page, "cohorts", lambda a: a.cohort_retention())
    horizons = sorted({int(k.split("_")[1][:-1]) for r in rows for k in r if k.startswith("retention_")})
    totals: dict[str, dict[str, float]] = {}
    for r in rows:
        acc = totals.setdefault(r["cohort"], {})
        for h in horizons:
            acc[f"e{h}"] = acc.get(f"e{h}", 0) + (r.get(f"eligible_{h}d") or 0)
            acc[f"r{h}"] = acc.get(f"r{h}", 0) + (r.get(f"returned_{h}d") or 0)
    series = [
        {
            "type": "line",
            "name": cohort,
            "data": [round(acc[f"r{h}"] / acc[f"e{h}"], 4) if acc[f"e{h}"] else None for h in horizons],
        }
        for cohort, acc in sorted(totals.items())
    ]
    return {
        "title": _title(t("chart.cohorts")),
        "tooltip": {"trigger": "axis"},
        "legend": {"bottom": 0, "type": "scroll"},
        "xAxis": {"type": "category", "data": [t("chart.days", n=h) for h in horizons]},
        "yAxis": {"type": "value"},
        "series": series,
    }


def _rfm(page: Page) -> dict[str, Any]:
    t = page.t
    grid = _report(page, "rfm", lambda a: a.rfm_grid())
    cells = [[int(c["f_score"]) - 1, int(c["r_score"]) - 1, int(c["customers"])] for c in grid]
    return {
        "title": _title(t("chart.rfm")),
        "tooltip": {"position": "top"},
        "xAxis": {"type": "category", "name": "F", "data": ["1", "2", "3", "4", "5"]},
        "yAxis": {"type": "category", "name": "R", "data": ["1", "2", "3", "4", "5"]},
        "visualMap": {
            "min": 0,
            "max": max((c[2] for c in cells), default=1),
            "calculable": True,
            "orient": "horizontal",
            "left": "center",
            "bottom": 0,
        },
        "grid": {"bottom": 80},
        "series": [{"type": "heatmap", "name": t("chart.customers"), "data": cells, "label": {"show": True}}],
    }


def _range(low: float, high: float | None) -> str:
    return f"{low:,.0f}–{high:,.0f}" if high is not None else f"≥ {low:,.0f}"


def _clv(page: Page) -> dict[str, Any]:
    t = page.t
    data = _report(page, "clv", lambda a: a.clv_distribution())
    bins = data.get("bins", [])
    return {
        "title": _title(t("chart.clv")),
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "data": [_range(b["from"], b["to"]) for b in bins]},
        "yAxis": {"type": "value", "name": t("chart.customers")},
        "series": [{"type": "bar", "name": t("chart.customers"), "data": [b["customers"] for b in bins]}],
    }


def _channels(page: Page) -> dict[str, Any]:
    t = page.t
    data = _report(page, "channels", lambda a: a.channel_mix())
    combos = data["combinations"]
    top, rest = combos[:7], combos[7:]
    pieces = [{"name": "+".join(t(f"channel.{c}") for c in r["channels"].split("+")), "value": r["customers"]}
              for r in top]  # fmt: skip
    if rest:
        pieces.append({"name": t("chart.other"), "value": sum(r["customers"] for r in rest)})
    return {
        "title": _title(t("chart.channels")),
        "tooltip": {"trigger": "item"},
        "series": [{"type": "pie", "radius": ["35%", "65%"], "data": pieces}],
    }


def _oneid(page: Page) -> dict[str, Any]:
    t = page.t
    data = _report(page, "oneid", lambda a: a.oneid())
    sizes = data.get("records_per_customer", [])[:15]
    return {
        "title": _title(t("chart.oneid", customers=f"{data['customers']:,}", records=f"{data['records']:,}")),
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "name": t("chart.records"), "data": [str(s["records"]) for s in sizes]},
        "yAxis": {"type": "value", "name": t("chart.customers")},
        "series": [{"type": "bar", "name": t("chart.customers"), "data": [s["customers"] for s in sizes]}],
    }


CHARTS: dict[str, Callable[[Page], dict[str, Any]]] = {
    "repeat": _repeat,
    "cohorts": _cohorts,
    "rfm": _rfm,
    "clv": _clv,
    "channels": _channels,
    "oneid": _oneid,
}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def dashboard(page: Annotated[Page, Depends(need())]) -> Response:
    """The console's front page: the dashboard, or customer search for roles that do not see analytics."""
    if not page.may("dashboard"):
        return RedirectResponse(f"{PREFIX}/customers", status_code=303)
    ready = page.request.app.state.derived.current("portrait") is not None
    return render(page, "dashboard.html", charts=list(CHARTS), ready=ready)


@router.get("/charts/{name}", include_in_schema=False)
async def chart(page: Annotated[Page, Depends(need("dashboard"))], name: str) -> Response:
    if name not in CHARTS:
        return JSONResponse({"code": "not_found", "message": f"no chart named {name!r}"}, status_code=404)
    try:
        option = await run_in_threadpool(CHARTS[name], page)
    except NotFound as exc:
        return JSONResponse({"code": "not_found", "message": exc.message}, status_code=404)
    return JSONResponse(option)
