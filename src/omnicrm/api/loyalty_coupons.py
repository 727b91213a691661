"""Coupons through the API: templates, issuing, look-up, redemption (核销), reversal and the report.

Scopes: ``loyalty:read`` reads templates, coupons and the report; ``loyalty:write`` creates templates, issues
coupons (to a customer, a list or a saved segment's members, through ``coupons.issue_many``: the same batch key
never issues twice) and reverses redemptions; ``till`` redeems a coupon against an order amount, credited to the
store and guide. ``POST /coupons/issue`` (the campaigns' coupon channel) stays in ``api.coupons``; the till's
look-up and discount preview are in ``api.loyalty_till``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from omnicrm.api.customers import Key
from omnicrm.api.loyalty_programme import actor, known_member, plain
from omnicrm.errors import InputError, NotFound, Problem
from omnicrm.loyalty.coupon_redemptions import Redemption, ReportRow, redeem, report, reverse
from omnicrm.loyalty.coupons import (
    CHANNELS,
    Coupon,
    IssueResult,
    Template,
    coupon,
    create_template,
    get_template,
    issue_many,
    template_of,
)
from omnicrm.segments import saved
from omnicrm.segments.evaluate import SegmentEngine
from omnicrm.store.derived import DerivedStore
from omnicrm.store.engine import Engine
from omnicrm.store.facts import FactsStore
from omnicrm.store.schema import coupon_templates
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "coupon_json",
    "issue_json",
    "issue_to",
    "list_templates",
    "report_json",
    "router",
    "template_json",
]

router = APIRouter(prefix="/api/loyalty", tags=["loyalty coupons"])
LISTED = 1000  # coupons listed in an issue's answer; the counts cover every one


# --- what the console and the CLI share too ---------------------------------------------------------------------


def list_templates(state: StateStore) -> list[tuple[Template, ReportRow]]:
    """Every template, newest first, with its issued, redeemed and expired counts and the discount given."""
    counts = {r.key: r for r in report(state).templates}
    t = coupon_templates
    with state.connect() as conn:
        rows = conn.execute(select(t).order_by(t.c.created_at.desc(), t.c.id)).all()
    return [(template_of(r), counts.get(r.id) or ReportRow(r.id, 0, 0, 0, 0)) for r in rows]


def issue_to(
    state: StateStore, template_id: str, *, key: str, by: str, customer_ids: list[int] | None = None,
    segment_id: int | None = None, facts: FactsStore | None = None, derived: DerivedStore | None = None,
) -> IssueResult:  # fmt: skip
    """Issue one coupon of the template to each customer, or to each current member of a saved segment; the batch
    ``key`` makes a repeat issue nothing new (each coupon's key is ``<key>:<customer_id>``)."""
    if (customer_ids is None) == (segment_id is None):
        problem = Problem("give customer ids or a saved segment, not both", "segment_id")
        raise InputError("say whom to issue to", [problem])
    get_template(state, template_id)
    if segment_id is not None:
        assert facts is not None and derived is not None
        try:
            segment = saved.get_segment(state, segment_id)
        except NotFound as exc:
            raise NotFound(exc.message, [Problem("no such saved segment", "segment_id")]) from None
        members = SegmentEngine(Engine(facts), derived, state=state).audience(segment.rule).members
        customer_ids = [int(c) for c in members["customer_id"].to_pylist()]
    return issue_many(state, template_id, customer_ids or [], key=key, by=by)


def template_json(t: Template, counts: ReportRow | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {**plain(t), "channels": list(t.channels)}
    if counts is not None:
        out.update(issued=counts.issued, redeemed=counts.redeemed, expired=counts.expired,
                   left=t.total_quantity - counts.issued, discount_fen=counts.discount_fen,
                   redemption_rate=counts.redemption_rate)  # fmt: skip
    return out


def coupon_json(c: Coupon, at: datetime) -> dict[str, Any]:
    return {**plain(c), "status": "expired" if c.expired(at) else c.status, "qr_payload": c.qr_payload}


def issue_json(result: IssueResult, template_id: str, key: str) -> dict[str, Any]:
    refused: dict[str, int] = {}
    for why in result.refused.values():
        refused[why] = refused.get(why, 0) + 1
    listed = [*result.issued, *result.repeated][:LISTED]
    return {"template_id": template_id, "key": key, "issued": len(result.issued), "repeated": len(result.repeated),
            "refused": refused, "refused_customers": {str(c): w for c, w in list(result.refused.items())[:LISTED]},
            "coupons": [{"customer_id": c.customer_id, "code": c.code, "expires_at": c.expires_at}
                        for c in listed]}  # fmt: skip


def report_json(state: StateStore) -> dict[str, Any]:
    found = report(state)

    def rows(items: list[ReportRow]) -> list[dict[str, Any]]:
        return [{**plain(r), "redemption_rate": r.redemption_rate} for r in items]

    return {"at": found.at, "templates": rows(found.templates), "stores": rows(found.stores),
            "guides": rows(found.guides)}  # fmt: skip


# --- templates and issuing -----------------------------------------------------------------------------------------


class TemplateBody(BaseModel):
    id: str = Field(min_length=1, max_length=64, description="the template id campaigns and tiers name")
    name: str = Field(min_length=1, max_length=255)
    kind: str = Field(description="amount_off, percent_off or threshold")
    total_quantity: int = Field(description="most coupons ever issued from it (the budget)")
    per_person_limit: int = 1
    amount_off_fen: int | None = None
    percent_off: int | None = None
    max_off_fen: int | None = None
    min_spend_fen: int = 0
    category: str | None = Field(default=None, max_length=128)
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    valid_days: int | None = None
    channels: list[str] = Field(default_factory=lambda: list(CHANNELS))


class IssueBody(BaseModel):
    key: str = Field(min_length=1, max_length=200, description="the batch key: the same key never issues twice")
    customer_id: int | None = None
    customer_ids: list[int] | None = Field(default=None, max_length=100_000)
    segment_id: int | None = Field(default=None, description="a saved segment: its members now")


class RedeemBody(BaseModel):
    amount_fen: int = Field(description="the order's amount, in fen")
    channel: str = Field(default="store", description="store (at a till) or online")
    order_id: str | None = Field(default=None, max_length=255, description="the order, or the till's receipt")
    store_code: str | None = Field(default=None, max_length=64)
    guide_id: str | None = Field(default=None, max_length=64, description="the store guide credited")
    category_amounts: dict[str, int] | None = Field(default=None, description="for a category coupon")
    customer_id: int | None = Field(default=None, description="the member at the till: the coupon must be theirs")


class ReverseBody(BaseModel):
    order_id: str = Field(min_length=1, max_length=255)
    reason: str = Field(max_length=500)


def _state(request: Request) -> StateStore:
    state: StateStore = request.app.state.state_store
    return state


@router.get("/coupon-templates", summary="Coupon templates, newest first, with what was issued and redeemed")
def templates(
    request: Request, key: Key, offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    found = list_templates(_state(request))
    return {"total": len(found), "offset": offset, "limit": limit,
            "templates": [template_json(t, n) for t, n in found[offset : offset + limit]]}  # fmt: skip


@router.post("/coupon-templates", summary="Create a coupon template (the same definition again is a no-op)",
             status_code=201)  # fmt: skip
def create(request: Request, key: Key, body: TemplateBody) -> dict[str, Any]:
    key.require("loyalty:write")
    made = create_template(_state(request), Template(**{**body.model_dump(), "channels": tuple(body.channels)}),
                           by=f"api:{key.name}")  # fmt: skip
    return template_json(made)


@router.get("/coupon-templates/{coupon_template_id}", summary="A coupon template with its counts")
def template(request: Request, key: Key, coupon_template_id: str) -> dict[str, Any]:
    key.require("loyalty:read")
    state = _state(request)
    found = get_template(state, coupon_template_id)
    counts = next((r for r in report(state).templates if r.key == found.id), None)
    return template_json(found, counts)


@router.post("/coupon-templates/{coupon_template_id}/issue",
             summary="Issue to a customer, a list or a saved segment's members; a key issues once")  # fmt: skip
async def issue(request: Request, key: Key, coupon_template_id: str, body: IssueBody) -> dict[str, Any]:
    key.require("loyalty:write")
    app = request.app.state
    ids = [body.customer_id] if body.customer_id is not None else body.customer_ids
    if body.customer_id is not None and body.customer_ids is not None:
        raise InputError("give customer_id or customer_ids, not both", [Problem("one of the two", "customer_ids")])

    def work() -> IssueResult:
        if body.customer_id is not None:
            known_member(app.state_store, app.derived.current("identity"), body.customer_id)
        return issue_to(app.state_store, coupon_template_id, key=body.key, by=f"api:{key.name}", customer_ids=ids,
                        segment_id=body.segment_id, facts=app.facts, derived=app.derived)  # fmt: skip

    return issue_json(await run_in_threadpool(work), coupon_template_id, body.key)


# --- coupons -----------------------------------------------------------------------------------------------------


@router.get("/coupons/report", summary="Issued, redeemed, expired and discount per template, store and guide")
async def coupon_report(request: Request, key: Key) -> dict[str, Any]:
    key.require("loyalty:read")
    return await run_in_threadpool(report_json, _state(request))


@router.get("/coupons/{coupon_code}", summary="A coupon by its code or QR text, with its template")
def look_up(request: Request, key: Key, coupon_code: str) -> dict[str, Any]:
    key.require("loyalty:read")
    state = _state(request)
    found = coupon(state, coupon_code)
    return {**coupon_json(found, utcnow()), "template": template_json(get_template(state, found.template_id))}


@router.post("/coupons/{coupon_code}/redeem", summary="Redeem (核销) a coupon on an order; a retry finds the first")
async def redeem_coupon(request: Request, key: Key, coupon_code: str, body: RedeemBody) -> dict[str, Any]:
    key.require("till")

    def work() -> Redemption:
        return redeem(_state(request), coupon_code, channel=body.channel, amount_fen=body.amount_fen,
                      order_id=body.order_id, store_code=body.store_code, guide_id=body.guide_id,
                      category_amounts=body.category_amounts, customer_id=body.customer_id,
                      by=actor(f"api:{key.name}"))  # fmt: skip

    done = await run_in_threadpool(work)
    return {**plain(done), "to_pay_fen": done.order_amount_fen - done.discount_fen}


@router.post("/coupons/{coupon_code}/reverse", summary="Reverse a redemption when its order was refunded")
async def reverse_coupon(request: Request, key: Key, coupon_code: str, body: ReverseBody) -> dict[str, Any]:
    key.require("loyalty:write")
    done = await run_in_threadpool(lambda: reverse(_state(request), coupon_code, order_id=body.order_id,
                                                   reason=body.reason, by=actor(f"api:{key.name}")))  # fmt: skip
    return {**plain(done.redemption), "usable_again": done.usable_again, "replayed": done.replayed}
