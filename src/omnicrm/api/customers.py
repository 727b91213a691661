"""Customers through OneID: look up by any identifier, list identifiers with how they joined, join, split."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from omnicrm.access.api_keys import ApiKey, authenticate
from omnicrm.customers import view
from omnicrm.identity import explain as explaining
from omnicrm.identity import links

__all__ = ["router"]

router = APIRouter(prefix="/api/customers", tags=["customers"])


async def api_key(request: Request, authorization: Annotated[str | None, Header()] = None) -> ApiKey:
    token = authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else None
    return await run_in_threadpool(authenticate, request.app.state.state_store, token)


Key = Annotated[ApiKey, Depends(api_key)]


def _snapshot(request: Request) -> Any:
    return request.app.state.derived.current("identity")


class JoinRequest(BaseModel):
    customer_a: int
    customer_b: int
    reason: str = Field(min_length=1)


class SplitRequest(BaseModel):
    detach: list[str] = Field(min_length=1, description="identifier keys, as listed by GET /api/customers/{id}")
    reason: str = Field(min_length=1)


@router.get("/lookup", summary="Customers holding an identifier (given as written anywhere)")
def lookup(
    request: Request,
    key: Key,
    id_type: Annotated[str, Query(alias="type", description="phone, email, member_card, marketplace_nick, …")],
    value: str,
    scope: str = "",
) -> dict[str, Any]:
    key.require("customers:read")
    ids = explaining.lookup(_snapshot(request), id_type, value, scope)
    return {"type": id_type, "value": value, "customer_ids": ids, "shared": len(ids) > 1}


@router.get("/{customer_id}", summary="A customer's identifiers, each with the record and rule that joined it")
def identifiers(request: Request, key: Key, customer_id: int) -> dict[str, Any]:
    key.require("customers:read")
    return explaining.explain_customer(_snapshot(request), customer_id).as_dict()


@router.get("/{customer_id}/360", summary="Identifiers, tags with reasons, orders and a cross-channel timeline")
def customer_360(
    request: Request,
    key: Key,
    customer_id: int,
    limit: Annotated[int, Query(ge=1, le=200, description="timeline rows per page")] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
    kind: Annotated[list[str] | None, Query(description="order, event, message, profile (default: all)")] = None,
) -> dict[str, Any]:
    key.require("customers:read")
    state = request.app.state
    return view.customer_360(
        state.derived, state.state_store, customer_id, limit=limit, offset=offset, kinds=tuple(kind or view.KINDS)
    )


@router.post("/join", summary="Record that two customers are one person (applied by the next refresh)")
def join(request: Request, key: Key, body: JoinRequest) -> dict[str, Any]:
    key.require("customers:write")
    a, b = links.join_customers(
        request.app.state.state_store, _snapshot(request), body.customer_a, body.customer_b, reason=body.reason,
        by=f"api:{key.name}",
    )  # fmt: skip
    return {"must_link": [a, b], "applied": "at the next refresh"}


@router.post("/{customer_id}/split", summary="Record identifiers that are not this customer (next refresh)")
def split(request: Request, key: Key, customer_id: int, body: SplitRequest) -> dict[str, Any]:
    key.require("customers:write")
    pairs = links.split_customer(
        request.app.state.state_store, _snapshot(request), customer_id, body.detach, reason=body.reason,
        by=f"api:{key.name}",
    )  # fmt: skip
    return {"cannot_link": [list(p) for p in pairs], "applied": "at the next refresh"}
