"""Stored value through the API: a member's balance and ledger, the report, and what a till does with the money.

Reading needs ``loyalty:read``; top-ups, spends and refunds need ``till``; reversing an entry made in error needs
``loyalty:write``. Every change carries an idempotency key (in the body, and if given, the same in the
``Idempotency-Key`` header): a retried request returns the first one's entry with ``"replayed": true`` (status 200
instead of 201) and never moves the money twice. Amounts are whole fen.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, Field

from omnicrm.api.customers import Key
from omnicrm.api.errors import one_idempotency_key
from omnicrm.loyalty import stored_value as sv
from omnicrm.loyalty.stored_value_report import report as sv_report

__all__ = ["router"]

router = APIRouter(prefix="/api/stored-value", tags=["stored value"])
Fen = Annotated[int, Field(ge=1, le=sv.MAX_FEN, description="whole fen (¥1 = 100)")]
IdemHeader = Annotated[str | None, Header(alias="Idempotency-Key")]


class Change(BaseModel):
    store_code: str = Field(min_length=1, max_length=64, description="the store (or online shop)")
    guide_id: str | None = Field(default=None, max_length=64, description="the store guide (导购) who served")
    idempotency_key: str = Field(min_length=1, max_length=255, description="the same key, the same result")
    reference: str | None = Field(default=None, max_length=255, description="e.g. the till receipt")
    at: datetime | None = Field(default=None, description="when it happened, with a time zone (default: now)")


class TopUp(Change):
    paid_fen: Fen
    bonus_fen: int = Field(default=0, ge=0, le=sv.MAX_FEN, description="bonus given with it, spent after paid money")


class Spend(Change):
    amount_fen: Fen


class Refund(Change):
    spend_id: int = Field(ge=1, description="the spend's entry id")
    amount_fen: Fen | None = Field(default=None, description="default: all the spend still holds")
    reason: str | None = Field(default=None, max_length=2000)


class TopUpRefund(Change):
    topup_id: int = Field(ge=1, description="the top-up's entry id")
    reason: str = Field(min_length=1, max_length=2000)


class Reversal(BaseModel):
    entry_id: int = Field(ge=1, description="the top-up or spend made in error")
    reason: str = Field(min_length=1, max_length=2000)
    idempotency_key: str = Field(min_length=1, max_length=255)


def _till(key: Key, body: Change, header: str | None) -> sv.Till:
    one_idempotency_key(header, body.idempotency_key)
    return sv.Till(body.store_code, body.idempotency_key, f"api:{key.name}", body.guide_id, body.reference)


def _answer(response: Response, receipt: sv.Receipt) -> dict[str, Any]:
    response.status_code = 200 if receipt.replayed else 201
    return receipt.as_dict()


@router.get("/report", summary="Outstanding stored value (paid vs bonus), and top-ups and spends per store and day")
def report(
    request: Request, key: Key, since: date | None = None, until: date | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    found = sv_report(request.app.state.state_store, since=since, until=until, limit=limit, offset=offset)
    owed = found.liability
    return {
        "liability": {"as_of": owed.as_of.isoformat(), "paid_fen": owed.paid_fen, "bonus_fen": owed.bonus_fen,
                      "total_fen": owed.total_fen, "members": owed.members},
        "days": [d.as_dict() for d in found.days], "total": found.total_rows, "limit": limit, "offset": offset,
    }  # fmt: skip


@router.get("/{customer_id}", summary="A member's stored-value balance (paid and bonus)")
def show(request: Request, key: Key, customer_id: int) -> dict[str, Any]:
    key.require("loyalty:read")
    return sv.balance(request.app.state.state_store, customer_id).as_dict()


@router.get("/{customer_id}/entries", summary="A member's stored-value ledger, newest first")
def entries(
    request: Request, key: Key, customer_id: int, limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[int | None, Query(ge=1, description="entry id: the page before it")] = None,
) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    page = sv.history(request.app.state.state_store, customer_id, limit=limit, before=before)
    return {"customer_id": customer_id, "entries": [e.as_dict() for e in page],
            "next_before": page[-1].id if len(page) == limit else None}  # fmt: skip


@router.post("/{customer_id}/top-ups", summary="Top up: paid money, and bonus spent after it", status_code=201)
def top_up(
    request: Request, response: Response, key: Key, customer_id: int, body: TopUp, idempotency_key: IdemHeader = None
) -> dict[str, Any]:
    key.require("till")
    receipt = sv.top_up(request.app.state.state_store, customer_id, body.paid_fen, bonus_fen=body.bonus_fen,
                        till=_till(key, body, idempotency_key), at=body.at)  # fmt: skip
    return _answer(response, receipt)


@router.post("/{customer_id}/spends", summary="Pay from the balance (refused beyond it)", status_code=201)
def spend(
    request: Request, response: Response, key: Key, customer_id: int, body: Spend, idempotency_key: IdemHeader = None
) -> dict[str, Any]:
    key.require("till")
    receipt = sv.spend(request.app.state.state_store, customer_id, body.amount_fen,
                       till=_till(key, body, idempotency_key), at=body.at)  # fmt: skip
    return _answer(response, receipt)


@router.post("/{customer_id}/refunds", summary="Give a spend back, into the buckets it came from", status_code=201)
def refund(
    request: Request, response: Response, key: Key, customer_id: int, body: Refund, idempotency_key: IdemHeader = None
) -> dict[str, Any]:
    key.require("till")
    receipt = sv.refund(request.app.state.state_store, customer_id, body.spend_id, amount_fen=body.amount_fen,
                        reason=body.reason, till=_till(key, body, idempotency_key), at=body.at)  # fmt: skip
    return _answer(response, receipt)


@router.post("/{customer_id}/top-up-refunds", summary="Refund what is left of a top-up", status_code=201)
def refund_topup(
    request: Request, response: Response, key: Key, customer_id: int, body: TopUpRefund,
    idempotency_key: IdemHeader = None,
) -> dict[str, Any]:  # fmt: skip
    key.require("till")
    receipt = sv.refund_topup(request.app.state.state_store, customer_id, body.topup_id, reason=body.reason,
                              till=_till(key, body, idempotency_key), at=body.at)  # fmt: skip
    return _answer(response, receipt)


@router.post("/{customer_id}/reversals", summary="Reverse a top-up or spend made in error", status_code=201)
def reverse(
    request: Request, response: Response, key: Key, customer_id: int, body: Reversal,
    idempotency_key: IdemHeader = None,
) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:write")
    one_idempotency_key(idempotency_key, body.idempotency_key)
    receipt = sv.reverse(request.app.state.state_store, customer_id, body.entry_id, reason=body.reason,
                         by=f"api:{key.name}", idempotency_key=body.idempotency_key)  # fmt: skip
    return _answer(response, receipt)
