"""A thousand sign-ups at once for an event of 50 seats, from threads and from separate processes, on SQLite and
PostgreSQL: exactly 50 confirmed, everyone else waiting in sign-up order, one sign-up per person however often they
tapped; concurrent cancellations each promote exactly the next person waiting; concurrent walk-ins take only the seats
that are left, and the refused ones leave nothing behind."""

from __future__ import annotations

import multiprocessing
import random
import time
from typing import Any

import pytest
from sqlalchemy import func, select

from omnicrm.community.check_in import walk_in
from omnicrm.community.signups import Cancellation, SignUp, cancel_sign_up, sign_up, sign_ups
from omnicrm.community.tokens import event_token
from omnicrm.errors import Conflict
from omnicrm.store.schema import community_checkins, ingest_buffer
from omnicrm.store.state import StateStore
from tests.community.checks import NOW, check_order, event, rows
from tests.community.storm import storm_in_process
from tests.loyalty.checks import run

CAPACITY = 50
THREADS = 1000
PEOPLE = 800  # thread i signs up customer 1 + i % PEOPLE: 200 threads repeat someone else's tap
PROCESSES = 4
THREADS_PER_PROCESS = 10  # 4 connection pools of 10: the PostgreSQL test cluster is shared
SECRET = "storm-secret"


@pytest.mark.timeout(120)
def test_a_thousand_threads_fill_exactly_the_seats(state: StateStore) -> None:
    e = event(state, CAPACITY)
    started = time.perf_counter()
    results = run(THREADS, lambda i: sign_up(state, e.id, 1 + i % PEOPLE, by=f"thread-{i}", now=NOW))
    seconds = time.perf_counter() - started
    assert [r for r in results if not isinstance(r, SignUp)] == []
    ids: dict[int, set[int]] = {}
    for r in results:
        ids.setdefault(r.customer_id, set()).add(r.id)
    assert len(ids) == PEOPLE and all(len(found) == 1 for found in ids.values())  # one sign-up per person
    assert sum(r.repeated for r in results) == THREADS - PEOPLE
    found = check_order(state, e.id, CAPACITY, PEOPLE)
    told = {r.id: r.status for r in found}
    assert all(r.status == told[r.id] for r in results)  # every answer says what the table says
    waiting, total = sign_ups(state, e.id, status="waiting", limit=PEOPLE)
    assert total == PEOPLE - CAPACITY
    assert [w.position for w in waiting] == list(range(1, total + 1))
    assert [w.seq for w in waiting] == list(range(CAPACITY + 1, PEOPLE + 1))
    assert seconds < 60, f"{THREADS} sign-ups took {seconds:.1f}s on {state.dialect}"


@pytest.mark.timeout(240)
def test_a_thousand_sign_ups_from_separate_processes(state: StateStore) -> None:
    e = event(state, CAPACITY)
    requests = list(range(1, 901)) + list(range(1, 101))  # 1,000 sign-ups of 900 people
    random.Random(5).shuffle(requests)
    shares = [requests[p::PROCESSES] for p in range(PROCESSES)]
    across = sum(1 for c in range(1, 101) if sum(c in share for share in shares) == 2)
    assert across > 50  # most repeated taps come from another process than the first
    ctx = multiprocessing.get_context("spawn")
    gate, out = ctx.Barrier(PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=storm_in_process, args=(state.url, e.id, share, THREADS_PER_PROCESS, gate, out))
             for share in shares]  # fmt: skip
    started = time.perf_counter()
    for p in procs:
        p.start()
    try:
        answers: list[tuple[Any, ...]] = [item for _ in procs for item in out.get(timeout=200)]
    finally:
        for p in procs:
            p.join(60)
    seconds = time.perf_counter() - started
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    assert [a for a in answers if len(a) != 3] == []
    assert len(answers) == 1000
    ids: dict[int, set[int]] = {}
    for customer, signup_id, _ in answers:
        ids.setdefault(customer, set()).add(signup_id)
    assert len(ids) == 900 and all(len(found) == 1 for found in ids.values())
    found = check_order(state, e.id, CAPACITY, 900)
    assert {(r.customer_id, r.id) for r in found} == {(c, next(iter(i))) for c, i in ids.items()}
    assert seconds < 90, f"the process storm took {seconds:.1f}s on {state.dialect}"


@pytest.mark.timeout(120)
def test_concurrent_cancellations_each_promote_the_next_in_line(state: StateStore) -> None:
    e = event(state, 10)
    for customer in range(1, 41):
        sign_up(state, e.id, customer, by="test", now=NOW)
    # 8 confirmed people cancel at once, each twice (a double tap): 8 seats go to the first 8 waiting, once each
    results = run(16, lambda i: cancel_sign_up(state, e.id, 1 + i % 8, by=f"thread-{i}", now=NOW))
    assert [r for r in results if not isinstance(r, Cancellation)] == []
    assert sum(not r.repeated for r in results) == 8
    assert all(len(r.promoted) == 1 for r in results if not r.repeated)
    assert all(r.promoted == [] for r in results if r.repeated)
    promoted = sorted(p.customer_id for r in results for p in r.promoted)
    assert promoted == list(range(11, 19))
    by_customer = {r.customer_id: r for r in rows(state, e.id)}
    assert sorted(c for c, r in by_customer.items() if r.status == "confirmed") == [9, 10, *range(11, 19)]
    assert [r.customer_id for r in rows(state, e.id) if r.status == "waiting"] == list(range(19, 41))


@pytest.mark.timeout(120)
def test_concurrent_walk_ins_take_only_the_seats_left(state: StateStore) -> None:
    e = event(state, CAPACITY)
    for customer in range(1, CAPACITY - 4):  # 45 seats taken: 5 left
        sign_up(state, e.id, customer, by="test", now=NOW)
    token, at = event_token(SECRET, e.id), e.starts_at

    def work(i: int) -> Any:
        return walk_in(state, SECRET, token, f"1391234{i:04d}", identity=None, now=at)

    results = run(30, work)
    admitted = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(admitted) == 5 and len({r.id for r in admitted}) == 5
    assert len(refused) == 25 and all(isinstance(r, Conflict) for r in refused)
    assert all(r.problems[0].field == "event" and "full" in r.message for r in refused)
    with state.connect() as conn:
        checkins = conn.execute(select(func.count()).select_from(community_checkins)).scalar_one()
        facts = conn.execute(select(ingest_buffer.c.message_id).order_by(ingest_buffer.c.message_id)).scalars().all()
    assert checkins == 5  # the refused walk-ins wrote no check-in ...
    assert facts == sorted(r.message_id for r in admitted)  # ... and no fact
