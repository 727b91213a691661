"""Console pages for interest communities and their events, and the clerks' check-in at the till.

- ``/console/loyalty/communities``: the communities with their members, the latest events, and a form for a new
  community (interests picked from the taxonomy);
- a community's page: its members by how they came, the suggested members (portrait interests; by city or store)
  to invite, its events with their attendance, a form for a new event;
- an event's page: seats, the sign-ups and the waiting list in order, check-ins, the venue QR code walk-ins scan,
  each confirmed sign-up's ticket; sign someone up by phone or customer id, cancel a sign-up (the next person waiting
  gets the seat at once), cancel the event;
- ``/console/till/check-in``: a clerk scans or pastes a ticket. Each form carries a fresh idempotency key, so a form
  sent twice checks in once.

Viewing needs ``loyalty.view``, changing ``loyalty.write``, the till ``till``. Times are typed and shown in the
merchant's time zone.
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from omnicrm.community import attendance, check_in, communities, events, signups, tokens
from omnicrm.community.people import customer_of
from omnicrm.console.campaigns import time_formatter
from omnicrm.console.web import PREFIX, Page, need, render
from omnicrm.errors import InputError, NotFound, OmnicrmError, Problem
from omnicrm.portrait.interests import load_taxonomy
from omnicrm.store.engine import Engine

__all__ = ["router"]

router = APIRouter(prefix=PREFIX)
BASE = f"{PREFIX}/loyalty/communities"
PAGE = 25
COMMUNITY_FIELDS = ("name_zh", "name_en", "description")
EVENT_FIELDS = ("title_zh", "title_en", "store_code", "venue", "starts_at", "ends_at", "capacity", "signup_closes_at")


def _by(page: Page) -> str:
    assert page.user is not None
    return f"console:{page.user.username}"


def _pages(total: int) -> int:
    return max(1, math.ceil(total / PAGE))


def _errors(error: OmnicrmError | None, fields: tuple[str, ...]) -> tuple[dict[str, list[str]], list[str]]:
    """Each problem beside its field, the others above the form."""
    by_field: dict[str, list[str]] = {}
    general: list[str] = []
    for problem in [] if error is None else error.problems:
        if problem.field in fields or problem.field == "interests":
            by_field.setdefault(problem.field or "", []).append(problem.reason)
        else:
            general.append(str(problem))
    return by_field, general


# --- the list ------------------------------------------------------------------------------------------------------


async def _list(page: Page, p: int = 1, *, values: dict[str, Any] | None = None, error: OmnicrmError | None = None,
                status: int = 200) -> Response:  # fmt: skip
    app = page.request.app.state

    def work() -> tuple[list[communities.Community], int, list[events.Event]]:
        shown, total = communities.list_communities(app.state_store, limit=PAGE, offset=(p - 1) * PAGE)
        latest, _ = events.list_events(app.state_store, limit=10)
        return shown, total, latest

    shown, total, latest = await run_in_threadpool(work)
    errors, general = _errors(error, COMMUNITY_FIELDS)
    return render(
        page, "community/list.html", status_code=status, communities=shown, total=total, p=p, pages=_pages(total),
        events=latest, interests=load_taxonomy().interests, values=values or {"interests": []}, errors=errors,
        general=general, error=None if error is None else error.message, when=time_formatter(app.settings),
    )  # fmt: skip


@router.get("/loyalty/communities", response_class=HTMLResponse, include_in_schema=False)
async def community_list(
    page: Annotated[Page, Depends(need("loyalty.view"))], p: Annotated[int, Query(ge=1)] = 1
) -> Response:
    return await _list(page, p)


@router.post("/loyalty/communities", response_class=HTMLResponse, include_in_schema=False)
async def community_create(page: Annotated[Page, Depends(need("loyalty.write"))]) -> Response:
    form = await page.request.form()
    values: dict[str, Any] = {f: str(form.get(f) or "") for f in COMMUNITY_FIELDS}
    values["interests"] = [str(v) for v in form.getlist("interests")]
    try:
        made = await run_in_threadpool(lambda: communities.create_community(
            page.request.app.state.state_store, **values, by=_by(page)))  # fmt: skip
    except OmnicrmError as exc:
        return await _list(page, values=values, error=exc, status=exc.status)
    return RedirectResponse(f"{BASE}/{made.id}", status_code=303)


# --- one community -------------------------------------------------------------------------------------------------


async def _community(
    page: Page, community_id: int, *, city: str = "", store: str = "", sp: int = 1, mp: int = 1,
    values: dict[str, str] | None = None, error: OmnicrmError | None = None, status: int = 200,
) -> Response:  # fmt: skip
    app = page.request.app.state

    def work() -> dict[str, Any]:
        from omnicrm.community.suggest import suggest_members  # the analytic engine, only for this page

        community = communities.get_community(app.state_store, community_id)
        found: dict[str, Any] = {"community": community, "suggestions": None, "suggest_error": None}
        found["report"] = attendance.community_attendance(app.state_store, community_id)
        found["members"], found["member_total"] = communities.members(
            app.state_store, community_id, limit=PAGE, offset=(mp - 1) * PAGE)  # fmt: skip
        try:
            found["suggestions"] = suggest_members(
                Engine(app.facts), app.derived, community, state=app.state_store, city=city or None,
                store=store or None, limit=PAGE, offset=(sp - 1) * PAGE,
            )  # fmt: skip
        except NotFound as exc:
            found["suggest_error"] = exc.message
        return found

    try:
        found = await run_in_threadpool(work)
    except NotFound as exc:
        return render(page, "error.html", status_code=404, message=exc.message)
    errors, general = _errors(error, EVENT_FIELDS)
    suggested = found["suggestions"]
    names = {it.id: it for it in load_taxonomy().interests}
    return render(
        page, "community/show.html", status_code=status, city=city, store=store, sp=sp, mp=mp,
        suggest_pages=_pages(suggested.total if suggested else 0), member_pages=_pages(found["member_total"]),
        names=names, values=values or {"capacity": "20"}, errors=errors, general=general,
        error=None if error is None else error.message, when=time_formatter(app.settings),
        invited=page.request.query_params.get("invited"), **found,
    )  # fmt: skip


@router.get("/loyalty/communities/{community_id}", response_class=HTMLResponse, include_in_schema=False)
async def community_show(
    page: Annotated[Page, Depends(need("loyalty.view"))], community_id: int,
    city: Annotated[str, Query(max_length=64)] = "", store: Annotated[str, Query(max_length=64)] = "",
    sp: Annotated[int, Query(ge=1)] = 1, mp: Annotated[int, Query(ge=1)] = 1,
) -> Response:  # fmt: skip
    return await _community(page, community_id, city=city, store=store, sp=sp, mp=mp)


@router.post("/loyalty/communities/{community_id}/invite", response_class=HTMLResponse, include_in_schema=False)
async def community_invite(page: Annotated[Page, Depends(need("loyalty.write"))], community_id: int) -> Response:
    """Invite the ticked suggestions, or every suggestion of the filter (``all``)."""
    app = page.request.app.state
    form = await page.request.form()
    city, store = str(form.get("city") or ""), str(form.get("store") or "")

    def work() -> communities.Membership:
        if form.get("all"):
            from omnicrm.community.suggest import suggest_members

            community = communities.get_community(app.state_store, community_id)
            ids = suggest_members(Engine(app.facts), app.derived, community, state=app.state_store, city=city or None,
                                  store=store or None, limit=communities.MAX_INVITE).customer_ids  # fmt: skip
        else:
            ids = [int(str(v)) for v in form.getlist("customer_id") if str(v).isdigit()]
        return communities.invite(app.state_store, community_id, ids, by=_by(page))

    try:
        done = await run_in_threadpool(work)
    except OmnicrmError as exc:
        return await _community(page, community_id, city=city, store=store, error=exc, status=exc.status)
    return RedirectResponse(f"{BASE}/{community_id}?invited={len(done.added)}", status_code=303)


@router.post("/loyalty/communities/{community_id}/status", response_class=HTMLResponse, include_in_schema=False)
async def community_status(page: Annotated[Page, Depends(need("loyalty.write"))], community_id: int) -> Response:
    form = await page.request.form()
    status = str(form.get("status") or "")
    try:
        await run_in_threadpool(communities.set_status, page.request.app.state.state_store, community_id, status)
    except OmnicrmError as exc:
        return await _community(page, community_id, error=exc, status=exc.status)
    return RedirectResponse(f"{BASE}/{community_id}", status_code=303)


def _moment(text: str, zone: ZoneInfo, field: str, problems: list[Problem], t: Any) -> dt.datetime | None:
    """A ``datetime-local`` value in the merchant's time zone."""
    if not text.strip():
        return None
    try:
        return dt.datetime.fromisoformat(text.strip()).replace(tzinfo=zone)
    except ValueError:
        problems.append(Problem(t("community.error.time"), field))
        return None


