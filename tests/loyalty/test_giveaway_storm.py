"""1,000 concurrent entries against one giveaway's budget, from threads and from separate processes (each with its
own StateStore on the same database), on SQLite and PostgreSQL.

Afterwards: the budget was spent but never passed, no stock went below zero, every per-person limit held, every
retried request drew once, every paid prize has exactly one entry (one points lot or one coupon each, and nothing
paid without an entry), and the audit passes with the published seed (and fails with another)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from sqlalchemy import func, select

from omnicrm.errors import Conflict
from omnicrm.loyalty import giveaway_audit as audit
from omnicrm.loyalty.coupons import Template, create_template
from omnicrm.loyalty.giveaway_odds import new_seed
from omnicrm.loyalty.giveaways import GiveawaySpec, PrizeSpec, close, create, enter
from omnicrm.store.schema import coupons, point_lots
from omnicrm.store.state import StateStore
from tests.loyalty.test_giveaways import DAY, HOUR, T0

GID = "storm"
REQUESTS = 1000
KEYS = 950  # requests beyond these retry an earlier request: the same idempotency key and customer
PER_CUSTOMER = 16  # consecutive keys of one customer: 950 keys, 60 customers
THREADS = 32
PROCESSES, PROCESS_THREADS = 4, 6
BUDGET = 60_000  # spent after some 130 entries: the first customers meet their limits, the later ones the budget
DAILY, TOTAL, WINS = 3, 5, 3
LIMITS = {"budget_fen", "per_person_daily", "per_person_total", "prizes_per_person", "stock"}


def set_up(state: StateStore) -> audit.Giveaway:
    """A lucky draw of 600 yuan: 500 points (w 30), a 10-yuan coupon (w 15, 40 in stock), a 30-yuan gift (w 5, 6 in
    stock), no prize (w 50); 3 entries a day, 5 in all and 3 prizes per person."""
    create_template(state, Template("STORM-10", "10 off", "amount_off", total_quantity=10_000, per_person_limit=100,
                                    amount_off_fen=1000, valid_days=30), by="ops", now=T0 - DAY)  # fmt: skip
    prizes = (PrizeSpec("points", "500 积分", 30, points=500), PrizeSpec("coupon", "10 元券", 15,
              coupon_template_id="STORM-10", stock=40), PrizeSpec("gift", "保温杯", 5, value_fen=3000, stock=6))  # fmt: skip
    spec = GiveawaySpec(GID, "storm", "lucky_draw", T0, T0 + 3 * DAY, BUDGET, prizes, miss_weight=50,
                        per_person_daily=DAILY, per_person_total=TOTAL, prizes_per_person=WINS)  # fmt: skip
    return create(state, spec, by="ops", now=T0 - DAY)


def attempt(state: StateStore, i: int) -> tuple[Any, ...]:
    """Request ``i``: ("entry", key, seq, customer, value) or ("refused", key, field, message) or ("error", ...)."""
    k = i if i < KEYS else i - KEYS
    customer, key = 1000 + k // PER_CUSTOMER, f"req-{k}"
    at = T0 + HOUR if k % 2 == 0 else T0 + DAY + HOUR  # two days, for the daily limit
    try:
        e = enter(state, GID, customer, idempotency_key=key, by="storm", now=at)
        return ("entry", key, e.seq, e.customer_id, e.value_fen)
    except Conflict as exc:
        return ("refused", key, exc.problems[0].field, exc.message)
    except Exception as exc:  # collected and checked by the test
        return ("error", key, repr(exc))


def threads(n: int, indices: Sequence[int], work: Callable[[int], tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Run ``work`` over ``indices`` on ``n`` threads released together (thread t takes every n-th index)."""
    gate = threading.Barrier(n)
    out: list[list[tuple[Any, ...]]] = [[] for _ in range(n)]

    def one(t: int) -> None:
        gate.wait()
        out[t] = [work(i) for i in indices[t::n]]

    pool = [threading.Thread(target=one, args=(t,)) for t in range(n)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(300)
    return [r for part in out for r in part]


def process_storm(url: str, indices: list[int], gate: Any, results: Any) -> None:
    """One process of the storm: its own StateStore on the same database, its own threads."""
    state = StateStore(url, migrate=False)
    try:
        gate.wait()
        results.put(threads(PROCESS_THREADS, indices, lambda i: attempt(state, i)))
    finally:
        state.dispose()


def check(state: StateStore, results: list[tuple[Any, ...]]) -> None:
    assert len(results) == REQUESTS
    assert [r for r in results if r[0] == "error"] == []
    refusals = Counter(r[2] for r in results if r[0] == "refused")
    assert set(refusals) <= LIMITS, refusals
    assert refusals["budget_fen"] > 0 and refusals["per_person_daily"] + refusals["per_person_total"] > 0, refusals
    seq_of: dict[str, set[int]] = {}
    for r in results:
        if r[0] == "entry":
            seq_of.setdefault(r[1], set()).add(r[2])
    assert all(len(s) == 1 for s in seq_of.values()), "a retried request drew twice"
    assert any(n > 1 for n in Counter(r[1] for r in results if r[0] == "entry").values()), "retries were answered"

    g = audit.get(state, GID)
    rows, total = audit.entries(state, GID, limit=REQUESTS, newest_first=False)
    assert total == len(rows) == g.entry_count == len(seq_of) and [e.seq for e in rows] == list(range(1, total + 1))
    assert {e.idempotency_key: e.seq for e in rows} == {k: min(s) for k, s in seq_of.items()}
    spent = sum(e.value_fen for e in rows)
    assert spent == g.spent_fen <= BUDGET, "never over budget"
    assert BUDGET - spent < min(p.value_fen for p in g.prizes if p.in_stock), "the budget was used up"
    given = Counter(e.prize_id for e in rows if e.prize_id is not None)
    for p in g.prizes:
        assert p.awarded == given[p.id] and (p.stock is None or p.stock - p.awarded >= 0), p
    per_person = Counter(e.customer_id for e in rows)
    per_day = Counter((e.customer_id, e.day) for e in rows)
    wins = Counter(e.customer_id for e in rows if e.won)
    assert max(per_person.values()) <= TOTAL and max(per_day.values()) <= DAILY and max(wins.values()) <= WINS

    points = {f"{GID}:{e.seq}": e for e in rows if e.points}
    coupon_entries = {f"giveaway:{GID}:{e.seq}": e for e in rows if e.coupon_id}
    with state.connect() as conn:
        lots = conn.execute(select(point_lots.c.order_id, point_lots.c.customer_id, point_lots.c.points)
                            .where(point_lots.c.source == "giveaway")).all()  # fmt: skip
        issued = conn.execute(select(coupons.c.idempotency_key, coupons.c.customer_id)
                              .where(coupons.c.campaign_id == f"giveaway:{GID}")).all()  # fmt: skip
        assert conn.execute(select(func.count()).select_from(coupons)).scalar_one() == len(issued)
    assert sorted(lot.order_id for lot in lots) == sorted(points), "one lot per points entry, none without one"
    assert all((lot.customer_id, lot.points) == (points[lot.order_id].customer_id, points[lot.order_id].points)
               for lot in lots)  # fmt: skip
    assert sorted(c.idempotency_key for c in issued) == sorted(coupon_entries), "one coupon per coupon entry"
    assert all(c.customer_id == coupon_entries[c.idempotency_key].customer_id for c in issued)

    close(state, GID, by="ops")
    verdict = audit.verify(state, GID)
    assert verdict.ok, verdict.problems[:5]
    assert verdict.entries == total and verdict.spent_fen == spent
    assert not audit.verify(state, GID, seed=new_seed()).ok


@pytest.mark.timeout(300)
def test_a_thousand_concurrent_entries_from_threads_stay_within_budget(state: StateStore) -> None:
    set_up(state)
    started = time.monotonic()
    results = threads(THREADS, range(REQUESTS), lambda i: attempt(state, i))
    assert time.monotonic() - started < 120
    check(state, results)


@pytest.mark.timeout(300)
def test_a_thousand_concurrent_entries_from_processes_stay_within_budget(state: StateStore) -> None:
    set_up(state)
    ctx = multiprocessing.get_context("spawn")
    gate, queue = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=process_storm, args=(state.url, list(range(p, REQUESTS, PROCESSES)), gate, queue))
             for p in range(PROCESSES)]  # fmt: skip
    for proc in procs:
        proc.start()
    results = [r for _ in procs for r in queue.get(timeout=240)]
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    check(state, results)
