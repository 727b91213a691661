"""The till through the API: find a member or a coupon, see a coupon's discount before redeeming it, earn points
for a till sale (scope ``till``). Redeeming is ``POST /api/loyalty/coupons/{code}/redeem`` and spending
``POST /api/loyalty/members/{id}/spend``, both with the ``till`` scope too.

The look-up and the preview serve the console's till page as well: it shows the discount first, with the same
refusals a redemption would give, and redeems only when the clerk confirms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from omnicrm.api.customers import Key
from omnicrm.api.loyalty_coupons import coupon_json
from omnicrm.api.loyalty_programme import (
    actor,
    current_rules,
    earn_order,
    known_member,
    member_json,
    member_summary,
    plain,
)
from omnicrm.customers.search import Match, find_customers
from omnicrm.errors import Conflict, InputError, NotFound, OmnicrmError, Problem
from omnicrm.loyalty.coupon_redemptions import discount
from omnicrm.loyalty.coupons import Coupon, Template, coupon, get_template
from omnicrm.loyalty.locks import when
from omnicrm.store.schema import point_accounts
from omnicrm.store.state import StateStore, utcnow

__all__ = ["TILL_SOURCE", "Lookup", "Preview", "preview", "router", "till_lookup"]

router = APIRouter(prefix="/api/loyalty/till", tags=["loyalty till"])
TILL_SOURCE = "pos"  # till sales earn as source "pos", receipt number as order id: as the POS import names them


@dataclass(frozen=True)
class Preview:
    """What redeeming a coupon on an order would give, computed without redeeming it."""

    coupon: Coupon
    template: Template
    amount_fen: int
    eligible_fen: int
    discount_fen: int

    @property
    def to_pay_fen(self) -> int:
        return self.amount_fen - self.discount_fen


def preview(
    state: StateStore, code: str, amount_fen: int, *, channel: str = "store", customer_id: int | None = None,
    category_amounts: dict[str, int] | None = None, at: datetime | None = None,
) -> Preview:  # fmt: skip
    """The discount of the coupon with ``code`` on an order of ``amount_fen``, refused as ``redeem`` would refuse it
    (used, another member's, not yet valid, expired, another channel, threshold or category not met); writes
    nothing. ``redeem`` checks all of it again in its own transaction."""
    c = coupon(state, code)
    t = get_template(state, c.template_id)
    now = when(at, utcnow())
    if c.status == "redeemed":
        used = c.redeemed_at.isoformat() if c.redeemed_at else "before"
        raise Conflict(f"coupon {c.code} was already used on {used}", [Problem(f"used {used}", "code")])
    if customer_id is not None and customer_id != c.customer_id:
        raise InputError(f"coupon {c.code} belongs to another customer",
                         [Problem(f"not customer {customer_id}'s", "customer_id")])  # fmt: skip
    if now < c.starts_at:
        raise InputError(f"coupon {c.code} is valid from {c.starts_at.isoformat()}, not yet",
                         [Problem("not valid yet", "starts_at")])  # fmt: skip
    if now >= c.expires_at:
        raise InputError(f"coupon {c.code} expired on {c.expires_at.isoformat()}",
                         [Problem(f"expired {c.expires_at.isoformat()}", "expires_at")])  # fmt: skip
    if channel not in t.channels:
        raise InputError(f"coupon {c.code} cannot be used {'online' if channel == 'online' else 'in stores'}",
                         [Problem(f"redeemable {', '.join(t.channels)}", "channel")])  # fmt: skip
    eligible, off = discount(t, c.code, amount_fen, category_amounts)
    return Preview(c, t, amount_fen, eligible, off)


@dataclass
class Lookup:
    """What the till found for what was typed or scanned: a coupon (and its member), or members by identifier."""

    query: str
    coupon: Coupon | None = None
    members: list[int] = field(default_factory=list)
    matches: list[Match] = field(default_factory=list)
    error: OmnicrmError | None = None


def till_lookup(state: StateStore, identity: Path | None, portrait: Path | None, query: str) -> Lookup:
    """A coupon code or QR text finds the coupon and its member; otherwise a phone, member card or customer id
    finds members through OneID (a bare id the ledger holds is found even before the first OneID refresh)."""
    q = query.strip()
    out = Lookup(q)
    if not q:
        out.error = InputError("type or scan a phone, member card, coupon code or QR code", [Problem("empty", "q")])
        return out
    code_error: OmnicrmError | None = None
    try:
        out.coupon = coupon(state, q)
        out.members = [out.coupon.customer_id]
        return out
    except NotFound as exc:  # shaped like a code but unknown or mistyped: it may still be a member card
        code_error = exc
    except InputError:
        pass
    try:
        out.matches = find_customers(identity, portrait, q)
    except (InputError, NotFound) as exc:
        out.error = exc
    if not out.matches and re.fullmatch(r"\d{1,18}", q):
        with state.connect() as conn:
            held = conn.execute(select(point_accounts.c.customer_id).where(point_accounts.c.customer_id == int(q)))
            if held.first() is not None:
                out.error = None
                out.members = [int(q)]
                return out
    out.members = [m.customer_id for m in out.matches]
    if not out.members:
        out.error = code_error or out.error or NotFound(f"no member is found for {q!r}", [Problem("no match", "q")])
    return out


class TillEarnBody(BaseModel):
    customer_id: int
    receipt: str = Field(min_length=1, max_length=255, description="the receipt number: a sale earns once")
    amount: Decimal = Field(gt=0, max_digits=14, decimal_places=2, description="money paid, in yuan")
    store_code: str = Field(min_length=1, max_length=64)
    guide_id: str = Field(min_length=1, max_length=64)
    category: str | None = Field(default=None, max_length=128)


@router.get("/lookup", summary="Find members by phone, member card, id, coupon code or QR text")
async def till_find(
    request: Request, key: Key, q: Annotated[str, Query(max_length=200)],
    amount_fen: Annotated[int | None, Query(ge=0, description="with a coupon: preview its discount")] = None,
) -> dict[str, Any]:  # fmt: skip
    key.require("till")
    app = request.app.state
    state: StateStore = app.state_store

    def work() -> dict[str, Any]:
        found = till_lookup(state, app.derived.current("identity"), app.derived.current("portrait"), q)
        if found.error is not None and not found.members:
            raise found.error
        rules = current_rules(state)
        members = [member_json(member_summary(state, c, rules)) for c in found.members[:10]]
        out: dict[str, Any] = {"query": found.query, "coupon": None, "members": members}
        if found.coupon is not None:
            out["coupon"] = coupon_json(found.coupon, utcnow())
            if amount_fen is not None:
                p = preview(state, found.coupon.code, amount_fen, customer_id=found.coupon.customer_id)
                out["coupon"]["preview"] = {"amount_fen": p.amount_fen, "eligible_fen": p.eligible_fen,
                                            "discount_fen": p.discount_fen, "to_pay_fen": p.to_pay_fen}  # fmt: skip
        return plain(out)

    return await run_in_threadpool(work)


@router.post("/earn", summary="Points for a till sale under the saved rules; a receipt earns once")
async def till_earn(request: Request, key: Key, body: TillEarnBody) -> dict[str, Any]:
    key.require("till")
    app = request.app.state

    def work() -> dict[str, Any]:
        known_member(app.state_store, app.derived.current("identity"), body.customer_id)
        lot, new = earn_order(app.state_store, customer_id=body.customer_id, source=TILL_SOURCE, order_id=body.receipt,
                              paid=body.amount, channel="store", category=body.category,
                              by=actor(f"api:{key.name}", body.store_code, body.guide_id))  # fmt: skip
        return {"customer_id": body.customer_id, "earned": new, "points": lot.points if lot else 0, "lot": plain(lot)}

    return await run_in_threadpool(work)
