"""The customer 360: who a customer is (identifiers and how they joined), their tags with reasons, their
orders and a timeline across every channel — one read for the API and the console.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from omnicrm.errors import InputError
from omnicrm.identity.explain import explain_customer
from omnicrm.portrait.explain import customer_tags
from omnicrm.store.derived import DerivedStore
from omnicrm.store.state import StateStore

__all__ = ["KINDS", "TimelinePage", "customer_360", "timeline_page"]

KINDS = ("order", "event", "message", "profile")
MAX_PAGE = 200


@dataclass(frozen=True)
class TimelinePage:
    rows: list[dict[str, Any]]
    offset: int
    limit: int
    has_more: bool
    counts: dict[str, int]  # rows per kind, over the whole timeline
    computed_at: str | None


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if hasattr(v, "isoformat"):
            v = v.isoformat()
        elif v is not None and not isinstance(v, str | int | float | bool):
            v = float(v)  # Decimal money → number for JSON
        out[k] = v
    return out


def _query(sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of a parameterised query on a connection of its own (server threads never share one)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description or ()]
    return [_plain(dict(zip(names, r, strict=True))) for r in cur.fetchall()]


def _ids(identity: Path, customer_id: int) -> list[int]:
    """The customer and every id that has merged into it (a timeline older than OneID may still use them)."""
    rows = (
        duckdb.connect()
        .execute(
            f"SELECT old_id FROM read_parquet('{identity / 'redirects.parquet'}') WHERE customer_id = $id",
            {"id": customer_id},
        )
        .fetchall()
    )
    return [customer_id, *(int(r[0]) for r in rows)]


def timeline_page(
    derived: DerivedStore,
    customer_id: int,
    *,
    limit: int = 50,
    offset: int = 0,
    kinds: tuple[str, ...] = KINDS,
) -> TimelinePage:
    """One page of a customer's timeline, newest first (``customer_id`` already resolved through OneID)."""
    if not 1 <= limit <= MAX_PAGE:
        raise InputError(f"limit must be between 1 and {MAX_PAGE}, not {limit}")
    if offset < 0:
        raise InputError(f"offset must be 0 or more, not {offset}")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise InputError(f"unknown timeline kind(s) {', '.join(unknown)}; use {', '.join(KINDS)}")
    snapshot, identity = derived.current("timeline"), derived.current("identity")
    if snapshot is None or identity is None:
        return TimelinePage([], offset, limit, False, {}, None)
    path = snapshot / "timeline.parquet"
    ids = _ids(identity, customer_id)
    rows = _query(
        f"""SELECT occurred_at, kind, channel, source, title, detail, amount, refunded, ref, status
            FROM read_parquet('{path}') WHERE customer_id = ANY($ids) AND kind = ANY($kinds)
            ORDER BY occurred_at DESC, kind, ref, title, detail LIMIT {limit + 1} OFFSET {offset}""",
        {"ids": ids, "kinds": list(kinds)},
    )
    per_kind = _query(
        f"SELECT kind, count(*) AS n FROM read_parquet('{path}') WHERE customer_id = ANY($ids) GROUP BY kind",
        {"ids": ids},
    )
    counts = {r["kind"]: int(r["n"]) for r in per_kind}
    stats = json.loads((snapshot / "stats.json").read_text(encoding="utf-8"))
    return TimelinePage(rows[:limit], offset, limit, len(rows) > limit, counts, stats.get("computed_at"))


def _orders(derived: DerivedStore, customer_id: int, limit: int) -> list[dict[str, Any]]:
    """The customer's latest orders, one row per order with its lines' products."""
    snapshot, identity = derived.current("timeline"), derived.current("identity")
    if snapshot is None or identity is None:
        return []
    return _query(
        f"""SELECT ref AS order_id, source, min(occurred_at) AS created_at, max(channel) AS channel, count(*) AS lines,
                   sum(amount) AS paid, sum(refunded) AS refunded, max(status) AS status,
                   string_agg(title, ', ' ORDER BY title) AS products
            FROM read_parquet('{snapshot / "timeline.parquet"}')
            WHERE customer_id = ANY($ids) AND kind = 'order'
            GROUP BY ref, source ORDER BY created_at DESC, order_id LIMIT {int(limit)}""",
        {"ids": _ids(identity, customer_id)},
    )


def customer_360(
    derived: DerivedStore,
    state: StateStore,
    customer_id: int,
    *,
    limit: int = 50,
    offset: int = 0,
    kinds: tuple[str, ...] = KINDS,
    orders: int = 20,
) -> dict[str, Any]:
    """Identifiers, tags with reasons, latest orders and a page of the timeline of one customer."""
    who = explain_customer(derived.current("identity"), customer_id)
    target = who.customer_id
    tags = customer_tags(derived.current("portrait"), derived.current("identity"), target, state)
    page = timeline_page(derived, target, limit=limit, offset=offset, kinds=kinds)
    return {
        "customer_id": target,
        "asked_id": customer_id,
        "identity": who.as_dict(),
        "tags": tags.as_dict(),
        "orders": _orders(derived, target, orders),
        "timeline": {
            "rows": page.rows,
            "offset": page.offset,
            "limit": page.limit,
            "has_more": page.has_more,
            "counts": page.counts,
            "computed_at": page.computed_at,
        },
    }
