"""Campaigns through the API: create, launch (or schedule), cancel, read the send log, settle sends in doubt.

Sending itself is done by the server's campaign worker (or ``omnicrm campaigns run``), never inside a
request: a request only changes what should happen.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from omnicrm.api.customers import Key
from omnicrm.campaigns import definition, log, measure
from omnicrm.campaigns.launch import Marketing, launch
from omnicrm.store.engine import Engine

__all__ = ["System", "marketing", "router"]

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"])
PAGE = 50


def marketing(request: Request) -> Iterator[Marketing]:
    """The campaign system for one request; its channel connections are closed when the request ends."""
    with Marketing.of(request.app.state.settings, request.app.state.state_store) as system:
        yield system


System = Annotated[Marketing, Depends(marketing)]


class Decision(BaseModel):
    decision: Literal["resend", "mark_sent"]


@router.get("", summary="Campaigns, newest first, a page at a time")
def list_all(request: Request, key: Key, offset: int = Query(0, ge=0),
             limit: int = Query(PAGE, ge=1, le=500)) -> dict[str, Any]:  # fmt: skip
    key.require("campaigns:read")
    page, total = definition.list_campaigns(request.app.state.state_store, limit=limit, offset=offset)
    return {"total": total, "offset": offset, "limit": limit, "campaigns": [c.as_dict() for c in page]}


@router.post("", summary="Create a draft campaign (content, channel and segment are checked)", status_code=201)
def create(key: Key, system: System, body: definition.CampaignSpec) -> dict[str, Any]:
    key.require("campaigns:write")
    return definition.create_campaign(
        system.state, system.channels, system.settings, body, by=f"api:{key.name}"
    ).as_dict()


@router.get("/results/channels", summary="Reach, conversions, revenue, cost, uplift and ROI per channel")
async def channel_results(request: Request, key: Key) -> dict[str, Any]:
    key.require("campaigns:read")
    app = request.app.state

    def work() -> dict[str, Any]:
        rows = measure.channel_report(app.state_store, Engine(app.facts), app.derived)
        return {"channels": [r.as_dict() for r in rows]}

    return await run_in_threadpool(work)


@router.get("/{campaign_id}", summary="A campaign and its send log by arm, status and exclusion reason")
def show(request: Request, key: Key, campaign_id: int) -> dict[str, Any]:
    key.require("campaigns:read")
    state = request.app.state.state_store
    return {**definition.get_campaign(state, campaign_id).as_dict(), "log": log.log_summary(state, campaign_id)}


@router.get("/{campaign_id}/results", summary="Conversions, revenue and cost by arm; uplift with a 95% interval; ROI")
async def results(request: Request, key: Key, campaign_id: int) -> dict[str, Any]:
    key.require("campaigns:read")
    app = request.app.state

    def work() -> dict[str, Any]:
        return measure.measure_campaign(app.state_store, Engine(app.facts), app.derived, campaign_id).as_dict()

    return await run_in_threadpool(work)


@router.post("/{campaign_id}/launch", summary="Freeze the audience and draw the holdout, or schedule it")
async def start(key: Key, system: System, campaign_id: int) -> dict[str, Any]:
    key.require("campaigns:write")
    return await run_in_threadpool(launch, system, campaign_id)


@router.post("/{campaign_id}/cancel", summary="Stop sending; what was sent stays measured")
def cancel(request: Request, key: Key, campaign_id: int) -> dict[str, Any]:
    key.require("campaigns:write")
    return definition.cancel_campaign(request.app.state.state_store, campaign_id).as_dict()


@router.get("/{campaign_id}/recipients", summary="The send log, a page at a time, by status or arm")
def recipients(
    request: Request, key: Key, campaign_id: int, status: str | None = None, arm: str | None = None,
    offset: int = Query(0, ge=0), limit: int = Query(PAGE, ge=1, le=1000),
) -> dict[str, Any]:  # fmt: skip
    key.require("campaigns:read")
    page, total = log.recipients_page(request.app.state.state_store, campaign_id, status=status, arm=arm,
                                      limit=limit, offset=offset)  # fmt: skip
    return {"total": total, "offset": offset, "limit": limit, "recipients": page}


@router.post("/{campaign_id}/in-doubt", summary="Decide sends a crash left in doubt: resend or count as sent")
def settle(request: Request, key: Key, campaign_id: int, body: Decision) -> dict[str, Any]:
    key.require("campaigns:write")
    changed = log.resolve_in_doubt(request.app.state.state_store, campaign_id, body.decision)
    return {"campaign_id": campaign_id, "decision": body.decision, "changed": changed}
