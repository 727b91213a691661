"""The content library through the API: items, their links and shares, the report, recommendations; and the
public ``GET /c/{token}`` that records a view and redirects.

Reading needs ``loyalty:read``, changing ``loyalty:write``. ``/c/{token}`` is public: the signed token is the
authority. It sets a random browser id in a cookie (for counting unique viewers) and redirects to the item's stored
address; a token that is not ours, was altered, or names an item that is not live gets the small bilingual 404 page
of tracked links, and nothing is recorded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import pyarrow as pa
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from omnicrm.api.customers import Key
from omnicrm.api.links import NOT_FOUND_PAGE, TRACKED_HEADERS
from omnicrm.content import library, links, recommend, report, views
from omnicrm.errors import InputError, NotFound, Problem
from omnicrm.segments.evaluate import SegmentEngine
from omnicrm.store.engine import Engine
from omnicrm.store.state import utcnow

__all__ = ["VISITOR_COOKIE", "router"]

router = APIRouter(tags=["content"])
PAGE = 50
VISITOR_COOKIE = "omnicrm_cv"
VISITOR_DAYS = 365


class ItemFields(BaseModel):
    kind: str | None = Field(default=None, description="article, lecture or video (default article)")
    title_zh: str | None = Field(default=None, description="the Chinese title (required)")
    title_en: str | None = None
    summary_zh: str | None = None
    summary_en: str | None = None
    url: str | None = Field(default=None, description="the http(s) address a view is sent to")
    topics: list[str] | None = Field(default=None, description="interest ids; none: found in the title and summary")
    store_code: str | None = None
    community: str | None = None
    status: str | None = Field(default=None, description="draft (default), published or archived")
    publish_at: datetime | None = Field(default=None, description="live from (with a time zone); default: now")
    end_at: datetime | None = Field(default=None, description="live until, exclusive")


class ItemCreate(ItemFields):
    idempotency_key: str | None = Field(default=None, max_length=255, description="the same key, the same item")


class ItemChange(ItemFields):
    version: int | None = Field(default=None, description="the version read: a change made meanwhile is a 409")


class ShareRequest(BaseModel):
    customer_id: int = Field(description="the OneID customer who shares the item")
    channel: str = Field(description=f"one of {', '.join(links.CHANNELS)}")
    idempotency_key: str = Field(min_length=1, max_length=255, description="the same key, the same share")


def _settings(request: Request) -> Any:
    return request.app.state.settings


def _with_link(request: Request, item: library.Item) -> dict[str, Any]:
    settings = _settings(request)
    return {**item.as_dict(), "link": links.content_url(settings.public_url, settings.secret_key, item.id)}


@router.get("/api/content/items", summary="Items of the content library, newest first, a page at a time")
def list_items(
    request: Request, key: Key, status: str | None = None, kind: str | None = None, topic: str | None = None,
    q: str | None = Query(default=None, description="words of the title"), offset: int = Query(0, ge=0),
    limit: int = Query(PAGE, ge=1, le=500),
) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    page, total = library.list_items(request.app.state.state_store, status=status, kind=kind, topic=topic, query=q,
                                     limit=limit, offset=offset)  # fmt: skip
    return {"total": total, "offset": offset, "limit": limit, "items": [_with_link(request, it) for it in page]}


@router.post("/api/content/items", summary="Add an item (idempotent by key); topics checked or found", status_code=201)
def create_item(
    request: Request, key: Key, body: ItemCreate,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:write")
    if idempotency_key and body.idempotency_key and idempotency_key != body.idempotency_key:
        problem = Problem("the header and the body name different keys", "idempotency_key")
        raise InputError("two different idempotency keys", [problem])
    values = body.model_dump(exclude_unset=True, exclude={"idempotency_key"})
    item = library.create_item(request.app.state.state_store, values, by=f"api:{key.name}",
                               idempotency_key=idempotency_key or body.idempotency_key)  # fmt: skip
    return _with_link(request, item)


@router.get("/api/content/items/{content_id}", summary="One item, with its link for posting anywhere")
def show_item(request: Request, key: Key, content_id: int) -> dict[str, Any]:
    key.require("loyalty:read")
    return _with_link(request, library.get_item(request.app.state.state_store, content_id))


@router.patch("/api/content/items/{content_id}", summary="Change an item's fields or status (publish, archive)")
def change_item(request: Request, key: Key, content_id: int, body: ItemChange) -> dict[str, Any]:
    key.require("loyalty:write")
    changes = body.model_dump(exclude_unset=True, exclude={"version"})
    item = library.update_item(request.app.state.state_store, content_id, changes, version=body.version)
    return _with_link(request, item)


@router.get("/api/content/items/{content_id}/link", summary="The item's link for a channel, or for one customer")
def item_link(
    request: Request, key: Key, content_id: int, channel: str = "link",
    customer_id: int | None = Query(default=None, description="the customer it is sent to (their views are theirs)"),
) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    item = library.get_item(request.app.state.state_store, content_id)
    settings = _settings(request)
    url = links.content_url(settings.public_url, settings.secret_key, item.id, channel=channel, customer_id=customer_id)
    return {"item_id": item.id, "channel": channel, "customer_id": customer_id, "url": url}


@router.post("/api/content/items/{content_id}/shares", summary="A customer shares a live item: the link to pass on",
             status_code=201)  # fmt: skip
def share_item(request: Request, key: Key, content_id: int, body: ShareRequest) -> dict[str, Any]:
    key.require("loyalty:write")
    settings = _settings(request)
    made = links.share(
        request.app.state.state_store, content_id, body.customer_id, channel=body.channel,
        idempotency_key=body.idempotency_key, public_url=settings.public_url, secret_key=settings.secret_key,
    )  # fmt: skip
    return made.as_dict()


@router.get("/api/content/report", summary="Views, unique viewers and shares per item, channel and day")
def content_report(
    request: Request, key: Key, content_id: int | None = None, days: int = Query(30, ge=1, le=report.MAX_DAYS)
) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    state = request.app.state.state_store
    if content_id is not None:
        library.get_item(state, content_id)
    return report.content_report(state, item_id=content_id, days=days, timezone=_settings(request).timezone)


@router.get("/api/content/recommendations", summary="Live items ranked for a segment's members by their interests")
def segment_recommendations(
    request: Request, key: Key, segment_id: int, limit: int = Query(10, ge=1, le=recommend.MAX_LIMIT)
) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    app = request.app.state
    segments = SegmentEngine(Engine(app.facts), app.derived, state=app.state_store)
    return recommend.recommend(app.state_store, segments, segment_id, limit).as_dict()


@router.get("/api/content/customers/{customer_id}/recommendations", summary="A customer's top items not viewed yet")
def customer_recommendations(
    request: Request, key: Key, customer_id: int, n: int = Query(3, ge=1, le=recommend.MAX_PER_PERSON)
) -> dict[str, Any]:  # fmt: skip
    key.require("loyalty:read")
    app = request.app.state
    portrait = app.derived.current("portrait")
    if portrait is None:
        raise NotFound("there is no portrait yet; run `omnicrm refresh` first")
    asked = pa.table({"customer_id": [customer_id]})
    top = recommend.top_per_person(app.state_store, tags=portrait / "tags.parquet", customers=asked, n=n)
    items = {it.id: it for it in library.live_items(app.state_store, utcnow())}
    rows = [r for r in top.to_pylist() if r["item_id"] in items]
    return {
        "customer_id": customer_id,
        "items": [
            {"rank": r["rank"], "overlap": r["overlap"], "item": _with_link(request, items[r["item_id"]])} for r in rows
        ],
    }


@router.get("/c/{token}", summary="A content link: records the view and redirects (public; the token is the authority)")
def follow(request: Request, token: str) -> Response:
    settings = _settings(request)
    visitor = views.valid_visitor(request.cookies.get(VISITOR_COOKIE)) or views.new_visitor()
    try:
        view = views.record_view(
            request.app.state.state_store, secret_key=settings.secret_key, token=token, visitor=visitor,
            identity=request.app.state.derived.current("identity"),
        )  # fmt: skip
    except (InputError, NotFound):
        return HTMLResponse(NOT_FOUND_PAGE, status_code=404, headers=TRACKED_HEADERS)
    response = RedirectResponse(view.url, status_code=302, headers=TRACKED_HEADERS)
    response.set_cookie(VISITOR_COOKIE, visitor, max_age=VISITOR_DAYS * 86400, path="/c/", httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")  # fmt: skip
    return response
