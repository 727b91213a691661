"""Console pages for stored value: the back office's report and member ledgers, and the till's top-up, spend, refund.

- ``/console/loyalty/stored-value`` (``loyalty.view``): the liability (paid vs bonus) and the money per store and day;
  with ``?customer=<id>`` that member's balance and ledger. Staff who may ``loyalty.write`` reverse an entry made in
  error from there.
- ``/console/till/stored-value`` (``till``): the clerk looks the member up by phone or member card (through OneID),
  sees the balance and recent entries, and tops up, spends or refunds a spend. Amounts are typed in yuan. Every form
  carries the session's CSRF token and an idempotency key made when the page was drawn, so a double-clicked or
  resubmitted form moves the money once. A refused request shows the page again with the reason and what was typed.
"""

from __future__ import annotations

import math
import secrets
from datetime import date
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from omnicrm.console.campaigns import time_formatter
from omnicrm.console.customers import mask
from omnicrm.console.web import PREFIX, Page, need, render
from omnicrm.errors import InputError, NotFound, OmnicrmError, Problem
from omnicrm.identity.explain import lookup
from omnicrm.loyalty import stored_value as sv
from omnicrm.loyalty.stored_value_report import report

__all__ = ["router"]

router = APIRouter(prefix=PREFIX)
PAGE = 30
ID_TYPES = ("phone", "member_card")
FIELDS = ("store_code", "guide_id", "paid", "bonus", "amount", "spend_id", "reason", "reference")


def _refused(page: Page, key: str, field: str) -> InputError:
    """A form error in the page's language, placed beside ``field``."""
    return InputError(page.t(key), [Problem(page.t(key), field)])


def _fen(page: Page, text: str, field: str) -> int:
    """Yuan as a clerk types them (``12``, ``12.5``, ``¥1,299.00``) in fen."""
    raw = text.strip().replace(",", "").replace("¥", "").replace("￥", "")
    try:
        value = Decimal(raw)
        fen = value * 100
        if value.is_finite() and fen == fen.to_integral_value() and 0 < fen <= sv.MAX_FEN:
            return int(fen)
    except ArithmeticError:  # not a number, or one beyond what Decimal holds
        pass
    raise _refused(page, "stored_value.error.amount", field)


def _maybe_fen(page: Page, text: str, field: str) -> int | None:
    """``_fen`` of an optional field: None when left empty."""
    return _fen(page, text, field) if text.strip() else None


def _date(page: Page, text: str, field: str) -> date | None:
    if not text.strip():
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise _refused(page, "stored_value.error.date", field) from None


def _member_view(page: Page, customer_id: int, p: int) -> dict[str, Any]:
    """The member's balance, one page of their ledger, and what each spend on it could still give back."""
    state = page.request.app.state.state_store
    balance = sv.balance(state, customer_id)
    pages = max(1, math.ceil(balance.entries / PAGE))
    entries = sv.history(state, customer_id, limit=PAGE, offset=(min(p, pages) - 1) * PAGE)
    spends = [e.id for e in entries if e.kind == "spend"]
    left = sv.refundable(state, spends) if spends else {}
    reversed_ = {e.target_id for e in entries if e.kind == "reversal"}
    open_spends = [(e, left[e.id]) for e in entries if left.get(e.id, 0) > 0]
    return {"balance": balance, "entries": entries, "refundable": left, "open_spends": open_spends,
            "reversed": reversed_, "p": min(p, pages), "pages": pages}  # fmt: skip


def _common(page: Page) -> dict[str, Any]:
    return {"yuan": sv.yuan, "when": time_formatter(page.request.app.state.settings)}


# --- the back office -------------------------------------------------------------------------------------------


