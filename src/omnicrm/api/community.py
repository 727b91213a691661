"""Interest communities, events and check-in through the API, and the public walk-in page.

- ``/api/community/...``: communities and their members and suggested members, events, sign-ups (by customer id or
  by an identifier OneID resolves), attendance, QR codes as SVG (scopes ``loyalty:read`` / ``loyalty:write``);
  ``POST /api/community/check-in`` checks a ticket in (scope ``till``).
- ``/e/{token}``: public; the signed venue token is the authority. GET shows a small page (Chinese or English) with a
  phone field; POST checks the walk-in in. The form carries a double-submit token (a cookie and a field that must
  match, and no foreign ``Origin``), and attempts are rate-limited per client address and per venue code.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from omnicrm.api.customers import Key
from omnicrm.community import attendance, check_in, communities, events, signups, tokens
from omnicrm.community.people import customer_of
from omnicrm.community.throttle import Throttle
from omnicrm.console.campaigns import time_formatter
from omnicrm.console.i18n import LANGUAGES, translator
from omnicrm.console.web import foreign_origin, language, templates
from omnicrm.errors import Conflict, InputError, NotFound, OmnicrmError, Problem
from omnicrm.store.engine import Engine
from omnicrm.store.state import utcnow

__all__ = ["router"]

router = APIRouter(tags=["community"])
PAGE = 50
FORM_COOKIE = "omnicrm_walk_in"
PER_ADDRESS = (10, 60.0)  # walk-in attempts per client address per minute
PER_VENUE = (300, 60.0)  # and per venue code per minute
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the page's URL carries the venue token
    "X-Robots-Tag": "noindex",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
}


class CommunityCreate(BaseModel):
    name_zh: str = Field(min_length=1, max_length=128)
    name_en: str = Field(min_length=1, max_length=128)
    interests: list[str] = Field(min_length=1, description="interest ids of the taxonomy: baking, hiking, fishing …")
    description: str | None = Field(default=None, max_length=4000)


class CommunityUpdate(BaseModel):
    status: Literal["active", "archived"]


class Identifier(BaseModel):
    type: str = Field(default="phone", description="phone, email, member_card, wechat_unionid …")
    value: str = Field(min_length=1, max_length=255)


class MembersAdd(BaseModel):
    customer_ids: list[int] = Field(default_factory=list, max_length=communities.MAX_INVITE)
    identifier: Identifier | None = Field(default=None, description="or one person by an identifier OneID knows")
    source: Literal["invited", "joined"] = Field(default="invited", description="staff invited them, or they joined")


class EventCreate(BaseModel):
    community_id: int | None = None
    title_zh: str = Field(min_length=1, max_length=200)
    title_en: str | None = Field(default=None, max_length=200)
    store_code: str | None = Field(default=None, max_length=64)
    venue: str | None = Field(default=None, max_length=255)
    starts_at: datetime = Field(description="with an offset, e.g. 2026-12-05T14:00:00+08:00")
    ends_at: datetime
    capacity: int = Field(ge=1, le=events.MAX_CAPACITY)
    signup_opens_at: datetime | None = None
    signup_closes_at: datetime | None = None
    checkin_opens_at: datetime | None = None
    checkin_closes_at: datetime | None = None


class EventCancel(BaseModel):
    reason: str = Field(min_length=1, max_length=1000)


class SignUpRequest(BaseModel):
    customer_id: int | None = None
    identifier: Identifier | None = Field(default=None, description="instead of customer_id")


class CheckInRequest(BaseModel):
    ticket: str = Field(min_length=1, max_length=200, description="the ticket code, as scanned from its QR code")
    idempotency_key: str | None = Field(default=None, max_length=255, description="a retry returns the first check-in")


def _app(request: Request) -> Any:
    return request.app.state


def _identity(request: Request) -> Any:
    return _app(request).derived.current("identity")


def _sign_up_dict(request: Request, s: signups.SignUp) -> dict[str, Any]:
    """A sign-up with its ticket (confirmed ones only: the waiting have no seat to check in to)."""
    out = s.as_dict()
    if s.status == "confirmed":
        out["ticket"] = tokens.ticket_token(_app(request).settings.secret_key, s.id)
        out["ticket_qr"] = f"/api/community/signups/{s.id}/ticket.svg"
    return out


def _person(request: Request, customer_id: int | None, identifier: Identifier | None) -> int:
    value = None if identifier is None else identifier.value
    kind = None if identifier is None else identifier.type
    return customer_of(_identity(request), customer_id=customer_id, id_type=kind, value=value)


# --- communities -----------------------------------------------------------------------------------------------------


@router.get("/api/community/communities", summary="Communities with member counts, the newest first")
def list_all(request: Request, key: Key, status: Literal["active", "archived"] | None = None,
             offset: int = Query(0, ge=0), limit: int = Query(PAGE, ge=1, le=500)) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    page, total = communities.list_communities(_app(request).state_store, status=status, limit=limit, offset=offset)
    return {"total": total, "offset": offset, "limit": limit, "communities": [c.as_dict() for c in page]}


@router.post("/api/community/communities", summary="Create a community from interests of the taxonomy", status_code=201)
def create(request: Request, key: Key, body: CommunityCreate) -> dict[str, Any]:
    key.require("loyalty:write")
    return communities.create_community(
        _app(request).state_store, name_zh=body.name_zh, name_en=body.name_en, interests=body.interests,
        description=body.description, by=f"api:{key.name}",
    ).as_dict()  # fmt: skip


@router.get("/api/community/communities/{community_id}", summary="A community and its member counts by source")
def show(request: Request, key: Key, community_id: int) -> dict[str, Any]:
    key.require("loyalty:read")
    return communities.get_community(_app(request).state_store, community_id).as_dict()


@router.patch("/api/community/communities/{community_id}", summary="Archive a community or make it active again")
def change(request: Request, key: Key, community_id: int, body: CommunityUpdate) -> dict[str, Any]:
    key.require("loyalty:write")
    return communities.set_status(_app(request).state_store, community_id, body.status).as_dict()


@router.get("/api/community/communities/{community_id}/suggestions",
            summary="Customers whose portrait interests match, not yet members; by city or store")  # fmt: skip
async def suggestions(
    request: Request, key: Key, community_id: int, city: str | None = None, store: str | None = None,
    offset: int = Query(0, ge=0), limit: int = Query(PAGE, ge=1, le=1000),
) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    app = _app(request)

    def work() -> dict[str, Any]:
        from omnicrm.community.suggest import suggest_members  # the analytic engine, only when asked

        community = communities.get_community(app.state_store, community_id)
        found = suggest_members(Engine(app.facts), app.derived, community, state=app.state_store, city=city,
                                store=store, limit=limit, offset=offset)  # fmt: skip
        return {"total": found.total, "offset": offset, "limit": limit, "customers": found.rows}

    return await run_in_threadpool(work)


@router.get("/api/community/communities/{community_id}/members", summary="Current members, the newest first")
def member_list(request: Request, key: Key, community_id: int, offset: int = Query(0, ge=0),
                limit: int = Query(PAGE, ge=1, le=1000)) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    state = _app(request).state_store
    communities.get_community(state, community_id)
    page, total = communities.members(state, community_id, limit=limit, offset=offset)
    return {"total": total, "offset": offset, "limit": limit, "members": [m.as_dict() for m in page]}


@router.post("/api/community/communities/{community_id}/members", summary="Invite customers, or record a join")
def add(request: Request, key: Key, community_id: int, body: MembersAdd) -> dict[str, Any]:
    key.require("loyalty:write")
    ids = list(body.customer_ids)
    if body.identifier is not None:
        ids.append(_person(request, None, body.identifier))
    state, by = _app(request).state_store, f"api:{key.name}"
    if body.source == "joined" and len(ids) == 1:
        done = communities.join(state, community_id, ids[0], by=by)
    elif body.source == "joined":
        raise InputError("one person joins at a time; invite several", [Problem("give one customer", "customer_ids")])
    else:
        done = communities.invite(state, community_id, ids, by=by)
    return {"added": done.added, "already": done.already}


@router.delete("/api/community/communities/{community_id}/members/{customer_id}", summary="The customer leaves")
def remove(request: Request, key: Key, community_id: int, customer_id: int) -> dict[str, Any]:
    key.require("loyalty:write")
    return communities.leave(_app(request).state_store, community_id, customer_id, by=f"api:{key.name}").as_dict()


@router.get("/api/community/communities/{community_id}/attendance", summary="Attendance of every event of it")
def community_report(request: Request, key: Key, community_id: int) -> dict[str, Any]:
    key.require("loyalty:read")
    return attendance.community_attendance(_app(request).state_store, community_id).as_dict()


# --- events and sign-ups ---------------------------------------------------------------------------------------------


@router.get("/api/community/events", summary="Events, the latest start first (of one community if given)")
def event_list(request: Request, key: Key, community_id: int | None = None, offset: int = Query(0, ge=0),
               limit: int = Query(PAGE, ge=1, le=500)) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    page, total = events.list_events(_app(request).state_store, community_id=community_id, limit=limit, offset=offset)
    return {"total": total, "offset": offset, "limit": limit, "events": [e.as_dict() for e in page]}


@router.post("/api/community/events", summary="Create an event with its capacity and windows", status_code=201)
def event_create(request: Request, key: Key, body: EventCreate) -> dict[str, Any]:
    key.require("loyalty:write")
    return events.create_event(_app(request).state_store, by=f"api:{key.name}", **body.model_dump()).as_dict()


@router.get("/api/community/events/{event_id}", summary="An event, its attendance and its venue check-in URL")
def event_show(request: Request, key: Key, event_id: int) -> dict[str, Any]:
    key.require("loyalty:read")
    app = _app(request)
    event = events.get_event(app.state_store, event_id)
    url = tokens.venue_url(app.settings.public_url, app.settings.secret_key, event_id)
    return {**event.as_dict(), "phase": event.phase(utcnow()), "venue_url": url,
            "venue_qr": f"/api/community/events/{event_id}/venue.svg",
            "attendance": attendance.event_attendance(app.state_store, event_id).as_dict()}  # fmt: skip


@router.post("/api/community/events/{event_id}/cancel", summary="Cancel an event (sign-ups and check-ins stay)")
def event_cancel(request: Request, key: Key, event_id: int, body: EventCancel) -> dict[str, Any]:
    key.require("loyalty:write")
    return events.cancel_event(_app(request).state_store, event_id, reason=body.reason, by=f"api:{key.name}").as_dict()


@router.get("/api/community/events/{event_id}/signups", summary="Sign-ups in order; the waiting with their place")
def signup_list(
    request: Request, key: Key, event_id: int, status: Literal["confirmed", "waiting", "cancelled"] | None = None,
    offset: int = Query(0, ge=0), limit: int = Query(PAGE, ge=1, le=1000),
) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    state = _app(request).state_store
    events.get_event(state, event_id)
    page, total = signups.sign_ups(state, event_id, status=status, limit=limit, offset=offset)
    return {"total": total, "offset": offset, "limit": limit, "signups": [_sign_up_dict(request, s) for s in page]}


@router.post("/api/community/events/{event_id}/signups", summary="Sign a person up: a seat, or the waiting list")
def signup_create(request: Request, key: Key, event_id: int, body: SignUpRequest) -> dict[str, Any]:
    key.require("loyalty:write")
    customer = _person(request, body.customer_id, body.identifier)
    done = signups.sign_up(_app(request).state_store, event_id, customer, by=f"api:{key.name}")
    return _sign_up_dict(request, done)


@router.post("/api/community/events/{event_id}/signups/{customer_id}/cancel",
             summary="Cancel a sign-up; its seat goes to the first person waiting")  # fmt: skip
def signup_cancel(request: Request, key: Key, event_id: int, customer_id: int) -> dict[str, Any]:
    key.require("loyalty:write")
    done = signups.cancel_sign_up(_app(request).state_store, event_id, customer_id, by=f"api:{key.name}")
    return {"signup": done.sign_up.as_dict(), "promoted": [_sign_up_dict(request, p) for p in done.promoted],
            "repeated": done.repeated}  # fmt: skip


@router.get("/api/community/events/{event_id}/check-ins", summary="Check-ins, the latest first")
def checkin_list(request: Request, key: Key, event_id: int, offset: int = Query(0, ge=0),
                 limit: int = Query(PAGE, ge=1, le=1000)) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    state = _app(request).state_store
    events.get_event(state, event_id)
    page, total = check_in.check_ins(state, event_id, limit=limit, offset=offset)
    return {"total": total, "offset": offset, "limit": limit, "check_ins": [c.as_dict() for c in page]}


def _svg(text: str) -> Response:
    return Response(tokens.qr_svg(text), media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


@router.get("/api/community/events/{event_id}/venue.svg", summary="The venue QR code walk-ins scan (SVG)")
def venue_qr(request: Request, key: Key, event_id: int) -> Response:
    key.require("loyalty:read")
    app = _app(request)
    events.get_event(app.state_store, event_id)
    return _svg(tokens.venue_url(app.settings.public_url, app.settings.secret_key, event_id))


@router.get("/api/community/signups/{signup_id}/ticket.svg", summary="A confirmed sign-up's ticket QR code (SVG)")
def ticket_qr(request: Request, key: Key, signup_id: int) -> Response:
    key.require("loyalty:read")
    app = _app(request)
    found = signups.get_sign_up(app.state_store, signup_id)
    if found.status != "confirmed":
        raise Conflict(f"sign-up {signup_id} is {found.status}: only a seat has a ticket",
                       [Problem(found.status, "signup_id")])  # fmt: skip
    return _svg(tokens.ticket_token(app.settings.secret_key, signup_id))


@router.post("/api/community/check-in", summary="Check a ticket in at the door (scope till)")
def ticket_check_in(request: Request, key: Key, body: CheckInRequest) -> dict[str, Any]:
    key.require("till")
    app = _app(request)
    done = check_in.check_in_ticket(app.state_store, app.settings.secret_key, body.ticket, by=f"api:{key.name}",
                                    idempotency_key=body.idempotency_key)  # fmt: skip
    event = events.get_event(app.state_store, done.event_id)
    return {**done.as_dict(), "event": {"id": event.id, "title_zh": event.title_zh, "title_en": event.title_en}}


# --- the public walk-in page -----------------------------------------------------------------------------------------

_REFUSALS = {"phone": "community.walk_in.bad_phone", "checkin_opens_at": "community.walk_in.not_open",
             "checkin_closes_at": "community.walk_in.closed", "token": "community.walk_in.invalid"}  # fmt: skip


def _lang(request: Request) -> str:
    """The visitor's language: ``?lang=`` when it is one of ours, else the cookie or the browser's."""
    asked = request.query_params.get("lang")
    return asked if asked in LANGUAGES else language(request)


def _throttles(request: Request) -> tuple[Throttle, Throttle]:
    """This app's rate limits of the walk-in page: per client address, per venue code."""
    app = _app(request)
    found: tuple[Throttle, Throttle] | None = getattr(app, "walk_in_throttles", None)
    if found is None:
        found = app.walk_in_throttles = (Throttle(*PER_ADDRESS), Throttle(*PER_VENUE))
    return found


