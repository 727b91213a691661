"""The store clerk's till page: find a member, redeem a coupon (the discount first, then confirm), earn points
for a till sale, spend points; links to check-in and stored value, which have their own till pages.

A member is found by phone, member card or customer id (through OneID), or by a coupon's code or the text its QR
code carries. The store code and the guide credited are typed once and kept in cookies for the next sale. Every
action is a CSRF-protected form and safe to send twice: a redemption is keyed by its receipt, a till sale earns
once per receipt, and a spend carries a key made when the form was shown. Results and errors are shown in the
page, in the clerk's language.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from omnicrm.api.loyalty_programme import actor, current_rules, earn_order, known_member, member_summary
from omnicrm.api.loyalty_till import TILL_SOURCE, Lookup, preview, till_lookup
from omnicrm.console.loyalty import fen_of, new_key, problem_of, shared
from omnicrm.console.web import PREFIX, Page, need, render
from omnicrm.errors import InputError, OmnicrmError, Problem
from omnicrm.loyalty.coupon_redemptions import redeem
from omnicrm.loyalty.ledger import spend

__all__ = ["router"]

router = APIRouter(prefix=PREFIX)
STORE_COOKIE, GUIDE_COOKIE = "omnicrm_till_store", "omnicrm_till_guide"
FIELDS = ("customer_id", "code", "amount", "receipt", "earn_amount", "earn_receipt", "points", "spend_receipt",
          "spend_key", "store_code", "guide_id")  # fmt: skip


def _desk(page: Page, values: dict[str, str]) -> dict[str, str]:
    """The form's values, with the store and guide remembered from the last sale when not typed."""
    user = page.user
    cookies = page.request.cookies
    values.setdefault("store_code", "")
    values.setdefault("guide_id", "")
    values["store_code"] = values["store_code"] or cookies.get(STORE_COOKIE, "")
    values["guide_id"] = values["guide_id"] or cookies.get(GUIDE_COOKIE, "") or (user.username if user else "")
    values["spend_key"] = values.get("spend_key") or new_key()
    return values


def _needed(values: dict[str, str], *fields: str) -> None:
    missing = [Problem("required", f) for f in fields if not values.get(f)]
    if missing:
        raise InputError("fill in " + ", ".join(str(p.field) for p in missing), missing)


def _member_id(values: dict[str, str]) -> int:
    try:
        return int(values["customer_id"])
    except ValueError:
        raise InputError("find the member first", [Problem("find the member first", "customer_id")]) from None


async def _till(
    page: Page, *, q: str = "", member: int | None = None, values: dict[str, str] | None = None,
    problem: dict[str, Any] | None = None, form: str = "", result: dict[str, Any] | None = None,
    offer: dict[str, Any] | None = None, status_code: int = 200, remember: bool = False,
) -> Response:  # fmt: skip
    app = page.request.app.state
    state = app.state_store
    values = _desk(page, dict(values or {}))

    def work() -> dict[str, Any]:
        found: Lookup | None = None
        nonlocal member
        if q.strip():
            found = till_lookup(state, app.derived.current("identity"), app.derived.current("portrait"), q)
            if found.coupon is not None:
                values["code"] = found.coupon.code
            if len(found.members) == 1:
                member = found.members[0]
        summary = member_summary(state, member, current_rules(state)) if member is not None else None
        return {"lookup": found, "member": summary}

    found = await run_in_threadpool(work)
    lookup = found["lookup"]
    if problem is None and lookup is not None and lookup.error is not None and not lookup.members:
        problem, form, status_code = problem_of(page, lookup.error), "find", lookup.error.status
    if found["member"] is not None:
        values["customer_id"] = str(found["member"].customer_id)
    response = render(
        page, "till/till.html", status_code=status_code, q=q, values=values, problem=problem, form=form,
        result=result, offer=offer, **found, **shared(page),
    )  # fmt: skip
    if remember:
        for name, value in ((STORE_COOKIE, values["store_code"]), (GUIDE_COOKIE, values["guide_id"])):
            response.set_cookie(name, value, max_age=90 * 86400, path=f"{PREFIX}/till", httponly=True,
                                samesite="strict")  # fmt: skip
    return response


async def _form(page: Page) -> dict[str, str]:
    form = await page.request.form()
    return {f: str(form.get(f) or "").strip() for f in FIELDS}


@router.get("/till", response_class=HTMLResponse, include_in_schema=False)
async def till(
    page: Annotated[Page, Depends(need("till"))], q: Annotated[str, Query(max_length=200)] = "",
    member: Annotated[int | None, Query(ge=0)] = None, code: Annotated[str, Query(max_length=64)] = "",
) -> Response:  # fmt: skip
    """Find a member (phone, member card, id, coupon code or QR text) and act for them."""
    return await _till(page, q=q, member=member, values={"code": code})