@router.post("/loyalty/communities/{community_id}/events", response_class=HTMLResponse, include_in_schema=False)
async def event_create(page: Annotated[Page, Depends(need("loyalty.write"))], community_id: int) -> Response:
    app = page.request.app.state
    form = await page.request.form()
    values = {f: str(form.get(f) or "") for f in EVENT_FIELDS}
    zone, problems = ZoneInfo(app.settings.timezone), list[Problem]()
    times = {f: _moment(values[f], zone, f, problems, page.t) for f in ("starts_at", "ends_at", "signup_closes_at")}
    capacity = int(values["capacity"]) if values["capacity"].strip().isdigit() else -1

    def work() -> events.Event:
        if problems:
            raise InputError(page.t("community.error.form"), problems)
        return events.create_event(
            app.state_store, community_id=community_id, title_zh=values["title_zh"], title_en=values["title_en"],
            store_code=values["store_code"], venue=values["venue"], capacity=capacity, by=_by(page), **times,
        )  # fmt: skip

    try:
        made = await run_in_threadpool(work)
    except OmnicrmError as exc:
        return await _community(page, community_id, values=values, error=exc, status=exc.status)
    return RedirectResponse(f"{BASE}/events/{made.id}", status_code=303)


# --- one event -----------------------------------------------------------------------------------------------------


