"""Property test of the ledger: random sequences of earn, activate, expire, spend, refund and adjust.

After every step: balance = Σ entries = open lots' remaining less debt, no lot overdrawn; a spend (or a downward
adjustment) succeeds exactly when the available points cover it, draws only active unexpired lots, and takes them
soonest-expiring first, then oldest; a refund takes its own lot first, then spendable lots in the same order;
expiry takes exactly what was left of the lots whose date came. Refused requests change nothing.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from omnicrm.errors import InputError
from omnicrm.loyalty.draws import remaining
from omnicrm.loyalty.ledger import Award, Lot, adjust, balance, earn, lots, spend
from omnicrm.loyalty.lifecycle import activate_due, expire_due
from omnicrm.loyalty.refunds import refund_order
from omnicrm.store.schema import point_lots
from omnicrm.store.state import StateStore
from tests.loyalty.checks import T0, check_ledger, counts

MEMBERS = itertools.count(1000, 10)
member = st.integers(0, 1)
earns = st.tuples(
    st.just("earn"), member, st.integers(1, 300), st.sampled_from([0, 0, 0, 3, 15]), st.none() | st.integers(2, 60)
)
spends = st.tuples(st.just("spend"), member, st.sampled_from([20, 50, 90, 100, 130]))  # % of what is available
refunds = st.tuples(st.just("refund"), st.integers(0, 50), st.booleans(), st.sampled_from(["forgive", "negative"]))
step = st.one_of(
    earns, earns, earns, spends, spends, spends, refunds, refunds,
    st.tuples(st.just("spend all, refund"), st.integers(0, 50), st.sampled_from(["forgive", "negative"])),
    st.tuples(st.just("adjust"), member, st.integers(1, 200) | st.integers(-200, -1)),
    st.tuples(st.just("activate")), st.tuples(st.just("activate")),
    st.tuples(st.just("expire")), st.tuples(st.just("expire")),
    st.tuples(st.just("wait"), st.integers(1, 60)),
)  # fmt: skip


def spendable(state: StateStore, customer: int, at: datetime) -> list[Lot]:
    """The lots a debit may draw, in the order it must draw them (read before the debit)."""
    return [
        lot for lot in lots(state, customer, open_only=True)
        if lot.status == "active" and lot.remaining > 0 and (lot.expires_at is None or lot.expires_at > at)
    ]  # fmt: skip


def greedy(pool: list[Lot], want: int) -> list[tuple[int, int]]:
    out = []
    for lot in pool:
        if want <= 0:
            break
        n = min(lot.remaining, want)
        out.append((lot.id, n))
        want -= n
    return out


def debit(state: StateStore, customer: int, points: int, at: datetime, kind: str) -> None:
    before, pool = balance(state, customer, at), spendable(state, customer, at)
    rows = counts(state)
    try:
        if kind == "spend":
            entry = spend(state, customer, points, by="prop", at=at)
        else:
            entry = adjust(state, customer, -points, reason="prop", by="prop", at=at)
    except InputError as refused:
        assert points > before.available, (points, before)
        assert refused.problems[0].field == "points"
        assert counts(state) == rows
        event(f"{kind} refused")
        return
    assert points <= before.available
    assert list(entry.draws) == greedy(pool, points)  # only spendable lots, soonest-expiring first
    event(f"{kind} drew {min(len(entry.draws), 3)}+ lots")


def refund(state: StateStore, orders: list[tuple[int, str, int]], pick: int, whole: bool, policy: str,
           at: datetime) -> None:  # fmt: skip
    if not orders:
        return
    customer, order_id, cents = orders[pick % len(orders)]
    mine = {lot.order_id: lot for lot in lots(state, customer)}[order_id]
    pool = [lot for lot in spendable(state, customer, at) if lot.id != mine.id]
    part = None if whole or cents < 2 else cents // 2
    entry = refund_order(state, "shop", order_id, refunded_cents=part, by="prop", at=at, policy=policy)  # type: ignore[arg-type]
    if entry is None:
        return
    draws = list(entry.draws)
    target = -entry.points + entry.written_off
    if mine.remaining > 0 and mine.status in ("pending", "active"):
        assert draws[0] == (mine.id, min(mine.remaining, target))
        draws = draws[1:]
    assert draws == greedy(pool, target - (mine.remaining if mine.status in ("pending", "active") else 0))
    taken = sum(n for _, n in entry.draws)
    event(f"refund ({policy}) {'short' if taken < target else 'covered'}")
    if policy == "forgive":
        assert (entry.points, entry.written_off) == (-taken, target - taken)
    else:
        assert entry.written_off == 0


def open_due(state: StateStore, at: datetime) -> tuple[int, int]:
    """Open lots past their date, and their remaining points, over every member (examples share the store)."""
    due = select(func.count(), func.coalesce(func.sum(remaining()), 0)).where(
        point_lots.c.status.in_(("pending", "active")), point_lots.c.expires_at <= at
    )
    with state.connect() as conn:
        n, points = conn.execute(due).one()
    return int(n), int(points)


def expire(state: StateStore, at: datetime) -> None:
    lots_due, points_due = open_due(state, at)
    moved = expire_due(state, at)
    assert (moved.lots, moved.points) == (lots_due, points_due)
    event("expired points" if points_due else "nothing to expire")
    assert open_due(state, at) == (0, 0)


@pytest.mark.timeout(120)
@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.lists(earns, min_size=2, max_size=6), then=st.lists(step, min_size=5, max_size=30))
def test_random_sequences_keep_the_ledger_whole(
    state: StateStore, first: list[tuple[Any, ...]], then: list[tuple[Any, ...]]
) -> None:
    base = next(MEMBERS)
    customers = [base, base + 1]
    orders: list[tuple[int, str, int]] = []
    at = T0
    for n, (op, *args) in enumerate(first + then):
        at += timedelta(hours=1)
        if op == "earn":
            who, points, window, life = args
            order_id = f"{base}-{n}"
            expires = at + timedelta(days=life) if life is not None else None
            award = Award(
                customers[who], "shop", order_id, points, at, at + timedelta(days=window), expires, 1, points * 10
            )
            assert earn(state, award, now=at) is not None
            orders.append((customers[who], order_id, points * 10))
        elif op == "spend":
            available = balance(state, customers[args[0]], at).available
            debit(state, customers[args[0]], max(1, available * args[1] // 100), at, "spend")
        elif op == "adjust" and args[1] > 0:
            adjust(state, customers[args[0]], args[1], reason="prop", by="prop", at=at)
        elif op == "adjust":
            debit(state, customers[args[0]], -args[1], at, "adjust")
        elif op == "refund":
            refund(state, orders, *args, at=at)
        elif op == "spend all, refund":  # a refund of points already spent: the shortfall
            who = orders[args[0] % len(orders)][0]
            debit(state, who, max(1, balance(state, who, at).available), at, "spend")
            refund(state, orders, args[0], True, args[1], at=at)
        elif op == "activate":
            activate_due(state, at)
            for c in customers:
                assert not [lot for lot in lots(state, c, open_only=True) if lot.status == "pending"
                            and lot.activates_at <= at and (lot.expires_at is None or lot.expires_at > at)]  # fmt: skip
        elif op == "expire":
            expire(state, at)
        else:
            at += timedelta(days=args[0])
        for c in customers:
            check_ledger(state, c, at)
            if balance(state, c, at).debt:
                event("a member owes points")