def _walk_in_page(
    request: Request, token: str, event: events.Event | None, *, status: int = 200, form: bool = False,
    message: str | None = None, done: check_in.CheckIn | None = None, phone: str = "",
    headers: dict[str, str] | None = None,
) -> HTMLResponse:  # fmt: skip
    """The page in the visitor's language (``?lang=`` or the browser's); with the form, a fresh form token whose
    cookie is scoped to this venue's address."""
    lang = _lang(request)
    form_token = secrets.token_urlsafe(24) if form else ""
    context = {"t": translator(lang), "lang": lang, "languages": LANGUAGES, "event": event, "token": token,
               "form": form, "form_token": form_token, "message": message, "done": done, "phone": phone,
               "when": time_formatter(_app(request).settings)}  # fmt: skip
    response = templates.TemplateResponse(request, "community/walk_in.html", context, status_code=status,
                                          headers={**_PAGE_HEADERS, **(headers or {})})  # fmt: skip
    if form:
        response.set_cookie(FORM_COOKIE, form_token, httponly=True, secure=request.url.scheme == "https",
                            samesite="strict", path=f"/e/{token}")  # fmt: skip
    return response


def _venue(request: Request, token: str) -> events.Event | None:
    """The event a venue token names, or None for a token that is not ours (or names no event)."""
    app = _app(request)
    try:
        return events.get_event(app.state_store, tokens.read_event_token(app.settings.secret_key, token))
    except (InputError, NotFound):
        return None