@router.post("/till/redeem/preview", response_class=HTMLResponse, include_in_schema=False)
async def redeem_preview(page: Annotated[Page, Depends(need("till"))]) -> Response:
    """The coupon's discount on this order, with the same refusals a redemption gives; nothing is redeemed yet."""
    state = page.request.app.state.state_store
    values = _desk(page, await _form(page))
    member = int(values["customer_id"]) if values["customer_id"].isdigit() else None

    def work() -> dict[str, Any]:
        _needed(values, "code", "amount", "receipt", "store_code", "guide_id")
        seen = preview(state, values["code"], fen_of(values["amount"], "amount"), customer_id=member)
        return {"code": seen.coupon.code, "template": seen.template, "amount_fen": seen.amount_fen,
                "discount_fen": seen.discount_fen, "to_pay_fen": seen.to_pay_fen}  # fmt: skip

    try:
        offer = await run_in_threadpool(work)
    except OmnicrmError as exc:
        return await _till(page, member=member, values=values, problem=problem_of(page, exc), form="redeem",
                           status_code=exc.status)  # fmt: skip
    return await _till(page, member=member, values=values, offer=offer, remember=True)


@router.post("/till/redeem", response_class=HTMLResponse, include_in_schema=False)
async def redeem_coupon(page: Annotated[Page, Depends(need("till"))]) -> Response:
    """Redeem (核销) the coupon on the receipt, credited to the store and guide; the same receipt again is a no-op."""
    state = page.request.app.state.state_store
    user = page.user
    assert user is not None
    values = _desk(page, await _form(page))
    member = int(values["customer_id"]) if values["customer_id"].isdigit() else None

    def work() -> dict[str, Any]:
        _needed(values, "code", "amount", "receipt", "store_code", "guide_id")
        done = redeem(state, values["code"], channel="store", amount_fen=fen_of(values["amount"], "amount"),
                      order_id=values["receipt"], store_code=values["store_code"], guide_id=values["guide_id"],
                      customer_id=member, by=actor(f"console:{user.username}"))  # fmt: skip
        return {"kind": "redeemed", "code": done.code, "discount_fen": done.discount_fen, "replayed": done.replayed,
                "to_pay_fen": done.order_amount_fen - done.discount_fen, "receipt": done.order_id}  # fmt: skip

    try:
        result = await run_in_threadpool(work)
    except OmnicrmError as exc:
        return await _till(page, member=member, values=values, problem=problem_of(page, exc), form="redeem",
                           status_code=exc.status)  # fmt: skip
    kept = {k: values[k] for k in ("store_code", "guide_id")}
    return await _till(page, member=member, values=kept, result=result, remember=True)


@router.post("/till/earn", response_class=HTMLResponse, include_in_schema=False)
async def earn_points(page: Annotated[Page, Depends(need("till"))]) -> Response:
    """Points for this till sale under the loyalty rules; a receipt earns once."""
    app = page.request.app.state
    user = page.user
    assert user is not None
    values = _desk(page, await _form(page))

    def work() -> dict[str, Any]:
        member = _member_id(values)
        _needed(values, "earn_receipt", "earn_amount", "store_code", "guide_id")
        paid = Decimal(fen_of(values["earn_amount"], "earn_amount")) / 100
        if paid <= 0:
            raise InputError("the sale has no amount", [Problem("above zero", "earn_amount")])
        known_member(app.state_store, app.derived.current("identity"), member)
        by = actor(f"console:{user.username}", values["store_code"], values["guide_id"])
        lot, new = earn_order(app.state_store, customer_id=member, source=TILL_SOURCE, order_id=values["earn_receipt"],
                              paid=paid, channel="store", by=by)  # fmt: skip
        return {"kind": "earned", "points": lot.points if lot else 0, "new": new, "receipt": values["earn_receipt"],
                "pending_until": lot.activates_at if lot and lot.status == "pending" else None}  # fmt: skip

    try:
        result = await run_in_threadpool(work)
    except OmnicrmError as exc:
        member = int(values["customer_id"]) if values["customer_id"].isdigit() else None
        return await _till(page, member=member, values=values, problem=problem_of(page, exc), form="earn",
                           status_code=exc.status)  # fmt: skip
    kept = {k: values[k] for k in ("store_code", "guide_id")}
    return await _till(page, member=int(values["customer_id"]), values=kept, result=result, remember=True)


@router.post("/till/spend", response_class=HTMLResponse, include_in_schema=False)
async def spend_points(page: Annotated[Page, Depends(need("till"))]) -> Response:
    """Spend the member's points at the till; the form's key makes sending it twice spend once."""
    state = page.request.app.state.state_store
    user = page.user
    assert user is not None
    values = _desk(page, await _form(page))

    def work() -> dict[str, Any]:
        member = _member_id(values)
        _needed(values, "points", "store_code", "guide_id")
        try:
            points = int(values["points"])
        except ValueError:
            raise InputError(f"{values['points']!r} is not a whole number", [Problem("e.g. 500", "points")]) from None
        entry = spend(state, member, points, by=actor(f"console:{user.username}", values["store_code"],
                      values["guide_id"]), reference=values["spend_receipt"] or None,
                      idempotency_key=f"console-spend:{values['spend_key']}")  # fmt: skip
        return {"kind": "spent", "points": -entry.points, "receipt": entry.reference}

    try:
        result = await run_in_threadpool(work)
    except OmnicrmError as exc:
        member = int(values["customer_id"]) if values["customer_id"].isdigit() else None
        return await _till(page, member=member, values=values, problem=problem_of(page, exc), form="spend",
                           status_code=exc.status)  # fmt: skip
    kept = {k: values[k] for k in ("store_code", "guide_id")}
    return await _till(page, member=int(values["customer_id"]), values=kept, result=result, remember=True)
