"""Segments through the API: live counts while editing, saved segments, snapshots, diffs, overlap, CSV."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from omnicrm.api.customers import Key
from omnicrm.errors import NotFound
from omnicrm.segments import saved
from omnicrm.segments.evaluate import SegmentEngine
from omnicrm.store.engine import Engine

__all__ = ["router"]

router = APIRouter(prefix="/api/segments", tags=["segments"])
PAGE = 100


class RuleBody(BaseModel):
    rule: Any = Field(default=None, description="the rule as JSON (see docs/segments.md)")
    text: str | None = Field(default=None, description="or the rule as text, e.g. 'monetary > 1000 AND ...'")


class SegmentBody(RuleBody):
    name: str = Field(min_length=1, max_length=128)
    description: str = ""
    schedule: str = Field(default="daily", description="daily, weekly or manual snapshots")


class SegmentChange(RuleBody):
    name: str | None = None
    description: str | None = None
    schedule: str | None = None


def _engine(request: Request) -> SegmentEngine:
    state = request.app.state
    return SegmentEngine(Engine(state.facts), state.derived, state=state.state_store)


def _folder(request: Request) -> Any:
    return request.app.state.settings.derived_dir / "segments"


@router.post("/count", summary="Live count of a rule (JSON or text), with the rule as understood")
async def count(request: Request, key: Key, body: RuleBody) -> dict[str, Any]:
    key.require("segments:read")

    def work() -> dict[str, Any]:
        engine = _engine(request)
        audience = engine.audience(body.rule, body.text)
        return {"count": audience.count, "of": audience.total_customers, "rule": audience.rule, "text": audience.text}

    return await run_in_threadpool(work)


@router.get("", summary="Saved segments, oldest first, a page at a time")
def list_all(
    request: Request, key: Key, offset: int = Query(0, ge=0), limit: int = Query(PAGE, ge=1, le=1000)
) -> dict[str, Any]:
    key.require("segments:read")
    everything = saved.list_segments(request.app.state.state_store)
    return {
        "total": len(everything),
        "offset": offset,
        "limit": limit,
        "segments": [s.as_dict() for s in everything[offset : offset + limit]],
    }


@router.post("", summary="Save a segment (its rule must compile)", status_code=201)
async def create(request: Request, key: Key, body: SegmentBody) -> dict[str, Any]:
    key.require("segments:write")

    def work() -> dict[str, Any]:
        segment = saved.create_segment(
            request.app.state.state_store, _engine(request), name=body.name, rule=body.rule, text=body.text,
            description=body.description, schedule=body.schedule, by=f"api:{key.name}",
        )  # fmt: skip
        return segment.as_dict()

    return await run_in_threadpool(work)


@router.get("/{segment_id}", summary="A saved segment with its snapshots")
def get(request: Request, key: Key, segment_id: int) -> dict[str, Any]:
    key.require("segments:read")
    store = request.app.state.state_store
    return saved.get_segment(store, segment_id).as_dict() | {"snapshots": saved.snapshots(store, segment_id)}


@router.patch("/{segment_id}", summary="Change a segment's name, rule, description or schedule")
async def change(request: Request, key: Key, segment_id: int, body: SegmentChange) -> dict[str, Any]:
    key.require("segments:write")

    def work() -> dict[str, Any]:
        return saved.update_segment(
            request.app.state.state_store, _engine(request), segment_id, name=body.name, rule=body.rule,
            text=body.text, description=body.description, schedule=body.schedule,
        ).as_dict()  # fmt: skip

    return await run_in_threadpool(work)


@router.delete("/{segment_id}", summary="Delete a segment (its snapshots stay for campaigns that used them)")
def delete(request: Request, key: Key, segment_id: int) -> dict[str, Any]:
    key.require("segments:write")
    saved.delete_segment(request.app.state.state_store, segment_id)
    return {"deleted": segment_id}


@router.get("/{segment_id}/members", summary="Current members, a page at a time")
async def members(
    request: Request, key: Key, segment_id: int, offset: int = Query(0, ge=0), limit: int = Query(PAGE, ge=1, le=1000)
) -> dict[str, Any]:
    key.require("segments:read")

    def work() -> dict[str, Any]:
        segment = saved.get_segment(request.app.state.state_store, segment_id)
        audience = _engine(request).audience(segment.rule)
        ids = audience.members["customer_id"].to_pylist()
        return {"count": len(ids), "offset": offset, "limit": limit, "customer_ids": ids[offset : offset + limit]}

    return await run_in_threadpool(work)


@router.post("/{segment_id}/snapshots", summary="Freeze the members now", status_code=201)
async def snapshot(request: Request, key: Key, segment_id: int) -> dict[str, Any]:
    key.require("segments:write")
    return await run_in_threadpool(
        saved.take_snapshot, request.app.state.state_store, _engine(request), _folder(request), segment_id
    )


@router.get("/{segment_id}/diff", summary="Who entered and who exited between two snapshots")
def diff(request: Request, key: Key, segment_id: int, before: int, after: int) -> dict[str, Any]:
    key.require("segments:read")
    store = request.app.state.state_store
    own = {s["id"] for s in saved.snapshots(store, segment_id)}
    if before not in own or after not in own:
        raise NotFound(f"snapshots {before} and {after} must both belong to segment {segment_id}")
    changes = saved.diff(store, before, after)
    return {name: table["customer_id"].to_pylist() for name, table in changes.items()}


@router.get("/{segment_id}/export.csv", summary="Current members with chosen tags, as CSV")
async def export(
    request: Request, key: Key, segment_id: int, tags: str = Query("", description="comma-separated tag ids")
) -> PlainTextResponse:
    key.require("segments:read")
    columns = [t for t in tags.split(",") if t]

    def work() -> str:
        segment = saved.get_segment(request.app.state.state_store, segment_id)
        return saved.export_csv(_engine(request), segment.rule, columns)

    text = await run_in_threadpool(work)
    stamp = f"{dt.datetime.now(dt.UTC):%Y%m%d}"
    return PlainTextResponse(
        text, media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="segment-{segment_id}-{stamp}.csv"'},
    )  # fmt: skip


@router.post("/overlap", summary="How many customers two or more saved segments share")
async def overlap(request: Request, key: Key, ids: list[int]) -> dict[str, Any]:
    key.require("segments:read")
    store = request.app.state.state_store
    rules = {str(i): saved.get_segment(store, i).rule for i in ids}
    return await run_in_threadpool(saved.overlap, _engine(request), rules)
