"""Referrals through the API, and the public landing of a referral link.

- ``GET/PUT /api/loyalty/referrals/programme``: the programme in force; saving makes a new version.
- ``GET /api/loyalty/referrals/members/{customer_id}``: a member's code, link and QR code (``.../qr.svg``).
- ``POST /api/loyalty/referrals``: the shop records that a person came with a code, or through a link visit
  (``visit_token``), identified by one identifier; 201 with the referral, 409 ``referral_refused`` with the reason
  and its explanation (the OneID link, the chain of referrals or the orders) when refused.
- ``GET /api/loyalty/referrals`` (a page, by status or referrer), ``GET .../report`` (per referrer, most rewarded
  first, and totals), ``POST .../settle`` (reward what is due, over the order facts).
- ``GET /r/{referral_code}``: public (the code is the authority). Records the visit and redirects to the
  programme's landing page with ``ref=<code>&ref_visit=<token>``; the token is also kept in a cookie for shop pages
  served on this site. The token is ``<visit id>.<mac>``: HMAC-SHA256 (first 12 bytes, base64url) with a key
  derived from ``settings.secret_key`` under its own label, so a visit cannot be made up or altered.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from omnicrm.api.customers import Key
from omnicrm.api.errors import one_idempotency_key
from omnicrm.api.links import TRACKED_HEADERS
from omnicrm.errors import Conflict, InputError, NotFound, Problem
from omnicrm.loyalty import referrals
from omnicrm.loyalty.earning import order_facts
from omnicrm.loyalty.referral_rewards import referral_page, referral_report, settle_referrals
from omnicrm.portrait.inputs import PortraitInputs
from omnicrm.store.engine import Engine
from omnicrm.store.state import utcnow

__all__ = ["COOKIE", "landing_url", "read_visit_token", "router", "visit_token"]

router = APIRouter(tags=["referrals"])
PREFIX = "/api/loyalty/referrals"
COOKIE = "omnicrm_ref"
COOKIE_DAYS = 30
_MAC_BYTES = 12
_NOT_VALID = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">
<title>邀请无效 / Invitation not valid</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;line-height:1.6}</style>
</head><body><h1>邀请无效</h1><p>这个邀请链接无效或活动已结束，请向邀请您的朋友确认。</p>
<p>This invitation link is not valid, or the programme has ended. Check with the friend who sent it.</p>
</body></html>"""


def _mac(secret: str, payload: bytes) -> str:
    key = hmac.new(secret.encode(), b"omnicrm referral visit v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]).rstrip(b"=").decode()


def visit_token(secret: str, visit_id: int) -> str:
    """The signed token of a link visit, ``<id>.<mac>``."""
    return f"{visit_id}.{_mac(secret, str(visit_id).encode())}"


def read_visit_token(secret: str, token: str) -> int:
    """The visit id of a token this product signed, or InputError naming the token."""
    number = token.partition(".")[0]
    if not number.isdigit() or len(token) > 64 or not hmac.compare_digest(visit_token(secret, int(number)), token):
        raise InputError("the referral visit token is not valid",
                         [Problem("altered, cut short or not issued here", "visit_token")])  # fmt: skip
    return int(number)


def landing_url(base: str, code: str, token: str) -> str:
    """The programme's landing page with the code (``ref``) and the visit token (``ref_visit``) added to its query."""
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ("ref", "ref_visit")]
    return urlunsplit(parts._replace(query=urlencode([*query, ("ref", code), ("ref_visit", token)])))


class RefereeIn(BaseModel):
    type: str = Field(min_length=1, max_length=32, description="phone, email, wechat_openid, member_card, ...")
    value: str = Field(min_length=1, max_length=255, description="as the person gave it")
    scope: str = Field(default="", max_length=128, description="the app id of an openid, the platform of a nick")


class RecordRequest(BaseModel):
    code: str | None = Field(default=None, max_length=32, description="the referrer's code, or give visit_token")
    visit_token: str | None = Field(default=None, max_length=128, description="ref_visit from the landing URL")
    referee: RefereeIn
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)


class ProgrammeRequest(BaseModel):
    programme: dict[str, Any] = Field(description="see ReferralProgramme: rewards, return window, dates, landing_url")
    note: str | None = Field(default=None, max_length=2000)


@router.get(f"{PREFIX}/programme", summary="The referral programme in force")
def programme(request: Request, key: Key) -> dict[str, Any]:
    key.require("loyalty:read")
    return referrals.load_programme(request.app.state.state_store).model_dump(mode="json")


