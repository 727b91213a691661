"""Console pages for coupons: templates (list and create), issuing a template to a saved segment's members, and
the redemption report by template, store and store guide.

Amounts are typed in yuan and kept in fen. Issuing carries a batch key, shown in the form and made when the form
was shown: sending the same form twice, or again after a timeout, issues nothing more (``coupons.issue_many``).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from omnicrm.api.loyalty_coupons import issue_json, issue_to, list_templates
from omnicrm.console.loyalty import fen_of, new_key, problem_of, shared
from omnicrm.console.web import PREFIX, Page, need, render
from omnicrm.errors import InputError, OmnicrmError, Problem
from omnicrm.loyalty.coupon_redemptions import report
from omnicrm.loyalty.coupons import CHANNELS, KINDS, Template, create_template
from omnicrm.segments.saved import list_segments

__all__ = ["router"]

router = APIRouter(prefix=PREFIX)
PAGE = 25
FIELDS = ("id", "name", "kind", "amount", "percent_off", "max_off", "min_spend", "category", "valid_days",
          "valid_until", "total_quantity", "per_person_limit")  # fmt: skip
ALIASES = {"amount_off_fen": "amount", "max_off_fen": "max_off", "min_spend_fen": "min_spend"}


def _whole(values: dict[str, str], field: str) -> int | None:
    text = values[field]
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{text!r} is not a whole number", [Problem("a whole number", field)]) from None


def _template(values: dict[str, str], channels: list[str], zone: ZoneInfo) -> Template:
    """The template the form describes; the loyalty code checks the rest and names the field at fault."""
    until = None
    if values["valid_until"]:
        try:  # the last day it can be used, in the merchant's time zone: valid until the midnight after it
            last = dt.date.fromisoformat(values["valid_until"])
        except ValueError:
            raise InputError("the last day is not a date", [Problem("YYYY-MM-DD", "valid_until")]) from None
        until = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), zone)
    amount = fen_of(values["amount"], "amount") if values["amount"] else None
    return Template(
        id=values["id"], name=values["name"], kind=values["kind"], total_quantity=_whole(values, "total_quantity") or 0,
        per_person_limit=_whole(values, "per_person_limit") or 1, amount_off_fen=amount,
        percent_off=_whole(values, "percent_off"),
        max_off_fen=fen_of(values["max_off"], "max_off") if values["max_off"] else None,
        min_spend_fen=fen_of(values["min_spend"], "min_spend") if values["min_spend"] else 0,
        category=values["category"] or None, valid_until=until, valid_days=_whole(values, "valid_days"),
        channels=tuple(channels),
    )  # fmt: skip


async def _coupons(
    page: Page, p: int = 1, *, status_code: int = 200, problem: dict[str, Any] | None = None,
    values: dict[str, str] | None = None, channels: list[str] | None = None, issued: dict[str, Any] | None = None,
    issue_problem: dict[str, Any] | None = None, issue_values: dict[str, str] | None = None, created: str = "",
) -> Response:  # fmt: skip
    state = page.request.app.state.state_store

    def work() -> dict[str, Any]:
        found = list_templates(state)
        pages = max(1, math.ceil(len(found) / PAGE))
        at = min(p, pages)
        return {"templates": found[(at - 1) * PAGE : at * PAGE], "all_templates": [t for t, _ in found],
                "segments": list(reversed(list_segments(state))), "pages": pages, "p": at,
                "total": len(found)}  # fmt: skip

    found = await run_in_threadpool(work)
    if problem is not None:
        problem["field"] = ALIASES.get(problem["field"], problem["field"])
    return render(
        page, "loyalty/coupons.html", status_code=status_code, problem=problem, kinds=KINDS, all_channels=CHANNELS,
        values=values or dict.fromkeys(FIELDS, "") | {"kind": "amount_off", "per_person_limit": "1"},
        channels=channels or list(CHANNELS), issued=issued, issue_problem=issue_problem,
        issue_values=issue_values or {"key": f"console-{new_key()[:12]}"}, created=created, **found, **shared(page),
    )  # fmt: skip


@router.get("/loyalty/coupons", response_class=HTMLResponse, include_in_schema=False)
async def coupons(
    page: Annotated[Page, Depends(need("loyalty.view"))], p: Annotated[int, Query(ge=1)] = 1,
    created: Annotated[str, Query(max_length=64)] = "",
) -> Response:  # fmt: skip
    """Templates with what was issued, redeemed and is left; for loyalty.write, the forms to create and issue."""
    return await _coupons(page, p, created=created)


@router.post("/loyalty/coupons/templates", response_class=HTMLResponse, include_in_schema=False)
async def create(page: Annotated[Page, Depends(need("loyalty.write"))]) -> Response:
    """Create a template; on any problem the form comes back as typed, with the field marked."""
    app = page.request.app.state
    user = page.user
    assert user is not None
    form = await page.request.form()
    values = {f: str(form.get(f) or "").strip() for f in FIELDS}
    channels = [str(c) for c in form.getlist("channels")]

    def work() -> Template:
        template = _template(values, channels, ZoneInfo(app.settings.timezone))
        return create_template(app.state_store, template, by=f"console:{user.username}")

    try:
        made = await run_in_threadpool(work)
    except OmnicrmError as exc:
        return await _coupons(page, status_code=exc.status, problem=problem_of(page, exc), values=values,
                              channels=channels)  # fmt: skip
    return await _coupons(page, created=made.id)


@router.post("/loyalty/coupons/issue", response_class=HTMLResponse, include_in_schema=False)
async def issue(page: Annotated[Page, Depends(need("loyalty.write"))]) -> Response:
    """Issue a template to a saved segment's members now; the batch key makes a repeat issue nothing more."""
    app = page.request.app.state
    user = page.user
    assert user is not None
    form = await page.request.form()
    values = {f: str(form.get(f) or "").strip() for f in ("template_id", "segment_id", "key")}

    def work() -> dict[str, Any]:
        if not values["key"]:
            raise InputError("the batch key is empty", [Problem("keep the key the form gave", "key")])
        try:
            segment = int(values["segment_id"])
        except ValueError:
            raise InputError("choose a saved segment", [Problem("choose one", "segment_id")]) from None
        result = issue_to(app.state_store, values["template_id"], key=values["key"], by=f"console:{user.username}",
                          segment_id=segment, facts=app.facts, derived=app.derived)  # fmt: skip
        return issue_json(result, values["template_id"], values["key"])

    try:
        issued = await run_in_threadpool(work)
    except OmnicrmError as exc:
        return await _coupons(page, status_code=exc.status, issue_problem=problem_of(page, exc), issue_values=values)
    return await _coupons(page, issued=issued, issue_values=values)


@router.get("/loyalty/coupons/report", response_class=HTMLResponse, include_in_schema=False)
async def redemption_report(
    page: Annotated[Page, Depends(need("loyalty.view"))], p: Annotated[int, Query(ge=1)] = 1
) -> Response:
    """Issued, redeemed, expired, redemption rate and discount per template, per store and per store guide."""
    found = await run_in_threadpool(report, page.request.app.state.state_store)
    pages = max(1, math.ceil(len(found.guides) / PAGE))
    at = min(p, pages)
    return render(
        page, "loyalty/coupon_report.html", report=found, guides=found.guides[(at - 1) * PAGE : at * PAGE], p=at,
        pages=pages, **shared(page),
    )  # fmt: skip