def _closed(request: Request, event: events.Event) -> str | None:
    """Why the event takes no check-in now, in the visitor's words; None while it does."""
    t = translator(_lang(request))
    try:
        events.open_for_check_in(event, utcnow())
    except Conflict as exc:
        if event.status == "cancelled":
            return t("community.walk_in.cancelled")
        field = exc.problems[0].field or ""
        return t(_REFUSALS.get(field, "community.walk_in.closed"), when=time_formatter(_app(request).settings)(
            event.checkin_opens_at))  # fmt: skip
    return None


@router.get("/e/{token}", summary="Walk-in check-in page of a venue QR code (public; the token is the authority)")
def walk_in_page(request: Request, token: str) -> HTMLResponse:
    event = _venue(request, token)
    if event is None:
        t = translator(_lang(request))
        return _walk_in_page(request, token, None, status=404, message=t("community.walk_in.invalid"))
    closed = _closed(request, event)
    return _walk_in_page(request, token, event, form=closed is None, message=closed)


@router.post("/e/{token}", summary="Check a walk-in in by phone (public; form token and rate limit)")
async def walk_in_post(request: Request, token: str) -> HTMLResponse:
    app = _app(request)
    event = await run_in_threadpool(_venue, request, token)
    t = translator(_lang(request))
    if event is None:
        return _walk_in_page(request, token, None, status=404, message=t("community.walk_in.invalid"))
    by_address, by_venue = _throttles(request)
    wait = by_address.wait(request.client.host if request.client else "unknown") or by_venue.wait(token)
    if wait:
        return _walk_in_page(request, token, event, status=429, message=t("community.walk_in.slow_down"),
                             headers={"Retry-After": str(int(wait) + 1)})  # fmt: skip
    form = await request.form()
    sent, cookie = str(form.get("form_token") or ""), request.cookies.get(FORM_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, sent) or foreign_origin(request):
        return _walk_in_page(request, token, event, status=403, form=True, message=t("community.walk_in.expired"))
    phone = str(form.get("phone") or "")[:64]
    try:
        done = await run_in_threadpool(check_in.walk_in, app.state_store, app.settings.secret_key, token, phone,
                                       identity=_identity(request))  # fmt: skip
    except OmnicrmError as exc:
        field = exc.problems[0].field if exc.problems else None
        if field == "event":  # cancelled meanwhile, or full
            now = await run_in_threadpool(_venue, request, token)
            gone = now is not None and now.status == "cancelled"
            key = "community.walk_in.cancelled" if gone else "community.walk_in.full"
        else:
            key = _REFUSALS.get(field or "", "community.walk_in.failed")
        again = field == "phone"
        return _walk_in_page(request, token, event, status=exc.status, form=again, phone=phone if again else "",
                             message=t(key, when=time_formatter(app.settings)(event.checkin_opens_at)))  # fmt: skip
    response = _walk_in_page(request, token, event, done=done)
    response.delete_cookie(FORM_COOKIE, path=f"/e/{token}")
    return response