async def _event(page: Page, event_id: int, *, status: str = "", p: int = 1, error: str | None = None,
                 code: int = 200) -> Response:  # fmt: skip
    app = page.request.app.state

    def work() -> dict[str, Any]:
        event = events.get_event(app.state_store, event_id)
        community = None if event.community_id is None else communities.get_community(app.state_store,
                                                                                        event.community_id)  # fmt: skip
        rows, total = signups.sign_ups(app.state_store, event_id, status=status or None, limit=PAGE,
                                       offset=(p - 1) * PAGE)  # fmt: skip
        arrived, arrived_total = check_in.check_ins(app.state_store, event_id, limit=PAGE)
        report = attendance.event_attendance(app.state_store, event_id)
        return {"event": event, "community": community, "rows": rows, "total": total, "arrived": arrived,
                "arrived_total": arrived_total, "report": report}  # fmt: skip

    try:
        found = await run_in_threadpool(work)
    except NotFound as exc:
        return render(page, "error.html", status_code=404, message=exc.message)
    url = tokens.venue_url(app.settings.public_url, app.settings.secret_key, event_id)
    return render(
        page, "community/event.html", status_code=code, status=status, p=p, pages=_pages(found["total"]),
        statuses=signups.STATUSES, venue_url=url, venue_qr=tokens.qr_data_uri(url), phase=found["event"].phase(
            dt.datetime.now(dt.UTC)), error=error, when=time_formatter(app.settings), **found,
    )  # fmt: skip


@router.get("/loyalty/communities/events/{event_id}", response_class=HTMLResponse, include_in_schema=False)
async def event_show(
    page: Annotated[Page, Depends(need("loyalty.view"))], event_id: int,
    status: Annotated[str, Query(pattern="^(|confirmed|waiting|cancelled)$")] = "", p: Annotated[int, Query(ge=1)] = 1,
) -> Response:  # fmt: skip
    return await _event(page, event_id, status=status, p=p)


@router.post("/loyalty/communities/events/{event_id}/signups", response_class=HTMLResponse, include_in_schema=False)
async def event_sign_up(page: Annotated[Page, Depends(need("loyalty.write"))], event_id: int) -> Response:
    """Sign a person up by phone (through OneID) or by customer id."""
    app = page.request.app.state
    form = await page.request.form()
    phone, number = str(form.get("phone") or "").strip(), str(form.get("customer_id") or "").strip()

    def work() -> signups.SignUp:
        identity = app.derived.current("identity")
        if number and not number.isdigit():
            raise InputError(page.t("community.error.customer_id"), [Problem("digits", "customer_id")])
        customer = customer_of(identity, customer_id=int(number) if number else None, value=phone or None)
        return signups.sign_up(app.state_store, event_id, customer, by=_by(page))

    try:
        await run_in_threadpool(work)
    except OmnicrmError as exc:
        return await _event(page, event_id, error=page.t("community.signup_failed", reason=exc.message),
                            code=exc.status)  # fmt: skip
    return RedirectResponse(f"{BASE}/events/{event_id}", status_code=303)


