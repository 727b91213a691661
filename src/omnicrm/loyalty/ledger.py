"""The points ledger: lots earned, and entries that draw from them. Balances are sums, never stored.

- Every earn creates a lot (``point_lots``) and an ``earn`` entry of +points. A lot is pending until the order's
  return window ends (``lifecycle.activate_due``), then active until it expires (``lifecycle.expire_due``).
- Every spend, expiry, reversal (refund) and downward adjustment is an entry of -points linked to the lots it drew
  from (``point_draws``), the soonest-expiring first, then the oldest. Only active, unexpired lots are spent.
- A member's balance is the sum of their entries; a lot's remaining points are its points less its draws;
  available = remaining points of spendable lots less any debt (the part of a refund nobody could take back,
  when the rules let the balance go negative). Later points repay a debt as soon as they become active.

All functions change state in one transaction, holding the member's lock (``locks``); see there how that is
safe on SQLite and PostgreSQL. Errors name the member and the field at fault, and leave the state unchanged.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial
from typing import Any, Literal

from sqlalchemy import Connection, and_, case, func, insert, literal, or_, select, tuple_

from omnicrm.errors import Conflict, InputError, Problem
from omnicrm.loyalty.draws import (
    OPEN,
    Entry,
    Lot,
    entry_of,
    lot_of,
    open_lots,
    remaining,
    settle,
    spendable,
    take,
    total_points,
    write_entry,
)
from omnicrm.loyalty.locks import bump, chunks, insert_or_nothing, lock_members, transaction, utc, when
from omnicrm.store.schema import point_draws, point_entries, point_lots
from omnicrm.store.state import StateStore, utcnow

__all__ = [
    "Award",
    "Balance",
    "Entry",
    "Lot",
    "Shortfall",
    "adjust",
    "balance",
    "earn",
    "earn_many",
    "history",
    "lots",
    "spend",
    "write_awards",
]

Shortfall = Literal["forgive", "negative"]
L, E, D = point_lots, point_entries, point_draws


@dataclass(frozen=True)
class Award:
    """Points one order (or other source) earns: one lot, keyed ``source:order_id:v<rule_version>``."""

    customer_id: int
    source: str
    order_id: str
    points: int
    earned_at: datetime
    activates_at: datetime
    expires_at: datetime | None
    rule_version: int = 0
    spend_cents: int = 0
    detail: dict[str, Any] | None = None

    @property
    def key(self) -> str:
        return f"{self.source}:{self.order_id}:v{self.rule_version}"


@dataclass(frozen=True)
class Balance:
    """A member's points, derived from the ledger in one statement (one consistent snapshot)."""

    customer_id: int
    balance: int  # Σ entries = available + pending + overdue
    available: int  # spendable now, less any debt (negative while a debt is unpaid)
    pending: int  # inside the return window: not spendable yet
    overdue: int  # past their expiry, waiting for expire_due: not spendable
    debt: int  # refunded points that could not be taken back (negative policy)
    next_expiry: datetime | None


def _positive(customer_id: int, points: object, name: str = "points") -> int:
    if isinstance(points, bool) or not isinstance(points, int) or points <= 0:
        raise InputError(
            f"customer {customer_id}: the points must be a whole number above zero",
            [Problem(f"got {points!r}", name)],
        )
    return points


def _text(customer_id: int, value: str | None, name: str, why: str) -> str:
    if value is None or not value.strip():
        raise InputError(f"customer {customer_id}: {why}", [Problem(f"give the {name}", name)])
    return value.strip()


def earn_many(
    state: StateStore, awards: Sequence[Award], *, by: str = "system", now: datetime | None = None
) -> list[Lot]:
    """Write the lots of ``awards`` that are new (set-based, in chunks, one transaction each); returns them.

    An order earns once: an award whose key, or whose (source, order id) under any rule version, is already in
    the ledger is skipped, so replaying the same orders awards nothing more. A lot is active at once when its
    return window has already passed (``activates_at`` <= now), pending otherwise.
    """
    now = when(now, utcnow(), "now")
    checked = []
    for a in awards:
        _positive(a.customer_id, a.points)
        expires = when(a.expires_at, now, "expires_at") if a.expires_at is not None else None
        checked.append(replace(a, earned_at=when(a.earned_at, now, "earned_at"),
                               activates_at=when(a.activates_at, now, "activates_at"), expires_at=expires))  # fmt: skip
    created: list[Lot] = []
    for part in chunks(checked):
        created += transaction(state, partial(write_awards, awards=part, by=by, now=now))
    return created


