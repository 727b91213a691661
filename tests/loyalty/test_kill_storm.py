"""SIGKILL during a redemption storm, on a SQLite file and on PostgreSQL.

A child process (``tests/loyalty/storm_worker.py``) spends points, spends stored value and redeems coupons in a loop,
printing each change only after its transaction committed; the parent kills it with SIGKILL at a random moment, then
starts the next round at the index after the last one printed (so the request in flight when it died is retried with
the same key). Afterwards: every change the child reported is in the database; nothing is half-written (every spend
linked to draws that make it up, every stored-value entry to its buckets, a coupon redeemed exactly when it has one
standing redemption); balances equal their ledgers; and a fresh run over the same keys replays every change rather
than making it again.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from omnicrm.loyalty import stored_value as sv
from omnicrm.loyalty.coupons import Template, create_template, issue_many
from omnicrm.store.schema import coupon_redemptions, coupons, point_entries, stored_value_entries
from omnicrm.store.state import StateStore
from tests.loyalty.checks import (
    T0,
    check_coupons,
    check_ledger,
    check_points_entries_whole,
    check_stored_value,
    give,
)

MEMBER = 81
ROUNDS = 5
COUPONS = 1_000
ROOT = Path(__file__).resolve().parents[2]
Reported = dict[int, tuple[str, str, int]]  # index → (kind, key, id)


def worker(url: str, codes: Path, start: int, stop: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tests.loyalty.storm_worker", url, str(MEMBER), str(codes), str(start), str(stop)]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def lines_of(out: bytes) -> Reported:
    """Complete lines only: a line cut short by the kill was never reported."""
    found: Reported = {}
    for line in out.decode().split("\n")[:-1]:
        i, kind, key, ident = line.split()
        found[int(i)] = (kind, key, int(ident))
    return found


def killed_round(url: str, codes: Path, start: int, rng: random.Random) -> Reported:
    """Run the child from ``start`` and SIGKILL it a random moment after its first committed change."""
    proc = worker(url, codes, start, 3 * COUPONS)
    out = bytearray()
    first = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(4096):
            out.extend(chunk)
            first.set()

    reader = threading.Thread(target=read)
    reader.start()
    assert first.wait(90), f"the worker printed nothing: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}"
    time.sleep(rng.uniform(0.05, 1.5))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    reader.join(30)
    assert proc.returncode == -signal.SIGKILL
    return lines_of(bytes(out))


def counts(state: StateStore) -> tuple[int, int, int]:
    """Point spends, stored-value entries and coupon redemptions made by the storm."""
    with state.connect() as conn:
        return (
            int(conn.execute(select(func.count()).where(point_entries.c.kind == "spend")).scalar_one()),
            int(conn.execute(select(func.count()).select_from(stored_value_entries)).scalar_one()),
            int(conn.execute(select(func.count()).select_from(coupon_redemptions)).scalar_one()),
        )


def in_database(state: StateStore, kind: str, key: str, ident: int) -> bool:
    with state.connect() as conn:
        if kind == "points":
            q = select(point_entries.c.id).where(point_entries.c.idempotency_key == key)
        elif kind == "stored":
            q = select(stored_value_entries.c.id).where(stored_value_entries.c.idempotency_key == key)
        else:
            q = (
                select(coupon_redemptions.c.id)
                .join(coupons, coupons.c.id == coupon_redemptions.c.coupon_id)
                .where(coupon_redemptions.c.order_id == key, coupon_redemptions.c.reversed_at.is_(None),
                       coupons.c.status == "redeemed")
            )  # fmt: skip
        return conn.execute(q).scalar_one_or_none() == ident


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_sigkill_loses_no_committed_change_and_leaves_nothing_half_written(state: StateStore, tmp_path: Path) -> None:
    give(state, MEMBER, 100_000, "kill-storm-lot", expires_in_days=None)
    sv.top_up(state, MEMBER, 10_000_000, bonus_fen=5_000, till=sv.Till("K1", "kill-top-up", "t"))
    create_template(state, Template("kill", "¥1 off", "amount_off", COUPONS, amount_off_fen=100, valid_days=30),
                    by="t")  # fmt: skip
    issued = issue_many(state, "kill", range(20_000, 20_000 + COUPONS), key="kill").issued
    codes = tmp_path / "codes.txt"
    codes.write_text("\n".join(c.code for c in issued), encoding="utf-8")
    rng = random.Random(int(os.environ.get("OMNICRM_KILL_SEED", "20261125")))
    reported: Reported = {}
    position = 0
    for _ in range(ROUNDS):
        found = killed_round(state.url, codes, position, rng)
        for i, seen in found.items():
            assert reported.setdefault(i, seen) == seen, f"request {i} gave two results: {reported[i]}, {seen}"
        position = max(found, default=position - 1) + 1
    assert len(reported) >= 30, f"the storm made too few changes to say much: {len(reported)}"
    assert set(reported) == set(range(position)), "a round skipped a request"
    missing = [(i, r) for i, r in sorted(reported.items()) if not in_database(state, *r)]
    assert missing == [], f"reported as committed but not in the database: {missing[:5]}"
    check_points_entries_whole(state, MEMBER)
    check_ledger(state, MEMBER, T0)
    left = check_stored_value(state, MEMBER)
    check_coupons(state)
    before = counts(state)
    assert before[0] >= sum(1 for k, _, _ in reported.values() if k == "points")

    replay = worker(state.url, codes, 0, position)
    out, err = replay.communicate(timeout=240)
    assert replay.returncode == 0, err.decode()[-3000:]
    assert lines_of(out) == reported  # every key found its first change, with the same id
    assert counts(state) == before  # and made nothing new
    assert check_stored_value(state, MEMBER) == left