async def _overview(
    page: Page, *, customer: int | None, since: str, until: str, p: int, error: str | None = None, status: int = 200
) -> Response:
    state = page.request.app.state.state_store

    def work() -> dict[str, Any]:
        found: dict[str, Any] = {"member": None, "days": [], "p": 1, "pages": 1}
        try:
            first, last = _date(page, since, "since"), _date(page, until, "until")
        except InputError as exc:
            found["error"] = exc.message
            first = last = None
        whole = report(state, since=first, until=last, limit=PAGE, offset=(p - 1) * PAGE)
        found["liability"] = whole.liability
        if customer is not None:
            found["member"] = _member_view(page, customer, p)
            found.update(p=found["member"]["p"], pages=found["member"]["pages"])
        else:
            pages = max(1, math.ceil(whole.total_rows / PAGE))
            if p > pages:
                whole = report(state, since=first, until=last, limit=PAGE, offset=(pages - 1) * PAGE)
            found.update(days=whole.days, p=min(p, pages), pages=pages)
        return found

    found = await run_in_threadpool(work)
    return render(
        page, "stored_value/overview.html", status_code=status, customer=customer, since=since, until=until,
        error=error or found.pop("error", None), key=secrets.token_urlsafe(16), **found, **_common(page),
    )  # fmt: skip


@router.get("/loyalty/stored-value", response_class=HTMLResponse, include_in_schema=False)
async def overview(
    page: Annotated[Page, Depends(need("loyalty.view"))],
    customer: Annotated[int | None, Query(ge=1)] = None,
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
    p: Annotated[int, Query(ge=1)] = 1,
) -> Response:
    """The liability and the money per store and day; or one member's ledger."""
    return await _overview(page, customer=customer, since=since, until=until, p=p)


@router.post("/loyalty/stored-value/reversals", response_class=HTMLResponse, include_in_schema=False)
async def reverse(page: Annotated[Page, Depends(need("loyalty.write"))]) -> Response:
    """Reverse a top-up or spend made in error; back to the member's ledger."""
    form = await page.request.form()
    values = {k: str(form.get(k) or "").strip() for k in ("customer_id", "entry_id", "reason", "idempotency_key")}
    user = page.user
    assert user is not None
    customer = int(values["customer_id"]) if values["customer_id"].isdigit() else None
    try:
        if customer is None or not values["entry_id"].isdigit():
            raise InputError(
                page.t("stored_value.error.entry"), [Problem(page.t("stored_value.error.entry"), "entry_id")]
            )
        await run_in_threadpool(
            sv.reverse, page.request.app.state.state_store, customer, int(values["entry_id"]),
            reason=values["reason"], by=f"console:{user.username}", idempotency_key=values["idempotency_key"],
        )  # fmt: skip
    except OmnicrmError as exc:
        message = page.t("stored_value.failed", reason=exc.message)
        return await _overview(page, customer=customer, since="", until="", p=1, error=message, status=exc.status)
    return RedirectResponse(f"{PREFIX}/loyalty/stored-value?customer={customer}", status_code=303)


# --- the till ----------------------------------------------------------------------------------------------------


async def _till(
    page: Page, *, q: str = "", id_type: str = "phone", customer: int | None = None, store: str = "",
    guide: str = "", p: int = 1, done: int | None = None, error: str | None = None,
    errors: dict[str, str] | None = None, values: dict[str, str] | None = None, status: int = 200,
) -> Response:  # fmt: skip
    app = page.request.app.state
    user = page.user
    assert user is not None

    def work() -> dict[str, Any]:
        found: dict[str, Any] = {"matches": None, "member": None, "done": None, "lookup_error": None}
        if q.strip() and customer is None:
            try:
                found["matches"] = lookup(app.derived.current("identity"), id_type, q.strip())
            except (InputError, NotFound) as exc:
                found["lookup_error"] = exc.message
        if customer is not None:
            found["member"] = _member_view(page, customer, p)
            if done is not None:
                hit = sv.history(app.state_store, customer, limit=1, before=done + 1)
                found["done"] = hit[0] if hit and hit[0].id == done else None
        return found

    found = await run_in_threadpool(work)
    member = found["member"] or {"p": 1, "pages": 1}
    if found["matches"] is not None and len(found["matches"]) == 1 and status == 200:
        query = urlencode({"customer": found["matches"][0], "store": store, "guide": guide})
        return RedirectResponse(f"{PREFIX}/till/stored-value?{query}", status_code=303)
    shown_q = q if page.may("customers.identifiers") else mask(id_type, q.strip())
    return render(
        page, "stored_value/till.html", status_code=status, q=q, shown_q=shown_q, id_type=id_type,
        id_types=ID_TYPES, customer=customer, store=store, guide=guide or user.username, error=error,
        errors=errors or {}, values=values or {}, key=secrets.token_urlsafe(16), p=member["p"], pages=member["pages"],
        **found, **_common(page),
    )  # fmt: skip


