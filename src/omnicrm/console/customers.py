"""Console pages for customers: search, the 360 (identifiers, tags with reasons, orders, timeline), manual tags.

Roles without ``customers.identifiers`` (store clerks) see identifiers masked: enough to confirm a
customer at the till, not enough to copy a phone book.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from omnicrm.consent.overview import customer_consents
from omnicrm.console.web import PREFIX, Page, need, render
from omnicrm.customers.search import find_customers
from omnicrm.customers.view import KINDS, customer_360, timeline_page
from omnicrm.errors import InputError, NotFound, OmnicrmError
from omnicrm.portrait.tags import custom

__all__ = ["mask", "router"]

router = APIRouter(prefix=PREFIX)
PAGE = 30
TAG_ORDER = ("attribute", "rfm", "lifecycle", "value", "preference", "promotion", "channel", "needs", "interest")


def mask(id_type: str, value: str) -> str:
    """A recognisable but uncopyable form of an identifier."""
    if not value:
        return value
    if id_type == "phone":
        return re.sub(r"(\d{3})\d{4}(\d{4})$", r"\1****\2", value)
    if id_type == "email" and "@" in value:
        name, domain = value.split("@", 1)
        return f"{name[:1]}***@{domain}"
    return value[:2] + "***" + value[-2:] if len(value) > 6 else value[:1] + "***"


@router.get("/customers", response_class=HTMLResponse, include_in_schema=False)
async def search(
    page: Annotated[Page, Depends(need("customers.search"))], q: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    derived = page.request.app.state.derived
    matches, error = [], None
    if q.strip():
        try:
            matches = await run_in_threadpool(
                find_customers, derived.current("identity"), derived.current("portrait"), q
            )
        except (InputError, NotFound) as exc:
            error = exc.message
    if len(matches) == 1 and not page.request.headers.get("hx-request"):
        return RedirectResponse(f"{PREFIX}/customers/{matches[0].customer_id}", status_code=303)
    shown = [
        {**m.__dict__, "value": m.value if page.may("customers.identifiers") else mask(m.matched, m.value)}
        for m in matches
    ]
    return render(page, "customers.html", q=q, matches=shown, error=error)


def _grouped_tags(tags: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for tag in tags:
        groups[tag["category"]].append(tag)
    ordered = sorted(groups, key=lambda c: (TAG_ORDER.index(c) if c in TAG_ORDER else len(TAG_ORDER), c))
    return [(c, groups[c]) for c in ordered]


@router.get("/customers/{customer_id}", response_class=HTMLResponse, include_in_schema=False)
async def customer(page: Annotated[Page, Depends(need("customers.view"))], customer_id: int) -> Response:
    state = page.request.app.state
    try:
        view = await run_in_threadpool(customer_360, state.derived, state.state_store, customer_id, limit=PAGE)
    except NotFound as exc:
        return render(page, "error.html", status_code=404, message=exc.message)
    if view["customer_id"] != customer_id:
        return RedirectResponse(f"{PREFIX}/customers/{view['customer_id']}", status_code=303)
    if not page.may("customers.identifiers"):
        for ident in view["identity"]["identifiers"]:
            ident["value"] = mask(ident["id_type"], ident["value"])
            ident["key"] = ident["record"] = ident["via"] = None
    tags = view["tags"]["tags"]
    manual = [t for t in tags if t["origin"] == "manual"]
    consents = await run_in_threadpool(
        customer_consents, state.state_store, state.derived.current("identity"), view["customer_id"]
    )
    shown_consents = [{**c.as_dict(), "address": _address(page, c.subject)} for c in consents.consents]
    return render(
        page, "customer.html", view=view, groups=_grouped_tags(tags), manual=manual,
        timeline=view["timeline"], kinds=KINDS, kind="", consents=shown_consents,
        non_personalised=consents.non_personalised,
    )  # fmt: skip


def _address(page: Page, key: str) -> str:
    """An identifier key as staff read it: the value, masked for roles that see identifiers masked."""
    id_type, _, value = key.split(":", 2)
    return value if page.may("customers.identifiers") else mask(id_type, value)


@router.get("/customers/{customer_id}/timeline", response_class=HTMLResponse, include_in_schema=False)
async def timeline(
    page: Annotated[Page, Depends(need("customers.view"))],
    customer_id: int,
    offset: Annotated[int, Query(ge=0)] = 0,
    kind: Annotated[str, Query()] = "",
) -> Response:
    """A page of the timeline (HTMX: appended below the rows already shown)."""
    derived = page.request.app.state.derived
    kinds = (kind,) if kind else KINDS
    try:
        rows = await run_in_threadpool(timeline_page, derived, customer_id, limit=PAGE, offset=offset, kinds=kinds)
    except InputError as exc:
        return render(page, "error.html", status_code=400, message=exc.message)
    return render(
        page, "timeline_rows.html", customer_id=customer_id, kind=kind,
        timeline={"rows": rows.rows, "offset": rows.offset, "limit": rows.limit, "has_more": rows.has_more},
    )  # fmt: skip


@router.post("/customers/{customer_id}/tags", response_class=HTMLResponse, include_in_schema=False)
async def set_tag(
    page: Annotated[Page, Depends(need("customers.tag"))],
    customer_id: int,
    tag_id: Annotated[str, Form(max_length=64)],
    value: Annotated[str, Form(max_length=500)] = "",
    note: Annotated[str, Form(max_length=500)] = "",
    clear: Annotated[str, Form()] = "",
) -> Response:
    state = page.request.app.state.state_store
    user = page.user
    assert user is not None
    try:
        if clear:
            await run_in_threadpool(custom.clear_manual, state, customer_id, tag_id)
        else:
            parsed = custom.parse_manual_text(state, tag_id, value)
            await run_in_threadpool(
                custom.set_manual, state, customer_id, tag_id, parsed, by=f"console:{user.username}", note=note or None
            )
    except OmnicrmError as exc:
        return render(page, "error.html", status_code=exc.status, message=exc.message)
    return RedirectResponse(f"{PREFIX}/customers/{customer_id}#manual", status_code=303)