def write_awards(conn: Connection, *, awards: Sequence[Award], by: str, now: datetime) -> list[Lot]:
    """``earn_many`` inside the caller's transaction (one chunk): lock, skip orders that earned, insert."""
    lock_members(conn, (a.customer_id for a in awards), now)
    keys = {(a.source, a.order_id) for a in awards}
    found = select(L.c.source, L.c.order_id).where(tuple_(L.c.source, L.c.order_id).in_(sorted(keys)))
    done = {(r.source, r.order_id) for r in conn.execute(found).all()}
    rows: list[dict[str, Any]] = []
    seen = set(done)
    for a in awards:
        if (a.source, a.order_id) in seen:
            continue
        seen.add((a.source, a.order_id))
        active = a.activates_at <= now
        rows.append({
            "customer_id": a.customer_id, "points": a.points, "status": "active" if active else "pending",
            "source": a.source, "order_id": a.order_id, "rule_version": a.rule_version, "idempotency_key": a.key,
            "spend_cents": a.spend_cents, "earned_at": a.earned_at, "activates_at": a.activates_at,
            "expires_at": a.expires_at, "activated_at": a.activates_at if active else None, "closed_at": None,
            "detail": json.dumps(a.detail, default=str) if a.detail else None, "created_at": now,
        })  # fmt: skip
    inserted = insert_or_nothing(conn, L, rows, returning=("id", "idempotency_key"))
    ids = {r.idempotency_key: int(r.id) for r in inserted}
    new = [r for r in rows if r["idempotency_key"] in ids]
    if not new:
        return []
    conn.execute(insert(E), [{
        "customer_id": r["customer_id"], "kind": "earn", "points": r["points"], "written_off": 0,
        "spend_cents": r["spend_cents"], "lot_id": ids[r["idempotency_key"]], "idempotency_key": None,
        "reference": r["order_id"], "reason": None, "recorded_by": by, "at": r["earned_at"], "recorded_at": now,
    } for r in new])  # fmt: skip
    members = sorted({int(r["customer_id"]) for r in new})
    for customer_id in sorted({int(r["customer_id"]) for r in new if r["status"] == "active"}):
        settle(conn, customer_id, now)
    bump(conn, members, now)
    lots = conn.execute(select(L, remaining()).where(L.c.id.in_(list(ids.values()))).order_by(L.c.id)).all()
    return [lot_of(r) for r in lots]


def earn(state: StateStore, award: Award, *, by: str = "system", now: datetime | None = None) -> Lot | None:
    """Write one award's lot; None when that order already earned (idempotent)."""
    created = earn_many(state, [award], by=by, now=now)
    return created[0] if created else None


def _replay(conn: Connection, customer_id: int, key: str | None, kind: str, points: int) -> Entry | None:
    """The entry a retried request (same idempotency key) already wrote, or None; a different one is refused."""
    if key is None:
        return None
    row = conn.execute(select(E).where(E.c.idempotency_key == key)).first()
    if row is None:
        return None
    if (int(row.customer_id), row.kind, int(row.points)) != (customer_id, kind, points):
        raise Conflict(
            f"customer {customer_id}: the idempotency key {key!r} was used for another request",
            [Problem("use a new key for a new request", "idempotency_key")],
        )
    draws = conn.execute(select(D.c.lot_id, D.c.points).where(D.c.entry_id == row.id).order_by(D.c.id)).all()
    return entry_of(row, [(a, b) for a, b in draws])


