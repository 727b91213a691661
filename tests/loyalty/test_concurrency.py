"""Concurrency on SQLite and PostgreSQL: hundreds of threads spending one balance never overdraw it, retried
requests spend once, an expiry run in the middle takes only what nobody spent, and concurrent awards of the
same orders award each once. At the end every balance equals its ledger."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from omnicrm.errors import InputError
from omnicrm.loyalty.ledger import Entry, balance, earn_many, history, lots, spend
from omnicrm.loyalty.lifecycle import expire_due
from omnicrm.store.state import StateStore
from tests.loyalty.checks import T0, award, check_ledger, entries_sum, give, run

THREADS = 240
KEYS = 200  # threads beyond these retry an earlier thread's request (same idempotency key)


@pytest.mark.timeout(180)
def test_hundreds_of_concurrent_spends_never_overdraw(state: StateStore) -> None:
    for i, (points, life) in enumerate([(300, 30), (200, 10), (250, None), (150, 60), (100, 20)]):
        give(state, 91, points, f"L{i}", expires_in_days=life)
    at = T0 + timedelta(days=1)
    want = {k: 3 + k % 9 for k in range(KEYS)}  # 1,400 points asked of 1,000

    def work(i: int) -> Entry | None:
        if i == THREADS - 1:  # the 10-day lot expires in the middle of the storm
            expire_due(state, T0 + timedelta(days=12))
            return None
        k = i % KEYS
        return spend(state, 91, want[k], by=f"till-{i}", at=at, idempotency_key=f"redeem-{k}")

    results = run(THREADS, work)
    refused = [r for r in results if isinstance(r, InputError)]
    errors = [r for r in results if isinstance(r, Exception) and not isinstance(r, InputError)]
    assert errors == []
    entries = {r.id: r for r in results if isinstance(r, Entry)}
    by_key: dict[str, set[int]] = {}
    for r in results:
        if isinstance(r, Entry):
            by_key.setdefault(r.idempotency_key or "", set()).add(r.id)
    assert all(len(ids) == 1 for ids in by_key.values())  # a retried request found the first one's entry
    spent = sum(-e.points for e in entries.values())
    expired = sum(-e.points for e in history(state, 91, limit=1000) if e.kind == "expire")
    assert spent + expired <= 1000
    assert refused and all(r.problems[0].field == "points" for r in refused)
    final = balance(state, 91, at)
    assert final.balance == 1000 - spent - expired == entries_sum(state, 91)
    # a request was refused only when it asked for more than was left, and what is left only shrinks
    assert final.available < min(want[i % KEYS] for i, r in enumerate(results) if isinstance(r, InputError))
    assert all(0 <= lot.remaining <= lot.points for lot in lots(state, 91))
    check_ledger(state, 91, at)


@pytest.mark.timeout(120)
def test_concurrent_replays_of_the_same_orders_award_once(state: StateStore) -> None:
    awards = [award(500 + i % 10, 10 + i, f"order-{i}") for i in range(60)]

    def work(i: int) -> int:
        mine = awards[:]
        random.Random(i).shuffle(mine)
        return len(earn_many(state, mine, now=T0))

    created = run(16, work)
    assert all(isinstance(n, int) for n in created) and sum(created) == 60
    for c in range(500, 510):
        assert len(lots(state, c)) == 6
        assert entries_sum(state, c) == sum(a.points for a in awards if a.customer_id == c)
        check_ledger(state, c, T0)
