"""Console pages for the loyalty programme: the hub, members (points, tier, lots, ledger, coupons, adjustments),
tiers and the points liability. Coupons are in ``console.loyalty_coupons``, the store clerk's page in
``console.till``; referrals, draws, communities, content and stored value have their own pages, linked from the hub.

What a page shows is what the API returns (``api.loyalty`` computes both). Errors are shown in the page: a
headline in the user's language chosen by the field at fault (``problem_of``), and the record-level detail the
loyalty code gave. Every change is a CSRF-protected form; an adjustment carries a key made when the form was shown,
so sending the same form twice adjusts once.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from omnicrm.api.loyalty_programme import (
    current_rules,
    issue_tier_coupons,
    known_member,
    member_summary,
    recent_tier_changes,
    saved_rules,
    tier_counts,
    tier_program,
)
from omnicrm.console.campaigns import time_formatter
from omnicrm.console.customers import mask
from omnicrm.console.i18n import catalogue
from omnicrm.console.web import PREFIX, Page, need, render
from omnicrm.customers.search import find_customers
from omnicrm.errors import InputError, NotFound, OmnicrmError, Problem
from omnicrm.loyalty.ledger import adjust, history, lots
from omnicrm.loyalty.liability import Liability, liability_report
from omnicrm.loyalty.tiers import evaluate_tiers

__all__ = ["fen_of", "new_key", "problem_of", "router", "shared", "yuan"]

router = APIRouter(prefix=PREFIX)
LEDGER = 25
CHANGES = 25
SECTIONS = ("members", "tiers", "coupons", "liability", "referrals", "draws", "communities", "content",
            "stored-value")  # fmt: skip


def yuan(fen: int | None) -> str:
    """Money in fen as the merchant reads it: ¥1,234.50."""
    return "—" if fen is None else f"¥{fen / 100:,.2f}"


def fen_of(text: str, field: str) -> int:
    """Money typed in yuan ("128", "99.5") as fen; anything else is an InputError naming ``field``."""
    try:
        value = Decimal(text.strip().replace(",", "").removeprefix("¥"))
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.01")) or value > 10**10:
        raise InputError(f"{text!r} is not an amount of money", [Problem("yuan, at most 2 decimals", field)])
    return int(value * 100)


def new_key() -> str:
    """A fresh idempotency key for a form: sending the form twice makes one change."""
    return uuid.uuid4().hex


def problem_of(page: Page, exc: OmnicrmError) -> dict[str, Any]:
    """An error as a page shows it: a headline in the page's language picked by the field at fault, the loyalty
    code's own message (naming the record) and the field, for the form to mark."""
    field = next((p.field for p in exc.problems if p.field), None) or ""
    field = field.rsplit(".", 1)[-1] if field.startswith(("body.", "tiers.")) else field
    known = catalogue(page.lang)
    title = page.t("loyalty.error.generic")
    for key in (f"loyalty.error.{exc.code}.{field}", f"loyalty.error.{field}", f"loyalty.error.{exc.code}"):
        if key in known:
            title = page.t(key)
            break
    reasons = [p.reason for p in exc.problems if p.reason and p.reason != exc.message]
    return {"title": title, "detail": exc.message, "reasons": reasons, "field": field, "status": exc.status}


def shared(page: Page) -> dict[str, Any]:
    """What every loyalty and till template uses: money, times, masking."""
    see_all = page.may("customers.identifiers")
    return {"yuan": yuan, "when": time_formatter(page.request.app.state.settings),
            "shown": lambda kind, value: value if see_all else mask(kind, value)}  # fmt: skip


# --- the hub -------------------------------------------------------------------------------------------------------


@router.get("/loyalty", response_class=HTMLResponse, include_in_schema=False)
async def hub(page: Annotated[Page, Depends(need("loyalty.view"))]) -> Response:
    """The loyalty sections, with the liability's headline figures."""
    state = page.request.app.state.state_store

    def work() -> tuple[Liability, int]:
        rules = current_rules(state)
        return liability_report(state, rules.point_value), rules.version

    owed, version = await run_in_threadpool(work)
    return render(page, "loyalty/hub.html", owed=owed, version=version, sections=SECTIONS, **shared(page))


