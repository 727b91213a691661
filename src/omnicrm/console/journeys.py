"""Console pages for journeys: the list, the new-journey form and a journey's page with Start and Stop.

A journey (``omnicrm.campaigns.journeys``) is a trigger, up to a few steps and an exit rule; each step is a campaign
of its own. So a journey's page shows the definition in words, its entries by status and, per step, what its
campaign's page shows in brief — the send log and the results by arm with the uplift's interval and verdict — with
a link to that page. The pages follow the campaign pages (``omnicrm.console.campaigns``) and share their
permissions (``campaigns.view`` / ``campaigns.write``), the channels they offer (never WeChat template messages)
and their measure cache, so a step's results cost one measurement whichever page asks.

A request only changes what should happen: Start makes the journey live, Stop ends it; entering customers and
queueing the steps' messages is the server's campaign worker's job (``journey_flow.advance``), never a request's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from omnicrm.campaigns import definition, journeys
from omnicrm.campaigns.content import MESSAGE_NAMES, RECIPIENT_FIELDS
from omnicrm.campaigns.launch import Marketing
from omnicrm.channels.registry import Channels, build
from omnicrm.consent.subjects import CHANNELS as CONSENT_CHANNELS
from omnicrm.console import campaign_charts as charts
from omnicrm.console import campaigns as campaign_pages
from omnicrm.console import journey_form as jform
from omnicrm.console.web import PREFIX, Page, need, render
from omnicrm.errors import ConfigError, InputError, NotFound, OmnicrmError, Problem
from omnicrm.settings import Settings
from omnicrm.store.schema import campaigns as campaigns_table
from omnicrm.store.schema import journey_entries
from omnicrm.store.state import StateStore

__all__ = ["router"]

router = APIRouter(prefix=PREFIX)
PAGE = 25
ENTRY_STATUSES = ("active", "exited", "completed")


def fid(field: str) -> str:
    """A field name as an HTML id: ``steps[0].content.zh.body`` → ``steps-0-content-zh-body``."""
    return re.sub(r"[^A-Za-z0-9]+", "-", field).strip("-")


def _kinds(settings: Settings) -> dict[str, str]:
    """Each configured channel's kind, by name."""
    return {name: str(config.get("kind", "")) for name, config in settings.channels.items()}


