"""Time moves lots on: pending lots activate when their return window ends, open lots expire at their date.

Both are set-based (a few statements per chunk of members, whatever the number of lots), idempotent (running
them again at the same moment changes nothing) and safe beside spends: each chunk locks its members first
(``locks``), so an expiry never takes points a concurrent spend is drawing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    String,
    and_,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from omnicrm.loyalty.draws import settle
from omnicrm.loyalty.locks import CHUNK, bump, chunks, lock_members, transaction, when
from omnicrm.store.schema import point_draws, point_entries, point_lots
from omnicrm.store.state import StateStore, utcnow

__all__ = ["Moved", "activate_due", "expire_due"]

L, E, D = point_lots, point_entries, point_draws


@dataclass
class Moved:
    """What a run changed: members touched, lots moved, and points (expired points, for ``expire_due``)."""

    members: int = 0
    lots: int = 0
    points: int = 0


def _due_members(state: StateStore, condition: ColumnElement[bool]) -> list[int]:
    with state.connect() as conn:
        return [int(c) for c in conn.execute(select(L.c.customer_id).where(condition).distinct()).scalars()]


def _activate(conn: Connection, *, members: list[int], now: datetime) -> Moved:
    out = Moved(members=len(members))
    lock_members(conn, members, now)
    due = and_(
        L.c.customer_id.in_(members),
        L.c.status == "pending",
        L.c.activates_at <= now,
        or_(L.c.expires_at.is_(None), L.c.expires_at > now),
    )
    moved = conn.execute(update(L).where(due).values(status="active", activated_at=L.c.activates_at))
    out.lots += moved.rowcount or 0
    # a member who owes points from a refund repays it from the points that just became spendable
    drawn = select(func.coalesce(func.sum(D.c.points), 0)).where(D.c.entry_id == E.c.id).scalar_subquery()
    owing = conn.execute(
        select(E.c.customer_id).where(E.c.customer_id.in_(members), E.c.points < 0, -E.c.points - drawn > 0).distinct()
    ).scalars()
    for customer_id in sorted(int(c) for c in owing):
        settle(conn, customer_id, now)
    bump(conn, members, now)
    return out


def activate_due(state: StateStore, now: datetime | None = None) -> Moved:
    """Activate every pending lot whose return window has ended by ``now`` (its points become spendable and start
    to count for tiers); a lot that expired before it could activate is left to ``expire_due``."""
    at = when(now, utcnow(), "now")
    due = and_(L.c.status == "pending", L.c.activates_at <= at, or_(L.c.expires_at.is_(None), L.c.expires_at > at))
    out = Moved()
    for part in chunks(_due_members(state, due), CHUNK):
        done = transaction(state, partial(_activate, members=list(part), now=at))
        out.members, out.lots, out.points = out.members + done.members, out.lots + done.lots, out.points + done.points
    return out


def _expire(conn: Connection, *, members: list[int], now: datetime) -> Moved:
    out = Moved(members=len(members))
    lock_members(conn, members, now)
    due = and_(L.c.customer_id.in_(members), L.c.status.in_(("pending", "active")), L.c.expires_at <= now)
    drawn = select(func.coalesce(func.sum(D.c.points), 0)).where(D.c.lot_id == L.c.id).scalar_subquery()
    left = (L.c.points - drawn).label("left")
    # one expiry entry per lot with points left, keyed by the lot, then its one draw: the rest of that lot
    entries = select(
        L.c.customer_id, literal("expire"), -left, literal(0, BigInteger), literal(0, BigInteger), L.c.id,
        literal("expire:") + cast(L.c.id, String), literal("system"), L.c.expires_at, literal(now, L.c.created_at.type),
    ).where(due, left > 0)  # fmt: skip
    cols = ("customer_id", "kind", "points", "written_off", "spend_cents", "lot_id", "idempotency_key",
            "recorded_by", "at", "recorded_at")  # fmt: skip
    conn.execute(insert(E).from_select(cols, entries))
    fresh = select(E.c.id, E.c.lot_id, -E.c.points).select_from(E.join(L, L.c.id == E.c.lot_id))
    fresh = fresh.where(due, E.c.kind == "expire")
    conn.execute(insert(D).from_select(("entry_id", "lot_id", "points"), fresh))
    total = conn.execute(
        select(func.count(), func.coalesce(func.sum(-E.c.points), 0))
        .select_from(E.join(L, L.c.id == E.c.lot_id))
        .where(due, E.c.kind == "expire")
    ).one()
    moved = conn.execute(update(L).where(due).values(status="expired", closed_at=L.c.expires_at))
    out.lots += moved.rowcount or 0
    out.points += int(total[1])
    bump(conn, members, now)
    return out


def expire_due(state: StateStore, now: datetime | None = None) -> Moved:
    """Expire every open lot whose date has come by ``now``: an ``expire`` entry takes what is left of it (lots
    spent to nothing just close). Spends drew the soonest-expiring lots first, so expiry takes what nobody used."""
    at = when(now, utcnow(), "now")
    due = and_(L.c.status.in_(("pending", "active")), L.c.expires_at <= at)
    out = Moved()
    for part in chunks(_due_members(state, due), CHUNK):
        done = transaction(state, partial(_expire, members=list(part), now=at))
        out.members, out.lots, out.points = out.members + done.members, out.lots + done.lots, out.points + done.points
    return out
