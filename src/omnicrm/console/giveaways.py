"""Console pages for giveaways (lucky draws and red-packet drops) under /console/loyalty/draws.

The list; the set-up form (money in yuan, times in the merchant's time zone, up to ``PRIZE_ROWS`` prizes); and a
giveaway's page: its budget bar, odds and stock per prize, the commitment (sha256 of the seed) and, once it has
closed, the seed and the audit that recomputes every entry from it; its entries a page at a time; and Close, which
stops entries and publishes the seed.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from omnicrm.console.campaigns import time_formatter
from omnicrm.console.web import PREFIX, Page, need, render
from omnicrm.errors import InputError, NotFound, OmnicrmError, Problem
from omnicrm.loyalty import giveaway_audit as audit
from omnicrm.loyalty import giveaways
from omnicrm.loyalty.giveaways import KINDS, PRIZE_KINDS, GiveawaySpec, PrizeSpec

__all__ = ["FORM_FIELDS", "PRIZE_ROWS", "router", "yuan"]

router = APIRouter(prefix=f"{PREFIX}/loyalty/draws")
PAGE = 25
ENTRIES = 50
PRIZE_ROWS = 5
PRIZE_FIELDS = ("kind", "name", "weight", "points", "coupon_template_id", "value", "stock")
FORM_FIELDS = (
    "id", "name", "kind", "opens_at", "closes_at", "budget", "packets", "miss_weight", "point_value",
    "points_valid_days", "per_person_daily", "per_person_total", "prizes_per_person", "eligible",
    *(f"prize{i}_{f}" for i in range(PRIZE_ROWS) for f in PRIZE_FIELDS),
)  # fmt: skip
_PRIZE_FIELD = re.compile(r"prizes\[(\d+)\]\.(\w+)")


def yuan(fen: int | None) -> str:
    """Fen as yuan with two places and thousands separators: 123456 → 1,234.56."""
    return "—" if fen is None else f"{Decimal(fen) / 100:,.2f}"


def _form_field(field: str | None, rows: list[int]) -> str:
    """The form field a problem of the domain names: budget_fen → budget, prizes[0].value_fen → prize<row>_value,
    where ``rows`` are the form rows the prizes came from (empty rows are skipped)."""
    if field is None:
        return ""
    found = _PRIZE_FIELD.fullmatch(field)
    if found:
        index, name = int(found.group(1)), found.group(2)
        row = rows[index] if index < len(rows) else index
        return f"prize{row}_{'value' if name == 'value_fen' else name}"
    return {"budget_fen": "budget", "prizes": "prize0_name"}.get(field, field)


# --- the list --------------------------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse, include_in_schema=False)
async def draws(page: Annotated[Page, Depends(need("loyalty.view"))], p: Annotated[int, Query(ge=1)] = 1) -> Response:
    """Giveaways, newest first, a page at a time, each with its status and budget spent."""
    state = page.request.app.state.state_store

    def work() -> tuple[list[audit.Giveaway], int, int]:
        shown, total = audit.list_giveaways(state, limit=PAGE, offset=(p - 1) * PAGE)
        pages = max(1, math.ceil(total / PAGE))
        if p > pages:
            shown, total = audit.list_giveaways(state, limit=PAGE, offset=(pages - 1) * PAGE)
        return shown, total, pages

    shown, total, pages = await run_in_threadpool(work)
    return render(page, "loyalty/giveaways.html", giveaways=shown, total=total, p=min(p, pages), pages=pages,
                  when=time_formatter(page.request.app.state.settings), yuan=yuan)  # fmt: skip


# --- the set-up form -------------------------------------------------------------------------------------------


def _defaults(zone: ZoneInfo) -> dict[str, str]:
    values = dict.fromkeys(FORM_FIELDS, "")
    start = dt.datetime.now(zone).replace(second=0, microsecond=0) + dt.timedelta(hours=1)
    values.update(kind="lucky_draw", opens_at=start.strftime("%Y-%m-%dT%H:%M"), miss_weight="0", point_value="0.01",
                  closes_at=(start + dt.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"))  # fmt: skip
    for i in range(PRIZE_ROWS):
        values[f"prize{i}_kind"] = "points"
    return values


def _form(
    page: Page,
    values: dict[str, str],
    error: OmnicrmError | None = None,
    status: int = 200,
    rows: list[int] | None = None,
) -> Response:
    """The form with what was typed, each problem beside its field and the others above."""
    errors: dict[str, list[str]] = {}
    general: list[str] = []
    for problem in [] if error is None else error.problems:
        field = _form_field(problem.field, rows or [])
        if field in FORM_FIELDS:
            errors.setdefault(field, []).append(problem.reason)
        else:
            general.append(str(problem))
    return render(page, "loyalty/giveaways_new.html", status_code=status, values=values, errors=errors,
                  general=general, error=None if error is None else error.message, kinds=KINDS,
                  prize_kinds=PRIZE_KINDS, rows=range(PRIZE_ROWS), zone=page.request.app.state.settings.timezone,
                  )  # fmt: skip


@router.get("/new", response_class=HTMLResponse, include_in_schema=False)
async def new(page: Annotated[Page, Depends(need("loyalty.write"))]) -> Response:
    return _form(page, _defaults(ZoneInfo(page.request.app.state.settings.timezone)))


def _spec(page: Page, values: dict[str, str], zone: ZoneInfo) -> tuple[GiveawaySpec | None, list[Problem], list[int]]:
    """The giveaway the form describes, or the problems of fields typed differently from the API (yuan, local
    times, numbers); and the form rows its prizes came from."""
    problems: list[Problem] = []

    def whole(field: str) -> int | None:
        text = values[field].strip()
        if not text:
            return None
        if re.fullmatch(r"\d{1,12}", text):
            return int(text)
        problems.append(Problem(page.t("giveaways.error.whole"), field))
        return None

    def fen(field: str) -> int | None:
        text = values[field].strip().replace(",", "")
        if not text:
            return None
        try:
            amount = Decimal(text) * 100
            if amount.is_finite() and amount >= 0 and amount == amount.to_integral_value() and amount < 10**15:
                return int(amount)
        except InvalidOperation:
            pass
        problems.append(Problem(page.t("giveaways.error.money"), field))
        return None

    def moment(field: str) -> dt.datetime | None:
        try:
            return dt.datetime.fromisoformat(values[field].strip()).replace(tzinfo=zone)
        except ValueError:
            problems.append(Problem(page.t("giveaways.error.time"), field))
            return None

    prizes, used = [], []
    for i in range(PRIZE_ROWS):
        row = {f: values[f"prize{i}_{f}"].strip() for f in PRIZE_FIELDS}
        if not row["name"] and not row["weight"]:
            continue
        used.append(i)
        prizes.append(PrizeSpec(
            row["kind"], row["name"], whole(f"prize{i}_weight") or 0, whole(f"prize{i}_points"),
            row["coupon_template_id"] or None, fen(f"prize{i}_value"), whole(f"prize{i}_stock"),
        ))  # fmt: skip
    eligible_text = values["eligible"].replace(",", " ").split()
    if any(not re.fullmatch(r"\d{1,18}", c) for c in eligible_text):
        problems.append(Problem(page.t("giveaways.error.eligible"), "eligible"))
    try:
        point_value = Decimal(values["point_value"].strip() or "0.01")
    except InvalidOperation:
        problems.append(Problem(page.t("giveaways.error.money"), "point_value"))
        point_value = Decimal("0.01")
    opens, closes, budget = moment("opens_at"), moment("closes_at"), fen("budget")
    numbers = {f: whole(f) for f in ("packets", "miss_weight", "points_valid_days", "per_person_daily",
                                     "per_person_total", "prizes_per_person")}  # fmt: skip
    if budget is None and not problems:
        problems.append(Problem(page.t("giveaways.error.money"), "budget"))
    if problems or opens is None or closes is None or budget is None:
        return None, problems, used
    kind = values["kind"]
    spec = GiveawaySpec(
        values["id"].strip(), values["name"], kind, opens, closes, budget,
        tuple(prizes) if kind == "lucky_draw" else (), numbers["miss_weight"] or 0 if kind == "lucky_draw" else 0,
        numbers["packets"] if kind == "red_packet" else None, point_value, numbers["points_valid_days"],
        numbers["per_person_daily"], numbers["per_person_total"], numbers["prizes_per_person"],
        tuple(int(c) for c in eligible_text) if eligible_text else None, zone.key,
    )  # fmt: skip
    return spec, [], used


@router.post("", response_class=HTMLResponse, include_in_schema=False)
async def create(page: Annotated[Page, Depends(need("loyalty.write"))]) -> Response:
    """Set the giveaway up; on any problem the form comes back with everything typed and each error by its field."""
    app = page.request.app.state
    user = page.user
    assert user is not None
    form = await page.request.form()
    values = {f: str(form.get(f) or "") for f in FORM_FIELDS}
    spec, problems, used = _spec(page, values, ZoneInfo(app.settings.timezone))

    def work() -> audit.Giveaway:
        if spec is None:
            raise InputError(page.t("giveaways.error.form"), problems)
        return giveaways.create(app.state_store, spec, by=f"console:{user.username}")

    try:
        made = await run_in_threadpool(work)
    except OmnicrmError as exc:
        return _form(page, values, exc, status=exc.status, rows=used)
    return RedirectResponse(f"{PREFIX}/loyalty/draws/{made.id}", status_code=303)


# --- one giveaway ----------------------------------------------------------------------------------------------


async def _show(page: Page, giveaway_id: str, *, p: int = 1, check: bool = False) -> Response:
    """The giveaway's page: budget bar, prizes with odds and stock, commitment, seed and audit once closed, entries."""
    app = page.request.app.state

    def work() -> dict[str, Any]:
        found = audit.report(app.state_store, giveaway_id)
        rows, total = audit.entries(app.state_store, giveaway_id, limit=ENTRIES, offset=(p - 1) * ENTRIES)
        checked = audit.verify(app.state_store, giveaway_id) if check and found.giveaway.revealed else None
        return {"report": found, "g": found.giveaway, "rows": rows, "total": total, "verification": checked}

    try:
        found = await run_in_threadpool(work)
    except NotFound as exc:
        return render(page, "error.html", status_code=404, message=exc.message)
    g = found["g"]
    weights = sum(x.weight for x in g.prizes) + g.miss_weight
    return render(
        page, "loyalty/giveaways_show.html", p=p,
        pages=max(1, math.ceil(found["total"] / ENTRIES)),
        odds=lambda w: f"{100 * w / weights:.2f}%" if weights else "—",
        names={x.id: x.name for x in g.prizes}, when=time_formatter(app.settings), yuan=yuan,
        see_people=page.may("customers.view"), **found,
    )  # fmt: skip


@router.get("/{giveaway_id}", response_class=HTMLResponse, include_in_schema=False)
async def show(
    page: Annotated[Page, Depends(need("loyalty.view"))],
    giveaway_id: str,
    p: Annotated[int, Query(ge=1)] = 1,
    verify: Annotated[int, Query(ge=0, le=1)] = 0,
) -> Response:
    return await _show(page, giveaway_id, p=p, check=bool(verify))


@router.post("/{giveaway_id}/close", response_class=HTMLResponse, include_in_schema=False)
async def close(page: Annotated[Page, Depends(need("loyalty.write"))], giveaway_id: str) -> Response:
    """Stop entries now and publish the seed."""
    user = page.user
    assert user is not None
    try:
        await run_in_threadpool(giveaways.close, page.request.app.state.state_store, giveaway_id,
                                by=f"console:{user.username}")  # fmt: skip
    except NotFound as exc:
        return render(page, "error.html", status_code=404, message=exc.message)
    return RedirectResponse(f"{PREFIX}/loyalty/draws/{giveaway_id}", status_code=303)
