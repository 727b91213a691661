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


# --- stored value, points entries and coupons, straight from their tables (also used by benchmarks/loyalty.py) ---


def stored_value_counts(state: StateStore) -> tuple[int, int]:
    """Rows in stored_value_entries and stored_value_draws: unchanged after a refused request."""
    from omnicrm.store.schema import stored_value_draws, stored_value_entries

    with state.connect() as conn:
        return tuple(  # type: ignore[return-value]
            int(conn.execute(select(func.count()).select_from(t)).scalar_one())
            for t in (stored_value_entries, stored_value_draws)
        )


def check_stored_value(state: StateStore, customer_id: int) -> int:
    """The member's stored value is whole; returns the balance. Balance = Σ entries = what is left in the buckets;
    no bucket overdrawn or overfilled; every entry but a top-up is linked to draws that make up its amount, split
    as its paid and bonus parts; refunds, top-up refunds and reversals name their target; no spend gave back more
    than it took; no entry reversed twice."""
    from omnicrm.loyalty.stored_value import balance
    from omnicrm.store.schema import stored_value_draws as d
    from omnicrm.store.schema import stored_value_entries as e

    with state.connect() as conn:
        entries = {int(r.id): r for r in conn.execute(select(e).where(e.c.customer_id == customer_id)).all()}
        draws = conn.execute(select(d).where(d.c.entry_id.in_(list(entries) or [0]))).all()
    by_entry: dict[int, list[Any]] = {}
    bucket: dict[tuple[int, str], int] = {}
    for row in draws:
        by_entry.setdefault(int(row.entry_id), []).append(row)
        bucket[(int(row.topup_id), row.bucket)] = bucket.get((int(row.topup_id), row.bucket), 0) + int(row.amount_fen)
    total = 0
    held: dict[int, int] = {}
    reversed_: list[int] = []
    for entry_id, r in entries.items():
        assert int(r.amount_fen) == int(r.paid_fen) + int(r.bonus_fen), r
        total += int(r.amount_fen)
        mine = by_entry.get(entry_id, [])
        if r.kind == "topup":
            assert not mine and int(r.paid_fen) > 0 and int(r.bonus_fen) >= 0 and r.target_id is None, r
            continue
        assert mine, f"entry {entry_id} ({r.kind}) has no draws"
        assert sum(int(x.amount_fen) for x in mine) == -int(r.amount_fen), (r, mine)
        assert sum(int(x.amount_fen) for x in mine if x.bucket == "paid") == -int(r.paid_fen), (r, mine)
        assert all(entries[int(x.topup_id)].kind == "topup" for x in mine), mine
        if r.kind == "spend":
            assert r.target_id is None and all(int(x.amount_fen) > 0 for x in mine), (r, mine)
            held[entry_id] = held.get(entry_id, 0) + -int(r.amount_fen)
        else:
            assert r.target_id is not None and int(r.target_id) in entries, r
            target = entries[int(r.target_id)]
            if r.kind == "reversal":
                reversed_.append(int(r.target_id))
            if target.kind == "spend":
                assert r.kind in ("refund", "reversal") and all(int(x.amount_fen) < 0 for x in mine), (r, mine)
                held[int(r.target_id)] = held.get(int(r.target_id), 0) - int(r.amount_fen)
            else:
                assert r.kind in ("topup_refund", "reversal") and target.kind == "topup", (r, target)
                assert {int(x.topup_id) for x in mine} == {int(target.id)}, (r, mine)
    assert all(v >= 0 for v in held.values()), held  # no spend refunded beyond what it took
    assert len(reversed_) == len(set(reversed_)), reversed_
    left = 0
    for topup_id, r in entries.items():
        if r.kind != "topup":
            continue
        for name, size in (("paid", int(r.paid_fen)), ("bonus", int(r.bonus_fen))):
            rest = size - bucket.get((topup_id, name), 0)
            assert 0 <= rest <= size, (topup_id, name, rest, size)
            left += rest
    b = balance(state, customer_id)
    assert b.balance_fen == total == left, (b, total, left)
    assert b.balance_fen >= 0 and b.paid_fen >= 0 and b.bonus_fen >= 0, b
    return b.balance_fen


def check_points_entries_whole(state: StateStore, customer_id: int) -> None:
    """Every spend of the member's points is linked to draws that make up exactly its points."""
    e, d = point_entries, point_draws
    drawn = select(func.coalesce(func.sum(d.c.points), 0)).where(d.c.entry_id == e.c.id).scalar_subquery()
    with state.connect() as conn:
        rows = conn.execute(
            select(e.c.id, e.c.points, drawn).where(e.c.customer_id == customer_id, e.c.kind == "spend")
        )
        broken = [(int(i), int(p), int(t)) for i, p, t in rows.all() if int(t) != -int(p)]
    assert broken == [], f"spends whose draws do not make up their points: {broken[:5]}"


def check_coupons(state: StateStore) -> None:
    """Every coupon is redeemed exactly when it has one redemption standing (not reversed), and never two."""
    from omnicrm.store.schema import coupon_redemptions as r
    from omnicrm.store.schema import coupons as c

    standing = (
        select(func.count()).where(r.c.coupon_id == c.c.id, r.c.reversed_at.is_(None)).scalar_subquery().label("n")
    )
    with state.connect() as conn:
        rows = conn.execute(select(c.c.code, c.c.status, standing)).all()
    wrong = [(code, status, int(n)) for code, status, n in rows if int(n) != (1 if status == "redeemed" else 0)]
    assert wrong == [], f"coupons whose status and redemptions disagree: {wrong[:5]}"