def _short(customer_id: int, want: int, lots: Sequence[Lot], debt: int, at: datetime, verb: str) -> InputError:
    """The error for taking more than the available points, saying where the rest of the balance is."""
    available = sum(lot.remaining for lot in lots if spendable(lot, at)) - debt
    pending = [lot for lot in lots if lot.status == "pending"]
    overdue = [lot for lot in lots if lot.status == "active" and not spendable(lot, at)]
    problems = [Problem(f"{verb} {want} points, but only {max(available, 0)} are available", "points")]
    if pending:
        first = min(lot.activates_at for lot in pending)
        problems.append(Problem(
            f"{sum(lot.remaining for lot in pending)} points are pending (inside the return window) and cannot be "
            f"spent until they activate, the first on {first.date().isoformat()}", "points",
        ))  # fmt: skip
    if overdue:
        problems.append(Problem(f"{sum(lot.remaining for lot in overdue)} points have expired", "points"))
    if debt:
        problems.append(Problem(f"{debt} points are owed from a refund", "points"))
    return InputError(f"customer {customer_id} does not have {want} points to {verb}", problems)


def _debit(
    conn: Connection, customer_id: int, kind: str, want: int, *, at: datetime, now: datetime, by: str,
    key: str | None, reference: str | None, reason: str | None, allow_negative: bool,
) -> Entry:  # fmt: skip
    lock_members(conn, [customer_id], now)
    replayed = _replay(conn, customer_id, key, kind, -want)
    if replayed is not None:
        return replayed
    lots = open_lots(conn, customer_id)
    debt = sum(lot.remaining for lot in lots) - total_points(conn, customer_id)
    if debt > 0 and any(spendable(lot, at) for lot in lots):
        settle(conn, customer_id, at)
        lots = open_lots(conn, customer_id)
        debt = sum(lot.remaining for lot in lots) - total_points(conn, customer_id)
    draws = take(lots, want, at) if debt <= 0 else []
    if sum(n for _, n in draws) < want and not allow_negative:
        raise _short(customer_id, want, lots, max(debt, 0), at, "spend" if kind == "spend" else "take")
    entry = write_entry(
        conn, customer_id, kind, -want, draws, at=at, now=now, by=by, key=key, reference=reference, reason=reason
    )
    bump(conn, [customer_id], now)
    return entry


def spend(
    state: StateStore, customer_id: int, points: int, *, by: str, at: datetime | None = None,
    reference: str | None = None, idempotency_key: str | None = None,
) -> Entry:  # fmt: skip
    """Spend (redeem) points from the member's active lots, soonest-expiring first, then oldest.

    Refused, with nothing written, when the available points do not cover it (pending and expired points are
    not available). With an ``idempotency_key``, a retried call returns the entry the first one wrote.
    """
    want = _positive(customer_id, points)
    now = utcnow()
    at_ = when(at, now)
    return transaction(
        state,
        lambda conn: _debit(conn, customer_id, "spend", want, at=at_, now=now, by=by, key=idempotency_key,
                            reference=reference, reason=None, allow_negative=False),
    )  # fmt: skip


def adjust(
    state: StateStore, customer_id: int, points: int, *, reason: str | None, by: str, at: datetime | None = None,
    expires_at: datetime | None = None, idempotency_key: str | None = None, allow_negative: bool = False,
) -> Entry:  # fmt: skip
    """A manual adjustment by staff: +points creates an active lot (expiring at ``expires_at``, default never),
    -points draws like a spend. A reason is required; the entry records who, when and why (the audit trail).
    A debit beyond the available points is refused unless ``allow_negative`` (then the rest becomes a debt)."""
    why = _text(customer_id, reason, "reason", "an adjustment needs a reason")
    who = _text(customer_id, by, "by", "an adjustment needs the name of who made it")
    if isinstance(points, bool) or not isinstance(points, int) or points == 0:
        raise InputError(
            f"customer {customer_id}: an adjustment is a whole number of points, not zero",
            [Problem(f"got {points!r}", "points")],
        )
    now = utcnow()
    at_ = when(at, now)
    until = when(expires_at, now, "expires_at") if expires_at is not None else None
    if until is not None and until <= at_:
        raise InputError(f"customer {customer_id}: the points would expire at once", [Problem("later", "expires_at")])
    if points < 0:
        return transaction(
            state,
            lambda conn: _debit(conn, customer_id, "adjust", -points, at=at_, now=now, by=who,
                                key=idempotency_key, reference=None, reason=why, allow_negative=allow_negative),
        )  # fmt: skip

    def credit(conn: Connection) -> Entry:
        lock_members(conn, [customer_id], now)
        replayed = _replay(conn, customer_id, idempotency_key, "adjust", points)
        if replayed is not None:
            return replayed
        lot_id = int(conn.execute(insert(L).values(
            customer_id=customer_id, points=points, status="active", source="manual", order_id=None,
            rule_version=None, idempotency_key=f"adjust:{idempotency_key or uuid.uuid4().hex}", spend_cents=0,
            earned_at=at_, activates_at=at_, expires_at=until, activated_at=at_, closed_at=None,
            detail=json.dumps({"reason": why, "by": who}), created_at=now,
        ).returning(L.c.id)).scalar_one())  # fmt: skip
        entry = write_entry(
            conn, customer_id, "adjust", points, [], at=at_, now=now, by=who, lot_id=lot_id,
            key=idempotency_key, reason=why,
        )  # fmt: skip
        settle(conn, customer_id, at_)
        bump(conn, [customer_id], now)
        return entry

    return transaction(state, credit)