@router.post("/loyalty/communities/events/{event_id}/signups/{customer_id}/cancel", response_class=HTMLResponse,
             include_in_schema=False)  # fmt: skip
async def event_sign_up_cancel(
    page: Annotated[Page, Depends(need("loyalty.write"))], event_id: int, customer_id: int
) -> Response:
    try:
        await run_in_threadpool(lambda: signups.cancel_sign_up(page.request.app.state.state_store, event_id,
                                                               customer_id, by=_by(page)))  # fmt: skip
    except OmnicrmError as exc:
        return await _event(page, event_id, error=page.t("community.cancel_failed", reason=exc.message),
                            code=exc.status)  # fmt: skip
    return RedirectResponse(f"{BASE}/events/{event_id}", status_code=303)


@router.post("/loyalty/communities/events/{event_id}/cancel", response_class=HTMLResponse, include_in_schema=False)
async def event_cancel(page: Annotated[Page, Depends(need("loyalty.write"))], event_id: int) -> Response:
    form = await page.request.form()
    reason = str(form.get("reason") or "")
    try:
        await run_in_threadpool(lambda: events.cancel_event(page.request.app.state.state_store, event_id,
                                                            reason=reason, by=_by(page)))  # fmt: skip
    except OmnicrmError as exc:
        return await _event(page, event_id, error=page.t("community.cancel_failed", reason=exc.message),
                            code=exc.status)  # fmt: skip
    return RedirectResponse(f"{BASE}/events/{event_id}", status_code=303)


@router.get("/loyalty/communities/tickets/{signup_id}", response_class=HTMLResponse, include_in_schema=False)
async def ticket(page: Annotated[Page, Depends(need("loyalty.view"))], signup_id: int) -> Response:
    """A sign-up's ticket: its QR code and code, to send or print (confirmed sign-ups only)."""
    app = page.request.app.state

    def work() -> tuple[signups.SignUp, events.Event]:
        found = signups.get_sign_up(app.state_store, signup_id)
        return found, events.get_event(app.state_store, found.event_id)

    try:
        found, event = await run_in_threadpool(work)
    except NotFound as exc:
        return render(page, "error.html", status_code=404, message=exc.message)
    code = tokens.ticket_token(app.settings.secret_key, signup_id) if found.status == "confirmed" else None
    return render(page, "community/ticket.html", signup=found, event=event, code=code,
                  qr=None if code is None else tokens.qr_data_uri(code), when=time_formatter(app.settings))  # fmt: skip


# --- the till --------------------------------------------------------------------------------------------------------


def _till(page: Page, *, done: check_in.CheckIn | None = None, event: events.Event | None = None,
          error: str | None = None, status: int = 200) -> Response:  # fmt: skip
    return render(page, "community/till.html", status_code=status, done=done, event=event, error=error,
                  key=secrets.token_urlsafe(16), when=time_formatter(page.request.app.state.settings))  # fmt: skip


@router.get("/till/check-in", response_class=HTMLResponse, include_in_schema=False)
async def till(page: Annotated[Page, Depends(need("till"))]) -> Response:
    return _till(page)


@router.post("/till/check-in", response_class=HTMLResponse, include_in_schema=False)
async def till_check_in(page: Annotated[Page, Depends(need("till"))]) -> Response:
    """Check a scanned or pasted ticket in; the form's key makes a second sending of the same form harmless."""
    app = page.request.app.state
    form = await page.request.form()
    ticket_code, key = str(form.get("ticket") or "")[:200], str(form.get("key") or "")[:64] or None

    def work() -> tuple[check_in.CheckIn, events.Event]:
        done = check_in.check_in_ticket(app.state_store, app.settings.secret_key, ticket_code, by=_by(page),
                                        idempotency_key=key)  # fmt: skip
        return done, events.get_event(app.state_store, done.event_id)

    try:
        done, event = await run_in_threadpool(work)
    except OmnicrmError as exc:
        reason = "; ".join(p.reason for p in exc.problems) or exc.message
        return _till(page, error=f"{exc.message} ({reason})", status=exc.status)
    return _till(page, done=done, event=event)
