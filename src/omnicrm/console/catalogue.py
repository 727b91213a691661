"""Console pages for the tag catalogue, the segment builder with its live count, and the list of users."""

from __future__ import annotations

import math
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from omnicrm.access.users import ROLES, list_users
from omnicrm.console.web import PREFIX, Page, need, render
from omnicrm.errors import OmnicrmError
from omnicrm.portrait.refresh import catalogue
from omnicrm.segments import saved
from omnicrm.segments.evaluate import SegmentEngine
from omnicrm.store.engine import Engine

__all__ = ["router"]

router = APIRouter(prefix=PREFIX)
PAGE = 25
EXAMPLES = (
    'rfm_segment = "champions" AND p_alive > 0.5',
    'lifecycle_stage IN ("cooling", "dormant") AND monetary > 1000',
    'bought category = "连衣裙" AT LEAST 2 TIMES IN LAST 90 DAYS AND NO order SINCE 2026-11-11',
    "acquired_double11 IS TRUE AND repeat_buyer IS FALSE",
)


def _paged(items: list[Any], page_no: int) -> tuple[list[Any], int]:
    pages = max(1, math.ceil(len(items) / PAGE))
    page_no = min(max(1, page_no), pages)
    return items[(page_no - 1) * PAGE : page_no * PAGE], pages


@router.get("/tags", response_class=HTMLResponse, include_in_schema=False)
async def tags(
    page: Annotated[Page, Depends(need("tags.view"))],
    q: Annotated[str, Query(max_length=100)] = "",
    category: Annotated[str, Query(max_length=32)] = "",
    p: Annotated[int, Query(ge=1)] = 1,
) -> Response:
    everything = [d.describe() for d in catalogue(page.request.app.state.state_store)]
    categories = sorted({d["category"] for d in everything})
    needle = q.strip().lower()
    chosen = [
        d
        for d in everything
        if (not category or d["category"] == category)
        and (not needle or needle in " ".join([d["id"], *d["name"].values(), *d["description"].values()]).lower())
    ]
    shown, pages = _paged(chosen, p)
    return render(
        page, "tags.html", tags=shown, total=len(chosen), q=q, category=category, categories=categories,
        p=min(p, pages), pages=pages,
    )  # fmt: skip


def _engine(page: Page) -> SegmentEngine:
    state = page.request.app.state
    return SegmentEngine(Engine(state.facts), state.derived, state=state.state_store)


@router.get("/segments", response_class=HTMLResponse, include_in_schema=False)
async def segments(
    page: Annotated[Page, Depends(need("segments.view"))], p: Annotated[int, Query(ge=1)] = 1
) -> Response:
    everything = await run_in_threadpool(saved.list_segments, page.request.app.state.state_store)
    shown, pages = _paged([s.as_dict() for s in reversed(everything)], p)  # newest first
    ready = page.request.app.state.derived.current("portrait") is not None
    fields = [d.describe() for d in catalogue(page.request.app.state.state_store)]
    return render(
        page, "segments.html", segments=shown, total=len(everything), p=min(p, pages), pages=pages,
        examples=EXAMPLES, fields=fields, ready=ready, text="", name="", error=None,
    )  # fmt: skip


@router.post("/segments/count", response_class=HTMLResponse, include_in_schema=False)
async def count(
    page: Annotated[Page, Depends(need("segments.view"))], text: Annotated[str, Form(max_length=4000)] = ""
) -> Response:
    """The live count while the rule is typed (an HTMX fragment)."""
    if not text.strip():
        return render(page, "segment_count.html", count=None, total=None, error=None, rule_text="")

    def work() -> tuple[int, int, str | None]:
        audience = _engine(page).audience(None, text)
        return audience.count, audience.total_customers, audience.text

    try:
        n, total, written = await run_in_threadpool(work)
    except OmnicrmError as exc:
        return render(page, "segment_count.html", count=None, total=None, error=str(exc), rule_text="")
    return render(page, "segment_count.html", count=n, total=total, error=None, rule_text=written or "")


@router.post("/segments", response_class=HTMLResponse, include_in_schema=False)
async def save(
    page: Annotated[Page, Depends(need("segments.write"))],
    name: Annotated[str, Form(max_length=128)] = "",
    text: Annotated[str, Form(max_length=4000)] = "",
    schedule: Annotated[str, Form(max_length=16)] = "daily",
) -> Response:
    user = page.user
    assert user is not None

    def work() -> saved.Segment:
        return saved.create_segment(
            page.request.app.state.state_store, _engine(page), name=name.strip(), rule=None, text=text,
            description="", schedule=schedule, by=f"console:{user.username}",
        )  # fmt: skip

    try:
        await run_in_threadpool(work)
    except OmnicrmError as exc:
        everything = await run_in_threadpool(saved.list_segments, page.request.app.state.state_store)
        shown, pages = _paged([s.as_dict() for s in reversed(everything)], 1)
        fields = [d.describe() for d in catalogue(page.request.app.state.state_store)]
        return render(
            page, "segments.html", status_code=exc.status, segments=shown, total=len(everything), p=1, pages=pages,
            examples=EXAMPLES, fields=fields, ready=True, text=text, name=name, error=str(exc),
        )  # fmt: skip
    return RedirectResponse(f"{PREFIX}/segments", status_code=303)


@router.get("/users", response_class=HTMLResponse, include_in_schema=False)
async def users(page: Annotated[Page, Depends(need("users.view"))]) -> Response:
    everyone = await run_in_threadpool(list_users, page.request.app.state.state_store)
    return render(page, "users.html", users=everyone, roles=ROLES)
