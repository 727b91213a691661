"""Console pages for campaigns: the list, the new-campaign form, a campaign's page and the results by channel.

A campaign's page shows its settings, the send log (arms, statuses, exclusion reasons), a page of
recipients, Launch / Cancel and, once launched, the results: each arm, the uplift of conversion with its
95% interval and plain verdict, cost and ROI, and a chart. A request only changes what should happen:
launching freezes the audience and writes the send log (as the API does); the server's campaign worker
sends, never a request.

Measuring reads every order of the attribution windows, so a measure is kept for ``MEASURE_SECONDS``
per campaign, send-log counts and derived snapshot: a page and the chart it fetches cost one measurement,
and a send the worker makes meanwhile is seen at once.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from omnicrm.campaigns import definition, log, measure
from omnicrm.campaigns.content import MESSAGE_NAMES, RECIPIENT_FIELDS, compile_content
from omnicrm.campaigns.launch import Marketing, launch
from omnicrm.channels.registry import Channels, build
from omnicrm.consent.subjects import CHANNELS as CONSENT_CHANNELS
from omnicrm.console import campaign_charts as charts
from omnicrm.console.web import PREFIX, Page, need, render
from omnicrm.errors import ConfigError, InputError, NotFound, OmnicrmError, Problem
from omnicrm.portrait.refresh import catalogue
from omnicrm.segments.saved import list_segments
from omnicrm.settings import Settings
from omnicrm.store.engine import Engine

__all__ = [
    "ARMS", "FORM_FIELDS", "forget_measure", "measure_cached", "offered_channels", "router", "time_formatter",
]  # fmt: skip

router = APIRouter(prefix=PREFIX)
PAGE = 25
RECIPIENTS = 50
MEASURE_SECONDS = 30.0
TEMPLATE_KINDS = frozenset({"wechat_template", "template"})  # service notices only: never for marketing
ARMS = ("treatment", "holdout", "excluded")
FORM_FIELDS = (
    "name", "segment_id", "channel", "consent_channel", "content.zh.subject", "content.zh.body", "content.zh.html",
    "content.en.subject", "content.en.body", "content.en.html", "holdout_share", "stratify_by", "frequency_cap",
    "quiet_hours", "conversion_days", "when", "send_at",
)  # fmt: skip
ALIASES = {"content.zh": "content.zh.body", "content.en": "content.en.body"}  # a language as a whole: by its text
_lock = threading.Lock()


def offered_channels(settings: Settings) -> list[dict[str, str]]:
    """The configured channels a campaign may use (name, kind); WeChat template messages are never offered."""
    return [
        {"name": name, "kind": str(config.get("kind", ""))}
        for name, config in sorted(settings.channels.items())
        if str(config.get("kind", "")) not in TEMPLATE_KINDS
    ]


def _channel(settings: Settings, name: str) -> Channels:
    """Only the named channel, built (a bad setting of another channel does not stop this one)."""
    if name not in {c["name"] for c in offered_channels(settings)}:
        problem = Problem("choose one of the configured channels", field="channel")
        raise InputError(f"no channel named {name!r} may be used for marketing", [problem])
    try:
        return Channels({name: build(name, settings.channels[name])})
    except ConfigError as exc:
        raise InputError(exc.message, [Problem(exc.message, field="channel")]) from None


def time_formatter(settings: Settings) -> Callable[[dt.datetime | str | None], str]:
    """Times as the merchant reads them: in the settings' time zone, to the minute."""
    zone = ZoneInfo(settings.timezone)

    def show(value: dt.datetime | str | None) -> str:
        if value is None or value == "":
            return "—"
        moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        moment = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    return show


