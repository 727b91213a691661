"""How entries draw from lots: the primitives the ledger, refunds and the lifecycle share.

A lot's remaining points are its points less its draws (``remaining``). Debits draw from the member's lots in
one order everywhere: the soonest-expiring first (lots that never expire last), then the oldest, then by id; only
active lots not yet past their expiry are spendable. The caller holds the member's lock (``locks``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from omnicrm.loyalty.locks import chunks, utc
from omnicrm.store.schema import point_draws, point_entries, point_lots

__all__ = [
    "OPEN",
    "Entry",
    "Lot",
    "close_lots",
    "entry_of",
    "lot_of",
    "open_lots",
    "remaining",
    "settle",
    "spendable",
    "take",
    "total_points",
    "write_entry",
]

L, E, D = point_lots, point_entries, point_draws
OPEN = ("pending", "active")


@dataclass(frozen=True)
class Lot:
    """One lot with its remaining points (points less draws) as read."""

    id: int
    customer_id: int
    points: int
    remaining: int
    status: str
    source: str
    order_id: str | None
    rule_version: int | None
    earned_at: datetime
    activates_at: datetime
    expires_at: datetime | None
    spend_cents: int


@dataclass(frozen=True)
class Entry:
    """One entry of the ledger; ``draws`` are the (lot id, points) it took, in the order it took them."""

    id: int
    customer_id: int
    kind: str
    points: int
    at: datetime
    recorded_by: str
    lot_id: int | None = None
    written_off: int = 0
    reference: str | None = None
    reason: str | None = None
    idempotency_key: str | None = None
    draws: tuple[tuple[int, int], ...] = field(default_factory=tuple)


def remaining() -> Any:
    """The remaining points of each lot of a query over ``point_lots`` (a correlated sum of its draws)."""
    drawn = select(func.coalesce(func.sum(D.c.points), 0)).where(D.c.lot_id == L.c.id).scalar_subquery()
    return (L.c.points - drawn).label("remaining")


def lot_of(r: Any) -> Lot:
    return Lot(
        int(r.id), int(r.customer_id), int(r.points), int(r.remaining), r.status, r.source, r.order_id,
        r.rule_version, utc(r.earned_at), utc(r.activates_at), utc(r.expires_at) if r.expires_at else None,
        int(r.spend_cents),
    )  # fmt: skip


def open_lots(conn: Connection, customer_id: int) -> list[Lot]:
    """The member's pending and active lots with points left, in drawing order: soonest expiry, then oldest."""
    rows = conn.execute(
        select(L, remaining())
        .where(L.c.customer_id == customer_id, L.c.status.in_(OPEN))
        .order_by(L.c.expires_at.asc().nulls_last(), L.c.earned_at, L.c.id)
    ).all()
    return [lot for lot in map(lot_of, rows) if lot.remaining > 0]


def spendable(lot: Lot, at: datetime) -> bool:
    return lot.status == "active" and (lot.expires_at is None or lot.expires_at > at)


def total_points(conn: Connection, customer_id: int) -> int:
    return int(
        conn.execute(select(func.coalesce(func.sum(E.c.points), 0)).where(E.c.customer_id == customer_id)).scalar_one()
    )


def take(lots: Sequence[Lot], want: int, at: datetime, taken: dict[int, int] | None = None) -> list[tuple[Lot, int]]:
    """Up to ``want`` points from the spendable ``lots`` (already in drawing order), less what ``taken`` holds."""
    out: list[tuple[Lot, int]] = []
    for lot in lots:
        if want <= 0:
            break
        left = lot.remaining - (taken or {}).get(lot.id, 0)
        if left > 0 and spendable(lot, at):
            n = min(left, want)
            out.append((lot, n))
            want -= n
    return out


def write_entry(
    conn: Connection, customer_id: int, kind: str, points: int, draws: Sequence[tuple[Lot, int]], *,
    at: datetime, now: datetime, by: str, lot_id: int | None = None, key: str | None = None,
    reference: str | None = None, reason: str | None = None, written_off: int = 0, spend_cents: int = 0,
) -> Entry:  # fmt: skip
    """Append one entry and its draws."""
    values = {
        "customer_id": customer_id, "kind": kind, "points": points, "written_off": written_off,
        "spend_cents": spend_cents, "lot_id": lot_id, "idempotency_key": key, "reference": reference,
        "reason": reason, "recorded_by": by, "at": at, "recorded_at": now,
    }  # fmt: skip
    entry_id = int(conn.execute(insert(E).values(**values).returning(E.c.id)).scalar_one())
    if draws:
        conn.execute(insert(D), [{"entry_id": entry_id, "lot_id": lot.id, "points": n} for lot, n in draws])
    return Entry(
        entry_id, customer_id, kind, points, at, by, lot_id, written_off, reference, reason, key,
        tuple((lot.id, n) for lot, n in draws),
    )  # fmt: skip


def settle(conn: Connection, customer_id: int, at: datetime) -> None:
    """Repay the member's debt (entries that drew less than they took) from their spendable lots, oldest first.

    A debt only arises when a refund found nothing left to take (policy ``negative``); the points that become
    active afterwards repay it here, so they cannot be spent or expire twice.
    """
    drawn = select(func.coalesce(func.sum(D.c.points), 0)).where(D.c.entry_id == E.c.id).scalar_subquery()
    owed = conn.execute(
        select(E.c.id, (-E.c.points - drawn).label("owed"))
        .where(E.c.customer_id == customer_id, E.c.points < 0, -E.c.points - drawn > 0)
        .order_by(E.c.id)
    ).all()
    if not owed:
        return
    lots = open_lots(conn, customer_id)
    taken: dict[int, int] = {}
    rows = []
    for entry_id, points in owed:
        for lot, n in take(lots, int(points), at, taken):
            taken[lot.id] = taken.get(lot.id, 0) + n
            rows.append({"entry_id": int(entry_id), "lot_id": lot.id, "points": n})
    if rows:
        conn.execute(insert(D), rows)


def close_lots(conn: Connection, lot_ids: Sequence[int], status: str, at: datetime) -> None:
    for part in chunks(list(lot_ids)):
        conn.execute(update(L).where(L.c.id.in_(part)).values(status=status, closed_at=at))


def entry_of(r: Any, draws: Sequence[tuple[int, int]] = ()) -> Entry:
    """An ``Entry`` from a ``point_entries`` row and its draws."""
    return Entry(
        int(r.id), int(r.customer_id), r.kind, int(r.points), utc(r.at), r.recorded_by, r.lot_id,
        int(r.written_off), r.reference, r.reason, r.idempotency_key, tuple((int(a), int(b)) for a, b in draws),
    )  # fmt: skip
