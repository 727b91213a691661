"""Giveaways through the API: lucky draws and red-packet drops with a budget, entered on behalf of a customer.

``POST /api/giveaways`` sets one up (``loyalty:write``); only the sha256 of its seed is shown until it closes, then
the seed. ``POST /api/giveaways/{id}/entries`` with ``{customer_id, idempotency_key}`` (the key may also come in the
``Idempotency-Key`` header) draws for the customer and pays the prize at once; the same key always answers with the
same entry (201 the first time, 200 after). ``GET …/verify`` recomputes every entry from the published seed.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, Field

from omnicrm.api.customers import Key
from omnicrm.api.errors import one_idempotency_key
from omnicrm.loyalty import giveaway_audit as audit
from omnicrm.loyalty import giveaways

__all__ = ["router"]

router = APIRouter(prefix="/api/giveaways", tags=["giveaways"])
PAGE = 50


class PrizeIn(BaseModel):
    kind: str = Field(description="points, coupon or gift")
    name: str
    weight: int = Field(description="odds: weight / (Σ weights + miss_weight)")
    points: int | None = None
    coupon_template_id: str | None = None
    value_fen: int | None = Field(default=None, description="money value against the budget (gifts; coupons without a "
                                  "face value); points are valued at point_value")  # fmt: skip
    stock: int | None = None


class GiveawayIn(BaseModel):
    id: str = Field(description="your id for it: 1-48 letters, digits, '-', '_' or '.'")
    name: str
    kind: str = Field(description="lucky_draw or red_packet")
    opens_at: datetime
    closes_at: datetime
    budget_fen: int = Field(description="most money value ever given, in fen; a red packet's total")
    prizes: list[PrizeIn] = Field(default_factory=list, description="lucky draw: the prizes and their odds")
    miss_weight: int = Field(default=0, description="lucky draw: the weight of drawing no prize")
    packets: int | None = Field(default=None, description="red packet: how many packets the budget is split into")
    point_value: Decimal = Field(default=Decimal("0.01"), description="money one point is worth, in yuan")
    points_valid_days: int | None = None
    per_person_daily: int | None = None
    per_person_total: int | None = None
    prizes_per_person: int | None = None
    eligible: list[int] | None = Field(default=None, description="only these customers may enter; null: everyone")
    timezone: str = Field(default="Asia/Shanghai", description="the zone whose days per_person_daily counts")


class EntryIn(BaseModel):
    customer_id: int = Field(description="the OneID customer entering")
    idempotency_key: str | None = Field(default=None, max_length=255, description="the same key, the same entry")


def _state(request: Request) -> Any:
    return request.app.state.state_store


@router.post("", summary="Set up a giveaway (idempotent by id); only the seed's sha256 is shown", status_code=201)
def create(request: Request, key: Key, body: GiveawayIn) -> dict[str, Any]:
    key.require("loyalty:write")
    prizes = tuple(giveaways.PrizeSpec(**p.model_dump()) for p in body.prizes)
    fields = body.model_dump(exclude={"prizes", "eligible"})
    spec = giveaways.GiveawaySpec(
        **fields, prizes=prizes, eligible=None if body.eligible is None else tuple(body.eligible)
    )
    return giveaways.create(_state(request), spec, by=f"api:{key.name}").as_dict()


@router.get("", summary="Giveaways, newest first, a page at a time")
def list_all(request: Request, key: Key, offset: int = Query(0, ge=0),
             limit: int = Query(PAGE, ge=1, le=500)) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    page, total = audit.list_giveaways(_state(request), limit=limit, offset=offset)
    return {"total": total, "offset": offset, "limit": limit, "giveaways": [g.as_dict() for g in page]}


@router.get("/{giveaway_id}", summary="A giveaway: terms, commitment (seed once closed) and its report")
def show(request: Request, key: Key, giveaway_id: str) -> dict[str, Any]:
    key.require("loyalty:read")
    found = audit.report(_state(request), giveaway_id)
    return {**found.giveaway.as_dict(), "report": found.as_dict()}


@router.post("/{giveaway_id}/entries", summary="Enter a customer: draw and pay at once (idempotent by key)",
             status_code=201)  # fmt: skip
def enter(
    request: Request, response: Response, key: Key, giveaway_id: str, body: EntryIn,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:write")
    one_idempotency_key(idempotency_key, body.idempotency_key)
    entry_key = body.idempotency_key or idempotency_key or ""
    entry = giveaways.enter(_state(request), giveaway_id, body.customer_id, idempotency_key=entry_key,
                            by=f"api:{key.name}")  # fmt: skip
    if entry.replayed:
        response.status_code = 200
    return entry.as_dict()


@router.get("/{giveaway_id}/entries", summary="The entries, newest first (or in entry order), a page at a time")
def list_entries(
    request: Request, key: Key, giveaway_id: str, offset: int = Query(0, ge=0),
    limit: int = Query(PAGE, ge=1, le=1000), order: str = Query("newest", pattern="^(newest|seq)$"),
) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    page, total = audit.entries(_state(request), giveaway_id, limit=limit, offset=offset,
                                newest_first=order == "newest")  # fmt: skip
    return {"total": total, "offset": offset, "limit": limit, "entries": [e.as_dict() for e in page]}


@router.post("/{giveaway_id}/close", summary="Stop entries now and publish the seed")
def close(request: Request, key: Key, giveaway_id: str) -> dict[str, Any]:
    key.require("loyalty:write")
    return giveaways.close(_state(request), giveaway_id, by=f"api:{key.name}").as_dict()


@router.get("/{giveaway_id}/verify", summary="Recompute every entry from the published seed (or the one given)")
def verify(request: Request, key: Key, giveaway_id: str, seed: str | None = Query(None, max_length=128)) -> Any:
    key.require("loyalty:read")
    return audit.verify(_state(request), giveaway_id, seed=seed).as_dict()