def _remembered(page: Page, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
    """``compute()``, or its value from less than MEASURE_SECONDS ago for the same key and derived snapshots."""
    app = page.request.app.state
    full = (*key, str(app.derived.current("identity")), str(app.derived.current("portrait")))
    with _lock:
        cache: dict[tuple[Any, ...], tuple[float, Any]] | None = getattr(app, "campaign_measures", None)
        if cache is None:
            cache = app.campaign_measures = {}
        hit = cache.get(full)
        if hit is not None and time.monotonic() - hit[0] < MEASURE_SECONDS:
            return hit[1]
    value = compute()
    with _lock:
        now = time.monotonic()
        for old in [k for k, (at, _) in cache.items() if now - at >= MEASURE_SECONDS]:
            del cache[old]
        cache[full] = (now, value)
    return value


def forget_measure(page: Page, campaign_id: int) -> None:
    """Drop kept measures a launch or a cancel has made stale."""
    with _lock:
        cache = getattr(page.request.app.state, "campaign_measures", None) or {}
        for key in [k for k in cache if k[0] == "channels" or k[:2] == ("campaign", campaign_id)]:
            del cache[key]


def measure_cached(page: Page, campaign_id: int, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """The campaign's measure; kept while the send log's counts (``summary``) and the snapshots stay the same."""
    app = page.request.app.state
    summary = log.log_summary(app.state_store, campaign_id) if summary is None else summary
    key = ("campaign", campaign_id, json.dumps(summary, sort_keys=True))
    return dict(_remembered(page, key, lambda: measure.measure_campaign(
        app.state_store, Engine(app.facts), app.derived, campaign_id).as_dict()))  # fmt: skip


def _channel_report(page: Page) -> list[dict[str, Any]]:
    app = page.request.app.state
    return list(_remembered(page, ("channels",), lambda: [
        m.as_dict() for m in measure.channel_report(app.state_store, Engine(app.facts), app.derived)]))  # fmt: skip


# --- the list -----------------------------------------------------------------------------------


@router.get("/campaigns", response_class=HTMLResponse, include_in_schema=False)
async def campaigns(
    page: Annotated[Page, Depends(need("campaigns.view"))], p: Annotated[int, Query(ge=1)] = 1
) -> Response:
    """Campaigns, newest first, a page at a time."""
    state = page.request.app.state.state_store

    def work() -> tuple[list[definition.Campaign], int, int, dict[int, str]]:
        shown, total = definition.list_campaigns(state, limit=PAGE, offset=(p - 1) * PAGE)
        pages = max(1, math.ceil(total / PAGE))
        if p > pages:
            shown, total = definition.list_campaigns(state, limit=PAGE, offset=(pages - 1) * PAGE)
        return shown, total, pages, {s.id: s.name for s in list_segments(state)}

    shown, total, pages, segment_names = await run_in_threadpool(work)
    return render(
        page, "campaigns/list.html", campaigns=shown, total=total, p=min(p, pages), pages=pages,
        segment_names=segment_names, when=time_formatter(page.request.app.state.settings),
    )  # fmt: skip


# --- the new-campaign form ----------------------------------------------------------------------


def _defaults(settings: Settings) -> dict[str, str]:
    values = dict.fromkeys(FORM_FIELDS, "")
    values.update(holdout_share="10", frequency_cap=settings.frequency_cap, quiet_hours=settings.quiet_hours,
                  conversion_days="14", when="now")  # fmt: skip
    return values


async def _form(page: Page, values: dict[str, str], error: OmnicrmError | None = None, status: int = 200) -> Response:
    """The form with what was typed, each problem beside its field and the others above."""
    app = page.request.app.state
    errors: dict[str, list[str]] = {}
    general: list[str] = []
    for problem in [] if error is None else error.problems:
        field = ALIASES.get(problem.field or "", problem.field or "")
        reason = problem.reason
        if problem.line is not None:
            reason = f"{page.t('campaigns.line', n=problem.line)}: {reason}"
        if field in FORM_FIELDS:
            errors.setdefault(field, []).append(reason)
        else:
            general.append(str(problem))

    def work() -> tuple[list[Any], list[dict[str, Any]]]:
        tags = [d.describe() for d in catalogue(app.state_store)]
        return list_segments(app.state_store), [
            d for d in tags if d["value_type"] in ("category", "bool") and d["origin"] != "manual"
        ]

    segments, tags = await run_in_threadpool(work)
    return render(
        page, "campaigns/new.html", status_code=status, values=values, errors=errors, general=general,
        error=None if error is None else error.message, segments=list(reversed(segments)),
        channels=offered_channels(app.settings), consent_channels=list(CONSENT_CHANNELS), tags=tags,
        names=[*RECIPIENT_FIELDS, *MESSAGE_NAMES], settings=app.settings,
    )  # fmt: skip


@router.get("/campaigns/new", response_class=HTMLResponse, include_in_schema=False)
async def new(page: Annotated[Page, Depends(need("campaigns.write"))]) -> Response:
    """An empty form, with the merchant's default frequency cap and quiet hours filled in."""
    return await _form(page, _defaults(page.request.app.state.settings))


def _language(values: dict[str, str], lang: str) -> dict[str, Any] | None:
    parts = {key: values[f"content.{lang}.{key}"] for key in ("subject", "body", "html")}
    if lang != "zh" and not any(v.strip() for v in parts.values()):
        return None
    return {"subject": parts["subject"], "body": parts["body"], "html": parts["html"] or None}


def _spec(page: Page, values: dict[str, str], zone: ZoneInfo) -> tuple[dict[str, Any], list[Problem]]:
    """The campaign the form describes, and the problems of fields a person types differently from the API
    (holdout in percent, the send time in the merchant's time zone)."""
    problems: list[Problem] = []

    def number(field: str, cast: Callable[[str], float], low: float, high: float) -> Any:
        try:
            value = cast(values[field].strip())
            if math.isfinite(value) and low <= value <= high:
                return value
        except ValueError:
            pass
        problems.append(Problem(page.t(f"campaigns.error.{field}"), field=field))
        return None

    segment, share = number("segment_id", int, 1, 2**62), number("holdout_share", float, 0, 50)
    days, send_at = number("conversion_days", int, 1, 365), None
    if values["when"] == "later":
        try:
            send_at = dt.datetime.fromisoformat(values["send_at"].strip()).replace(tzinfo=zone)
            if send_at <= dt.datetime.now(zone):
                raise ValueError("in the past")
        except ValueError:
            problems.append(Problem(page.t("campaigns.error.send_at"), field="send_at"))
    content = {lang: part for lang in ("zh", "en") if (part := _language(values, lang)) is not None}
    spec = {
        "name": values["name"], "segment_id": segment, "channel": values["channel"],
        "consent_channel": values["consent_channel"] or None, "content": content,
        "holdout_share": None if share is None else round(share / 100, 6), "stratify_by": values["stratify_by"] or None,
        "frequency_cap": values["frequency_cap"].strip(), "quiet_hours": values["quiet_hours"].strip(),
        "conversion_days": days, "send_at": send_at,
    }  # fmt: skip
    return spec, problems


@router.post("/campaigns", response_class=HTMLResponse, include_in_schema=False)
async def create(page: Annotated[Page, Depends(need("campaigns.write"))]) -> Response:
    """Store a draft; on any problem the form comes back with everything typed and each error by its field."""
    app = page.request.app.state
    user = page.user
    assert user is not None
    form = await page.request.form()
    values = {f: str(form.get(f) or "") for f in FORM_FIELDS}
    spec, problems = _spec(page, values, ZoneInfo(app.settings.timezone))

    def work() -> definition.Campaign:
        if problems:  # the content is checked as well, so one round shows every problem
            try:
                compile_content(spec["content"])
            except InputError as exc:
                problems.extend(exc.problems)
            raise InputError(page.t("campaigns.error.form"), problems)
        channels = _channel(app.settings, values["channel"])
        try:
            return definition.create_campaign(app.state_store, channels, app.settings, spec,
                                              by=f"console:{user.username}")  # fmt: skip
        except NotFound as exc:  # the segment was deleted meanwhile
            raise InputError(exc.message, [Problem(exc.message, field="segment_id")]) from None
        finally:
            channels.close()

    try:
        campaign = await run_in_threadpool(work)
    except OmnicrmError as exc:
        return await _form(page, values, exc, status=exc.status)
    return RedirectResponse(f"{PREFIX}/campaigns/{campaign.id}", status_code=303)


# --- results by channel (before /campaigns/{campaign_id}, which would take "channels" for an id) ---------------


@router.get("/campaigns/channels", response_class=HTMLResponse, include_in_schema=False)
async def channel_results(page: Annotated[Page, Depends(need("campaigns.view"))]) -> Response:
    """Every launched campaign's figures summed per channel, with the uplift pooled by campaign."""
    try:
        rows = await run_in_threadpool(_channel_report, page)
    except NotFound as exc:
        return render(page, "campaigns/channels.html", rows=[], error=exc.message)
    return render(page, "campaigns/channels.html", rows=rows, error=None, verdict=charts.verdict_key)


@router.get("/campaigns/channels/chart", include_in_schema=False)
async def channel_chart(page: Annotated[Page, Depends(need("campaigns.view"))]) -> Response:
    try:
        rows = await run_in_threadpool(_channel_report, page)
    except NotFound as exc:
        return JSONResponse({"code": "not_found", "message": exc.message}, status_code=404)
    return JSONResponse(charts.channels_option(page.t, rows))


# --- one campaign ---------------------------------------------------------------------------------


async def _show(
    page: Page, campaign_id: int, *, error: str | None = None, status_code: int = 200, arm: str = "",
    status: str = "", p: int = 1,
) -> Response:  # fmt: skip
    """The campaign's page: settings, send log, recipients (roles that may open customers), actions, results."""
    app = page.request.app.state
    see_people = page.may("customers.view")

    def work() -> dict[str, Any]:
        campaign = definition.get_campaign(app.state_store, campaign_id)
        segment_names = {s.id: s.name for s in list_segments(app.state_store)}
        found: dict[str, Any] = {"campaign": campaign, "summary": log.log_summary(app.state_store, campaign_id),
                                 "segment": segment_names.get(campaign.segment_id), "rows": [], "total": 0}  # fmt: skip
        if see_people:
            found["rows"], found["total"] = log.recipients_page(
                app.state_store, campaign_id, status=status or None, arm=arm or None, limit=RECIPIENTS,
                offset=(p - 1) * RECIPIENTS,
            )  # fmt: skip
        found["results"], found["results_error"] = None, None
        if campaign.launched_at is not None:
            try:
                found["results"] = measure_cached(page, campaign_id, found["summary"])
            except NotFound as exc:
                found["results_error"] = exc.message
        return found

    try:
        found = await run_in_threadpool(work)
    except NotFound as exc:
        return render(page, "error.html", status_code=404, message=exc.message)
    campaign = found["campaign"]
    window_end = None if campaign.launched_at is None else campaign.launched_at + dt.timedelta(
        days=campaign.conversion_days)  # fmt: skip
    return render(
        page, "campaigns/show.html", status_code=status_code, error=error, arms=ARMS, statuses=log.STATUSES,
        arm=arm, status=status, p=p, pages=max(1, math.ceil(found["total"] / RECIPIENTS)), see_people=see_people,
        when=time_formatter(app.settings), window_end=window_end, verdict=charts.verdict_key, **found,
    )  # fmt: skip


@router.get("/campaigns/{campaign_id}", response_class=HTMLResponse, include_in_schema=False)
async def show(
    page: Annotated[Page, Depends(need("campaigns.view"))],
    campaign_id: int,
    arm: Annotated[str, Query(pattern="^(|treatment|holdout|excluded)$")] = "",
    status: Annotated[str, Query(pattern=f"^(|{'|'.join(log.STATUSES)})$")] = "",
    p: Annotated[int, Query(ge=1)] = 1,
) -> Response:
    return await _show(page, campaign_id, arm=arm, status=status, p=p)


@router.get("/campaigns/{campaign_id}/chart", include_in_schema=False)
async def results_chart(page: Annotated[Page, Depends(need("campaigns.view"))], campaign_id: int) -> Response:
    """The ECharts option of the results: conversion rate by arm and the uplift's interval."""
    try:
        results = await run_in_threadpool(measure_cached, page, campaign_id)
    except (NotFound, InputError) as exc:
        return JSONResponse({"code": "not_found", "message": exc.message}, status_code=404)
    return JSONResponse(charts.results_option(page.t, results))


@router.post("/campaigns/{campaign_id}/launch", response_class=HTMLResponse, include_in_schema=False)
async def start(page: Annotated[Page, Depends(need("campaigns.write"))], campaign_id: int) -> Response:
    """Freeze the audience and write the send log now, or schedule the campaign if its send time is ahead."""
    app = page.request.app.state

    def work() -> None:
        name = definition.get_campaign(app.state_store, campaign_id).channel
        offered = any(c["name"] == name for c in offered_channels(app.settings))
        channels = _channel(app.settings, name) if offered else Channels({})  # launch says the channel is gone
        try:
            launch(Marketing(app.settings, app.state_store, channels), campaign_id)
        finally:
            channels.close()

    try:
        await run_in_threadpool(work)
    except OmnicrmError as exc:
        code = 409 if isinstance(exc, ConfigError) else exc.status
        return await _show(page, campaign_id, error=page.t("campaigns.launch_failed", reason=exc.message),
                           status_code=code)  # fmt: skip
    forget_measure(page, campaign_id)
    return RedirectResponse(f"{PREFIX}/campaigns/{campaign_id}", status_code=303)


@router.post("/campaigns/{campaign_id}/cancel", response_class=HTMLResponse, include_in_schema=False)
async def cancel(page: Annotated[Page, Depends(need("campaigns.write"))], campaign_id: int) -> Response:
    """Stop sending; what was sent stays in the log and is still measured."""
    try:
        await run_in_threadpool(definition.cancel_campaign, page.request.app.state.state_store, campaign_id)
    except OmnicrmError as exc:
        return await _show(page, campaign_id, error=page.t("campaigns.cancel_failed", reason=exc.message),
                           status_code=exc.status)  # fmt: skip
    forget_measure(page, campaign_id)
    return RedirectResponse(f"{PREFIX}/campaigns/{campaign_id}", status_code=303)
