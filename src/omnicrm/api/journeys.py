"""Journeys through the API: list, create, read (entries and each step's send log), start, stop.

Entering, exiting and queueing steps is done by the server's campaign worker (or ``omnicrm journeys advance``),
never inside a request. Journeys are campaigns made of steps, so the campaign scopes guard them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from omnicrm.api.campaigns import System
from omnicrm.api.customers import Key
from omnicrm.campaigns import journeys

__all__ = ["router"]

router = APIRouter(prefix="/api/journeys", tags=["journeys"])
PAGE = 50


@router.get("", summary="Journeys, newest first, a page at a time")
def list_all(request: Request, key: Key, offset: int = Query(0, ge=0), limit: int = Query(PAGE, ge=1, le=500),
             status: str | None = Query(None, pattern="^(draft|live|stopped)$")) -> dict[str, Any]:  # fmt: skip
    key.require("campaigns:read")
    page, total = journeys.list_journeys(request.app.state.state_store, limit=limit, offset=offset, status=status)
    return {"total": total, "offset": offset, "limit": limit, "journeys": [j.as_dict() for j in page]}


@router.post("", summary="Create a draft journey: a trigger, steps (each a campaign) and an exit rule", status_code=201)
async def create(key: Key, system: System, body: journeys.JourneySpec) -> dict[str, Any]:
    key.require("campaigns:write")
    made = await run_in_threadpool(journeys.create_journey, system, body, by=f"api:{key.name}")
    return made.as_dict()


@router.get("/{journey_id}", summary="A journey, its entries by status and each step's send log")
def show(request: Request, key: Key, journey_id: int) -> dict[str, Any]:
    key.require("campaigns:read")
    return journeys.journey_summary(request.app.state.state_store, journey_id)


@router.post("/{journey_id}/start", summary="Go live: new orders enter customers from now on")
def start(key: Key, system: System, journey_id: int) -> dict[str, Any]:
    key.require("campaigns:write")
    return journeys.start_journey(system, journey_id).as_dict()


@router.post("/{journey_id}/stop", summary="Stop for good; what was sent stays measured")
def stop(key: Key, system: System, journey_id: int) -> dict[str, Any]:
    key.require("campaigns:write")
    return journeys.stop_journey(system, journey_id).as_dict()
