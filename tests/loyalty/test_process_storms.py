"""Redemption storms from threads and from separate processes, on a SQLite file and on PostgreSQL: 1,000 requests
from a pool of threads sharing one StateStore, or of ``spawn`` processes each with its own StateStore on the same
database, against one member's points, one coupon code and one member's stored value. No overdraft, no double use, a retried request never spends twice, and at the end
every balance equals its ledger. Also: ``benchmarks/loyalty.py`` runs at a tiny size and holds its invariants."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from collections.abc import Sequence
from multiprocessing.pool import ThreadPool
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from omnicrm.loyalty import stored_value as sv
from omnicrm.loyalty.coupons import Template, create_template, issue
from omnicrm.loyalty.ledger import balance
from omnicrm.store.schema import coupon_redemptions
from omnicrm.store.state import StateStore
from tests.loyalty import storm_worker
from tests.loyalty.checks import (
    T0,
    check_coupons,
    check_ledger,
    check_points_entries_whole,
    check_stored_value,
    entries_sum,
    give,
)

PROCESSES = 4
REQUESTS = 1000
RETRIES = 100  # the last requests repeat the first ones' idempotency keys
ROOT = Path(__file__).resolve().parents[2]


THREADS = 32


def storm(state: StateStore, tasks: Sequence[tuple[Any, ...]], mode: str) -> list[tuple[Any, ...]]:
    """Every task through a pool of THREADS threads sharing ``state``, or of PROCESSES 'spawn' processes that start
    together; the outcomes in task order."""
    if mode == "threads":
        storm_worker.STATE = state
        with ThreadPool(THREADS) as threads:
            return threads.map(storm_worker.request, tasks, chunksize=5)
    url = state.url
    ctx = multiprocessing.get_context("spawn")
    gate = ctx.Barrier(PROCESSES)
    with ctx.Pool(PROCESSES, initializer=storm_worker.open_store, initargs=(url, gate)) as pool:
        return pool.map(storm_worker.request, tasks, chunksize=5)


def key_of(i: int) -> int:
    return i if i < REQUESTS - RETRIES else i - (REQUESTS - RETRIES)


def settled(outcomes: list[tuple[Any, ...]], field: str) -> tuple[dict[str, tuple[int, int]], list[int]]:
    """The entries written per key (each key's outcomes agreeing on one), and the indexes of refused requests.
    Fails on any unexpected error, on a refusal for another reason, and when fewer than two processes served."""
    assert [o for o in outcomes if o[0] == "error"] == []
    assert len({o[1] for o in outcomes}) >= 2, "the requests were not served by several workers"
    written: dict[str, tuple[int, int]] = {}
    refused = []
    for i, o in enumerate(outcomes):
        if o[0] == "ok":
            assert written.setdefault(o[2], (o[3], o[4])) == (o[3], o[4]), f"key {o[2]} wrote twice"
        else:
            assert (o[3], o[4]) == ("InputError", field), o
            refused.append(i)
    return written, refused


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_points_spent_from_many_workers_never_overdraw(state: StateStore, mode: str) -> None:
    for n in range(4):
        give(state, 71, 500, f"storm-lot-{n}", expires_in_days=None)
    want = [1 + key_of(i) % 4 for i in range(REQUESTS)]  # 2,250 points asked of 2,000
    outcomes = storm(state, [("points", f"p-{key_of(i)}", 71, want[i]) for i in range(REQUESTS)], mode)
    written, refused = settled(outcomes, "points")
    spent = sum(points for _, points in written.values())
    assert refused and 0 < spent <= 2_000
    final = balance(state, 71, T0)
    assert final.balance == final.available == 2_000 - spent == entries_sum(state, 71)
    assert final.available < min(want[i] for i in refused)  # refused only when it asked for more than was left
    check_ledger(state, 71, T0)
    check_points_entries_whole(state, 71)


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_one_coupon_redeemed_from_many_workers_is_used_once(state: StateStore, mode: str) -> None:
    create_template(state, Template("storm", "¥5 off", "amount_off", 10, amount_off_fen=500, valid_days=30), by="t")
    code = issue(state, "storm", 72, idempotency_key="storm-72").code
    outcomes = storm(state, [("coupon", f"receipt-{i}", code) for i in range(REQUESTS)], mode)
    assert [o for o in outcomes if o[0] == "error"] == []
    won = [o for o in outcomes if o[0] == "ok"]
    assert len(won) == 1 and won[0][4] == 500
    assert {(o[3], o[4]) for o in outcomes if o[0] == "refused"} == {("Conflict", "code")}
    assert len({o[1] for o in outcomes}) >= 2
    with state.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(coupon_redemptions)).scalar_one()
    assert rows == 1
    check_coupons(state)


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["threads", "processes"])
def test_stored_value_spent_from_many_workers_never_overdraws(state: StateStore, mode: str) -> None:
    sv.top_up(state, 73, 6_000, bonus_fen=1_000, till=sv.Till("S01", "storm-a", "t"))
    sv.top_up(state, 73, 3_000, till=sv.Till("S01", "storm-b", "t"))
    want = [5 + key_of(i) % 20 for i in range(REQUESTS)]  # 13,050 fen asked of 10,000
    outcomes = storm(state, [("stored", f"s-{key_of(i)}", 73, want[i]) for i in range(REQUESTS)], mode)
    written, refused = settled(outcomes, "amount_fen")
    spent = sum(fen for _, fen in written.values())
    assert refused and 0 < spent <= 10_000
    assert check_stored_value(state, 73) == 10_000 - spent
    assert 10_000 - spent < min(want[i] for i in refused)
    assert sv.balance(state, 73).entries == 2 + len(written)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_loyalty_benchmark_runs_at_a_tiny_size(state_url: str, tmp_path: Path) -> None:
    """A smoke test: the benchmark's every table and invariant line, on the database of this run (not timed)."""
    database = "postgresql" if state_url.startswith("postgresql") else "sqlite"
    command = [sys.executable, str(ROOT / "benchmarks" / "loyalty.py"), "--requests", "24", "--workers", "2",
               "--databases", database, "--scratch", str(tmp_path), "--url", state_url]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=280, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for op in ("points", "coupons", "stored value"):
        for mode in ("threads", "processes"):
            assert f"{database} {op} {mode}: invariants held" in done.stdout, done.stdout[-3000:]
    assert "baseline" in done.stdout
