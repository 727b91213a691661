"""Console page for referrals (value sharing): the programme, the report per referrer and the referrals themselves.

``/console/loyalty/referrals`` shows the programme in force (a form to save the next version for those who may
``loyalty.write``), the totals, and one list a page at a time: the referrers, most rewarded first, or the referrals
of one status. Refused and void referrals carry their explanation: the OneID link between the two identifiers, the
chain of referrals of a ring, or the orders. Roles without ``customers.identifiers`` see those identifiers masked.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from omnicrm.console.campaigns import time_formatter
from omnicrm.console.customers import mask
from omnicrm.console.web import PREFIX, Page, need, render
from omnicrm.errors import InputError, NotFound, OmnicrmError, Problem
from omnicrm.loyalty.referral_rewards import STATUSES, referral_page, referral_report
from omnicrm.loyalty.referrals import ReferralProgramme, load_programme, save_programme
from omnicrm.store.state import utcnow

__all__ = ["FIELDS", "router"]

router = APIRouter(prefix=PREFIX)
PAGE = 25
PATH = f"{PREFIX}/loyalty/referrals"
FIELDS = ("referrer_points", "referrer_coupon", "referee_points", "referee_coupon", "return_window_days",
          "points_valid_days", "starts_at", "ends_at", "landing_url", "note")  # fmt: skip
VIEWS = ("report", *STATUSES)


def _values(programme: ReferralProgramme | None, zone: ZoneInfo) -> dict[str, str]:
    """The form's fields for ``programme`` (times as the merchant reads them), or a new programme's defaults."""
    if programme is None:
        return {**dict.fromkeys(FIELDS, ""), "return_window_days": "15", "points_valid_days": "730"}
    local = {k: getattr(programme, k).astimezone(zone).strftime("%Y-%m-%dT%H:%M") if getattr(programme, k) else ""
             for k in ("starts_at", "ends_at")}  # fmt: skip
    return {**{k: "" if getattr(programme, k, None) is None else str(getattr(programme, k)) for k in FIELDS},
            **local, "note": ""}  # fmt: skip


def _parse(values: dict[str, str], zone: ZoneInfo) -> tuple[dict[str, Any], list[Problem]]:
    """The programme a form describes; problems of what a person types differently from the API (numbers as
    text, times in the merchant's time zone)."""
    problems: list[Problem] = []
    out: dict[str, Any] = {}
    for name in ("referrer_points", "referee_points", "return_window_days", "points_valid_days"):
        text = values[name].strip()
        if not text:
            out[name] = None if name == "points_valid_days" else 0
        elif text.isdigit():
            out[name] = int(text)
        else:
            problems.append(Problem("a whole number, 0 or more", name))
    for name in ("starts_at", "ends_at"):
        text = values[name].strip()
        try:
            out[name] = dt.datetime.fromisoformat(text).replace(tzinfo=zone).isoformat() if text else None
        except ValueError:
            problems.append(Problem("a date and time, e.g. 2026-06-01T00:00", name))
    for name in ("referrer_coupon", "referee_coupon"):
        out[name] = values[name].strip() or None
    out["landing_url"] = values["landing_url"].strip()
    if out.get("starts_at") is None and not any(p.field == "starts_at" for p in problems):
        problems.append(Problem("when the programme starts", "starts_at"))
    return out, problems


def _explained(page: Page, why: dict[str, Any] | None) -> dict[str, Any] | None:
    """A referral's explanation with its identifiers masked for roles that may not see them in full."""
    if not why or page.may("customers.identifiers"):
        return why
    steps = [{**s, "value": mask(s["id_type"], s["value"]), "via_value": s["via_value"] and mask(
        s["via_type"], s["via_value"])} for s in why.get("links", [])]  # fmt: skip
    return {**why, "links": steps}


async def _page(
    page: Page, *, view: str = "report", p: int = 1, values: dict[str, str] | None = None,
    error: OmnicrmError | None = None, status_code: int = 200, saved: bool = False,
) -> Response:  # fmt: skip
    app = page.request.app.state
    zone = ZoneInfo(app.settings.timezone)

    def work() -> dict[str, Any]:
        try:
            programme: ReferralProgramme | None = load_programme(app.state_store)
        except NotFound:
            programme = None
        offset = (p - 1) * PAGE
        report = referral_report(app.state_store, limit=PAGE, offset=offset if view == "report" else 0)
        rows: list[Any] = report["referrers"]
        total = report["total"]
        if view != "report":
            found, total = referral_page(app.state_store, status=view, limit=PAGE, offset=offset)
            rows = [{**r.as_dict(), "explanation": _explained(page, r.explanation)} for r in found]
        return {"programme": programme, "totals": report["totals"], "rows": rows, "total": total}

    try:
        found = await run_in_threadpool(work)
    except OmnicrmError as exc:
        return render(page, "error.html", status_code=exc.status, message=exc.message)
    errors: dict[str, list[str]] = {}
    general: list[str] = []
    for problem in [] if error is None else error.problems:
        if problem.field in FIELDS:
            errors.setdefault(problem.field, []).append(problem.reason)
        else:
            general.append(str(problem))
    see_all = page.may("customers.identifiers")
    return render(
        page, "loyalty/referrals.html", status_code=status_code, view=view, views=VIEWS, p=p,
        pages=max(1, math.ceil(found["total"] / PAGE)), values=values or _values(found["programme"], zone),
        errors=errors, general=general, error=None if error is None else error.message, saved=saved,
        when=time_formatter(app.settings), key_shown=lambda key: key if see_all else mask(*_key_parts(key)),
        public_url=app.settings.public_url, now=utcnow(), **found,
    )  # fmt: skip


def _key_parts(key: str) -> tuple[str, str]:
    """(type, value) of an identifier key such as ``phone::+8613900000001``."""
    kind, _, rest = key.partition(":")
    return kind, rest.partition(":")[2]


@router.get("/loyalty/referrals", response_class=HTMLResponse, include_in_schema=False)
async def referrals_page(
    page: Annotated[Page, Depends(need("loyalty.view"))],
    view: Annotated[str, Query(pattern=f"^({'|'.join(VIEWS)})$")] = "report",
    p: Annotated[int, Query(ge=1)] = 1,
    saved: Annotated[str, Query(pattern="^(|1)$")] = "",
) -> Response:
    """The programme, the totals and a page of the report (or of the referrals of one status)."""
    return await _page(page, view=view, p=p, saved=saved == "1")


@router.post("/loyalty/referrals/programme", response_class=HTMLResponse, include_in_schema=False)
async def save(page: Annotated[Page, Depends(need("loyalty.write"))]) -> Response:
    """Save the form as the next version of the programme; on any problem the form comes back, each by its field."""
    app = page.request.app.state
    user = page.user
    assert user is not None
    form = await page.request.form()
    values = {f: str(form.get(f) or "") for f in FIELDS}
    spec, problems = _parse(values, ZoneInfo(app.settings.timezone))

    def work() -> None:
        if problems:
            raise InputError(page.t("referrals.error.form"), problems)
        save_programme(app.state_store, spec, by=f"console:{user.username}", note=values["note"].strip() or None)

    try:
        await run_in_threadpool(work)
    except OmnicrmError as exc:
        shown = InputError(page.t("referrals.error.form"), exc.problems or [Problem(exc.message)])
        return await _page(page, values=values, error=shown, status_code=exc.status)
    return RedirectResponse(f"{PATH}?saved=1", status_code=303)
