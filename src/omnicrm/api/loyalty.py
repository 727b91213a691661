"""The loyalty programme through the API: members' points, the rules and tiers, the liability and the loyalty jobs.

Scopes: ``loyalty:read`` reads; ``loyalty:write`` runs the programme (earn for an order, adjust, refund, rules,
tiers, jobs); ``till`` is what a till does (spend points here; look-up, earn for a till sale and coupon redemption
in ``api.loyalty_till`` and ``api.loyalty_coupons``). Every change goes through ``omnicrm.loyalty``: one
transaction holding the member's lock, idempotent where a retry could double it (an order earns once; a spend
carries an idempotency key). What the console and the CLI show too is in ``api.loyalty_programme``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from omnicrm.api.customers import Key
from omnicrm.api.loyalty_programme import (
    actor,
    award_from_facts,
    based_on,
    current_rules,
    earn_order,
    issue_tier_coupons,
    known_member,
    member_json,
    member_summary,
    plain,
    recent_tier_changes,
    save_programme,
    saved_rules,
    templates_exist,
    tier_counts,
    tier_program,
)
from omnicrm.loyalty.earning import AwardResult
from omnicrm.loyalty.ledger import Lot, adjust, history, lots, spend
from omnicrm.loyalty.liability import liability_report
from omnicrm.loyalty.lifecycle import activate_due, expire_due
from omnicrm.loyalty.refunds import refund_order
from omnicrm.loyalty.rules import save_rules
from omnicrm.loyalty.tiers import evaluate_tiers
from omnicrm.store.engine import Engine
from omnicrm.store.state import StateStore

__all__ = ["router"]

router = APIRouter(prefix="/api/loyalty", tags=["loyalty"])
HISTORY = 50


# --- members -----------------------------------------------------------------------------------------------------


class EarnBody(BaseModel):
    source: str = Field(min_length=1, max_length=64, description="where the order came from: tmall, pos, web …")
    order_id: str = Field(min_length=1, max_length=255, description="with source, the order's key: it earns once")
    paid: Decimal = Field(gt=0, max_digits=14, decimal_places=2, description="money paid, in yuan")
    paid_at: dt.datetime | None = Field(default=None, description="when it was paid, with its offset; default now")
    channel: str | None = Field(default=None, max_length=64, description="for the channel rules; default the source")
    category: str | None = Field(default=None, max_length=128, description="for the category rules")


class SpendBody(BaseModel):
    points: int = Field(gt=0)
    idempotency_key: str = Field(min_length=1, max_length=200, description="a retry with it spends once")
    store_code: str = Field(min_length=1, max_length=64)
    guide_id: str = Field(min_length=1, max_length=64, description="the store guide who served the member")
    receipt: str | None = Field(default=None, max_length=255, description="the till's receipt number")


class AdjustBody(BaseModel):
    points: int = Field(description="above zero to credit, below zero to take")
    reason: str = Field(max_length=500, description="required: kept with the entry and who made it")
    expires_at: dt.datetime | None = Field(default=None, description="for a credit; default never")
    idempotency_key: str | None = Field(default=None, max_length=200)
    allow_negative: bool = Field(default=False, description="let a debit go below zero (the rest becomes a debt)")


class RefundBody(BaseModel):
    source: str = Field(min_length=1, max_length=64)
    order_id: str = Field(min_length=1, max_length=255)
    refunded_cents: int | None = Field(default=None, gt=0, description="money refunded now (fen); default all")
    reason: str | None = Field(default=None, max_length=500)


def _state(request: Request) -> StateStore:
    state: StateStore = request.app.state.state_store
    return state


def _identity(request: Request) -> Path | None:
    return request.app.state.derived.current("identity")


@router.get("/members/{customer_id}", summary="A member's points (available, pending, debt), tier and coupons")
async def member(request: Request, key: Key, customer_id: int) -> dict[str, Any]:
    key.require("loyalty:read")
    state = _state(request)
    return plain(member_json(await run_in_threadpool(lambda: member_summary(state, customer_id, current_rules(state)))))


@router.get("/members/{customer_id}/lots", summary="A member's lots with what is left of each, in drawing order")
def member_lots(request: Request, key: Key, customer_id: int, open_only: bool = False) -> dict[str, Any]:
    key.require("loyalty:read")
    return {"customer_id": customer_id, "lots": plain(lots(_state(request), customer_id, open_only=open_only))}


@router.get("/members/{customer_id}/history", summary="A member's ledger entries, newest first, by cursor")
def member_history(
    request: Request, key: Key, customer_id: int, limit: Annotated[int, Query(ge=1, le=500)] = HISTORY,
    before: Annotated[int | None, Query(ge=1, description="the next_before of the previous page")] = None,
) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    entries = history(_state(request), customer_id, limit=limit + 1, before=before)
    more = len(entries) > limit
    return {"customer_id": customer_id, "entries": plain(entries[:limit]),
            "next_before": entries[limit - 1].id if more else None}  # fmt: skip


@router.post("/members/{customer_id}/earn", summary="Points for one order under the saved rules; an order earns once")
async def earn(request: Request, key: Key, customer_id: int, body: EarnBody) -> dict[str, Any]:
    key.require("loyalty:write")
    state, identity = _state(request), _identity(request)

    def work() -> tuple[Lot | None, bool]:
        known_member(state, identity, customer_id)
        return earn_order(
            state, customer_id=customer_id, source=body.source, order_id=body.order_id, paid=body.paid,
            paid_at=body.paid_at, channel=body.channel, category=body.category, by=f"api:{key.name}",
        )  # fmt: skip

    lot, new = await run_in_threadpool(work)
    return {"customer_id": customer_id, "earned": new, "points": lot.points if lot else 0, "lot": plain(lot)}


@router.post("/members/{customer_id}/spend", summary="Spend points at a till (idempotency key; store and guide)")
async def spend_points(request: Request, key: Key, customer_id: int, body: SpendBody) -> dict[str, Any]:
    key.require("till")
    by = actor(f"api:{key.name}", body.store_code, body.guide_id)

    def work() -> Any:
        return spend(_state(request), customer_id, body.points, by=by, reference=body.receipt,
                     idempotency_key=body.idempotency_key)  # fmt: skip

    entry = await run_in_threadpool(work)
    return {"customer_id": customer_id, "entry": plain(entry)}


@router.post("/members/{customer_id}/adjust", summary="A manual adjustment: a reason is required, kept with the key")
async def adjust_points(request: Request, key: Key, customer_id: int, body: AdjustBody) -> dict[str, Any]:
    key.require("loyalty:write")
    state, identity = _state(request), _identity(request)

    def work() -> Any:
        known_member(state, identity, customer_id)
        return adjust(state, customer_id, body.points, reason=body.reason, by=f"api:{key.name}",
                      expires_at=body.expires_at, idempotency_key=body.idempotency_key,
                      allow_negative=body.allow_negative)  # fmt: skip

    return {"customer_id": customer_id, "entry": plain(await run_in_threadpool(work))}


@router.post("/orders/refund", summary="Take back an order's points for a refund (even points already spent)")
async def refund(request: Request, key: Key, body: RefundBody) -> dict[str, Any]:
    key.require("loyalty:write")
    state = _state(request)

    def work() -> Any:
        policy = current_rules(state).refund_shortfall
        return refund_order(state, body.source, body.order_id, refunded_cents=body.refunded_cents,
                            by=f"api:{key.name}", reason=body.reason, policy=policy)  # fmt: skip

    entry = await run_in_threadpool(work)
    return {"source": body.source, "order_id": body.order_id, "reversed": entry is not None, "entry": plain(entry)}


# --- rules, tiers, liability ---------------------------------------------------------------------------------------

Definition = Annotated[dict[str, Any], Body(description="JSON as documented in docs/loyalty.md")]
BaseVersion = Annotated[int | None, Query(ge=0, description="the version you changed; refused if it is no longer")]


@router.get("/rules", summary="The loyalty rules in force (earn rules, expiry, point value, tiers) and their version")
def get_rules(request: Request, key: Key) -> dict[str, Any]:
    key.require("loyalty:read")
    return plain(current_rules(_state(request)))


@router.put("/rules", summary="Save new loyalty rules as the next version (earlier lots keep theirs)")
def put_rules(request: Request, key: Key, body: Definition, base_version: BaseVersion = None) -> dict[str, Any]:
    key.require("loyalty:write")
    state = _state(request)
    based_on(state, base_version)
    templates_exist(state, body.get("tiers"), "tiers.")
    return plain(save_rules(state, {**body, "version": 0}, by=f"api:{key.name}", note="saved through the API"))


@router.get("/tiers", summary="The tier programme, members per tier and the latest tier changes")
def get_tiers(
    request: Request, key: Key, limit: Annotated[int, Query(ge=1, le=500)] = 50, offset: Annotated[int, Query(ge=0)] = 0
) -> dict[str, Any]:
    key.require("loyalty:read")
    state = _state(request)
    rules = current_rules(state)
    program = tier_program(rules)
    changes, total = recent_tier_changes(state, limit=limit, offset=offset)
    return {"version": rules.version, "programme": plain(program),
            "members": [{"tier": n, "members": c} for n, c in tier_counts(state, program)],
            "changes": {"total": total, "offset": offset, "limit": limit, "rows": changes}}  # fmt: skip


@router.put("/tiers", summary="Save a new tier programme (the rest of the rules unchanged) as the next version")
def put_tiers(request: Request, key: Key, body: Definition, base_version: BaseVersion = None) -> dict[str, Any]:
    key.require("loyalty:write")
    saved = save_programme(_state(request), body, by=f"api:{key.name}", base_version=base_version)
    return {"version": saved.version, "programme": plain(saved.tiers)}


@router.post("/tiers/evaluate", summary="Review every member's tier now; upgrades get their tier's coupons")
async def evaluate(request: Request, key: Key) -> dict[str, Any]:
    key.require("loyalty:write")
    state = _state(request)

    def work() -> dict[str, Any]:
        rules = saved_rules(state)
        changes = evaluate_tiers(state, tier_program(rules), rule_version=rules.version)
        counts: dict[str, int] = {}
        for ch in changes:
            counts[ch.change] = counts.get(ch.change, 0) + 1
        coupons = issue_tier_coupons(state, changes, by=f"api:{key.name}")
        return {"version": rules.version, "changes": counts, "coupons": coupons,
                "members": [{"customer_id": c.customer_id, "change": c.change, "from": c.from_tier, "to": c.to_tier}
                            for c in changes[:1000]]}  # fmt: skip

    return await run_in_threadpool(work)


@router.get("/liability", summary="Outstanding points by expiry month, in money, with breakage")
async def liability(request: Request, key: Key) -> dict[str, Any]:
    key.require("loyalty:read")
    state = _state(request)
    report = await run_in_threadpool(lambda: liability_report(state, current_rules(state).point_value))
    return {**plain(report), "balance": report.balance,
            "months": [{**plain(m), "points": m.points} for m in report.months]}  # fmt: skip


# --- jobs ------------------------------------------------------------------------------------------------------------

At = Annotated[dt.datetime | None, Query(description="the moment to run as, with its offset; default now")]


@router.post("/jobs/award", summary="Award points for every order in the facts (idempotent; refunds reverse)")
async def job_award(request: Request, key: Key, at: At = None) -> dict[str, Any]:
    key.require("loyalty:write")
    app = request.app.state

    def work() -> AwardResult:
        return award_from_facts(app.state_store, Engine(app.facts), app.derived, saved_rules(app.state_store),
                                now=at, by=f"api:{key.name}")  # fmt: skip

    return plain(await run_in_threadpool(work))


@router.post("/jobs/activate", summary="Activate the points whose return window has ended")
async def job_activate(request: Request, key: Key, at: At = None) -> dict[str, Any]:
    key.require("loyalty:write")
    return plain(await run_in_threadpool(activate_due, _state(request), at))


@router.post("/jobs/expire", summary="Expire the points whose date has come")
async def job_expire(request: Request, key: Key, at: At = None) -> dict[str, Any]:
    key.require("loyalty:write")
    return plain(await run_in_threadpool(expire_due, _state(request), at))
