"""Console pages for the content library: the list (filters, pages), the item form, an item's page (its links, a
QR code, status actions, views and shares with a chart) and recommendations for a chosen segment.

Reading needs ``loyalty.view``, changing ``loyalty.write``. The form takes times in the merchant's time zone and
shows every problem beside its field with everything typed kept; an edit names the version it read, so a change
made meanwhile by someone else is reported rather than overwritten.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import segno
from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from omnicrm.console.campaigns import time_formatter
from omnicrm.console.web import PREFIX, Page, need, render
from omnicrm.content import library, links, recommend, report
from omnicrm.errors import InputError, NotFound, OmnicrmError, Problem
from omnicrm.portrait.interests import load_taxonomy
from omnicrm.segments.evaluate import SegmentEngine
from omnicrm.segments.saved import list_segments
from omnicrm.store.engine import Engine

__all__ = ["router", "views_option"]

router = APIRouter(prefix=f"{PREFIX}/loyalty/content")
PAGE = 25
HOME = f"{PREFIX}/loyalty/content"
TEXT_FIELDS = ("kind", "title_zh", "title_en", "summary_zh", "summary_en", "url", "store_code", "community", "status")
TIME_FIELDS = ("publish_at", "end_at")
WINDOWS = (7, 30, 90)
NEXT_STATUS = {"draft": ("published",), "published": ("archived", "draft"), "archived": ("published",)}
Translate = Callable[..., str]


def _topics(lang: str) -> list[dict[str, str]]:
    """The taxonomy's interests (id and name in ``lang``), for the form's checkboxes and the filter."""
    return [{"id": it.id, "name": it.name_en if lang == "en" else it.name_zh} for it in load_taxonomy().interests]


def _names(lang: str) -> dict[str, str]:
    """Interest id -> its name in ``lang``."""
    return {t["id"]: t["name"] for t in _topics(lang)}


# --- the list -------------------------------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse, include_in_schema=False)
async def items(
    page: Annotated[Page, Depends(need("loyalty.view"))],
    status: Annotated[str, Query(pattern="^(|draft|published|archived)$")] = "",
    kind: Annotated[str, Query(pattern="^(|article|lecture|video)$")] = "",
    topic: Annotated[str, Query(max_length=64)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    p: Annotated[int, Query(ge=1)] = 1,
) -> Response:
    """The library, newest first, filtered by status, kind, topic and words of the titles."""
    state = page.request.app.state.state_store
    filters = {"status": status or None, "kind": kind or None, "topic": topic or None, "query": q or None}

    def work() -> tuple[list[library.Item], int, int]:
        shown, total = library.list_items(state, **filters, limit=PAGE, offset=(p - 1) * PAGE)
        pages = max(1, math.ceil(total / PAGE))
        if p > pages:
            shown, total = library.list_items(state, **filters, limit=PAGE, offset=(pages - 1) * PAGE)
        return shown, total, pages

    shown, total, pages = await run_in_threadpool(work)
    return render(
        page, "content/list.html", items=shown, total=total, p=min(p, pages), pages=pages, status=status, kind=kind,
        topic=topic, q=q, topics=_topics(page.lang), kinds=library.KINDS, statuses=library.STATUSES,
        topic_names=_names(page.lang),
        when=time_formatter(page.request.app.state.settings), filtered=any(filters.values()),
    )  # fmt: skip


# --- the form -------------------------------------------------------------------------------------------------------


def _local(value: dt.datetime | None, zone: ZoneInfo) -> str:
    return "" if value is None else value.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def _typed(item: library.Item | None, zone: ZoneInfo) -> dict[str, Any]:
    """The form's values: the item's, or a new item's defaults."""
    if item is None:
        return {**dict.fromkeys(TEXT_FIELDS + TIME_FIELDS, ""), "kind": "article", "status": "draft", "topics": [],
                "version": ""}  # fmt: skip
    values = {f: getattr(item, f) or "" for f in TEXT_FIELDS}
    values.update(publish_at=_local(item.publish_at, zone), end_at=_local(item.end_at, zone), version=item.version,
                  topics=[] if item.topics_derived else list(item.topics))  # fmt: skip
    return values


async def _form(
    page: Page, values: dict[str, Any], *, item: library.Item | None = None, error: OmnicrmError | None = None,
    status: int = 200,
) -> Response:  # fmt: skip
    errors: dict[str, list[str]] = {}
    general: list[str] = []
    for problem in [] if error is None else error.problems:
        if problem.field in (*TEXT_FIELDS, *TIME_FIELDS, "topics", "version"):
            errors.setdefault(problem.field or "", []).append(problem.reason)
        else:
            general.append(str(problem))
    return render(
        page, "content/form.html", status_code=status, values=values, item=item, errors=errors, general=general,
        error=None if error is None else error.message, topics=_topics(page.lang), kinds=library.KINDS,
        statuses=library.STATUSES, timezone=page.request.app.state.settings.timezone,
        found=", ".join(_names(page.lang).get(t, t) for t in item.topics) if item and item.topics_derived else "",
    )  # fmt: skip