def balance(state: StateStore, customer_id: int, at: datetime | None = None) -> Balance:
    """The member's balance as of now (or ``at``), computed from the ledger in one statement."""
    at_ = when(at, utcnow())
    lot = (
        select(L.c.status, L.c.expires_at, remaining())
        .where(L.c.customer_id == customer_id, L.c.status.in_(OPEN))
        .subquery()
    )
    live = or_(lot.c.expires_at.is_(None), lot.c.expires_at > at_)
    ok = and_(lot.c.status == "active", live, lot.c.remaining > 0)

    def total(cond: Any) -> Any:
        return func.coalesce(func.sum(case((cond, lot.c.remaining), else_=0)), 0)

    lots_q = select(
        total(ok).label("spendable"),
        total(lot.c.status == "pending").label("pending"),
        total(and_(lot.c.status == "active", ~live)).label("overdue"),
        func.min(case((ok, lot.c.expires_at))).label("next_expiry"),
    ).subquery()
    sums = select(func.coalesce(func.sum(E.c.points), 0).label("total")).where(E.c.customer_id == customer_id)
    entries_q = sums.subquery()
    with state.connect() as conn:
        r = conn.execute(select(lots_q, entries_q).select_from(lots_q.join(entries_q, literal(True)))).one()
    spendable_, pending, overdue, total_ = int(r.spendable), int(r.pending), int(r.overdue), int(r.total)
    debt = spendable_ + pending + overdue - total_
    nxt = utc(r.next_expiry) if r.next_expiry is not None else None
    return Balance(customer_id, total_, spendable_ - debt, pending, overdue, debt, nxt)


def lots(state: StateStore, customer_id: int, *, open_only: bool = False) -> list[Lot]:
    """The member's lots with their remaining points, in drawing order (open only: pending and active)."""
    query = select(L, remaining()).where(L.c.customer_id == customer_id)
    if open_only:
        query = query.where(L.c.status.in_(OPEN))
    with state.connect() as conn:
        rows = conn.execute(query.order_by(L.c.expires_at.asc().nulls_last(), L.c.earned_at, L.c.id)).all()
    return [lot_of(r) for r in rows]


def history(state: StateStore, customer_id: int, *, limit: int = 100, before: int | None = None) -> list[Entry]:
    """The member's entries, newest first, each with its draws; page with ``before`` (an entry id)."""
    query = select(E).where(E.c.customer_id == customer_id)
    if before is not None:
        query = query.where(E.c.id < before)
    with state.connect() as conn:
        rows = conn.execute(query.order_by(E.c.id.desc()).limit(limit)).all()
        ids = [int(r.id) for r in rows]
        draws: dict[int, list[tuple[int, int]]] = {}
        for part in chunks(ids):
            for d in conn.execute(select(D).where(D.c.entry_id.in_(part)).order_by(D.c.id)).all():
                draws.setdefault(int(d.entry_id), []).append((int(d.lot_id), int(d.points)))
    return [entry_of(r, draws.get(int(r.id), [])) for r in rows]