@router.get("/till/stored-value", response_class=HTMLResponse, include_in_schema=False)
async def till(
    page: Annotated[Page, Depends(need("till"))],
    q: Annotated[str, Query(max_length=200)] = "",
    id_type: Annotated[str, Query(alias="type", pattern="^(phone|member_card)$")] = "phone",
    customer: Annotated[int | None, Query(ge=1)] = None,
    store: Annotated[str, Query(max_length=64)] = "",
    guide: Annotated[str, Query(max_length=64)] = "",
    p: Annotated[int, Query(ge=1)] = 1,
    done: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """Look a member up; with ``customer``, their balance, recent entries and the top-up, spend and refund forms."""
    return await _till(page, q=q, id_type=id_type, customer=customer, store=store, guide=guide, p=p, done=done)


async def _change(page: Page, action: str) -> Response:
    """Top up, spend or refund from a till form; back to the member's page, or the form again with the reason."""
    form = await page.request.form()
    values = {k: str(form.get(k) or "").strip() for k in (*FIELDS, "customer_id", "idempotency_key")}
    user = page.user
    assert user is not None
    customer = int(values["customer_id"]) if values["customer_id"].isdigit() else None
    state = page.request.app.state.state_store

    def work() -> sv.Receipt:
        if customer is None:
            raise _refused(page, "stored_value.error.member", "q")
        till = sv.Till(values["store_code"], values["idempotency_key"], f"console:{user.username}",
                       values["guide_id"] or None, values["reference"] or None)  # fmt: skip
        if action == "top-up":
            bonus = _maybe_fen(page, values["bonus"], "bonus") or 0
            return sv.top_up(state, customer, _fen(page, values["paid"], "paid"), bonus_fen=bonus, till=till)
        if action == "spend":
            return sv.spend(state, customer, _fen(page, values["amount"], "amount"), till=till)
        if not values["spend_id"].isdigit():
            raise _refused(page, "stored_value.error.spend", "spend_id")
        amount = _maybe_fen(page, values["amount"], "amount")
        return sv.refund(state, customer, int(values["spend_id"]), amount_fen=amount, till=till,
                         reason=values["reason"] or None)  # fmt: skip

    try:
        receipt = await run_in_threadpool(work)
    except OmnicrmError as exc:
        fields = {"paid_fen": "paid", "bonus_fen": "bonus", "amount_fen": "amount"}
        errors = {f"{action}:{fields.get(p.field or '', p.field or '')}": p.reason for p in exc.problems}
        return await _till(
            page, customer=customer, store=values["store_code"], guide=values["guide_id"], status=exc.status,
            error=page.t("stored_value.failed", reason=exc.message), errors=errors, values={"action": action, **values},
        )  # fmt: skip
    query = urlencode({"customer": customer, "store": receipt.entry.store_code, "guide": receipt.entry.guide_id or "",
                       "done": receipt.entry.id})  # fmt: skip
    return RedirectResponse(f"{PREFIX}/till/stored-value?{query}", status_code=303)


@router.post("/till/stored-value/top-up", response_class=HTMLResponse, include_in_schema=False)
async def top_up(page: Annotated[Page, Depends(need("till"))]) -> Response:
    return await _change(page, "top-up")


@router.post("/till/stored-value/spend", response_class=HTMLResponse, include_in_schema=False)
async def spend(page: Annotated[Page, Depends(need("till"))]) -> Response:
    return await _change(page, "spend")


@router.post("/till/stored-value/refund", response_class=HTMLResponse, include_in_schema=False)
async def refund(page: Annotated[Page, Depends(need("till"))]) -> Response:
    return await _change(page, "refund")