async def _submitted(page: Page) -> tuple[dict[str, Any], dict[str, Any], list[Problem]]:
    """(what was typed, the item's values it makes, problems of the times as typed in the merchant's zone)."""
    zone = ZoneInfo(page.request.app.state.settings.timezone)
    form = await page.request.form()
    typed: dict[str, Any] = {f: str(form.get(f) or "") for f in (*TEXT_FIELDS, *TIME_FIELDS, "version")}
    typed["topics"] = [str(t) for t in form.getlist("topics")]
    values: dict[str, Any] = {f: typed[f].strip() or None for f in TEXT_FIELDS}
    values["topics"] = typed["topics"]
    problems = []
    for field in TIME_FIELDS:
        text = typed[field].strip()
        values[field] = None
        if text:
            try:
                values[field] = dt.datetime.fromisoformat(text).replace(tzinfo=zone)
            except ValueError:
                problems.append(Problem(page.t("content.error.time"), field))
    return typed, values, problems


@router.get("/new", response_class=HTMLResponse, include_in_schema=False)
async def new(page: Annotated[Page, Depends(need("loyalty.write"))]) -> Response:
    return await _form(page, _typed(None, ZoneInfo(page.request.app.state.settings.timezone)))


async def _store(page: Page, item: library.Item | None) -> Response:
    """Check the form (times as typed too, every problem at once), then add the item or change ``item``."""
    app = page.request.app.state
    user = page.user
    assert user is not None
    typed, values, problems = await _submitted(page)

    def work() -> library.Item:
        version = int(typed["version"]) if typed["version"].isdigit() else None
        if item is not None and version is not None and version != item.version:
            return library.update_item(app.state_store, item.id, values, version=version)  # refused: changed since
        try:
            library.check_item(values, item)
        except InputError as exc:
            problems.extend(exc.problems)
        if problems:
            raise InputError(page.t("content.error.form"), problems)
        if item is None:
            return library.create_item(app.state_store, values, by=f"console:{user.username}")
        return library.update_item(app.state_store, item.id, values, version=version)

    try:
        stored = await run_in_threadpool(work)
    except OmnicrmError as exc:
        return await _form(page, typed, item=item, error=exc, status=exc.status)
    return RedirectResponse(f"{HOME}/{stored.id}", status_code=303)


@router.post("", response_class=HTMLResponse, include_in_schema=False)
async def create(page: Annotated[Page, Depends(need("loyalty.write"))]) -> Response:
    """Add an item; on any problem the form comes back with everything typed and each error by its field."""
    return await _store(page, None)


# --- recommendations (before /{content_id}) -------------------------------------------------------------------------


@router.get("/recommendations", response_class=HTMLResponse, include_in_schema=False)
async def recommendations(
    page: Annotated[Page, Depends(need("loyalty.view"))],
    segment_id: Annotated[str, Query(pattern=r"^\d{0,18}$")] = "",
    limit: Annotated[int, Query(ge=1, le=recommend.MAX_LIMIT)] = 10,
) -> Response:
    """Live items ranked for the members of a chosen segment."""
    app = page.request.app.state

    def work() -> tuple[list[Any], recommend.SegmentRecommendations | None, str | None]:
        segments = list_segments(app.state_store)
        if not segment_id:
            return segments, None, None
        try:
            engine = SegmentEngine(Engine(app.facts), app.derived, state=app.state_store)
            return segments, recommend.recommend(app.state_store, engine, int(segment_id), limit), None
        except (NotFound, InputError) as exc:
            return segments, None, exc.message

    segments, found, error = await run_in_threadpool(work)
    return render(
        page, "content/recommendations.html", status_code=404 if error else 200, segments=segments,
        segment_id=segment_id, limit=limit, found=found, error=error, topic_names=_names(page.lang),
    )  # fmt: skip


# --- one item -------------------------------------------------------------------------------------------------------


def _qr(url: str) -> str:
    """The link as an inline SVG QR code (for posters in stores)."""
    return str(segno.make(url, error="m").svg_inline(scale=3, border=2, title=url))


