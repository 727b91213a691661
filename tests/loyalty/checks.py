"""Checks of the ledger's invariants straight from its tables, shared by the loyalty tests."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from omnicrm.loyalty.ledger import Award, Lot, balance, earn, lots
from omnicrm.store.schema import point_draws, point_entries, point_lots
from omnicrm.store.state import StateStore

T0 = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def award(
    customer_id: int, points: int, order_id: str, *, at: datetime = T0, window_days: int = 0,
    expires_in_days: int | None = 365, source: str = "tmall", spend_cents: int | None = None,
) -> Award:  # fmt: skip
    """An award for one order, paid at ``at``, pending for ``window_days``, expiring ``expires_in_days`` after."""
    return Award(
        customer_id, source, order_id, points, at, at + timedelta(days=window_days),
        at + timedelta(days=expires_in_days) if expires_in_days is not None else None, 1,
        spend_cents if spend_cents is not None else points * 100,
    )  # fmt: skip


def give(state: StateStore, customer_id: int, points: int, order_id: str, **kw: Any) -> Lot:
    """Earn ``points`` for a made-up order; active at once unless ``window_days`` says otherwise."""
    now = kw.pop("now", None) or kw.get("at", T0)
    lot = earn(state, award(customer_id, points, order_id, **kw), now=now)
    assert lot is not None
    return lot


def entries_sum(state: StateStore, customer_id: int | None = None) -> int:
    q = select(func.coalesce(func.sum(point_entries.c.points), 0))
    if customer_id is not None:
        q = q.where(point_entries.c.customer_id == customer_id)
    with state.connect() as conn:
        return int(conn.execute(q).scalar_one())


def counts(state: StateStore) -> tuple[int, int, int]:
    """Rows in lots, entries and draws: unchanged after a refused request."""
    with state.connect() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (point_lots, point_entries, point_draws)
        )


def check_ledger(state: StateStore, customer_id: int, at: datetime) -> None:
    """Balance = Σ entries = open lots' remaining less the debt; no lot overdrawn; closed lots hold nothing;
    every draw is positive; debt (entries that drew less than they took) only comes from refunds."""
    b = balance(state, customer_id, at)
    assert b.balance == entries_sum(state, customer_id)
    all_lots = lots(state, customer_id)
    for lot in all_lots:
        assert 0 <= lot.remaining <= lot.points, lot
        if lot.status in ("expired", "reversed"):
            assert lot.remaining == 0, lot
    with state.connect() as conn:
        e, d = point_entries, point_draws
        drawn = select(func.coalesce(func.sum(d.c.points), 0)).where(d.c.entry_id == e.c.id).scalar_subquery()
        rows = conn.execute(select(e.c.kind, e.c.points, drawn).where(e.c.customer_id == customer_id)).all()
        assert conn.execute(select(func.count()).select_from(d).where(d.c.points <= 0)).scalar_one() == 0
    owed = 0
    for kind, points, took in rows:
        if points < 0:
            assert int(took) <= -points, (kind, points, took)
            if int(took) < -points:
                assert kind in ("reverse", "adjust"), kind
                owed += -points - int(took)
        else:
            assert int(took) == 0
    assert b.debt == owed
    open_left = sum(lot.remaining for lot in all_lots if lot.status in ("pending", "active"))
    assert b.balance == open_left - owed
    assert b.available + b.pending + b.overdue == b.balance  # available already counts the debt


def run(n: int, work: Any) -> list[Any]:
    """Run ``work(i)`` on ``n`` threads released together; returns each result or the exception it raised."""
    gate = threading.Barrier(n)
    out: list[Any] = [None] * n

    def one(i: int) -> None:
        gate.wait()
        try:
            out[i] = work(i)
        except Exception as exc:  # collected and checked by the test
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out
