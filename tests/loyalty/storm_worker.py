"""What the worker processes of the loyalty storms run: one request at a time against a state database of their own.

- ``open_store`` and ``request``: a ``multiprocessing`` pool's initializer and task (test_process_storms.py). Each
  process opens its own StateStore on the same URL, waits at a barrier so that all start together, then answers
  tasks ``(kind, key, ...)``: ``points`` spends points, ``stored`` spends stored value, ``coupon`` redeems a code.
  A task returns ``("ok", pid, key, id, amount)``, ``("refused", pid, key, error class, field)`` or
  ``("error", pid, key, repr)``.
- ``python -m tests.loyalty.storm_worker URL MEMBER CODES START STOP`` (test_kill_storm.py): request ``START`` …
  ``STOP - 1`` in turn (``i % 3``: a point, a fen of stored value, the coupon ``CODES[i // 3]``), and print
  ``i kind key id`` for each, flushed, only once its transaction has committed. Killed at any moment, every line
  printed names a committed change; run again from any index, the same keys replay the same changes.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

from omnicrm.errors import OmnicrmError
from omnicrm.loyalty import stored_value as sv
from omnicrm.loyalty.coupon_redemptions import redeem
from omnicrm.loyalty.ledger import spend
from omnicrm.store.state import StateStore

STATE: StateStore | None = None
COUPON_ORDER_FEN = 10_000  # every redemption is on an order of ¥100


def _worker() -> str:
    """Which worker served a request: the process, and the thread in it."""
    return f"{os.getpid()}/{threading.get_ident()}"


def open_store(url: str, gate: Any = None) -> None:
    """Pool initializer: this process's own store (not migrated: the parent did it), then wait for the others."""
    global STATE
    STATE = StateStore(url, migrate=False)
    with STATE.connect() as conn:  # the first connection (and its imports) before the start
        conn.exec_driver_sql("SELECT 1")
    if gate is not None:
        gate.wait(120)


def perform(state: StateStore, kind: str, member: int, key: str, amount: int, store: str) -> tuple[int, int]:
    """One request; (the id of the entry or redemption it wrote or replayed, its amount)."""
    if kind == "points":
        entry = spend(state, member, amount, by=f"till-{store}", idempotency_key=key, reference=key)
        return entry.id, -entry.points
    if kind == "stored":
        receipt = sv.spend(state, member, amount, till=sv.Till(store, key, f"till-{store}", f"guide-{store}"))
        return receipt.entry.id, -receipt.entry.amount_fen
    raise ValueError(kind)


def request(task: tuple[Any, ...]) -> tuple[Any, ...]:
    """Pool task: ``(kind, key, member, amount)`` for points and stored value, ``("coupon", order_id, code)``."""
    assert STATE is not None, "open_store first"
    kind, key = task[0], task[1]
    try:
        if kind == "coupon":
            done = redeem(STATE, task[2], channel="store", amount_fen=COUPON_ORDER_FEN, order_id=key,
                          store_code=f"S{len(key) % 7}", guide_id="g1", by="storm")  # fmt: skip
            return ("ok", _worker(), key, done.id, done.discount_fen)
        found, amount = perform(STATE, kind, task[2], key, task[3], f"S{len(key) % 7}")
        return ("ok", _worker(), key, found, amount)
    except OmnicrmError as exc:
        field = exc.problems[0].field if exc.problems else None
        return ("refused", _worker(), key, type(exc).__name__, field)
    except Exception as exc:  # reported to the test, which fails on any
        return ("error", _worker(), key, repr(exc))


def main(argv: list[str]) -> int:
    url, member, codes_file, start, stop = argv[0], int(argv[1]), Path(argv[2]), int(argv[3]), int(argv[4])
    codes = codes_file.read_text(encoding="utf-8").split()
    state = StateStore(url, migrate=False)
    for i in range(start, stop):
        if i % 3 == 0:
            key = f"kill-p-{i}"
            found, _ = perform(state, "points", member, key, 1, "K1")
            kind = "points"
        elif i % 3 == 1:
            key = f"kill-s-{i}"
            found, _ = perform(state, "stored", member, key, 1, "K1")
            kind = "stored"
        else:
            key = f"kill-c-{i}"
            found = redeem(state, codes[i // 3], channel="store", amount_fen=COUPON_ORDER_FEN, order_id=key,
                           store_code="K1", guide_id="g1", by="kill storm").id  # fmt: skip
            kind = "coupon"
        sys.stdout.write(f"{i} {kind} {key} {found}\n")
        sys.stdout.flush()
    state.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