@router.get("/{content_id}", response_class=HTMLResponse, include_in_schema=False)
async def show(
    page: Annotated[Page, Depends(need("loyalty.view"))], content_id: int,
    days: Annotated[int, Query(ge=1, le=report.MAX_DAYS)] = 30,
) -> Response:  # fmt: skip
    """The item, its links, status actions and its views and shares over the last ``days`` days."""
    app = page.request.app.state

    def work() -> tuple[library.Item, dict[str, Any]]:
        item = library.get_item(app.state_store, content_id)
        return item, report.content_report(app.state_store, item_id=item.id, days=days, timezone=app.settings.timezone)

    try:
        item, figures = await run_in_threadpool(work)
    except NotFound as exc:
        return render(page, "error.html", status_code=404, message=exc.message)
    link = links.content_url(app.settings.public_url, app.settings.secret_key, item.id)
    qr_link = links.content_url(app.settings.public_url, app.settings.secret_key, item.id, channel="qr")
    return render(
        page, "content/show.html", item=item, figures=figures, days=days, windows=WINDOWS, link=link,
        qr_link=qr_link, qr=_qr(qr_link), topic_names=_names(page.lang), next_status=NEXT_STATUS[item.status],
        live=item.live(dt.datetime.now(dt.UTC)), when=time_formatter(app.settings),
    )  # fmt: skip


def views_option(t: Translate, figures: dict[str, Any]) -> dict[str, Any]:
    """ECharts: views per day as bars, unique viewers and shares as lines."""
    days = figures["by_day"]
    return {
        "title": {"text": t("content.chart.title", days=figures["days"]), "left": "center",
                  "textStyle": {"fontSize": 14}},
        "tooltip": {"trigger": "axis"},
        "legend": {"bottom": 0},
        "grid": {"left": 45, "right": 20, "top": 40, "bottom": 55},
        "xAxis": {"type": "category", "data": [d["day"][5:] for d in days]},
        "yAxis": {"type": "value", "minInterval": 1},
        "series": [
            {"type": "bar", "name": t("content.views"), "data": [d["views"] for d in days]},
            {"type": "line", "name": t("content.unique_viewers"), "data": [d["unique_viewers"] for d in days]},
            {"type": "line", "name": t("content.shares"), "data": [d["shares"] for d in days]},
        ],
    }  # fmt: skip


@router.get("/{content_id}/chart", include_in_schema=False)
async def chart(
    page: Annotated[Page, Depends(need("loyalty.view"))], content_id: int,
    days: Annotated[int, Query(ge=1, le=report.MAX_DAYS)] = 30,
) -> Response:  # fmt: skip
    app = page.request.app.state

    def work() -> dict[str, Any]:
        library.get_item(app.state_store, content_id)
        return report.content_report(app.state_store, item_id=content_id, days=days, timezone=app.settings.timezone)

    try:
        figures = await run_in_threadpool(work)
    except NotFound as exc:
        return JSONResponse({"code": "not_found", "message": exc.message}, status_code=404)
    return JSONResponse(views_option(page.t, figures))


@router.get("/{content_id}/edit", response_class=HTMLResponse, include_in_schema=False)
async def edit(page: Annotated[Page, Depends(need("loyalty.write"))], content_id: int) -> Response:
    try:
        item = await run_in_threadpool(library.get_item, page.request.app.state.state_store, content_id)
    except NotFound as exc:
        return render(page, "error.html", status_code=404, message=exc.message)
    return await _form(page, _typed(item, ZoneInfo(page.request.app.state.settings.timezone)), item=item)


@router.post("/{content_id}", response_class=HTMLResponse, include_in_schema=False)
async def change(page: Annotated[Page, Depends(need("loyalty.write"))], content_id: int) -> Response:
    """Store an edit; a change someone made since the form was opened is reported, not overwritten."""
    try:
        item = await run_in_threadpool(library.get_item, page.request.app.state.state_store, content_id)
    except NotFound as exc:
        return render(page, "error.html", status_code=404, message=exc.message)
    return await _store(page, item)


@router.post("/{content_id}/status", response_class=HTMLResponse, include_in_schema=False)
async def set_status(page: Annotated[Page, Depends(need("loyalty.write"))], content_id: int) -> Response:
    """Publish, archive or take back to draft."""
    form = await page.request.form()
    wanted = str(form.get("status") or "")
    version = str(form.get("version") or "")

    def work() -> library.Item:
        if wanted not in library.STATUSES:
            raise InputError(page.t("content.error.status"), [Problem(page.t("content.error.status"), "status")])
        return library.update_item(page.request.app.state.state_store, content_id, {"status": wanted},
                                   version=int(version) if version.isdigit() else None)  # fmt: skip

    try:
        await run_in_threadpool(work)
    except NotFound as exc:
        return render(page, "error.html", status_code=404, message=exc.message)
    except OmnicrmError as exc:
        return render(page, "error.html", status_code=exc.status, message=exc.message)
    return RedirectResponse(f"{HOME}/{content_id}", status_code=303)