# --- members -------------------------------------------------------------------------------------------------------


@router.get("/loyalty/members", response_class=HTMLResponse, include_in_schema=False)
async def members(
    page: Annotated[Page, Depends(need("loyalty.view"))], q: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    """Find a member by phone, member card, e-mail, nick or customer id; one match opens the member's page."""
    derived = page.request.app.state.derived
    matches: list[Any] = []
    problem = None
    if q.strip():
        try:
            identity, portrait = derived.current("identity"), derived.current("portrait")
            matches = await run_in_threadpool(find_customers, identity, portrait, q)
        except (InputError, NotFound) as exc:
            if q.strip().isdigit():  # before the first OneID refresh, an id is taken as it is
                return RedirectResponse(f"{PREFIX}/loyalty/members/{int(q)}", status_code=303)
            problem = problem_of(page, exc)
    if len(matches) == 1:
        return RedirectResponse(f"{PREFIX}/loyalty/members/{matches[0].customer_id}", status_code=303)
    return render(page, "loyalty/members.html", q=q, matches=matches, problem=problem, **shared(page))


async def _member(
    page: Page, customer_id: int, *, before: int | None = None, all_lots: bool = False, status_code: int = 200,
    problem: dict[str, Any] | None = None, values: dict[str, str] | None = None, done: str = "",
) -> Response:  # fmt: skip
    state = page.request.app.state.state_store

    def work() -> dict[str, Any]:
        entries = history(state, customer_id, limit=LEDGER + 1, before=before)
        return {"member": member_summary(state, customer_id, current_rules(state)),
                "lots": lots(state, customer_id, open_only=not all_lots), "entries": entries[:LEDGER],
                "older": entries[LEDGER - 1].id if len(entries) > LEDGER else None}  # fmt: skip

    found = await run_in_threadpool(work)
    return render(
        page, "loyalty/member.html", status_code=status_code, customer_id=customer_id, before=before,
        all_lots=all_lots, problem=problem, values=values or {"key": new_key()}, done=done, **found, **shared(page),
    )  # fmt: skip


@router.get("/loyalty/members/{customer_id}", response_class=HTMLResponse, include_in_schema=False)
async def member(
    page: Annotated[Page, Depends(need("loyalty.view"))], customer_id: int,
    before: Annotated[int | None, Query(ge=1)] = None, lots_shown: Annotated[str, Query(alias="lots")] = "open",
    done: Annotated[str, Query(pattern="^(|adjusted)$")] = "",
) -> Response:  # fmt: skip
    """Balance, tier and progress, coupons, lots and the ledger a page at a time (newest first)."""
    return await _member(page, customer_id, before=before, all_lots=lots_shown == "all", done=done)


@router.post("/loyalty/members/{customer_id}/adjust", response_class=HTMLResponse, include_in_schema=False)
async def adjust_points(page: Annotated[Page, Depends(need("loyalty.write"))], customer_id: int) -> Response:
    """A manual adjustment with its required reason, kept with the user's name."""
    app = page.request.app.state
    user = page.user
    assert user is not None
    form = await page.request.form()
    values = {f: str(form.get(f) or "").strip() for f in ("points", "reason", "key")}

    def work() -> None:
        try:
            points = int(values["points"])
        except ValueError:
            raise InputError(f"{values['points']!r} is not a whole number of points",
                             [Problem("e.g. 200 or -50", "points")]) from None  # fmt: skip
        known_member(app.state_store, app.derived.current("identity"), customer_id)
        adjust(app.state_store, customer_id, points, reason=values["reason"], by=f"console:{user.username}",
               idempotency_key=f"console-adjust:{values['key']}" if values["key"] else None)  # fmt: skip

    try:
        await run_in_threadpool(work)
    except OmnicrmError as exc:
        return await _member(page, customer_id, status_code=exc.status, problem=problem_of(page, exc), values=values)
    return RedirectResponse(f"{PREFIX}/loyalty/members/{customer_id}?done=adjusted#ledger", status_code=303)


# --- tiers -------------------------------------------------------------------------------------------------------


async def _tiers(page: Page, p: int, *, result: dict[str, Any] | None = None, problem: dict[str, Any] | None = None,
                 status_code: int = 200) -> Response:  # fmt: skip
    state = page.request.app.state.state_store

    def work() -> dict[str, Any]:
        rules = current_rules(state)
        changes, total = recent_tier_changes(state, limit=CHANGES, offset=(p - 1) * CHANGES)
        pages = max(1, math.ceil(total / CHANGES))
        if p > pages:
            changes, _ = recent_tier_changes(state, limit=CHANGES, offset=(pages - 1) * CHANGES)
        program = rules.tiers
        return {"rules": rules, "program": program, "counts": dict(tier_counts(state, program)) if program else {},
                "changes": changes, "total": total, "pages": pages, "p": min(p, pages)}  # fmt: skip

    found = await run_in_threadpool(work)
    return render(page, "loyalty/tiers.html", status_code=status_code, result=result, problem=problem, **found,
                  **shared(page))  # fmt: skip


@router.get("/loyalty/tiers", response_class=HTMLResponse, include_in_schema=False)
async def tiers(page: Annotated[Page, Depends(need("loyalty.view"))], p: Annotated[int, Query(ge=1)] = 1) -> Response:
    """The tier programme, members per tier and the tier changes, newest first."""
    return await _tiers(page, p)


@router.post("/loyalty/tiers/evaluate", response_class=HTMLResponse, include_in_schema=False)
async def evaluate(page: Annotated[Page, Depends(need("loyalty.write"))]) -> Response:
    """Review every member's tier now; upgrades are given their tier's coupons."""
    state = page.request.app.state.state_store
    user = page.user
    assert user is not None

    def work() -> dict[str, Any]:
        rules = saved_rules(state)
        changes = evaluate_tiers(state, tier_program(rules), rule_version=rules.version)
        kinds: dict[str, int] = {}
        for ch in changes:
            kinds[ch.change] = kinds.get(ch.change, 0) + 1
        return {"kinds": kinds, "coupons": issue_tier_coupons(state, changes, by=f"console:{user.username}")}

    try:
        result = await run_in_threadpool(work)
    except OmnicrmError as exc:
        return await _tiers(page, 1, problem=problem_of(page, exc), status_code=exc.status)
    return await _tiers(page, 1, result=result)


# --- the liability -------------------------------------------------------------------------------------------------


def _liability(page: Page) -> Liability:
    state = page.request.app.state.state_store
    return liability_report(state, current_rules(state).point_value)


@router.get("/loyalty/liability", response_class=HTMLResponse, include_in_schema=False)
async def liability(page: Annotated[Page, Depends(need("loyalty.view"))]) -> Response:
    """Outstanding points by the month they expire, in money; issued, redeemed, expired; breakage."""
    return render(page, "loyalty/liability.html", owed=await run_in_threadpool(_liability, page), **shared(page))


def liability_option(t: Callable[..., str], owed: Liability) -> dict[str, Any]:
    """The ECharts option: active and pending points stacked by expiry month, and their money on a second axis."""
    months = [t("loyalty.liability.never") if m.month == "never" else m.month for m in owed.months]
    return {
        "title": {"text": t("loyalty.liability.chart"), "left": "center", "textStyle": {"fontSize": 14}},
        "tooltip": {"trigger": "axis"},
        "legend": {"bottom": 0},
        "xAxis": {"type": "category", "data": months},
        "yAxis": [{"type": "value", "name": t("loyalty.points")}, {"type": "value", "name": "¥"}],
        "series": [
            {"type": "bar", "stack": "points", "name": t("loyalty.lot.active"),
             "data": [m.active for m in owed.months]},
            {"type": "bar", "stack": "points", "name": t("loyalty.lot.pending"),
             "data": [m.pending for m in owed.months]},
            {"type": "line", "yAxisIndex": 1, "name": t("loyalty.liability.money"),
             "data": [float(m.money) for m in owed.months]},
        ],
    }  # fmt: skip


@router.get("/loyalty/liability/chart", include_in_schema=False)
async def liability_chart(page: Annotated[Page, Depends(need("loyalty.view"))]) -> Response:
    return JSONResponse(liability_option(page.t, await run_in_threadpool(_liability, page)))