def _step_campaigns(state: StateStore, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Name, channel and status of the step campaigns ``ids``, in one query."""
    c = campaigns_table.c
    with state.connect() as conn:
        rows = conn.execute(select(c.id, c.name, c.channel, c.status).where(c.id.in_(list(ids)))).all()
    return {int(r.id): {"name": r.name, "channel": r.channel, "status": r.status} for r in rows}


def _entry_counts(state: StateStore, ids: list[int]) -> dict[int, dict[str, int]]:
    """Entries by status for the journeys ``ids``, in one query."""
    e = journey_entries.c
    counts: dict[int, dict[str, int]] = {i: dict.fromkeys(ENTRY_STATUSES, 0) for i in ids}
    with state.connect() as conn:
        rows = conn.execute(select(e.journey_id, e.status, func.count()).where(e.journey_id.in_(ids))
                            .group_by(e.journey_id, e.status)).all()  # fmt: skip
    for journey_id, status, n in rows:
        counts[int(journey_id)][str(status)] = int(n)
    return counts


# --- the list -----------------------------------------------------------------------------------------------


@router.get("/journeys", response_class=HTMLResponse, include_in_schema=False)
async def journey_list(
    page: Annotated[Page, Depends(need("campaigns.view"))], p: Annotated[int, Query(ge=1)] = 1
) -> Response:
    """Journeys, newest first, a page at a time, each said in words with its entries by status."""
    app = page.request.app.state

    def work() -> dict[str, Any]:
        shown, total = journeys.list_journeys(app.state_store, limit=PAGE, offset=(p - 1) * PAGE)
        pages = max(1, math.ceil(total / PAGE))
        if p > pages:
            shown, total = journeys.list_journeys(app.state_store, limit=PAGE, offset=(pages - 1) * PAGE)
        steps = _step_campaigns(app.state_store, [s.campaign_id for j in shown for s in j.steps])
        kinds = _kinds(app.settings)
        return {"journeys": shown, "total": total, "pages": pages, "p": min(p, pages),
                "counts": _entry_counts(app.state_store, [j.id for j in shown]),
                "words": {j.id: jform.words(page.t, j, steps, kinds) for j in shown}}  # fmt: skip

    found = await run_in_threadpool(work)
    return render(page, "journeys/list.html", when=campaign_pages.time_formatter(app.settings), **found)


# --- the new-journey form -------------------------------------------------------------------------------------


async def _form(page: Page, values: dict[str, str], error: OmnicrmError | None = None, status: int = 200,
                used: jform.FormSteps | None = None) -> Response:  # fmt: skip
    """The form with what was typed, each problem beside its field and the others above."""
    settings = page.request.app.state.settings
    errors: dict[str, list[str]] = {}
    general: list[str] = []
    if error is not None:
        used = used or jform.FormSteps(tuple(range(jform.MAX_STEPS)))
        errors, general = jform.place(error.problems, used, page.t)
    # the module's own headline ("the journey's steps are not valid") is English; its problems are shown by field
    headline = None if error is None else page.t("journeys.error.form") if error.problems else error.message
    return render(
        page, "journeys/new.html", status_code=status, values=values, errors=errors, general=general,
        error=headline, channels=campaign_pages.offered_channels(settings),
        consent_channels=list(CONSENT_CHANNELS), promotions=journeys.PROMOTIONS,
        order_channels=journeys.ORDER_CHANNELS, steps=range(jform.MAX_STEPS), langs=jform.LANGS, fid=fid,
        names=[*RECIPIENT_FIELDS, *MESSAGE_NAMES], settings=settings,
    )  # fmt: skip


@router.get("/journeys/new", response_class=HTMLResponse, include_in_schema=False)
async def new_journey(page: Annotated[Page, Depends(need("campaigns.write"))]) -> Response:
    """An empty form: first order, exit on purchase, the first marketing channel for every step."""
    offered = campaign_pages.offered_channels(page.request.app.state.settings)
    return await _form(page, jform.defaults(offered[0]["name"] if offered else ""))


def _channels(settings: Settings, spec: dict[str, Any]) -> Channels:
    """The channels the steps name, each built on its own; a channel whose settings cannot work is a problem of
    every step that names it (steps by their place in the journey)."""
    built: dict[str, Any] = {}
    problems: list[Problem] = []
    for j, step in enumerate(spec["steps"]):
        name = step["channel"]
        if name in built:
            continue
        try:
            built[name] = build(name, settings.channels[name])
        except ConfigError as exc:
            problems.append(Problem(exc.message, field=f"steps[{j}].channel"))
    channels = Channels(built)
    if problems:
        channels.close()
        raise InputError(problems[0].reason, problems)
    return channels


@router.post("/journeys", response_class=HTMLResponse, include_in_schema=False)
async def create_journey(page: Annotated[Page, Depends(need("campaigns.write"))]) -> Response:
    """Store a draft journey (and its step campaigns); on any problem the form comes back with everything typed and
    each error by its field."""
    app = page.request.app.state
    user = page.user
    assert user is not None
    values = jform.read(await page.request.form())
    offered = {c["name"] for c in campaign_pages.offered_channels(app.settings)}
    try:
        spec, used = jform.to_spec(values, offered, page.t)
    except InputError as exc:
        return await _form(page, values, exc, status=exc.status)

    def work() -> journeys.Journey:
        channels = _channels(app.settings, spec)
        try:
            system = Marketing(app.settings, app.state_store, channels)
            return journeys.create_journey(system, spec, by=f"console:{user.username}")
        finally:
            channels.close()

    try:
        made = await run_in_threadpool(work)
    except OmnicrmError as exc:
        return await _form(page, values, exc, status=exc.status, used=used)
    return RedirectResponse(f"{PREFIX}/journeys/{made.id}", status_code=303)


# --- one journey ------------------------------------------------------------------------------------------------


def _step_view(page: Page, step: dict[str, Any]) -> dict[str, Any]:
    """One step for its section: its campaign, its send log and, once live, its results (or why there are none)."""
    app = page.request.app.state
    campaign = definition.get_campaign(app.state_store, step["campaign_id"])
    view = {**step, "campaign": campaign, "results": None, "results_error": None}
    if campaign.launched_at is not None:
        try:
            view["results"] = campaign_pages.measure_cached(page, campaign.id, step["log"])
        except (NotFound, InputError) as exc:
            view["results_error"] = exc.message
    return view


async def _show(page: Page, journey_id: int, *, error: str | None = None, status_code: int = 200) -> Response:
    """The journey's page: the definition in words, actions, entries by status and each step."""
    app = page.request.app.state

    def work() -> dict[str, Any]:
        summary = journeys.journey_summary(app.state_store, journey_id)
        journey = journeys.get_journey(app.state_store, journey_id)
        steps = [_step_view(page, s) for s in summary["steps"]]
        named = {s["campaign_id"]: {"name": s["campaign"].name, "channel": s["campaign"].channel} for s in steps}
        kinds = _kinds(app.settings)
        labels = [jform.step_label(page.t, journey, i, named.get(s.campaign_id), kinds)
                  for i, s in enumerate(journey.steps)]  # fmt: skip
        return {"journey": journey, "entries": summary["entries"], "steps": steps, "labels": labels, "kinds": kinds,
                "words": jform.words(page.t, journey, named, kinds)}  # fmt: skip

    try:
        found = await run_in_threadpool(work)
    except NotFound as exc:
        return render(page, "error.html", status_code=404, message=exc.message)
    return render(
        page, "journeys/show.html", status_code=status_code, error=error,
        when=campaign_pages.time_formatter(app.settings),
        verdict=charts.verdict_key, arms=campaign_pages.ARMS,
        trigger=jform.trigger_words(page.t, found["journey"].trigger), **found,
    )  # fmt: skip


@router.get("/journeys/{journey_id}", response_class=HTMLResponse, include_in_schema=False)
async def show_journey(page: Annotated[Page, Depends(need("campaigns.view"))], journey_id: int) -> Response:
    return await _show(page, journey_id)


def _forget_steps(page: Page, journey: journeys.Journey) -> None:
    """Drop kept measures of the journey's steps: starting or stopping changes them."""
    for step in journey.steps:
        campaign_pages.forget_measure(page, step.campaign_id)


@router.post("/journeys/{journey_id}/start", response_class=HTMLResponse, include_in_schema=False)
async def start_journey(page: Annotated[Page, Depends(need("campaigns.write"))], journey_id: int) -> Response:
    """Go live: orders placed from now on enter customers; the worker queues each step when it is due."""
    app = page.request.app.state

    def work() -> journeys.Journey:
        names = {definition.get_campaign(app.state_store, s.campaign_id).channel
                 for s in journeys.get_journey(app.state_store, journey_id).steps}  # fmt: skip
        offered = {c["name"] for c in campaign_pages.offered_channels(app.settings)}
        # a channel removed from the settings since is left out: starting says so
        spec = {"steps": [{"channel": n} for n in sorted(names & offered)]}
        channels = _channels(app.settings, spec)
        try:
            return journeys.start_journey(Marketing(app.settings, app.state_store, channels), journey_id)
        finally:
            channels.close()

    try:
        started = await run_in_threadpool(work)
    except OmnicrmError as exc:
        code = 409 if isinstance(exc, ConfigError | InputError) else exc.status
        return await _show(page, journey_id, error=page.t("journeys.start_failed", reason=exc.message),
                           status_code=code)  # fmt: skip
    _forget_steps(page, started)
    return RedirectResponse(f"{PREFIX}/journeys/{journey_id}", status_code=303)


@router.post("/journeys/{journey_id}/stop", response_class=HTMLResponse, include_in_schema=False)
async def stop_journey(page: Annotated[Page, Depends(need("campaigns.write"))], journey_id: int) -> Response:
    """Stop for good: nobody enters any more, active entries exit; what was sent stays in the logs and is measured."""
    app = page.request.app.state

    def work() -> journeys.Journey:
        return journeys.stop_journey(Marketing(app.settings, app.state_store, Channels({})), journey_id)

    try:
        stopped = await run_in_threadpool(work)
    except OmnicrmError as exc:
        return await _show(page, journey_id, error=page.t("journeys.stop_failed", reason=exc.message),
                           status_code=exc.status)  # fmt: skip
    _forget_steps(page, stopped)
    return RedirectResponse(f"{PREFIX}/journeys/{journey_id}", status_code=303)