@router.put(f"{PREFIX}/programme", summary="Save the referral programme as a new version")
def save(request: Request, key: Key, body: ProgrammeRequest) -> dict[str, Any]:
    key.require("loyalty:write")
    saved = referrals.save_programme(request.app.state.state_store, body.programme, by=f"api:{key.name}",
                                     note=body.note)  # fmt: skip
    return saved.model_dump(mode="json")


@router.get(f"{PREFIX}/members/{{customer_id}}", summary="A member's referral code, link and QR code")
def member(request: Request, key: Key, customer_id: int) -> dict[str, Any]:
    key.require("loyalty:read")
    app = request.app.state
    current, code = referrals.member_code(app.state_store, app.derived.current("identity"), customer_id)
    return {"customer_id": current, "code": code, "link": referrals.referral_link(app.settings.public_url, code),
            "qr_svg": f"{PREFIX}/members/{current}/qr.svg"}  # fmt: skip


@router.get(f"{PREFIX}/members/{{customer_id}}/qr.svg", summary="A member's referral link as a QR code (SVG)")
def member_qr(request: Request, key: Key, customer_id: int) -> Response:
    key.require("loyalty:read")
    app = request.app.state
    _, code = referrals.member_code(app.state_store, app.derived.current("identity"), customer_id)
    svg = referrals.qr_svg(referrals.referral_link(app.settings.public_url, code))
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "private, max-age=86400"})


@router.post(f"{PREFIX}", status_code=201, summary="Record that a person came with a referral code (idempotent)")
async def record(
    request: Request, key: Key, body: RecordRequest,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:write")
    one_idempotency_key(idempotency_key, body.idempotency_key)
    app = request.app.state
    visit = read_visit_token(app.settings.secret_key, body.visit_token) if body.visit_token else None
    found = await run_in_threadpool(
        referrals.record_referral, app.state_store, referee_type=body.referee.type, referee_value=body.referee.value,
        referee_scope=body.referee.scope, code=body.code, visit_id=visit, snapshot=app.derived.current("identity"),
        by=f"api:{key.name}", idempotency_key=idempotency_key or body.idempotency_key,
    )  # fmt: skip
    return found.as_dict()


@router.get(f"{PREFIX}", summary="Referrals, newest first, a page at a time")
def list_all(
    request: Request, key: Key, status: str | None = None, referrer_id: int | None = None,
    offset: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    page, total = referral_page(request.app.state.state_store, status=status, referrer_id=referrer_id, limit=limit,
                                offset=offset)  # fmt: skip
    return {"total": total, "offset": offset, "limit": limit, "referrals": [r.as_dict() for r in page]}


@router.get(f"{PREFIX}/report", summary="Referrals per referrer by status with rewards given; top referrers first")
def report(
    request: Request, key: Key, offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    return {"offset": offset, "limit": limit,
            **referral_report(request.app.state.state_store, limit=limit, offset=offset)}  # fmt: skip


@router.post(f"{PREFIX}/settle", summary="Reward referrals whose first order is past its return window; void others")
async def settle(request: Request, key: Key) -> dict[str, Any]:
    key.require("loyalty:write")
    app = request.app.state

    def work() -> dict[str, Any]:
        now = utcnow()
        orders = order_facts(PortraitInputs.load(Engine(app.facts), app.derived, as_of=now))
        done = settle_referrals(app.state_store, orders, now, snapshot=app.derived.current("identity"),
                                by=f"api:{key.name}")  # fmt: skip
        return done.__dict__

    return await run_in_threadpool(work)


@router.get("/r/{referral_code}", summary="A referral link: records the visit and goes to the shop (public)")
def landing(request: Request, referral_code: str) -> Response:
    app = request.app.state
    try:
        code = referrals.normalise_referral_code(referral_code)
        visit = referrals.record_visit(app.state_store, code, user_agent=request.headers.get("user-agent"))
        base = referrals.load_programme(app.state_store).landing_url
    except (InputError, NotFound, Conflict):
        return HTMLResponse(_NOT_VALID, status_code=404, headers=TRACKED_HEADERS)
    token = visit_token(app.settings.secret_key, visit)
    response = RedirectResponse(landing_url(base, code, token), status_code=302, headers=TRACKED_HEADERS)
    response.set_cookie(COOKIE, token, max_age=COOKIE_DAYS * 86400, httponly=True, samesite="lax",
                        secure=app.settings.public_url.startswith("https://"))  # fmt: skip
    return response
